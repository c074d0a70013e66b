"""Large-model gradient averaging against PyTorch DDP (gloo), in the same run.

Run (two ranks; rank 0 reports)::

    mpiexec -n 2 python -m pytest bench/bench_ddp.py -p no:cacheprovider

(collected without a launch, this file runs itself that way once per transport of
``mpibench.TRANSPORTS``: shared memory, ``MPIR_CVAR_NOLOCAL=1``, and two TCP loopback paths,
with PyTorch's default pages; and on shared memory with ``THP_MEM_ALLOC_ENABLE=1``: PyTorch's
tensors of 2 MB or more on transparent huge pages, as ``mpi_fork`` sets for its ranks). Each rank
runs one torch thread (``setup_pytorch_for_mpi``); gloo is initialised from the same ranks
over TCP on the loopback interface.

* ``step <size>``: forward + backward of an MLP of 4 hidden layers (width 512, 2048, 4096:
  ~0.8M, ~12.7M, ~50.5M parameters) on 64 samples, then the averaging, in five sides timed in
  the same rounds: ``compute`` (no averaging), ``spinfast`` (``mpi_avg_grads(model)``),
  ``spinup`` (Spinning Up's per-tensor ``mpi_avg``), ``ddp`` (the same model in
  ``DistributedDataParallel``, whose autograd hooks average buckets during backward) and
  ``overlap`` (``FlatGrads(overlap=True)``, spinfast's buckets averaged during backward). The
  ratio is DDP's step over spinfast's; the overhead ratio (step - compute) is printed by the
  "all sides" table's figures (see bench/README.md). Targets: step at most 0.8x DDP's at
  12.7M and 50M, 0.7x at 0.8M.
* ``allreduce <n>``: the sum of n float32 on 2 ranks: ``FlatBuffer.allreduce``, a raw
  ``Allreduce(IN_PLACE)`` and ``torch.distributed.all_reduce`` (gloo).

Before timing, each size checks that spinfast's averaged gradients equal DDP's bit for bit
(same parameters, same per-rank data): tests/test_ddp.py runs the same check in the suite.
"""

from __future__ import annotations

import os
import socket

import mpibench
import pytest
from mpibench import COMM, RANK, SIZE, interleaved, select_tests, transports

WIDTHS = {"0.8M": (512, 40), "12.7M": (2048, 12), "50M": (4096, 5)}  # width, rounds
BATCH, IN, OUT = 64, 64, 8
TRANSPORT = mpibench.TRANSPORT + ("+thp" if os.environ.get("THP_MEM_ALLOC_ENABLE") == "1" else "")


def mlp(width, seed=0):
    """4 hidden layers of ``width`` (3 square layers: ~3 width^2 parameters), seeded."""
    import torch
    from torch import nn

    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(IN, width), nn.Tanh(), nn.Linear(width, width), nn.Tanh(),
                         nn.Linear(width, width), nn.Tanh(), nn.Linear(width, width),
                         nn.Tanh(), nn.Linear(width, OUT))


def batch(seed):
    import torch

    g = torch.Generator().manual_seed(seed)
    return torch.randn(BATCH, IN, generator=g), torch.randn(BATCH, OUT, generator=g)


def compute(model, data):
    """Forward + backward (gradients replaced, as after ``zero_grad``)."""
    x, y = data
    model.zero_grad(set_to_none=False)
    ((model(x) - y) ** 2).mean().backward()


@pytest.fixture(scope="module")
def gloo():
    """torch.distributed with gloo on the MPI ranks (rank 0's free loopback port)."""
    import torch.distributed as dist

    from spinfast.mpi_pytorch import setup_pytorch_for_mpi

    setup_pytorch_for_mpi()
    port = None
    if RANK == 0:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
    port = COMM.bcast(port, root=0)
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=RANK,
                            world_size=SIZE)
    yield dist
    dist.barrier()  # no rank tears gloo down while a peer still uses it (abort in gloo)
    dist.destroy_process_group()
    COMM.Barrier()


def models(width):
    """(plain model, DDP-wrapped copy with the same parameters) for ``width``."""
    from torch.nn.parallel import DistributedDataParallel as DDP

    plain = mlp(width)
    return plain, DDP(mlp(width))


def assert_same_gradients(plain, ddp, data):
    """spinfast's average of this rank's gradients equals DDP's, bit for bit."""
    import torch

    from spinfast.mpi_pytorch import mpi_avg_grads

    compute(plain, data)
    mpi_avg_grads(plain)
    compute(ddp, data)
    for (name, p), q in zip(plain.named_parameters(), ddp.module.parameters()):
        assert torch.equal(p.grad, q.grad), f"{name}: spinfast's average differs from DDP's"


