"""spinfast's gradient average against PyTorch DDP (gloo), as bench/bench_ddp.py checks it."""

import pytest
from conftest import Launches, rank_files

pytest.importorskip("torch")

# Both launches start with the session (conftest.early_steps).
EARLY_LAUNCHES = {f"test_averaged_gradients_equal_ddp[{n}]": [("ddp_grads", n, (), 180)]
                  for n in (2, 3)}


@pytest.mark.mpi
@pytest.mark.parametrize("size", [2, pytest.param(3, marks=pytest.mark.slow)])
def test_averaged_gradients_equal_ddp(tmp_path_factory, early_steps, size):
    folder, _ = Launches(tmp_path_factory, "ddp_grads", 180, early=early_steps)(size)
    results = rank_files(folder, size)
    if size == 2:  # (a + b) / 2 in float32 either way: the same bits
        assert all(r["equal"] for r in results), results
    else:  # three summands: the order of the additions may differ from gloo's
        assert all(r["max_rel"] < 1e-6 for r in results), results
