"""The compiled flat-buffer engine (spinfast._flat): checks alone, then under real mpiexec."""

from __future__ import annotations

import importlib.machinery
import json

import numpy as np
import pytest
from conftest import rank_files

from spinfast._flat import DEFAULT_FUSION_THRESHOLD, FlatBuffer


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
    assert repr(fb) == f"FlatBuffer(fusion_threshold={DEFAULT_FUSION_THRESHOLD}, nbytes=0)"
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
    f = np.asfortranarray(np.ones((3, 4), np.float32))
    mv = memoryview(np.ones(5))
    FlatBuffer().allreduce(None, [f, mv], op="mean")


# ---------------------------------------------------------------------------------------------
# Real MPI

FLAT_PROGRAM = r"""
import json, sys
import numpy as np
from mpi4py import MPI
from spinfast._flat import FlatBuffer

comm = MPI.COMM_WORLD
rank, size = comm.Get_rank(), comm.Get_size()
THR = 1 << 12   # a small fusion threshold: arrays on both sides of it below

def layout():
    # Mixed shapes, dtypes and orders; sizes just under, at and over the threshold; empty.
    shapes = [((3, 4), np.float32), ((1,), np.float64), ((1023,), np.float32),
              ((1024,), np.float32), ((1025,), np.float32), ((511,), np.float64),
              ((512,), np.float64), ((0,), np.float32), ((5, 7, 2), np.float64),
              ((40, 50), np.float32), ((3000,), np.float64), ((), np.float64),
              ((2, 2), np.float32)]
    return shapes

def data(seed):
    rng = np.random.default_rng(seed)
    out = []
    for i, (shape, dt) in enumerate(layout()):
        a = rng.standard_normal(shape).astype(dt)
        if i == 9:
            a = np.asfortranarray(a)
        out.append(a)
    return out

results = {}

def report(name, arrays):
    results[name] = [np.asarray(a, np.float64).ravel(order="K").tolist() for a in arrays]

mine = data(1000 + rank)
report("input", mine)
fb = FlatBuffer(THR)
for step in range(3):                      # steady state: the same layout again and again
    for op in ("sum", "mean", "min", "max", "prod"):
        arrays = [a.copy(order="K") for a in mine]
        fb.allreduce(comm, arrays, op=op)
        for a, b in zip(arrays, mine):
            assert a.dtype == b.dtype and a.shape == b.shape
            assert a.flags.f_contiguous == b.flags.f_contiguous
        if step == 2:
            report(op, arrays)
# One instance per use: the same op every call (no re-agreement), results unchanged.
fb_mean = FlatBuffer(THR)
for step in range(4):
    arrays = [a.copy(order="K") for a in mine]
    fb_mean.allreduce(comm, arrays, op="mean")
report("mean_steady", arrays)
# A layout and op that change on every rank at once: agreement renewed, not an error.
small = [np.full(3, float(rank))]
fb_mean.allreduce(comm, small, op="sum")
report("relayout_sum", small)
# Broadcast from the last rank, twice (steady state).
for step in range(2):
    arrays = [a.copy(order="K") for a in mine]
    fb.bcast(comm, arrays, root=size - 1)
report("bcast", arrays)
# Everything packed, and nothing packed.
for thr, name in ((1 << 30, "mean_allpacked"), (0, "mean_nopacked")):
    arrays = [a.copy(order="K") for a in mine]
    FlatBuffer(thr).allreduce(comm, arrays, op="mean")
    report(name, arrays)
with open(f"results{rank}.json", "w") as f:
    json.dump(results, f)
print("DONE", rank, fb.nbytes > 0, flush=True)
"""


def _results(folder, size):
    out = {}
    for rank in range(size):
        for name, value in json.loads((folder / f"results{rank}.json").read_text()).items():
            out[(rank, name)] = value
    return out


def _inputs(size):
    # Regenerate every rank's data exactly as the program does.
    shapes = [((3, 4), np.float32), ((1,), np.float64), ((1023,), np.float32),
              ((1024,), np.float32), ((1025,), np.float32), ((511,), np.float64),
              ((512,), np.float64), ((0,), np.float32), ((5, 7, 2), np.float64),
              ((40, 50), np.float32), ((3000,), np.float64), ((), np.float64),
              ((2, 2), np.float32)]
    per_rank = []
    for rank in range(size):
        rng = np.random.default_rng(1000 + rank)
        arrays = []
        for i, (shape, dt) in enumerate(shapes):
            a = rng.standard_normal(shape).astype(dt)
            if i == 9:
                a = np.asfortranarray(a)
            arrays.append(a)
        per_rank.append(arrays)
    return per_rank


