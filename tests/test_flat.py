"""The compiled flat-buffer engine (spinfast._flat): checks alone, then under real mpiexec."""

from __future__ import annotations

import importlib.machinery
import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import load_mpi_module, network_env, network_path, rank_files

from spinfast._flat import DEFAULT_FUSION_THRESHOLD, FlatBuffer

DATA = load_mpi_module("flat_data")  # what each rank of tests/programs/flat_ops.py starts from


def test_compiled_module_is_imported():
    import spinfast._flat as flat

    assert flat.__file__.endswith(tuple(importlib.machinery.EXTENSION_SUFFIXES))


# ---------------------------------------------------------------------------------------------
# One process (comm=None): inputs are checked, nothing changes

def test_single_process_is_identity_for_every_op():
    arrays = [np.arange(6, dtype=np.float32).reshape(2, 3), np.ones(70000), np.zeros(0)]
    before = [a.copy() for a in arrays]
    fb = FlatBuffer()
    for op in ("sum", "mean", "min", "max", "prod"):
        fb.allreduce(None, arrays, op=op)
    fb.bcast(None, arrays, root=0)
    for a, b in zip(arrays, before, strict=True):
        assert a.dtype == b.dtype and np.array_equal(a, b)


def test_constructor_and_repr():
    fb = FlatBuffer()
    assert fb.fusion_threshold == DEFAULT_FUSION_THRESHOLD
    assert FlatBuffer(fusion_threshold=0).fusion_threshold == 0
    assert repr(fb) == (f"FlatBuffer(fusion_threshold={DEFAULT_FUSION_THRESHOLD}, "
                        f"algorithm={fb.algorithm!r}, nbytes=0)")
    with pytest.raises(ValueError, match=r"FlatBuffer\(\): fusion_threshold must be >= 0"):
        FlatBuffer(fusion_threshold=-1)


@pytest.mark.parametrize("bad, exc, message", [
    (np.arange(3), TypeError, r"array 1 has dtype int64; only float32 and float64"),
    (np.ones(3, np.float16), TypeError, r"array 1 has dtype float16"),
    (np.ones(6)[::2], ValueError, r"array 1 cannot be used in place .*contiguous"),
    (1.5, TypeError, r"array 1 is a 'float', not a buffer"),
])
def test_bad_items_name_their_index(bad, exc, message):
    with pytest.raises(exc, match=r"FlatBuffer\.allreduce\(\): " + message):
        FlatBuffer().allreduce(None, [np.ones(2), bad])


def test_read_only_and_not_a_list_and_bad_op_and_root():
    ro = np.ones(4)
    ro.flags.writeable = False
    fb = FlatBuffer()
    with pytest.raises(ValueError, match=r"array 0 cannot be used in place"):
        fb.allreduce(None, [ro])
    with pytest.raises(TypeError, match=r"arrays must be a list or tuple of arrays, got a "
                                        r"'ndarray'"):
        fb.allreduce(None, np.ones(3))
    with pytest.raises(ValueError, match=r"unknown op 'avg'; pass one of 'sum', 'mean'"):
        fb.allreduce(None, [np.ones(3)], op="avg")
    with pytest.raises(ValueError, match=r"FlatBuffer\.bcast\(\): root 1 is not a rank of a "
                                         r"communicator of size 1"):
        fb.bcast(None, [np.ones(3)], root=1)


def test_algorithm_from_the_argument_or_the_environment(monkeypatch):
    monkeypatch.delenv("SPINFAST_COLLECTIVES", raising=False)
    assert FlatBuffer().algorithm == "auto"
    assert [FlatBuffer(algorithm=a).algorithm for a in ("auto", "mpi", "engine")] == [
        "auto", "mpi", "engine"]
    monkeypatch.setenv("SPINFAST_COLLECTIVES", "mpi")
    assert FlatBuffer().algorithm == "mpi"
    assert FlatBuffer(0, algorithm="engine").algorithm == "engine"  # the argument wins
    assert repr(FlatBuffer(0)) == "FlatBuffer(fusion_threshold=0, algorithm='mpi', nbytes=0)"
    monkeypatch.setenv("SPINFAST_COLLECTIVES", "")
    assert FlatBuffer().algorithm == "auto"
    monkeypatch.setenv("SPINFAST_COLLECTIVES", "MPI")
    with pytest.raises(ValueError, match=r"FlatBuffer\(\): the environment variable "
                                         r"SPINFAST_COLLECTIVES is 'MPI'; set it to one of "
                                         r"'auto', 'mpi', 'engine'"):
        FlatBuffer()
    assert FlatBuffer(algorithm="mpi").algorithm == "mpi"  # a valid argument: not read
    for bad in ("ring", "", 1):
        with pytest.raises(ValueError, match=r"FlatBuffer\(\): algorithm must be one of "
                                             r"'auto', 'mpi', 'engine' or None, got "
                                             + re.escape(repr(bad))):
            FlatBuffer(algorithm=bad)
    # One process under 'mpi': the inputs are checked, nothing changes.
    arrays = [np.arange(6, dtype=np.float32), np.ones(70000)]
    fb = FlatBuffer(algorithm="mpi")
    for op in ("sum", "mean", "min", "max", "prod"):
        fb.allreduce(None, arrays, op=op)
    fb.bcast(None, arrays)
    assert np.array_equal(arrays[0], np.arange(6)) and np.array_equal(arrays[1], np.ones(70000))
    with pytest.raises(TypeError, match=r"array 0 has dtype int64"):
        fb.allreduce(None, [np.arange(3)])


