"""Compressed (16-bit) gradient averaging: kernels against numpy/ml_dtypes, averages against
numpy under mpiexec at 2-4 ranks, error feedback, agreement errors, and the optimizers.

Programs: tests/programs/compress_*.py (gradients in compress_data.py).
"""

from __future__ import annotations

import numpy as np
import pytest
from conftest import Launches, launch_step, load_mpi_module

from spinfast import _compress
from spinfast._mpi.compression import Compressor, check_compress

DATA = load_mpi_module("compress_data")


def _reference16(x, kind):
    """numpy's float16 / ml_dtypes' bfloat16 rounding (to nearest even), as uint16 bits."""
    if kind == "fp16":
        with np.errstate(over="ignore"):
            return x.astype(np.float16).view(np.uint16)
    ml_dtypes = pytest.importorskip("ml_dtypes")
    with np.errstate(invalid="ignore"):
        return x.astype(ml_dtypes.bfloat16).view(np.uint16)


def _widen(bits, kind):
    if kind == "fp16":
        return bits.view(np.float16).astype(np.float32)
    ml_dtypes = pytest.importorskip("ml_dtypes")
    return bits.view(ml_dtypes.bfloat16).astype(np.float32)


def _samples():
    rng = np.random.default_rng(7)
    bits = rng.integers(0, 2**32, 200_000, dtype=np.uint64).astype(np.uint32)
    normal = rng.standard_normal(100_000) * 10.0 ** rng.uniform(-9, 9, 100_000)
    special = [0.0, np.inf, -np.inf, np.nan, 65504.0, 65519.99, 6e-8, 2.0**-25, 1e-30,
               1.0 + 2.0**-8, 1.0 + 3 * 2.0**-8, 1.0 + 2.0**-11, 1.0 + 3 * 2.0**-11]
    return np.concatenate([bits.view(np.float32), normal.astype(np.float32),
                           np.array(special, np.float32)])


@pytest.mark.parametrize("kind", ["bf16", "fp16"])
def test_encode_rounds_to_nearest_even_as_numpy(kind):
    x = _samples()
    finite = np.isfinite(x)
    beyond = finite & ~np.isfinite(_widen(_reference16(x, kind), kind))  # numpy overflows
    if kind == "fp16":  # (float16's range errors: below)
        x = x[~beyond]
        finite, beyond = finite[~beyond], beyond[~beyond]
    res, out = np.zeros_like(x), np.zeros(x.size, np.uint16)
    assert _compress.encode([x[:1000], x[1000:]], res, out, kind) is None
    ref = _reference16(x, kind)
    same = ~np.isnan(x) & ~beyond
    np.testing.assert_array_equal(out[same], ref[same])
    assert np.isnan(_widen(out[np.isnan(x)], kind)).all()  # NaN stays NaN
    # bfloat16 has float32's range: finite values beyond its largest saturate
    assert np.isfinite(_widen(out[beyond], kind)).all()
    # residual = what rounding lost, exactly; nothing carried from inf or NaN
    ok = same & finite
    np.testing.assert_array_equal(res[ok], x[ok] - _widen(out[ok], kind))
    assert (res[~finite] == 0).all()


def test_encode_reports_the_first_value_beyond_float16():
    x = np.array([1.0, -65519.0, 3.0, 1e5, np.inf], np.float32)
    res, out = np.zeros(6, np.float32), np.zeros(6, np.uint16)
    assert _compress.encode([x[:2], x[2:]], res[:5], out[:5], "fp16") == (1, 1, 1e5)
    assert _compress.encode([x[:4]], res[:4], out[:4], "bf16") is None


@pytest.mark.parametrize("kind", ["bf16", "fp16"])
def test_decode_widens_every_16_bit_value(kind):
    bits = np.arange(2**16, dtype=np.uint16)
    a, b = np.zeros(30000, np.float32), np.zeros(2**16 - 30000, np.float32)
    _compress.decode(bits, [a, b], kind)
    ref = _widen(bits, kind)
    got = np.concatenate([a, b])
    nan = np.isnan(ref)
    np.testing.assert_array_equal(got[~nan].view(np.uint32), ref[~nan].view(np.uint32))
    assert np.isnan(got[nan]).all()


