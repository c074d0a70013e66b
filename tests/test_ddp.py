"""spinfast's gradient average against PyTorch DDP (gloo), as bench/bench_ddp.py checks it."""

import pytest
from conftest import launch_step, rank_files

pytest.importorskip("torch")

# Both launches start with the session (conftest.early_steps).
LAUNCHES = {n: launch_step("ddp_grads", n, timeout=180) for n in (2, 3)}


@pytest.mark.mpi
@pytest.mark.parametrize("size", [pytest.param(2, marks=pytest.mark.early(LAUNCHES[2])),
                                  pytest.param(3, marks=[pytest.mark.slow,
                                                         pytest.mark.early(LAUNCHES[3])])])
def test_averaged_gradients_equal_ddp(early_steps, size):
    folder, _ = early_steps.result(LAUNCHES[size])
    results = rank_files(folder, size)
    if size == 2:  # (a + b) / 2 in float32 either way: the same bits
        assert all(r["equal"] for r in results), results
    else:  # three summands: the order of the additions may differ from gloo's
        assert all(r["max_rel"] < 1e-6 for r in results), results
