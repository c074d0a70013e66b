"""Averaging while backward runs (``FlatGrads(overlap=True)``, spinfast._mpi.overlap): the
buckets, and gradients equal to those of ``mpi_avg_grads`` under a real mpiexec on one host
(across namespace nodes: tests/test_netcluster.py)."""

from __future__ import annotations

import pytest
from conftest import launch_step, rank_files

torch = pytest.importorskip("torch")

from spinfast._mpi.overlap import plan  # noqa: E402
from spinfast.mpi_pytorch import FlatGrads  # noqa: E402

# Both launches start with the session (conftest.early_steps).
LAUNCHES = {n: launch_step("overlap_grads", n, timeout=180) for n in (2, 3)}


def _params(*shapes, dtype=torch.float32):
    return [torch.nn.Parameter(torch.zeros(s, dtype=dtype)) for s in shapes]


def test_buckets_are_cut_in_reverse_order_by_bytes_and_dtype():
    a, b, c, d = _params(10, 20, 5, 100)  # 40, 80, 20, 400 bytes
    (e,) = _params(3, dtype=torch.float64)
    buckets = plan([a, b, e, c, d], 100)
    # reversed: d alone (larger than a bucket), then c + b (100 bytes), e its own dtype, a
    assert [[id(p) for p in bucket] for bucket in buckets] == [
        [id(d)], [id(c), id(b)], [id(e)], [id(a)]]
    assert [len(x) for x in plan([a, b, c], 1 << 20)] == [3]


def test_gradients_become_views_of_the_buckets_and_single_process_keeps_them():
    model = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.Linear(8, 2))
    flat = FlatGrads(model, overlap=True, bucket_bytes=64)
    # reversed: bias 2 (8 B) | weight 2x8 (64 B) | bias 8 (32 B) | weight 8x4 (128 B)
    assert [b.numel() for b in flat.buffers] == [2, 16, 8, 32]
    model(torch.ones(3, 4)).sum().backward()
    want = [p.grad.clone() for p in model.parameters()]
    flat.average()  # one process: nothing to average, gradients kept
    for p, w in zip(model.parameters(), want):
        assert torch.equal(p.grad, w) and p.grad.data_ptr() == flat.views[p].data_ptr()
    flat.zero()
    assert all(not p.grad.any() for p in model.parameters())


def test_overlap_refuses_compression():
    with pytest.raises(ValueError, match=r"FlatGrads\(\): overlap=True averages uncompressed"):
        FlatGrads(torch.nn.Linear(2, 2), compress="bf16", overlap=True)


@pytest.mark.mpi
@pytest.mark.parametrize("size", [pytest.param(2, marks=pytest.mark.early(LAUNCHES[2])),
                                  pytest.param(3, marks=[pytest.mark.slow,
                                                         pytest.mark.early(LAUNCHES[3])])])
def test_overlap_gradients_equal_those_without(early_steps, size):
    folder, _ = early_steps.result(LAUNCHES[size])
    for result in rank_files(folder, size):
        assert result["buckets"] == 3
        assert "a backward pass ran again" in result["twice"]
        for step in result["steps"]:
            assert step["compared"] == 6 and step["unused_zero"] and step["views"], step
            if size == 2:  # (a + b) / 2 either way: the same bits
                assert step["equal"], step
            else:  # MPI's Iallreduce may add three summands in another order than the ring
                assert step["max_rel"] < 1e-6, step