def test_sources_fill_the_arrays_and_are_checked():
    src = [np.arange(6, dtype=np.float32).reshape(2, 3), np.ones(70000)]
    for a in src:
        a.flags.writeable = False
    out = [np.zeros((2, 3), np.float32), np.zeros(70000)]
    FlatBuffer().allreduce(None, out, op="mean", sources=src)  # one rank: the inputs themselves
    assert all(np.array_equal(a, b) for a, b in zip(out, src))
    fb = FlatBuffer()
    with pytest.raises(ValueError, match=r"source 1 does not match array 1: pass a float64 "
                                         r"buffer of 560000 bytes"):
        fb.allreduce(None, out, sources=[src[0], np.ones(70000, np.float32)])
    with pytest.raises(ValueError, match=r"source 0 does not match array 0: pass a float32"):
        fb.allreduce(None, out, sources=[np.zeros(3), src[1]])  # 24 bytes, but float64
    with pytest.raises(ValueError, match=r"sources has 1 items for 2 arrays"):
        fb.allreduce(None, out, sources=src[:1])
    with pytest.raises(TypeError, match=r"sources must be a list or tuple"):
        fb.allreduce(None, out, sources=np.ones(3))
    with pytest.raises(TypeError, match=r"source 0 is a 'int', not a buffer"):
        fb.allreduce(None, out, sources=[3, src[1]])


def test_fortran_order_and_memoryview_items_are_accepted():
    """Both kinds are written in place: with sources, one process copies them in (the same
    items under MPI: test_flat_engine_matches_numpy_on_every_rank)."""
    f_src, mv_src = DATA.views(1)
    f = np.asfortranarray(np.zeros((3, 4), np.float32))
    target = np.zeros(5)
    mv = memoryview(target)
    FlatBuffer().allreduce(None, [f, mv], op="mean", sources=[f_src, mv_src])
    assert f.flags.f_contiguous and np.array_equal(f, f_src)
    assert np.array_equal(target, np.asarray(mv_src)) and target.any()
    before = [f.copy(order="K"), target.copy()]
    FlatBuffer().allreduce(None, [f, mv], op="max")  # one process: in place, unchanged
    assert np.array_equal(f, before[0]) and np.array_equal(target, before[1])


def _float32_exporters():
    """(format, native, writable buffer of [1.0, 2.0, 3.0]) from numpy, ctypes and CPython's
    _testbuffer, with every byte-order prefix they export ('|' has no float exporter)."""
    import ctypes

    little = sys.byteorder == "little"
    values = [1.0, 2.0, 3.0]
    out = [(np.dtype(order + "f4").str, order in "=" + "<>"[not little],
            np.array(values, order + "f4")) for order in "<>="]
    for ctype, native in ((ctypes.c_float.__ctype_le__, little),
                          (ctypes.c_float.__ctype_be__, not little)):
        out.append(("ctypes", native, (ctype * 3)(*values)))
    testbuffer = pytest.importorskip("_testbuffer")
    for prefix in "@=<>!":  # (the values packed by struct in that byte order)
        native = prefix in "@=" or (prefix == "<") == little
        out.append((prefix + "f", native, testbuffer.ndarray(
            values, shape=[3], format=prefix + "f", flags=testbuffer.ND_WRITABLE)))
    return out


def test_buffer_formats_by_byte_order():
    """One parser (csrc/bufformat.pxd) for _flat, _compress and _stats: a float32 buffer in
    this host's byte order is read where it lies, one in the other order is refused (_flat,
    _compress) or converted by numpy (_stats), whatever prefix names the order."""
    from spinfast import _compress, _stats

    for fmt, native, buf in _float32_exporters():
        assert memoryview(buf).format.lstrip("<>=@!") == "f", fmt
        out = np.zeros(3, np.float32)
        res, bits = np.zeros(3, np.float32), np.zeros(3, np.uint16)
        if native:
            FlatBuffer().allreduce(None, [buf])
            FlatBuffer().allreduce(None, [out], sources=[buf])
            assert out.tolist() == [1.0, 2.0, 3.0], fmt
            assert _compress.encode([buf], res, bits, "bf16") is None
            assert bits.tolist() == [0x3F80, 0x4000, 0x4040], fmt
        else:
            with pytest.raises(TypeError, match=r"array 0 has"):
                FlatBuffer().allreduce(None, [buf])
            with pytest.raises(ValueError, match=r"source 0 does not match array 0"):
                FlatBuffer().allreduce(None, [out], sources=[buf])
            with pytest.raises(TypeError, match=r"array 0 has format"):
                _compress.encode([buf], res, bits, "bf16")
        acc = _stats.Welford()
        acc.push(buf)
        assert (acc.count, acc.mean, acc.min, acc.max) == (3, 2.0, 1.0, 3.0), fmt