@pytest.mark.mpi
@pytest.mark.timeout(150)
@pytest.mark.parametrize("size", [2, 3, 4])
def test_flat_engine_matches_numpy_on_every_rank(run_mpi, tmp_path, size):
    proc = run_mpi(FLAT_PROGRAM, n=size, timeout=120)
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


MISMATCH_PROGRAM = r"""
import numpy as np
from mpi4py import MPI
from spinfast._flat import FlatBuffer

comm = MPI.COMM_WORLD
rank, size = comm.Get_rank(), comm.Get_size()
last = size - 1
fb = FlatBuffer(1 << 10)
out = open(f"out{rank}.txt", "w")

def base():
    return [np.ones((4, 5), np.float32), np.ones(3000), np.ones(7)]

def attempt(label, arrays, op="sum", call="allreduce", root=0):
    # Agree on a good layout first, so that the mismatch is caught by the flag riding in the
    # first collective (the steady-state path), not by the hash exchange of a fresh layout.
    if call == "allreduce":
        fb.allreduce(comm, base(), op="sum")
    else:
        fb.bcast(comm, base(), root=0)
    try:
        if call == "allreduce":
            fb.allreduce(comm, arrays, op=op)
        else:
            fb.bcast(comm, arrays, root=root)
    except (ValueError, TypeError) as exc:
        print(f"ERR {label} rank={rank} {type(exc).__name__}: {exc}", file=out, flush=True)
    else:
        print(f"OK {label} rank={rank}", file=out, flush=True)

attempt("warmup", base())                       # agreed layout from here on
a = base()
if rank == last: a[0] = np.ones((5, 4), np.float32)
attempt("shape", a)
a = base()
if rank == last: a[1] = np.ones(3000, np.float32)
attempt("dtype", a)
a = base()
if rank == last: a.append(np.ones(2))
attempt("count", a)
attempt("op", base(), op="sum" if rank else "mean")
a = base()
if rank == last: a[2] = np.arange(7)
attempt("invalid", a)
a = base()
if rank == last: a[0] = np.asfortranarray(a[0])
attempt("order", a)
attempt("root", base(), call="bcast", root=0 if rank else 1)
attempt("recovered", base())                    # a failed call leaves the engine usable
fb = FlatBuffer(1 << 10)                        # first call of a fresh instance: hash exchange
a = base()
if rank == last: a[0] = np.ones((5, 4), np.float32)
try:
    fb.allreduce(comm, a)
except ValueError as exc:
    print(f"ERR fresh rank={rank} {type(exc).__name__}: {exc}", file=out, flush=True)
x = base()
fb.allreduce(comm, x, op="mean")
print(f"VALUE rank={rank} {float(x[1][0])!r}", file=out, flush=True)
"""


@pytest.mark.mpi
@pytest.mark.timeout(150)
@pytest.mark.parametrize("size", [2, 3])
def test_layout_mismatch_raises_on_every_rank(run_mpi, tmp_path, size):
    run_mpi(MISMATCH_PROGRAM, n=size, timeout=120)
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