@pytest.mark.parametrize("kind", ["bf16", "fp16"])
@pytest.mark.parametrize("p, own", [(1, 0), (2, 0), (2, 1), (3, 1), (4, 3)])
def test_reduce_sums_rows_in_rank_order_with_feedback(kind, p, own):
    rng = np.random.default_rng(p)
    m = 2500  # more than one block of the kernel
    rows = _reference16((rng.standard_normal(p * m) * 100).astype(np.float32), kind)
    rows = rows.reshape(p, m)
    recv = np.concatenate([rows[r] for r in range(p) if r != own] or [rows[:0].ravel()])
    out = rows[own].copy()  # the owner's row, replaced by the result
    res = (rng.standard_normal(m) * 1e-3).astype(np.float32)
    start = res.copy()
    _compress.reduce(recv, p, own, out, res, kind)
    wide = _widen(rows.ravel(), kind).reshape(p, m)
    total = wide[0].copy()
    for r in range(1, p):  # float32, in rank order
        total += wide[r]
    v = total / np.float32(p) + start
    np.testing.assert_array_equal(out, _reference16(v, kind))
    np.testing.assert_array_equal(res, v - _widen(out, kind))


def test_reduce_saturates_float16_and_checks_sizes():
    recv, out = np.array([0x7BFF], np.uint16), np.array([0x7BFF], np.uint16)  # 65504 twice
    res = np.array([15.5], np.float32)
    _compress.reduce(recv, 2, 1, out, res, "fp16")
    assert out[0] == 0x7BFF and res[0] == 15.5  # 65519.5 would round to inf
    with pytest.raises(ValueError, match="reduce"):
        _compress.reduce(recv, 3, 0, out, res, "fp16")
    with pytest.raises(ValueError, match="own=2"):
        _compress.reduce(recv, 2, 2, out, res, "fp16")
    with pytest.raises(ValueError, match="unknown kind 'int8'"):
        _compress.reduce(recv, 2, 0, out, res, "int8")


def test_kernels_reject_bad_buffers():
    res, out = np.zeros(4, np.float32), np.zeros(4, np.uint16)
    with pytest.raises(TypeError, match="array 0 has format 'd'"):
        _compress.encode([np.zeros(4)], res, out, "bf16")
    with pytest.raises(ValueError, match="hold 3 values"):
        _compress.encode([np.zeros(3, np.float32)], res, out, "bf16")
    with pytest.raises(ValueError, match="not writable"):
        ro = np.zeros(4, np.float32)
        ro.flags.writeable = False
        _compress.decode(out, [ro], "bf16")
    with pytest.raises(ValueError, match="array 0 is not C-contiguous"):
        _compress.layout([np.zeros((4, 4), np.float32)[:, 0]])
    assert _compress.layout([np.zeros((2, 3), np.float32)]) == \
        (6, _compress.layout([np.zeros((2, 3), np.float32)])[1])
    assert _compress.layout([np.zeros((2, 3), np.float32)])[1] != \
        _compress.layout([np.zeros((3, 2), np.float32)])[1]


@pytest.mark.parametrize("bad", ["int8", "BF16", 16, True])
def test_compress_argument_is_validated(bad):
    torch = pytest.importorskip("torch")
    from spinfast.mpi_pytorch import FlatGrads, mpi_avg_grads

    with pytest.raises(ValueError, match=r"compress must be None, 'bf16' or 'fp16'"):
        check_compress(bad, "f()")
    with pytest.raises(ValueError, match=r"mpi_avg_grads\(\): compress must be"):
        mpi_avg_grads(torch.nn.Linear(2, 2), compress=bad)
    with pytest.raises(ValueError, match=r"FlatGrads\(\): compress must be"):
        FlatGrads(torch.nn.Linear(2, 2), compress=bad)
    with pytest.raises(ValueError, match="a Compressor needs kind"):
        Compressor(None)


