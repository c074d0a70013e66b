"""mpi_pytorch under real mpiexec: averaged training equals one process applying mean grads."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import Launches, find_mpiexec, load_mpi_module, mpi_program, rank_files

pytestmark = pytest.mark.mpi

# Programs: tests/programs/torch_avg_grads.py (model, data and loss in torch_model.py),
# tests/programs/torch_layout_mismatch.py, tests/programs/comm_churn.py,
# tests/programs/torch_engines.py (with the PMPI counter tests/programs/pmpi_count.c).

MODEL = load_mpi_module("torch_model")


def reference(size):
    model = MODEL.make_model(seed=0)
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.Adam(params, lr=0.05)
    for step in range(6):
        grads = []
        for rank in range(size):
            model.zero_grad()
            MODEL.loss_fn(model, rank).backward()
            grads.append([None if p.grad is None else p.grad.clone() for p in params])
        for i, p in enumerate(params):
            got = [g[i] for g in grads if g[i] is not None]
            p.grad = None if not got else sum(got) / size
        opt.step()
    return torch.cat([p.detach().reshape(-1) for p in model.parameters()]).numpy()


@pytest.fixture(scope="module")
def trainings(tmp_path_factory):
    """``trainings(size)``: (folder, process) of one launch of torch_avg_grads.py at ``size``
    ranks, with both modes at 2 ranks (torch imported once per rank)."""
    launches = Launches(tmp_path_factory, "torch_avg_grads", timeout=180)
    return lambda size: launches(size, *(["grads", "flat"] if size == 2 else ["grads"]))


@pytest.mark.slow
@pytest.mark.parametrize("size,mode", [(2, "grads"), (2, "flat"), (3, "grads")])
def test_average_grads_matches_single_process(trainings, size, mode):
    folder, proc = trainings(size)
    results = [np.load(folder / f"{mode}_rank{r}.npy") for r in range(size)]
    for r in range(1, size):
        np.testing.assert_array_equal(results[r], results[0])  # no rank differs
    np.testing.assert_allclose(results[0], reference(size), rtol=2e-5, atol=1e-6)
    assert "threads" in proc.stdout


def test_layout_mismatch_raises_on_every_rank(run_mpi):
    proc = run_mpi("torch_layout_mismatch", n=2, timeout=60)
    assert "rank 0 ValueError" in proc.stdout and "rank 1 ValueError" in proc.stdout


@pytest.mark.slow
@pytest.mark.timeout(300)
@pytest.mark.parametrize("iterations", [20000])  # past 2,048 contexts, 10x over
def test_gradients_on_short_lived_sub_communicators(run_mpi, tmp_path, iterations):
    """A module's gradient tensors averaged through the engine on sub-communicators made and
    freed one after another (mpi_avg_grads knows only the world: it runs there in between)
    leak no communicator and no memory."""
    run_mpi("comm_churn", n=2, args=[iterations, "torch"], timeout=280)
    for r in rank_files(tmp_path, 2, "churn"):
        assert "failed_at" not in r, r
        assert r["ok"] and r["iterations"] == iterations
        assert r["rss_end"] - r["rss_2000"] < 10, r  # MB


@pytest.mark.timeout(200)
@pytest.mark.parametrize("size", [2, 3])
def test_one_engine_per_module_counted_by_mpi_and_two_threads(run_mpi, tmp_path, size):
    """MPI calls counted by a PMPI library (built with the MPI's own mpicc, loaded through
    mpi4py.profile): alternating mpi_avg_grads(pi) and mpi_avg_grads(q) makes exactly the
    collectives and messages of repeating each (no agreement redone: one engine per module);
    and two threads averaging the two modules at once (MPI_THREAD_MULTIPLE) get exact means."""
    launcher = find_mpiexec()
    mpicc = shutil.which("mpicc", path=str(Path(launcher).parent)) if launcher else None
    if mpicc is None:
        pytest.skip("no mpicc beside mpiexec to build the PMPI counter")
    source = mpi_program("torch_engines").parent / "pmpi_count.c"
    subprocess.run([str(Path(mpicc).resolve()), "-shared", "-fPIC", "-o",  # (its prefix: where
                    str(tmp_path / "libpmpi_count.so"), str(source)],  # it lies, not the link)
                   check=True, timeout=60)
    run_mpi("torch_engines", n=size, timeout=180, env={"PMPI_COUNT_DIR": str(tmp_path)})
    lines = [x for r in range(size)
             for x in (tmp_path / f"engines{r}.txt").read_text().splitlines()]
    assert lines.count("THREAD_MULTIPLE True") == size, lines
    counts = [tuple(map(float, x.split()[1:])) for x in lines if x.startswith("COUNTS ")]
    assert len(counts) == size, lines
    for pi_coll, pi_msgs, q_coll, q_msgs, both_coll, both_msgs in counts:
        assert pi_coll + pi_msgs >= 1 and q_coll + q_msgs >= 1  # the counter sees the calls
        assert both_coll == (pi_coll + q_coll) / 2 and both_msgs == (pi_msgs + q_msgs) / 2
        assert pi_coll <= 1 and q_coll <= 1  # the agreement rides with the data
    assert lines.count("THREADS 0 []") == size, lines


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


def _walker():
    """The walk (``module.parameters()``) and views of spinfast.mpi_pytorch."""
    from types import SimpleNamespace

    from spinfast import mpi_pytorch

    return SimpleNamespace(parameters=mpi_pytorch._parameters,
                           grad_views=mpi_pytorch._grad_views,
                           tensor_views=mpi_pytorch._tensor_views)


def test_views_share_tensor_memory():
    """The compiled views are the tensors' own bytes: writes through them reach the tensors."""
    walker = _walker()
    model = torch.nn.Linear(3, 2).double()
    model.empty = torch.nn.Parameter(torch.zeros(0))
    model(torch.ones(1, 3, dtype=torch.float64)).sum().backward()
    model.weight.grad = model.weight.grad.t().contiguous().t()      # strided: made contiguous
    params = walker.parameters(model, True)
    views, missing = walker.grad_views(params, "x")
    assert missing == [2] and views[2] is None                      # ``empty`` has no grad
    assert model.weight.grad.is_contiguous()
    w = np.asarray(views[0])
    assert w.dtype == np.float64 and w.shape == (2, 3)              # the tensor's own shape
    np.testing.assert_array_equal(w, model.weight.grad.numpy())
    w[:] = 7.0
    assert torch.equal(model.weight.grad, torch.full((2, 3), 7.0, dtype=torch.float64))
    pviews = walker.tensor_views(params, "x")
    assert [np.asarray(v).size for v in pviews] == [6, 2, 0]
    np.asarray(pviews[1])[:] = -1.0
    assert torch.equal(model.bias.detach(), torch.full((2,), -1.0, dtype=torch.float64))


def test_views_hand_bad_tensors_to_the_engine_or_name_the_device():
    from spinfast._flat import FlatBuffer
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