@pytest.mark.skipif(not os.path.exists("/proc/self/clear_refs"), reason="Linux only")
@pytest.mark.parametrize("size", ["12.7M", "50M"])
def test_memory(capsys, size):
    """Per-rank peak memory above the model and its gradients: first call, then steady.

    First in the file: the engine keeps its buffers, so after the step benchmarks of the same
    sizes the "first" call would allocate nothing.
    """
    from spinfast.mpi_pytorch import mpi_avg_grads, sync_params

    model = mlp(WIDTHS[size][0])
    compute(model, batch(seed=RANK))
    grad_mb = sum(p.grad.numel() * 4 for p in model.parameters()) / 2**20
    figures = {}
    for name, fn in (("mpi_avg_grads", lambda: mpi_avg_grads(model)),
                     ("sync_params", lambda: sync_params(model))):
        COMM.Barrier()
        first = _extra_peak_mb(fn)
        COMM.Barrier()
        steady = _extra_peak_mb(fn)
        figures[name] = (first, steady)
        assert max(first, steady) <= 0.5 * grad_mb + 8, (name, first, steady, grad_mb)
    if RANK == 0:
        with capsys.disabled():
            for name, (first, steady) in figures.items():
                print(f"\nmemory {size} {TRANSPORT}: {name} peak extra {first:.1f} MB first "
                      f"call, {steady:.1f} MB after; gradients {grad_mb:.1f} MB "
                      f"({max(first, steady) / grad_mb:.2f}x)")


@pytest.mark.parametrize("size", list(WIDTHS))
def test_step(benchmark, gloo, size):
    from reference import reference_module_avg_grads

    from spinfast.mpi_pytorch import FlatGrads, mpi_avg_grads

    width, rounds = WIDTHS[size]
    plain, ddp = models(width)
    data = batch(seed=RANK)
    assert_same_gradients(plain, ddp, data)

    def ours():
        compute(plain, data)
        mpi_avg_grads(plain)

    def spinup():
        compute(plain, data)
        reference_module_avg_grads(COMM, plain)

    over_model = mlp(width)  # FlatGrads(overlap=True): buckets averaged during backward
    over = FlatGrads(over_model, overlap=True)

    def overlap():
        compute(over_model, data)
        over.average()

    target = {"0.8M": 1 / 0.7}.get(size, 1 / 0.8)
    interleaved(benchmark, f"step {size} {TRANSPORT}: vs DDP (gloo)", target, rounds, ours,
                lambda: compute(ddp, data), extra={"compute": lambda: compute(plain, data),
                                                   "spinup": spinup, "overlap": overlap},
                warmup_rounds=2)


@pytest.mark.parametrize("n", [10_000, 1_000_000, 10_000_000], ids=["10k", "1M", "10M"])
def test_allreduce(benchmark, gloo, n):
    import torch
    from mpi4py import MPI

    from spinfast._flat import FlatBuffer

    rounds = 200 if n <= 10_000 else 60 if n <= 1_000_000 else 20
    buffers = {side: torch.empty(n) for side in ("spinfast", "reference", "gloo")}
    ours, raw = buffers["spinfast"].numpy(), buffers["reference"].numpy()
    engine = FlatBuffer()

    def prepare(side):  # untimed: each call sums freshly written memory, as after backward
        buffers[side].fill_(RANK + 1)

    prepare("spinfast")
    engine.allreduce(COMM, [ours])
    assert (ours == sum(range(1, SIZE + 1))).all()
    interleaved(benchmark, f"allreduce {n} float32 {TRANSPORT}: vs raw MPI", None, rounds,
                lambda: engine.allreduce(COMM, [ours]),
                lambda: COMM.Allreduce(MPI.IN_PLACE, raw),
                extra={"gloo": lambda: gloo.all_reduce(buffers["gloo"])}, prepare=prepare)


def _rss_mb(field):
    """``VmRSS`` (now) or ``VmHWM`` (peak since the last reset) of this process, MB."""
    for line in open("/proc/self/status"):
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no {field} in /proc/self/status")


def _extra_peak_mb(fn):
    """Peak resident memory ``fn`` adds above what the process holds when it starts, MB."""
    with open("/proc/self/clear_refs", "w") as f:  # reset VmHWM to the current RSS
        f.write("5")
    before = _rss_mb("VmRSS")
    fn()
    return _rss_mb("VmHWM") - before


# Each transport with PyTorch's default 4 KiB pages (THP_MEM_ALLOC_ENABLE=0), and shared memory
# also with its tensors of 2 MB or more on transparent huge pages (THP_MEM_ALLOC_ENABLE=1, what
# mpi_fork gives its ranks): all five sides of a variant run in the same environment.
select_tests(globals(), __file__, variants={
    **transports("shm", "nolocal", "tcp-ucx", "tcp-ofi", THP_MEM_ALLOC_ENABLE="0"),
    "shm+thp": {**transports("shm")["shm"], "THP_MEM_ALLOC_ENABLE": "1"}})
