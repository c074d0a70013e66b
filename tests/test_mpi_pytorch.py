"""mpi_pytorch under real mpiexec: averaged training equals one process applying mean grads."""

from __future__ import annotations

import numpy as np
import pytest
import torch

pytestmark = pytest.mark.mpi

MODEL = """
import numpy as np
import torch

def make_model(seed):
    torch.manual_seed(seed)
    model = torch.nn.Sequential(torch.nn.Linear(4, 16), torch.nn.Tanh(), torch.nn.Linear(16, 1))
    model.unused = torch.nn.Parameter(torch.zeros(3))          # grad stays None everywhere
    model.side = torch.nn.Parameter(torch.ones(2))             # grad only on rank 0
    model.big = torch.nn.Parameter(torch.full((40000,), 0.5))  # above the fusion threshold
    model.frozen = torch.nn.Parameter(torch.ones(2), requires_grad=False)
    return model

def data(rank):
    rng = np.random.default_rng(rank)
    return (torch.tensor(rng.normal(size=(32, 4)), dtype=torch.float32),
            torch.tensor(rng.normal(size=(32, 1)), dtype=torch.float32))

def loss_fn(model, rank):
    X, y = data(rank)
    loss = ((model(X) - y) ** 2).mean() + 1e-3 * (model.big ** 2).sum() * (rank + 1)
    if rank == 0:
        loss = loss + (model.side ** 2).sum()
    return loss
"""

PROGRAM = MODEL + """
import sys
from spinfast.mpi_pytorch import FlatGrads, mpi_avg_grads, setup_pytorch_for_mpi, sync_params
from spinfast.mpi_tools import proc_id, num_procs

mode = sys.argv[1]
setup_pytorch_for_mpi()
rank = proc_id()
model = make_model(seed=rank)    # different on every rank until synced
sync_params(model)
opt = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=0.05)
flat = FlatGrads(model) if mode == "flat" else None
for step in range(6):
    opt.zero_grad()              # set_to_none=True: FlatGrads must re-bind its views
    loss_fn(model, rank).backward()
    if flat is None:
        mpi_avg_grads(model)
    else:
        flat.average()
    opt.step()
assert model.unused.grad is None or mode == "flat"
flat_params = torch.cat([p.detach().reshape(-1) for p in model.parameters()]).numpy()
np.save(f"rank{rank}.npy", flat_params)
print("threads", torch.get_num_threads())
"""


def reference(size):
    namespace = {}
    exec(MODEL, namespace)
    model = namespace["make_model"](seed=0)
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.Adam(params, lr=0.05)
    for step in range(6):
        grads = []
        for rank in range(size):
            model.zero_grad()
            namespace["loss_fn"](model, rank).backward()
            grads.append([None if p.grad is None else p.grad.clone() for p in params])
        for i, p in enumerate(params):
            got = [g[i] for g in grads if g[i] is not None]
            p.grad = None if not got else sum(got) / size
        opt.step()
    return torch.cat([p.detach().reshape(-1) for p in model.parameters()]).numpy()


@pytest.mark.parametrize("size,mode", [(2, "grads"), (2, "flat"), (3, "grads")])
def test_average_grads_matches_single_process(run_mpi, tmp_path, size, mode):
    proc = run_mpi(PROGRAM, n=size, args=[mode], timeout=180)
    results = [np.load(tmp_path / f"rank{r}.npy") for r in range(size)]
    for r in range(1, size):
        np.testing.assert_array_equal(results[r], results[0])  # no rank differs
    np.testing.assert_allclose(results[0], reference(size), rtol=2e-5, atol=1e-6)
    assert "threads" in proc.stdout


def test_layout_mismatch_raises_on_every_rank(run_mpi):
    code = """
    import torch
    from spinfast.mpi_pytorch import sync_params
    from spinfast.mpi_tools import proc_id
    model = torch.nn.Linear(3, 2 + proc_id())
    try:
        sync_params(model)
    except ValueError as exc:
        print(f"rank {proc_id()} ValueError: {exc}", flush=True)
    """
    proc = run_mpi(code, n=2, timeout=60)
    assert "rank 0 ValueError" in proc.stdout and "rank 1 ValueError" in proc.stdout


def test_single_process_is_a_no_op():
    from spinfast.mpi_pytorch import FlatGrads, mpi_avg_grads, sync_params

    model = torch.nn.Linear(3, 2)
    model(torch.ones(1, 3)).sum().backward()
    before = [p.grad.clone() for p in model.parameters()]
    mpi_avg_grads(model)
    sync_params(model)
    flat = FlatGrads(model)
    flat.average()
    for p, g in zip(model.parameters(), before):
        assert torch.equal(p.grad, g)
        assert p.grad.data_ptr() == flat.views[p].data_ptr()


def test_parameter_walk_matches_module_parameters():
    from spinfast.mpi_pytorch import _parameters

    shared = torch.nn.Linear(3, 3)
    model = torch.nn.Sequential(
        torch.nn.Linear(2, 3), torch.nn.ModuleDict({"a": shared, "b": shared}),
        torch.nn.Sequential(torch.nn.ReLU(), torch.nn.Linear(3, 1)), torch.nn.Identity())
    model.extra = torch.nn.Parameter(torch.zeros(2))
    model[0].bias.requires_grad_(False)
    expected = list(model.parameters())
    assert _parameters(model, trainable_only=False) == expected
    assert _parameters(model, trainable_only=True) == [p for p in expected if p.requires_grad]