PATHS, KINDS = ["kernels", "grads", "flat"], ["bf16", "fp16"]


@pytest.fixture(scope="module")
def averages(tmp_path_factory):
    """``averages(size, piece=None)``: the folder where one ``mpiexec -n size`` launch of
    compress_avg.py wrote the average of every path and kind (of kernels:bf16 with --piece)."""
    launches = Launches(tmp_path_factory, "compress_avg", timeout=300)

    def get(size, piece=None):
        cases = [f"{p}:{k}" for p in PATHS for k in KINDS]
        args = cases if piece is None else ["--piece", piece, "kernels:bf16"]
        return launches(size, *args)[0]

    return get


def _check_average(folder, size, kind, path):
    got = [np.load(folder / f"avg{r}_{path}_{kind}.npz") for r in range(size)]
    for r in range(1, size):  # identical bits on every rank
        for key in got[0].files:
            np.testing.assert_array_equal(got[r][key].view(np.uint8), got[0][key].view(np.uint8))
    inputs = [DATA.grads(r) for r in range(size)]
    eps = DATA.bound(kind)
    for i in range(len(DATA.SHAPES)):
        xs = np.stack([inp[i].astype(np.float64) for inp in inputs])
        mean = xs.mean(axis=0)
        scale = np.abs(xs).mean(axis=0) + np.abs(mean)
        err = np.abs(got[0][f"arr_{i}"].astype(np.float64) - mean)
        tiny = 2.0**-24 if kind == "fp16" else 0.0  # float16's subnormal spacing
        assert (err <= eps * scale * (1 + 1e-6) + tiny).all(), (i, err.max())
    if path != "kernels":
        n = len(DATA.SHAPES)
        np.testing.assert_array_equal(got[0][f"arr_{n}"], np.full(5, (size - 1) / 2 + 0.25))
        np.testing.assert_allclose(got[0][f"arr_{n + 1}"], np.arange(7) / size, rtol=eps)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("path", PATHS)
def test_compressed_average_matches_numpy_at_two_ranks(averages, path, kind):
    _check_average(averages(2), 2, kind, path)


@pytest.mark.slow
@pytest.mark.parametrize("size", [3, 4])
@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("path", PATHS)
def test_compressed_average_matches_numpy_at_more_ranks(averages, path, kind, size):
    _check_average(averages(size), size, kind, path)


@pytest.fixture(scope="module")
def feedback(tmp_path_factory):
    """The folder of one launch of compress_feedback.py for both kinds."""
    return Launches(tmp_path_factory, "compress_feedback")(2, *KINDS)[0]


@pytest.mark.parametrize("kind", KINDS)
def test_error_feedback_keeps_sums_unbiased(feedback, kind):
    s0, s1 = (np.load(feedback / f"sums{r}_{kind}.npz") for r in range(2))
    np.testing.assert_array_equal(s0["compressed"], s1["compressed"])
    ref = s0["float32"]
    np.testing.assert_allclose(s0["compressed"], ref, rtol=1e-3, atol=1e-3 * np.abs(ref).max())
    # without feedback one step is off by up to half an ulp: over 200 steps that would show
    once = np.abs(s0["once"].astype(np.float64) - s0["once32"]).max()
    assert once > 0
    assert np.abs(s0["compressed"] - ref).max() < 20 * once


# In this order: every case after the first starts from the engines' agreed state that the
# previous case's recovery left (a differing setting is caught in any state, not only at first).
MISMATCHES = {
    "kind": "compress differs between ranks: rank 0 has 'bf16', rank 1 has 'fp16'",
    "layout": "array 0 differs between ranks: rank 0 has float32 (3, 4), rank 1 has float32 (4, 4)",
    "range": "beyond float16's range (largest 65504) on rank 1: array 0, element 0 is 100000.0",
    "none": "op differs between ranks",
}


