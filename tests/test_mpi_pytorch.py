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
    from spinfast.mpi_pytorch import _walker

    _parameters = _walker().parameters

    shared = torch.nn.Linear(3, 3)
    model = torch.nn.Sequential(
        torch.nn.Linear(2, 3), torch.nn.ModuleDict({"a": shared, "b": shared}),
        torch.nn.Sequential(torch.nn.ReLU(), torch.nn.Linear(3, 1)), torch.nn.Identity())
    model.extra = torch.nn.Parameter(torch.zeros(2))
    model[0].bias.requires_grad_(False)
    expected = list(model.parameters())
    assert _parameters(model, False) == expected
    assert _parameters(model, True) == [p for p in expected if p.requires_grad]
    # Past 32 parameters the walk remembers them in a set: sharing is still seen, order kept.
    deep = torch.nn.Sequential(*[torch.nn.Linear(2, 2) for _ in range(30)], model)
    deep.again = deep[3]
    deep.tied = torch.nn.Linear(2, 2)
    deep.tied.weight = deep[25].weight
    expected = list(deep.parameters())
    assert len(expected) == 60 + len(list(model.parameters())) + 1
    assert _parameters(deep, False) == expected
    assert _parameters(deep, True) == [p for p in expected if p.requires_grad]


def test_views_share_tensor_memory():
    """The compiled views are the tensors' own bytes: writes through them reach the tensors."""
    from spinfast.mpi_pytorch import _walker

    walker = _walker()
    model = torch.nn.Linear(3, 2).double()
    model.empty = torch.nn.Parameter(torch.zeros(0))
    model(torch.ones(1, 3, dtype=torch.float64)).sum().backward()
    model.weight.grad = model.weight.grad.t().contiguous().t()      # strided: made contiguous
    params = walker.parameters(model, True)
    views, tensors, missing = walker.grad_views(params, "x")
    assert missing == [2] and views[2] is None                      # ``empty`` has no grad
    assert model.weight.grad.is_contiguous() and tensors[0] is model.weight.grad
    w = np.asarray(views[0])
    assert w.dtype == np.float64 and w.shape == (6,)
    np.testing.assert_array_equal(w, model.weight.grad.numpy().ravel())
    w[:] = 7.0
    assert torch.equal(model.weight.grad, torch.full((2, 3), 7.0, dtype=torch.float64))
    pviews = walker.tensor_views(params, "x")
    assert [np.asarray(v).size for v in pviews] == [6, 2, 0]
    np.asarray(pviews[1])[:] = -1.0
    assert torch.equal(model.bias.detach(), torch.full((2,), -1.0, dtype=torch.float64))


def test_views_hand_bad_tensors_to_the_engine_or_name_the_device():
    from spinfast._flat import FlatBuffer
    from spinfast.mpi_pytorch import _walker

    walker = _walker()
    half = torch.nn.Linear(3, 2).half()
    with pytest.raises(TypeError, match=r"array 0 has dtype float16; only float32 and float64"):
        FlatBuffer().bcast(None, walker.tensor_views(walker.parameters(half, False), "x"))
    strided = torch.nn.Parameter(torch.ones(8)[::2])
    with pytest.raises(ValueError, match=r"array 0 cannot be used in place"):
        FlatBuffer().bcast(None, walker.tensor_views([strided], "x"))
    meta = torch.nn.Parameter(torch.empty(3, device="meta"))
    with pytest.raises(ValueError, match=r"sync_params\(\): parameter 0 is on meta; spinfast "
                                         r"averages CPU tensors only"):
        walker.tensor_views([meta], "sync_params()")