def test_decision_table_changes_from_the_environment(monkeypatch):
    """SPINFAST_FLAT_RULES is read when an instance is made; a malformed one raises there."""
    monkeypatch.setenv("SPINFAST_FLAT_RULES", "shared:2:mpi_upto=1,tree_from=9;network:3:x=1")
    with pytest.raises(ValueError, match=r"SPINFAST_FLAT_RULES has 'network:3:x=1'; write "
                                         r"'transport:ranks:field=value,...'"):
        FlatBuffer()
    for bad in ("shared:2", "ib:2:mpi_upto=1", "shared:1:mpi_upto=1", "shared:2:mpi_upto=x"):
        monkeypatch.setenv("SPINFAST_FLAT_RULES", bad)
        with pytest.raises(ValueError, match=r"FlatBuffer\(\): SPINFAST_FLAT_RULES has"):
            FlatBuffer()
    monkeypatch.setenv("SPINFAST_FLAT_RULES",
                       "shared:2:mpi_upto=1,tree_from=9; network:5:mean_mpi_upto=0")
    FlatBuffer()


# ---------------------------------------------------------------------------------------------
# Real MPI: programs tests/programs/flat_ops.py (data in flat_data.py), flat_mismatch.py,
# flat_ring.py, flat_subcomm.py, flat_bcast.py, comm_churn.py

def _results(folder, size):
    out = {}
    for rank in range(size):
        for name, value in json.loads((folder / f"results{rank}.json").read_text()).items():
            out[(rank, name)] = value
    return out


def _inputs(size):
    # Every rank's data, as the program makes it.
    return [DATA.data(rank) for rank in range(size)]


@pytest.mark.mpi
@pytest.mark.timeout(150)
@pytest.mark.parametrize("size", [2, 3, pytest.param(4, marks=pytest.mark.slow)])
def test_flat_engine_matches_numpy_on_every_rank(run_mpi, tmp_path, size):
    proc = run_mpi("flat_ops", n=size, timeout=120)
    res = _results(tmp_path, size)
    assert proc.stdout.count("DONE") == size
    inputs = _inputs(size)
    for rank in range(size):  # the test regenerates exactly what each rank started from
        got = res[(rank, "input")]
        for a, b in zip(got, inputs[rank], strict=True):
            assert np.array_equal(a, np.asarray(b, np.float64).ravel(order="K"))
    refs = {
        "sum": lambda s: np.sum(s, axis=0),
        "mean": lambda s: np.sum(s, axis=0) / s.dtype.type(size),
        "min": lambda s: np.min(s, axis=0),
        "max": lambda s: np.max(s, axis=0),
        "prod": lambda s: np.prod(s, axis=0),
    }
    for name, ref in [*refs.items(), ("mean_steady", refs["mean"]),
                      ("mean_allpacked", refs["mean"]), ("mean_nopacked", refs["mean"])]:
        for i in range(len(inputs[0])):
            stack = np.stack([inputs[r][i].ravel(order="K") for r in range(size)])
            expected = ref(stack).astype(np.float64)
            rtol = 1e-6 if inputs[0][i].dtype == np.float32 else 1e-13
            for rank in range(size):
                np.testing.assert_allclose(res[(rank, name)][i], expected, rtol=rtol,
                                           atol=1e-6 if rtol == 1e-6 else 1e-14,
                                           err_msg=f"{name} array {i} rank {rank}")
            # No rank different: bit-identical results everywhere.
            for rank in range(1, size):
                assert res[(rank, name)][i] == res[(0, name)][i], (name, i, rank)
    for rank in range(size):
        assert res[(rank, "relayout_sum")] == [[float(sum(range(size)))] * 3]
        for i in range(len(inputs[0])):
            assert res[(rank, "bcast")][i] == res[(size - 1, "input")][i]
    # A Fortran-order array and a memoryview: reduced in place, values differing between ranks.
    views = [[np.asarray(v, np.float64).ravel() for v in DATA.views(r)] for r in range(size)]
    for op, ufunc in (("sum", np.add), ("max", np.maximum)):
        expected = [ufunc.reduce([views[r][i] for r in range(size)]).tolist() for i in (0, 1)]
        assert all(expected[i] != views[r][i].tolist() for r in range(size) for i in (0, 1))
        for rank in range(size):
            np.testing.assert_allclose(res[(rank, f"views_{op}")][0], expected[0], rtol=1e-6)
            np.testing.assert_allclose(res[(rank, f"views_{op}")][1], expected[1], rtol=1e-14)


