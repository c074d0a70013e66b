"""spinfast's gradient average against PyTorch DDP (gloo), as bench/bench_ddp.py checks it."""

import pytest
from conftest import rank_files

pytest.importorskip("torch")


@pytest.mark.mpi
@pytest.mark.parametrize("size", [2, pytest.param(3, marks=pytest.mark.slow)])
def test_averaged_gradients_equal_ddp(run_mpi, tmp_path, size):
    run_mpi("ddp_grads", n=size, timeout=180)
    results = rank_files(tmp_path, size)
    if size == 2:  # (a + b) / 2 in float32 either way: the same bits
        assert all(r["equal"] for r in results), results
    else:  # three summands: the order of the additions may differ from gloo's
        assert all(r["max_rel"] < 1e-6 for r in results), results