RING_PROGRAM = r"""
import hashlib, json
import numpy as np
from mpi4py import MPI
from spinfast._flat import RING_THRESHOLD, FlatBuffer

comm = MPI.COMM_WORLD
rank, size = comm.Get_rank(), comm.Get_size()
ring_f32 = RING_THRESHOLD // 4
# Around the ring threshold, lengths that do not divide by the number of ranks, both dtypes.
SHAPES = [((ring_f32 - 1,), np.float32), ((ring_f32,), np.float32), ((100003,), np.float32),
          ((257, 301), np.float64), ((ring_f32 // 2 - 1,), np.float64), ((3,), np.float32)]
rng = np.random.default_rng(50 + rank)
mine = [rng.standard_normal(s).astype(dt) for s, dt in SHAPES]
everyone = comm.allgather(mine)           # pickled: independent of the engine
out = {}
for thr, label in ((1 << 16, "inplace"), (1 << 30, "packed")):   # large arrays / large pack
    fb = FlatBuffer(thr)
    inplace = {}
    for op in ("sum", "mean", "max"):
        for step in range(2):
            arrays = [a.copy() for a in mine]
            fb.allreduce(comm, arrays, op=op)
        inplace[op] = arrays
        for i, a in enumerate(arrays):
            stack = np.stack([r[i] for r in everyone])
            ref = {"sum": lambda s: s.sum(0), "mean": lambda s: s.sum(0) / s.dtype.type(size),
                   "max": lambda s: s.max(0)}[op](stack)
            err = float(np.max(np.abs(a.astype(np.float64) - ref)))
            out[f"{label} {op} {i}"] = (err, hashlib.sha1(a.tobytes()).hexdigest())
    # Results into separate arrays from read-only sources: the same values, sources intact.
    sources = [a.copy() for a in mine]
    for a in sources:
        a.flags.writeable = False
    for op in ("mean", "max"):
        into = [np.full_like(a, np.nan) for a in mine]
        fb.allreduce(comm, into, op=op, sources=sources)
        out[f"{label} into {op}"] = [
            bool(np.array_equal(a, b)) for a, b in zip(into, inplace[op])] + [
            bool(np.array_equal(a, b)) for a, b in zip(sources, mine)]
    for step in range(2):                   # broadcast from the last rank down the tree
        arrays = [a.copy() for a in mine]
        fb.bcast(comm, arrays, root=size - 1)
    out[f"{label} bcast"] = [bool(np.array_equal(a, b)) for a, b in zip(arrays, everyone[-1])]
# A rank changing its layout while the agreed first collective is a ring (large packed buffer):
# every rank raises, and the engine recovers.
fb = FlatBuffer(1 << 30)
fb.allreduce(comm, [a.copy() for a in mine], op="mean")
bad = [a.copy() for a in mine]
if rank == size - 1:
    bad[2] = bad[2][:-1].copy()
try:
    fb.allreduce(comm, bad, op="mean")
    out["mismatch"] = "no error"
except ValueError as exc:
    out["mismatch"] = str(exc)
again = [a.copy() for a in mine]
fb.allreduce(comm, again, op="sum")
out["recovered"] = float(np.max(np.abs(again[2] - sum(r[2] for r in everyone))))
with open(f"ring{rank}.json", "w") as f:
    json.dump(out, f)
"""


@pytest.mark.mpi
@pytest.mark.timeout(200)
@pytest.mark.parametrize("size", [2, 3, 4, 8])
def test_ring_reductions_match_numpy_and_agree_bitwise(run_mpi, tmp_path, size):
    """Large sums and means go through the engine's ring: numpy's result, the same bits on
    every rank, at sizes that do not divide evenly; broadcasts down the engine's tree (below 8
    ranks; MPI's Bcast from 8) give the root's arrays; a layout change mid-ring still raises."""
    run_mpi(RING_PROGRAM, n=size, timeout=180)
    res = rank_files(tmp_path, size, "ring")
    names = [k for k in res[0] if k not in ("mismatch", "recovered") and "bcast" not in k
             and " into " not in k]
    assert len(names) == 2 * 3 * 6
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


SUBCOMM_PROGRAM = r"""
import numpy as np
from mpi4py import MPI
from spinfast._flat import RING_THRESHOLD, FlatBuffer

world = MPI.COMM_WORLD
rank = world.Get_rank()
fb = FlatBuffer()
n = RING_THRESHOLD  # float32: four times the ring's threshold in bytes
out = open(f"sub{rank}.txt", "w")
for color in (rank % 2, int(rank < 2), rank % 2):   # freed communicators' handles get reused
    comm = world.Split(color, rank)
    mine = np.random.default_rng(rank).standard_normal(n).astype(np.float32)
    arrays = [mine.copy()]
    fb.allreduce(comm, arrays, op="sum")
    expected = np.sum(comm.allgather(mine), axis=0)
    print(f"color {color} ok {bool(np.allclose(arrays[0], expected, atol=1e-5))}", file=out)
    comm.Free()
out.close()
"""


@pytest.mark.mpi
@pytest.mark.timeout(150)
def test_ring_on_sub_communicators_freed_and_made_again(run_mpi, tmp_path):
    """The ring's duplicate communicator follows the caller's, even when MPI reuses a freed
    communicator's handle for a different group of ranks."""
    run_mpi(SUBCOMM_PROGRAM, n=4, timeout=120)
    for rank in range(4):
        lines = (tmp_path / f"sub{rank}.txt").read_text().splitlines()
        assert lines == [f"color {c} ok True" for c in (rank % 2, int(rank < 2), rank % 2)]