@pytest.mark.mpi
@pytest.mark.timeout(150)
@pytest.mark.parametrize("size", [2, 3])
def test_layout_mismatch_raises_on_every_rank(run_mpi, tmp_path, size):
    run_mpi("flat_mismatch", n=size, timeout=120)
    text = "".join((tmp_path / f"out{rank}.txt").read_text() for rank in range(size))
    lines = text.splitlines()

    def outcome(label):
        return sorted(line for line in lines if line.split(" ")[1:2] == [label])

    for label in ("warmup", "recovered"):
        assert len([x for x in outcome(label) if x.startswith("OK ")]) == size, text
    expected = {
        "fresh": r"array 0 differs between ranks: rank 0 has float32 (4, 5), rank {last} has "
                 r"float32 (5, 4)",
        "shape": r"array 0 differs between ranks: rank 0 has float32 (4, 5), rank {last} has "
                 r"float32 (5, 4)",
        "dtype": r"array 1 differs between ranks: rank 0 has float64 (3000,), rank {last} has "
                 r"float32 (3000,)",
        "count": r"array 3 differs between ranks: rank 0 has no array, rank {last} has float64 "
                 r"(2,) (rank 0 passes 3 arrays, rank {last} passes 4)",
        "op": r"op differs between ranks: rank 0 has 'mean', rank 1 has 'sum'",
        "order": r"array 0 differs between ranks: rank 0 has float32 (4, 5), rank {last} has "
                 r"float32 (4, 5) Fortran-order",
        "root": r"root differs between ranks: rank 0 has 1, rank 1 has 0",
    }
    last = size - 1
    for label, pattern in expected.items():
        got = outcome(label)
        assert len(got) == size and all(x.startswith("ERR ") for x in got), (label, text)
        for line in got:
            assert "ValueError: FlatBuffer." in line
            assert pattern.format(last=last) in line, (label, line)
    invalid = outcome("invalid")
    assert len(invalid) == size
    for line in invalid:
        if f"rank={last} " in line:
            assert "TypeError: FlatBuffer.allreduce(): array 2 has dtype int64" in line
        else:
            assert (f"ValueError: FlatBuffer.allreduce(): rank {last} passed invalid input: "
                    f"array 2 has dtype int64") in line
    assert sorted(x for x in lines if x.startswith("VALUE")) == [
        f"VALUE rank={rank} 1.0" for rank in range(size)]


@pytest.mark.mpi
@pytest.mark.timeout(200)
@pytest.mark.parametrize("size", [2, 3, *(pytest.param(n, marks=pytest.mark.slow) for n in (4, 8))])
def test_ring_reductions_match_numpy_and_agree_bitwise(run_mpi, tmp_path, size):
    """Large sums and means go through the engine's ring: numpy's result, the same bits on
    every rank, at sizes that do not divide evenly; broadcasts down the engine's tree (below 8
    ranks; MPI's Bcast from 8) give the root's arrays; a layout change mid-ring still raises."""
    run_mpi("flat_ring", n=size, timeout=180)
    res = rank_files(tmp_path, size, "ring")
    names = [k for k in res[0] if k not in ("mismatch", "recovered") and "bcast" not in k
             and " into " not in k and not k.endswith("paths")]
    assert len(names) == 2 * 3 * 6
    for label in ("inplace", "packed"):  # algorithm='engine': large sums and means ring
        assert "ring" in res[0][f"{label} sum paths"] and "ring" in res[0][f"{label} mean paths"]
        assert res[0][f"{label} max paths"] == ["mpi"]
    for rank in range(size):
        assert res[rank]["inplace bcast"] == res[rank]["packed bcast"] == [True] * 6
        for label in ("inplace", "packed"):  # sources=: bit-identical to in place, untouched
            for op in ("mean", "max"):
                assert res[rank][f"{label} into {op}"] == [True] * 12, (label, op)
    for name in names:
        tol = 1e-12 if name.split()[2] in ("3", "4") else 1e-5  # float64 arrays: 3 and 4
        for rank in range(size):
            assert res[rank][name][0] <= tol, (name, rank, res[rank][name])
            assert res[rank][name][1] == res[0][name][1], (name, rank)
    for rank in range(size):
        assert ("array 2 differs between ranks: rank 0 has float32 (100003,), "
                f"rank {size - 1} has float32 (100002,)") in res[rank]["mismatch"]
        assert res[rank]["recovered"] <= 1e-5


