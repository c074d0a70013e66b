"""Averaging over the emulated cluster's links (bench/netcluster.py): nodes in network
namespaces, one rank per node, links shaped to 1, 10 or 25 Gbit/s.

Run (as root; rank 0 reports)::

    python -m pytest bench/bench_netcluster.py -p no:cacheprovider -k 2n-10gbit

Collected without a launch, the file makes one cluster per variant (``<nodes>n-<rate>``) and
runs itself on it under MPICH (ofi/tcp, ``MPIR_CVAR_NOLOCAL=1``), with gloo's environment set
for the same links. Not root: skipped. With ``--benchmark-disable`` (CI) only ``2n-10gbit``
runs, each benchmark once at its smallest sizes. ``NETBENCH_K`` selects the benchmarks
inside the launch (``pytest -k``), e.g. ``NETBENCH_K="allreduce or 12.7M"``.

* ``allreduce <n>``: the sum of n float32: ``FlatBuffer.allreduce`` (``auto``), MPI's own
  ``Allreduce(IN_PLACE)``, and as extra sides the engine forced onto its own paths
  (``algorithm='engine'``) and ``torch.distributed.all_reduce`` (gloo). Target (issue 31):
  ``auto`` at most 1.0x MPI's own.
* ``step <size>``: forward + backward of bench_ddp.py's MLP (0.8M, 12.7M, 50M parameters),
  then the averaging: ``mpi_avg_grads`` against DDP (gloo); extra sides ``compute`` (no
  averaging), ``flat`` (``FlatGrads``) and ``overlap`` (``FlatGrads(overlap=True)``: buckets
  averaged while backward runs). Targets: 0.7x DDP's at 12.7M, 0.75x at 50M.
* ``step bf16 <size>``: the same with ``compress='bf16'`` against DDP with its
  ``bf16_compress_hook``; extra sides DDP plain and spinfast float32. Target 0.8x the hook's.
* ``avg 10M``: ``mpi_avg_grads(compress='bf16')`` against ``compress=None`` on 10M float32
  gradients (bench_compress.py's shapes), fp16 as an extra side. Targets: 0.6x float32 at
  10 Gbit/s, 0.55x at 1 Gbit/s.

Before timing, the step checks that each side's averaged gradients equal ``mpi_avg_grads``'s
(DDP's and the overlap's bit for bit at 2 ranks).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
VARIANT = os.environ.get("NETBENCH_VARIANT", "")
VARIANTS = [f"{n}n-{rate}" for n in (2, 4) for rate in ("10gbit", "1gbit", "25gbit")]
UNDER_LAUNCH = bool(VARIANT)

if UNDER_LAUNCH:
    from bench_compress import SHAPES
    from bench_ddp import WIDTHS, batch, compute, mlp
    from mpibench import COMM, RANK, SIZE, interleaved

    RATE = VARIANT.split("-")[1]
    SLOW = {"1gbit": 10, "10gbit": 1, "25gbit": 1}[RATE]  # fewer rounds on slow links
    DISABLED = os.environ.get("NETBENCH_DISABLED") == "1"


def rounds(n):
    return max(3, n // SLOW)


def sizes(all_sizes, first=1):
    """All sizes, or under --benchmark-disable the first ``first`` (CI's single pass)."""
    return all_sizes[:first] if not UNDER_LAUNCH or DISABLED else all_sizes


@pytest.fixture(scope="module")
def gloo():
    """torch.distributed with gloo on the MPI ranks, meeting on node 0 (the launch's
    MASTER_ADDR/MASTER_PORT), each rank on its node's interface (GLOO_SOCKET_IFNAME)."""
    import torch.distributed as dist

    from spinfast.mpi_pytorch import setup_pytorch_for_mpi

    setup_pytorch_for_mpi()
    dist.init_process_group("gloo", rank=RANK, world_size=SIZE)
    yield dist
    dist.barrier()  # no rank tears gloo down while a peer still uses it (abort in gloo)
    dist.destroy_process_group()
    COMM.Barrier()


@pytest.mark.parametrize("n", sizes([1_000, 100_000, 1_000_000, 10_000_000, 50_000_000], 2),
                         ids=lambda n: f"{n:.0e}".replace("+0", "").replace("+", ""))
def test_allreduce(benchmark, capsys, gloo, n):
    import torch
    from mpi4py import MPI

    from spinfast._flat import FlatBuffer

    count = rounds(100 if n <= 100_000 else 20 if n <= 1_000_000 else 8)
    buffers = {side: torch.empty(n) for side in ("spinfast", "reference", "engine", "gloo")}
    ours, raw, forced = (buffers[s].numpy() for s in ("spinfast", "reference", "engine"))
    auto, engine = FlatBuffer(), FlatBuffer(algorithm="engine")

    def prepare(side):  # untimed: each call sums freshly written memory, as after backward
        buffers[side].fill_(RANK + 1)

    prepare("spinfast")
    auto.allreduce(COMM, [ours])
    assert (ours == sum(range(1, SIZE + 1))).all()
    engine.allreduce(COMM, [forced])
    interleaved(benchmark, f"allreduce {n} float32 {VARIANT}: auto vs MPI", 1.0, count,
                lambda: auto.allreduce(COMM, [ours]),
                lambda: COMM.Allreduce(MPI.IN_PLACE, raw),
                extra={"engine": lambda: engine.allreduce(COMM, [forced]),
                       "gloo": lambda: gloo.all_reduce(buffers["gloo"])}, prepare=prepare)
    benchmark.extra_info["paths"] = f"auto {auto.paths} engine {engine.paths}"
    if RANK == 0:
        with capsys.disabled():
            print(f"\npaths {n}: auto {auto.paths}, engine {engine.paths}")


@pytest.mark.parametrize("size", sizes(["0.8M", "12.7M", "50M"]))
def test_step(benchmark, gloo, size):
    import torch
    from torch.nn.parallel import DistributedDataParallel as DDP

    from spinfast._mpi import overlap as _overlap
    from spinfast.mpi_pytorch import FlatGrads, mpi_avg_grads

    width, count = WIDTHS[size]
    plain, ddp, flat_model, over_model = mlp(width), DDP(mlp(width)), mlp(width), mlp(width)
    flat, over = FlatGrads(flat_model), FlatGrads(over_model, overlap=True)
    hooks_model = mlp(width)  # overlap progressed by the gradient hooks alone (no thread)
    progress, _overlap.PROGRESS = _overlap.PROGRESS, "hooks"
    hooks = FlatGrads(hooks_model, overlap=True)
    _overlap.PROGRESS = progress
    data = batch(seed=RANK)
    compute(plain, data)
    mpi_avg_grads(plain)
    want = [p.grad.clone() for p in plain.parameters()]
    for name, model, avg in (("ddp", ddp, None), ("flat", flat_model, flat.average),
                             ("overlap", over_model, over.average)):
        compute(model, data)
        if avg is not None:
            avg()
        got = model.module if name == "ddp" else model
        same = all(torch.equal(p.grad, r) for p, r in zip(got.parameters(), want))
        assert same or SIZE > 2, f"{name}: averaged gradients differ from mpi_avg_grads's"

    def side(model, avg=None):
        def run():
            compute(model, data)
            if avg is not None:
                avg()
        return run

    target = {"12.7M": 1 / 0.7, "50M": 1 / 0.75}.get(size)
    interleaved(benchmark, f"step {size} {VARIANT}: vs DDP (gloo)", target, rounds(count),
                side(plain, lambda: mpi_avg_grads(plain)), side(ddp),
                extra={"compute": side(plain), "flat": side(flat_model, flat.average),
                       "overlap": side(over_model, over.average),
                       "overlap-hooks": side(hooks_model, hooks.average)}, warmup_rounds=2)


def _bf16_hook(state, bucket):
    """DDP's ``bf16_compress_hook`` under another name: ``register_comm_hook`` refuses that
    name without CUDA and NCCL, though the hook runs on gloo's CPU tensors."""
    from torch.distributed.algorithms.ddp_comm_hooks.default_hooks import bf16_compress_hook

    return bf16_compress_hook(state, bucket)


@pytest.mark.parametrize("size", sizes(["0.8M", "12.7M", "50M"]))
def test_step_bf16(benchmark, gloo, size):
    from torch.nn.parallel import DistributedDataParallel as DDP

    from spinfast.mpi_pytorch import mpi_avg_grads

    width, count = WIDTHS[size]
    plain, ddp, hooked = mlp(width), DDP(mlp(width)), DDP(mlp(width))
    hooked.register_comm_hook(None, _bf16_hook)
    data = batch(seed=RANK)

    def side(model, avg=None):
        def run():
            compute(model, data)
            if avg is not None:
                avg()
        return run

    target = 1 / 0.8 if size == "12.7M" else None
    interleaved(benchmark, f"step bf16 {size} {VARIANT}: vs DDP bf16_compress_hook", target,
                rounds(count), side(plain, lambda: mpi_avg_grads(plain, compress="bf16")),
                side(hooked), extra={"ddp": side(ddp),
                                     "float32": side(plain, lambda: mpi_avg_grads(plain))},
                warmup_rounds=2)


def test_avg_10M(benchmark):
    import torch

    from spinfast.mpi_pytorch import mpi_avg_grads, setup_pytorch_for_mpi

    setup_pytorch_for_mpi()
    torch.manual_seed(RANK)
    params = torch.nn.ParameterList([torch.nn.Parameter(torch.zeros(s)) for s in SHAPES])
    for p in params:
        p.grad = torch.randn(p.shape)

    def prepare(side):  # untimed: the call moves freshly written memory, as after backward
        for p in params:
            p.grad.mul_(1)

    target = {"1gbit": 1 / 0.55, "10gbit": 1 / 0.6}.get(RATE)
    interleaved(benchmark, f"avg 10M {VARIANT}: bf16 vs float32", target, rounds(12),
                lambda: mpi_avg_grads(params, compress="bf16"),
                lambda: mpi_avg_grads(params),
                extra={"fp16": lambda: mpi_avg_grads(params, compress="fp16")},
                prepare=prepare)


if not UNDER_LAUNCH:
    for _name in [n for n in globals() if n.startswith("test_")]:
        del globals()[_name]

    @pytest.mark.timeout(1800)
    @pytest.mark.parametrize("variant", VARIANTS)
    def test_on_cluster(request, capsys, variant):
        """Make the variant's cluster and run this file on it (one rank per node)."""
        sys.path.insert(0, str(HERE))
        import netcluster

        reason = netcluster.unavailable() or netcluster.mpich_missing()
        if reason:
            pytest.skip(f"netcluster: {reason}")
        disabled = request.config.getoption("benchmark_disable", False)
        if disabled and variant != "2n-10gbit":
            pytest.skip("with --benchmark-disable only 2n-10gbit runs (CI's single pass)")
        nodes, rate = variant.split("n-")
        argv = ["-m", "pytest", __file__, "-q", "-p", "no:cacheprovider", "--rootdir",
                str(request.config.rootpath), "--timeout", "1500"]
        for flag in ("--benchmark-disable", "--check-targets"):
            if request.config.getoption(flag.lstrip("-").replace("-", "_"), False):
                argv.append(flag)
        if os.environ.get("NETBENCH_K"):  # which benchmarks the launch runs (pytest -k)
            argv += ["-k", os.environ["NETBENCH_K"]]
        with netcluster.Cluster(int(nodes), rate) as cluster:
            cmd, env = netcluster.mpich_launch(cluster, 1, argv)
            env.update(NETBENCH_VARIANT=variant, NETBENCH_DISABLED=str(int(disabled)))
            proc = subprocess.run(cmd, env=env, capture_output=True, text=True,
                                  timeout=1800, cwd=request.config.rootpath)
        with capsys.disabled():
            print(f"\n--- {variant}: {' '.join(cmd[:8])} ... ---\n{proc.stdout}")
        assert proc.returncode == 0, proc.stdout + proc.stderr