@pytest.fixture(scope="module")
def mismatches(tmp_path_factory):
    """``mismatches(size)``: (folder, process) of one launch of compress_mismatch.py with every
    case, at ``size`` ranks."""
    launches = Launches(tmp_path_factory, "compress_mismatch")
    return lambda size: launches(size, *MISMATCHES)


@pytest.mark.parametrize("size", [2, pytest.param(3, marks=pytest.mark.slow)])
@pytest.mark.parametrize("case", list(MISMATCHES))
def test_disagreement_raises_the_same_error_on_every_rank(mismatches, case, size):
    folder, proc = mismatches(size)
    output = proc.stdout + proc.stderr
    paths = [folder / f"msg{r}_{case}.txt" for r in range(size)]
    assert all(p.exists() for p in paths), output
    (message,) = {p.read_text() for p in paths}  # one message, on every rank
    assert MISMATCHES[case] in message, message
    assert output.count(f"{case}: recovered") == size, output


# The two training programs start with the session (conftest.early_steps).
TF_TRAINING = launch_step("compress_tf", 2, ("bf16", "tf1", "tf2"), timeout=300)
TRAINING = launch_step("compress_train", 2, ("bf16",), timeout=600)


@pytest.fixture(scope="module")
def tf_training(early_steps):
    """The folder of one launch of compress_tf.py for both TF optimizers (TensorFlow imported
    once per rank)."""
    return early_steps.result(TF_TRAINING)[0]


@pytest.mark.slow
@pytest.mark.early(TF_TRAINING)
@pytest.mark.parametrize("mode", ["tf1", "tf2"])
def test_tf_optimizers_train_close_to_float32(tf_training, mode):
    r0, r1 = (np.load(tf_training / f"{mode}_{r}.npz") for r in range(2))
    np.testing.assert_array_equal(r0["compressed"], r1["compressed"])  # still in sync
    np.testing.assert_array_equal(r0["float32"], r1["float32"])
    assert not np.array_equal(r0["compressed"], r0["float32"])  # the setting took effect
    np.testing.assert_allclose(r0["compressed"], r0["float32"], rtol=2e-2, atol=2e-2)


@pytest.mark.slow
@pytest.mark.early(TRAINING)
def test_training_with_bf16_reaches_float32_loss_within_seed_spread(early_steps):
    import json

    folder = early_steps.result(TRAINING)[0]
    losses = json.loads((folder / "losses.json").read_text())
    f32, bf16 = np.array(losses["None"]), np.array(losses["bf16"])
    spread = f32.max() - f32.min()
    assert spread > 0
    assert abs(bf16.mean() - f32.mean()) <= spread, (f32, bf16)


def test_tf_optimizers_validate_compress():
    pytest.importorskip("tensorflow")
    from spinfast.mpi_tf import MpiAdam, MpiAdamOptimizer

    with pytest.raises(ValueError, match="MpiAdam: compress must be None, 'bf16' or 'fp16'"):
        MpiAdam(learning_rate=0.1, compress="fp8")
    with pytest.raises(ValueError, match="MpiAdamOptimizer: compress must be None"):
        MpiAdamOptimizer(learning_rate=0.1, compress="fp8")
    assert MpiAdam(learning_rate=0.1, compress="bf16")._averager._compressor.kind == "bf16"


def test_kernels_are_compiled():
    import importlib.machinery

    assert _compress.__file__.endswith(tuple(importlib.machinery.EXTENSION_SUFFIXES))


@pytest.mark.parametrize("size", [2, pytest.param(3, marks=pytest.mark.slow)])
def test_messages_cut_into_pieces_arrive_whole(averages, size):
    # (pieces of 257 values stand in for MPI's 2**31 limit: chunks of 3300-6700 values here)
    _check_average(averages(size, piece=257), size, "bf16", "kernels")