BCAST_PROGRAM = r"""
import json
import numpy as np
from mpi4py import MPI
from spinfast._flat import FlatBuffer

comm = MPI.COMM_WORLD
rank, size = comm.Get_rank(), comm.Get_size()
last = size - 1
out = {}

def mine(shapes, tag=0.0, owner=None):
    # Rank r's own values: element k of array i is 1000 r + 100 i + k / 8 + tag.
    owner = rank if owner is None else owner
    return [(1000.0 * owner + 100.0 * i + tag + np.arange(int(np.prod(s))).reshape(s) / 8)
            .astype(dt) for i, (s, dt) in enumerate(shapes)]

def record(label, arrays, expected):
    out[label] = (len(arrays) == len(expected) and all(
        a.dtype == b.dtype and np.array_equal(a, b) for a, b in zip(arrays, expected)))

SMALL = [((4, 5), np.float32), ((7,), np.float64), ((3, 3), np.float32),
         ((2, 3), np.float64)]                             # all packed, in two buffers
MIXED = SMALL + [((3000,), np.float64)]                                       # one in place
for shapes, name in ((SMALL, "small"), (MIXED, "mixed")):
    fb = FlatBuffer(1 << 10)
    kept = mine(shapes)
    for step in range(3):            # steady state, the same arrays (addresses) every call
        for a in kept:
            a += 0.5 * (rank != 0)  # receivers drift; the broadcast repairs them
        fb.bcast(comm, kept, root=0)
    record(f"{name} same arrays", kept, mine(shapes, owner=0))
    for step in range(3):            # new arrays (new addresses) every call
        fresh = mine(shapes, tag=step)
        fb.bcast(comm, fresh, root=0)
    record(f"{name} new arrays", fresh, mine(shapes, tag=2, owner=0))
    twice = mine(shapes[:1])         # one array passed twice: overlapping destinations
    fb2 = FlatBuffer(1 << 10)
    for step in range(2):
        arrays = [twice[0], twice[0]] + mine(shapes[1:])
        fb2.bcast(comm, arrays, root=0)
    record(f"{name} overlap", arrays,
           2 * mine(shapes[:1], owner=0) + mine(shapes[1:], owner=0))

    # After an agreement, one rank's layout changes: every rank raises, no array is written.
    for who in (0, last):
        fb.bcast(comm, mine(shapes), root=0)
        arrays = mine(shapes)
        if rank == who:
            arrays[0] = arrays[0].reshape(arrays[0].shape[::-1]).copy()
        before = [a.copy() for a in arrays]
        try:
            fb.bcast(comm, arrays, root=0)
            out[f"{name} changed on {who}"] = "no error"
        except ValueError as exc:
            out[f"{name} changed on {who}"] = str(exc)
        out[f"{name} changed on {who} untouched"] = all(
            np.array_equal(a, b) for a, b in zip(arrays, before))
    fb.bcast(comm, mine(shapes), root=0)
    arrays = mine(shapes)
    if rank == 0:
        arrays[1] = np.arange(7)     # invalid on the root
    try:
        fb.bcast(comm, arrays, root=0)
        out[f"{name} invalid"] = "no error"
    except (TypeError, ValueError) as exc:
        out[f"{name} invalid"] = f"{type(exc).__name__}: {exc}"
    arrays = mine(shapes)
    fb.bcast(comm, arrays, root=last)  # recovered, and a new root
    record(f"{name} recovered", arrays, mine(shapes, owner=last))
# One instance on a sub-communicator of two ranks, then on all ranks: the agreement made
# among two does not carry over (the ranks outside the pair never saw it).
fb = FlatBuffer(1 << 10)
sub = comm.Split(0 if rank < 2 else 1, rank)
if rank < 2:
    arrays = mine(SMALL)
    fb.bcast(sub, arrays, root=0)
    fb.allreduce(sub, [np.ones(3)], op="sum")
for step in range(2):
    arrays = mine(MIXED)
    fb.bcast(comm, arrays, root=last)
    record(f"sub then all {step}", arrays, mine(MIXED, owner=last))
sub.Free()
with open(f"bcast{rank}.json", "w") as f:
    json.dump(out, f)
"""


@pytest.mark.mpi
@pytest.mark.timeout(150)
@pytest.mark.parametrize("size", [2, 3])
def test_bcast_steady_state_and_changed_layouts(run_mpi, tmp_path, size):
    """Broadcasts after an agreement (two ranks: the agreement travels with the data; more: a
    flag collective first) give the root's values whether the arrays stay or move, even passed
    twice; a layout changed on the root or on a receiver raises on every rank and writes no
    array; the engine recovers; an agreement made on a sub-communicator does not carry over."""
    run_mpi(BCAST_PROGRAM, n=size, timeout=120)
    res = rank_files(tmp_path, size, "bcast")
    last = size - 1
    for rank in range(size):
        assert res[rank]["sub then all 0"] is res[rank]["sub then all 1"] is True
        for name in ("small", "mixed"):
            for label in ("same arrays", "new arrays", "overlap", "recovered"):
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