def test_checksum_sees_every_bit_and_the_order():
    from spinfast._flat import checksum

    rng = np.random.default_rng(3)
    arrays = [rng.standard_normal((70, 7)).astype(np.float32), rng.standard_normal(13)]
    base = checksum(arrays)
    assert base == checksum([a.copy() for a in arrays]) and 0 <= base < 2 ** 63
    for i, a in enumerate(arrays):  # one flipped bit anywhere, tails included
        for pos in (0, a.nbytes // 2, a.nbytes - 1):
            flipped = [b.copy() for b in arrays]
            flipped[i].view(np.uint8).reshape(-1)[pos] ^= 1
            assert checksum(flipped) != base, (i, pos)
    assert checksum(arrays[::-1]) != base
    for i, j in ((0, 8), (0, 1), (3, 12)):  # two float64 values trading places
        swapped = [b.copy() for b in arrays]
        swapped[1][[i, j]] = swapped[1][[j, i]]
        assert checksum(swapped) != base, (i, j)
    big = rng.standard_normal(4096)
    for i, j in ((0, 8), (1, 9), (5, 4000)):  # same lane in different 64-byte blocks
        swapped = big.copy()
        swapped[[i, j]] = swapped[[j, i]]
        assert checksum([swapped]) != checksum([big]), (i, j)
    drift = big.copy()  # many last-bit differences, as diverging ranks would have
    drift.view(np.uint64)[::7] ^= 1
    assert checksum([drift]) != checksum([big])
    assert checksum([np.concatenate([arrays[0].ravel(), np.zeros(1, np.float32)])]) != \
        checksum([arrays[0]])
    with pytest.raises(TypeError, match=r"checksum\(\): item 1 is a 'int', not a buffer"):
        checksum([arrays[0], 3])
    with pytest.raises(ValueError, match=r"checksum\(\): item 0 is not contiguous"):
        checksum([np.ones(8)[::2]])


@pytest.mark.mpi
@pytest.mark.timeout(150)
def test_ring_on_sub_communicators_freed_and_made_again(run_mpi, tmp_path):
    """The ring's duplicate communicator follows the caller's, even when MPI reuses a freed
    communicator's handle for a different group of ranks."""
    run_mpi("flat_subcomm", n=4, timeout=120)
    for rank in range(4):
        lines = (tmp_path / f"sub{rank}.txt").read_text().splitlines()
        assert lines == [f"color {c} ok True" for c in (rank % 2, int(rank < 2), rank % 2)]


@pytest.mark.mpi
@pytest.mark.timeout(300)
@pytest.mark.parametrize("iterations,finalize", [
    (3000, False), (3000, True), pytest.param(20000, False, marks=pytest.mark.slow)],
    ids=["3000", "3000-finalize", "20000"])
def test_short_lived_sub_communicators_free_their_links(run_mpi, tmp_path, iterations,
                                                        finalize):
    """Sub-communicators made, used once and freed, each not congruent with the one before,
    free the engine's duplicates with them: past MPICH's 2,048 contexts (before, the run died
    near iteration 2,044 with "Too many communicators"), with memory flat; the world's link ends
    cleanly at MPI_Finalize, at exit or called explicitly."""
    run_mpi("comm_churn", n=2, args=[iterations, "flat"] + ["finalize"] * finalize,
            timeout=280)
    for rank, r in enumerate(rank_files(tmp_path, 2, "churn")):
        assert "failed_at" not in r, r
        assert r["ok"] and r["iterations"] == iterations
        assert r["rss_end"] - r["rss_2000"] < 10, r  # MB
        assert (tmp_path / f"final{rank}.txt").exists() == finalize


@pytest.mark.mpi
@pytest.mark.timeout(150)
@pytest.mark.parametrize("size,network", [(2, False), (2, True), (3, False)],
                         ids=["2", "2-network", "3"])
def test_bcast_steady_state_and_changed_layouts(run_mpi, tmp_path, size, network):
    """Broadcasts after an agreement (two ranks: the agreement travels with the data; more: a
    flag collective first), with shared memory and over the library's network module
    (conftest.network_path: under MPICH every rank its own node), give the root's values
    whether the arrays stay or move, even passed twice (on every rank or on one only); a
    layout changed on the root or on a receiver raises on every rank and writes no array; the
    engine recovers; an agreement made on a sub-communicator does not carry over."""
    run_mpi("flat_bcast", n=size, timeout=120, env=network_env() if network else {})
    res = rank_files(tmp_path, size, "bcast")
    last = size - 1
    for rank in range(size):
        assert res[rank]["sub then all 0"] is res[rank]["sub then all 1"] is True
        for name in ("small", "mixed"):
            for label in ("same arrays", "new arrays", "overlap", "overlap on 0",
                          f"overlap on {last}", "recovered"):
                assert res[rank][f"{name} {label}"] is True, (rank, name, label)
            for who in (0, last):
                msg = res[rank][f"{name} changed on {who}"]
                assert msg.startswith("FlatBuffer.bcast(): array 0 differs between ranks"), msg
                assert res[rank][f"{name} changed on {who} untouched"] is True, (name, who)
            invalid = res[rank][f"{name} invalid"]
            if rank == 0:
                assert invalid.startswith("TypeError: FlatBuffer.bcast(): array 1 has dtype int64")
            else:
                assert invalid.startswith("ValueError: FlatBuffer.bcast(): rank 0 passed "
                                          "invalid input: array 1 has dtype int64"), invalid


@pytest.mark.mpi
@pytest.mark.timeout(150)
@pytest.mark.parametrize("size", [2, 3, pytest.param(4, marks=pytest.mark.slow)])
def test_mpi_collectives_match_numpy_and_the_engine(run_mpi, tmp_path, size):
    """algorithm='mpi' (argument or SPINFAST_COLLECTIVES) gives numpy's results on small
    (packed) and large (ring-sized, in place or packed) arrays of both dtypes for every op,
    the engine's results up to the order of float additions (min/max/broadcast exactly), the
    same bits on every rank (also into other arrays from read-only sources), and moves the
    data without the engine's scratch buffer."""
    run_mpi("flat_algorithms", n=size, timeout=120, env={"SPINFAST_COLLECTIVES": "mpi"})
    res = rank_files(tmp_path, size, "algo")
    for rank in range(size):  # the argument wins; None reads the variable
        assert res[rank]["algorithms"] == {"engine": "engine", "mpi": "mpi", "auto": "auto",
                                           "env": "mpi"}
    names = [k for k in res[0] if k != "algorithms" and not k.endswith(("nbytes", "paths"))
             and " into " not in k]
    assert len(names) == 4 * 2 * 5 * 8
    for rank in range(size):  # every rank took the same paths; 'mpi' only MPI's
        for key in (k for k in res[0] if k.endswith("paths")):
            assert res[rank][key] == res[0][key], (key, rank)
            if key.split()[0] in ("mpi", "env"):
                assert set(res[rank][key].values()) == {"mpi"}, (key, res[rank][key])
    f64 = (1, 3, 6, 7)  # the float64 arrays of the program's SHAPES
    for name in names:
        algo, thr, op, i = name.split()
        tol = 1e-12 if int(i) in f64 else 1e-5
        for rank in range(size):
            err, exact, digest, vs_engine = res[rank][name]
            assert err <= tol and vs_engine <= tol, (name, rank, res[rank][name])
            if op in ("min", "max", "bcast"):
                assert exact and vs_engine == 0.0, (name, rank)
            paths = res[0][f"{algo} {thr} {op} paths"]
            if algo == "auto" and paths == res[0][f"engine {thr} {op} paths"]:
                assert vs_engine == 0.0, (name, rank)  # the engine's choice, the same bits
            if algo == "auto" and set(paths.values()) == {"mpi"}:
                assert digest == res[rank][f"mpi {thr} {op} {i}"][2], (name, rank)
            assert digest == res[0][name][2], (name, rank)  # bit-identical on every rank
            other = f"{'mpi' if algo == 'env' else 'env'} {thr} {op} {i}"
            if algo in ("env", "mpi"):  # the variable and the argument: the same path
                assert digest == res[rank][other][2], (name, rank)
    for rank in range(size):  # sources=: the same bits as in place, sources untouched
        into = [k for k in res[rank] if " into " in k]
        assert len(into) == 4 * 2 * 3 and all(res[rank][k] is True for k in into), res[rank]
    # The engine's ring and recursive doubling grow a scratch buffer; MPI's collectives do
    # not: under 'mpi' an instance holds only its packed buffers, float32 (the flag, 12 and
    # 777 elements) and float64 (1 and 101 elements).
    for rank in range(size):
        for algo in ("mpi", "env"):
            assert res[rank][f"{algo} 65536 nbytes"] == 4 * (1 + 12 + 777) + 8 * (1 + 101)
            assert res[rank][f"{algo} 1073741824 nbytes"] < res[rank]["engine 1073741824 nbytes"]
        assert res[rank]["engine 65536 nbytes"] > 4 * (1 + 12 + 777) + 8 * (1 + 101)
    if size > 2:  # another order of additions: some float sums differ in the last bits
        assert any(res[0][n][3] > 0 for n in names if n.startswith("mpi "))


@pytest.mark.mpi
@pytest.mark.timeout(150)
@pytest.mark.parametrize("size", [2, 3])
def test_algorithm_mismatch_raises_on_every_rank(run_mpi, tmp_path, size):
    """A rank whose SPINFAST_COLLECTIVES (or algorithm=) differs makes every rank raise the
    same ValueError at the first call, for reductions and broadcasts, instead of hanging in
    different collectives; instances with equal settings work afterwards."""
    run_mpi("flat_algo_mismatch", n=size, timeout=60, env={"SPINFAST_COLLECTIVES": "engine"})
    lines = "".join((tmp_path / f"out{r}.txt").read_text() for r in range(size)).splitlines()
    last = size - 1
    for label, mine in (("env-sum", "mpi"), ("env-mean", "mpi"), ("env-max", "mpi"),
                        ("env-bcast", "mpi"), ("argument", "mpi"), ("auto-engine", "auto")):
        got = [x for x in lines if x.split(" ")[1] == label]
        call = "bcast" if label == "env-bcast" else "allreduce"
        assert len(got) == size, (label, lines)
        for line in got:
            assert line.startswith("ERR ") and (
                f"ValueError: FlatBuffer.{call}(): algorithm differs between ranks: rank 0 has "
                f"'engine', rank {last} has '{mine}'; pass the same FlatBuffer(algorithm=) and "
                f"set the same SPINFAST_COLLECTIVES on every rank") in line, line
    assert sorted(x for x in lines if x.split(" ")[1] == "agreed") == [
        f"OK agreed rank={r}" for r in range(size)]
    assert sorted(x for x in lines if x.startswith("VALUE")) == [
        f"VALUE rank={r} 1.0 mpi" for r in range(size)]


@pytest.mark.mpi
@pytest.mark.timeout(150)
@pytest.mark.parametrize("size", [2, 3])
def test_path_mismatch_raises_on_every_rank(run_mpi, tmp_path, size):
    """A rank whose decision table differs (another build, another crossover) chooses another
    path under algorithm='auto': the chosen paths are part of the layout hash, so every rank
    raises the same ValueError at the first call with a new plan instead of hanging in
    different collectives; with equal tables a new instance works afterwards."""
    run_mpi("flat_path_mismatch", n=size, timeout=120)
    lines = "".join((tmp_path / f"out{r}.txt").read_text() for r in range(size)).splitlines()
    for label in ("agreed", "kept-sum", "kept-mean"):
        assert sorted(x for x in lines if x.split(" ")[1] == label) == [
            f"OK {label} rank={r}" for r in range(size)], lines
    for label in ("fresh-sum", "fresh-mean", "fresh-bcast"):
        got = [x for x in lines if x.split(" ")[1] == label]
        assert len(got) == size, (label, lines)
        messages = {re.sub(r" rank=\d+", "", x) for x in got}
        assert len(messages) == 1, got  # the same outcome and error on every rank
        if label == "fresh-bcast":  # a broadcast's paths do not depend on the moved rows
            continue
        assert all(x.startswith("ERR ") for x in got), got
        message = got[0].split(" ", 3)[3]
        assert message.startswith("ValueError: FlatBuffer.allreduce(): the chosen paths differ "
                                  "between ranks: rank 0 takes "), message
        assert f"rank {size - 1} takes" in message and "pass FlatBuffer(algorithm='mpi')" in message
    assert sorted(x for x in lines if x.startswith("VALUE")) == [
        f"VALUE rank={r} 1.0 1.0 True" for r in range(size)]


# ---------------------------------------------------------------------------------------------
# Choice of paths (tests/programs/flat_matrix.py) and the cost model


@pytest.mark.mpi
@pytest.mark.timeout(300)
@pytest.mark.parametrize("network", [False, True], ids=["shared-memory", "network"])
@pytest.mark.parametrize("size", [2, 3, *(pytest.param(n, marks=pytest.mark.slow) for n in (4, 8))])
def test_every_algorithm_op_and_dtype_matches_numpy(run_mpi, tmp_path, size, network):
    """auto, mpi and engine x sum/mean/min/max/prod/bcast x float32/float64 at 2, 3, 4 and 8
    ranks, on shared memory and over the library's network module (conftest.network_path:
    MPICH's MPIR_CVAR_NOLOCAL=1 makes every rank its own node; Open MPI's TCP transport and
    Intel MPI's libfabric TCP leave the ranks on one node): numpy's results; the same bits on
    every rank; auto's bits those of the algorithm whose paths it took; the same paths on every
    rank, those choose() predicts; 'mpi' only MPI's."""
    env = network_env() if network else {}
    run_mpi("flat_matrix", n=size, timeout=280, env=env)
    res = rank_files(tmp_path, size, "matrix")
    transport = network_path()[1] if network else "shared"
    assert res[0]["transport"] == transport
    f64 = (1, 3, 5)  # the program's float64 arrays
    for key in (k for k in res[0] if k != "transport"):
        algo, op = key.split()
        for rank in range(size):
            got = res[rank][key]
            for i, err in enumerate(got["errors"]):
                tol = 1e-12 if i in f64 else 2e-6
                assert err <= (0.0 if op in ("min", "max", "bcast") else tol), (key, i, rank)
            assert got["digests"] == res[0][key]["digests"], (key, rank)  # bit-identical
            assert got["paths"] == res[0][key]["paths"] == got["predicted"], (key, rank, got)
        paths = set(res[0][key]["paths"].values())
        if algo == "mpi" or op in ("min", "max", "prod"):
            assert paths == {"mpi"}, (key, paths)
        if algo == "engine" and op in ("sum", "mean"):
            assert "mpi" not in paths, (key, paths)
        if algo == "auto" and paths == {"mpi"}:
            assert res[0][key]["digests"] == res[0][f"mpi {op}"]["digests"], key
        if algo == "auto" and res[0][key]["paths"] == res[0][f"engine {op}"]["paths"]:
            assert res[0][key]["digests"] == res[0][f"engine {op}"]["digests"], key
    # Each of the engine's algorithms ran somewhere in this matrix (the ring at 8 ranks: in
    # test_ring_reductions_match_numpy_and_agree_bitwise).
    engine = set().union(*(set(res[0][f"engine {op}"]["paths"].values())
                           for op in ("sum", "mean", "bcast")))
    assert {2: {"doubling", "pair"}, 3: {"ring", "tree"}, 4: {"doubling", "tree"},
            8: {"doubling", "tree"}}[size] <= engine, engine
    # The documented policy: the engine's paths under auto only on one node up to 4 ranks,
    # across nodes up to 2; beyond, MPI's collectives.
    limit = 2 if transport == "network" else 4
    auto = set().union(*(set(res[0][f"auto {op}"]["paths"].values())
                         for op in ("sum", "mean", "bcast")))
    assert (auto == {"mpi"}) == (size > limit), auto


def _scale():
    """bench/scale.py, where the alpha-beta cost model lives (formerly csrc/_flat_cost.pxi)."""
    import importlib.util

    path = Path(__file__).resolve().parent.parent / "bench" / "scale.py"
    spec = importlib.util.spec_from_file_location("spinfast_bench_scale", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_decision_table_is_the_cost_model_evaluated():
    """The engine's table (csrc/_flat_paths.pxi) chooses what bench/scale.py's alpha-beta
    model predicts cheapest at its constants, for every op, 1 to 8 ranks, both transports,
    'auto' and 'engine', packed or in place, at sizes around every crossover."""
    from spinfast._flat import PATHS, choose

    model = _scale()
    assert model.PATHS == PATHS
    sizes = {1, 4, 8, 100, 1000, 10**5, 10**6, 10**8}
    for row in __import__("spinfast._flat", fromlist=["_table"])._table():
        for edge in row[4:8]:
            sizes.update({max(edge - 1, 0), edge, edge + 1})
    for transport in ("shared", "network"):
        for algo in ("auto", "engine", "mpi"):
            for p in range(1, 9):
                for n in sorted(sizes):
                    for op in ("sum", "mean", "max"):
                        for packed in (False, True):
                            want = model.choose(op, p, n, transport, algo, packed=packed)
                            got = choose(op, p, n, transport, algo, packed=packed)
                            assert got == want, (transport, algo, p, n, op, packed)
                    for buffers in (0, 1, 2, 3, 5):
                        want = model.choose("bcast", p, n, transport, algo, buffers=buffers)
                        got = choose("bcast", p, n, transport, algo, buffers=buffers)
                        assert got == want, (transport, algo, p, n, "bcast", buffers)


def test_cost_model_predictions_are_the_documented_formulas():
    """predict() against the formulas of bench/scale.py computed by hand from cost_model()."""
    scale = _scale()
    PATHS, choose, cost_model, predict = scale.PATHS, scale.choose, scale.cost_model, scale.predict

    assert PATHS == ("mpi", "ring", "doubling", "tree", "pair")
    for transport in ("shared", "network"):
        m = cost_model(transport)
        a, b, g, d, o = m["alpha"], m["beta"], m["gamma"], m["delta"], m["over"]
        n, p = 4e6, 16  # log2(16) = 4 steps
        assert predict("ring", "sum", p, n, transport) == pytest.approx(
            2 * 15 * (a + o) + 2 * 15 / 16 * n * b + 15 / 16 * n * g)
        assert predict("doubling", "mean", p, n, transport) == pytest.approx(
            4 * (a + o + n * (b + g)))
        rabenseifner = 2 * 4 * a + 2 * 15 / 16 * n * b + 15 / 16 * n * g + n * d
        assert predict("mpi", "sum", p, n, transport) == pytest.approx(rabenseifner)
        assert predict("mpi", "mean", p, n, transport) == pytest.approx(rabenseifner + n * g)
        assert predict("mpi", "sum", 5, 1000, transport) == pytest.approx(
            3 * (a + 1000 * (b + g)))  # short message: recursive doubling, ceil(log2 5) steps
        assert predict("pair", "bcast", 2, n, transport, buffers=3) == pytest.approx(
            a + 3 * o + n * b)
        assert predict("tree", "bcast", 6, n, transport, buffers=2) == pytest.approx(
            3 * (a + 2 * o + n * b) + 3 * a)
        # MPI's broadcast: 2 buffers of n/2 on 16 ranks, scatter + allgather, and the flag
        assert predict("mpi", "bcast", 16, n, transport, buffers=2) == pytest.approx(
            2 * ((4 + 15) * a + 2 * 15 / 16 * n / 2 * b) + 4 * a)
        assert predict("ring", "sum", 1, n, transport) == 0.0
    # The policy: min/max/prod and algorithm='mpi' always MPI; auto keeps the engine to the
    # measured rank counts (4 on one node, 2 across nodes), 'engine' takes it anywhere.
    assert choose("max", 2, 10**8) == "mpi" and choose("sum", 2, 10**8, algorithm="mpi") == "mpi"
    assert choose("sum", 2, 4 * 10**7) == "ring" == choose("sum", 2, 4 * 10**7, "network")
    assert choose("sum", 4, 4 * 10**7) == "ring" and choose("sum", 8, 4 * 10**7) == "mpi"
    assert choose("sum", 3, 4 * 10**7, "network") == "mpi"
    assert choose("sum", 64, 4 * 10**7, algorithm="engine") == "ring"
    assert choose("sum", 64, 400, algorithm="engine") == "doubling"
    assert choose("bcast", 2, 4000, buffers=3) == "pair"
    assert choose("bcast", 64, 4000, buffers=3, algorithm="engine") == "tree"
    # other constants: an engine whose messages cost more makes even 2 ranks use MPI's
    assert choose("sum", 2, 40_000, "network", model={"over": 1e-3}) == "mpi"
    assert choose("sum", 4, 40_000, model={"engine_max_ranks": 2}) == "mpi"
    with pytest.raises(ValueError, match=r"transport must be 'shared' or 'network', got 'ib'"):
        predict("ring", "sum", 2, 8, "ib")
    with pytest.raises(ValueError, match=r"predict\(\): path must be one of"):
        predict("butterfly", "sum", 2, 8)
    with pytest.raises(ValueError, match=r"choose\(\): op must be one of"):
        choose("avg", 2, 8)
    with pytest.raises(ValueError, match=r"model has unknown keys \['latency'\]"):
        choose("sum", 2, 8, model={"latency": 1e-6})


def test_scale_tables_show_autos_switch_to_mpi():
    """bench/scale.py prints, for every set of constants, a mean and a broadcast table over
    2..1024 ranks, and on the cluster auto hands everything beyond 2 ranks to MPI."""
    script = Path(__file__).resolve().parents[1] / "bench" / "scale.py"
    out = subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                         check=True, timeout=60).stdout
    sections = out.split("#### ")[1:]
    assert len(sections) == 3 and sections[2].startswith("EDR InfiniBand cluster")
    for section in sections:
        rows = [line for line in section.splitlines() if line.startswith("| ") and
                line[2].isdigit()]
        assert [int(r.split("|")[1]) for r in rows] == [2 ** k for k in range(1, 11)] * 2
    cluster = [line for line in sections[2].splitlines() if line.startswith("| ")]
    for line in cluster:
        if line[2].isdigit() and int(line.split("|")[1]) > 2:
            assert line.count("-> **mpi**") == 4, line
