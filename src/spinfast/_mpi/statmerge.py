"""The statistics merge: per-key Welford states (and sketch counts) combined over MPI ranks.

Private to spinfast; :func:`spinfast.mpi_tools.reduce_stat_states` calls :func:`reduce_states`
and :func:`~spinfast.mpi_tools.mpi_statistics_scalar` :func:`merge_over_ranks` with the world
they resolved, and ``EpochLogger.dump_tabular`` merges a row with :func:`merge_row`. One
fixed-size ``Allgather`` per logger dump carries a header (key count and a 64-bit hash of the
keys), the first :data:`ROWS` state rows and the quantile-sketch counts; more keys take one
more collective for the rest. Ranks that disagree (other keys, another order, invalid input)
see the same headers, so all of them take the slow path together: keys in another order are
matched by name, anything else raises the same error everywhere. States are merged in rank
order by ``spinfast._stats.merge_states`` (Chan, Golub, LeVeque 1979), so the result is
bit-identical on every rank. A state is a row of ``spinfast._stats.STATE_SIZE`` float64
(count, mean, M2, min, max, at the positions ``STATE_*``); numpy and ``spinfast._stats`` are
imported on the first merge, not with the module (``spinfast.mpi_tools`` imports it and must
stay light).
"""

from __future__ import annotations

from typing import Any, NamedTuple

__all__ = ["ROWS", "Merged", "RowMerge", "keys_hash", "check_states", "reduce_states",
           "merge_over_ranks", "merge_row"]

ROWS = 64             # state rows sent by the first (fixed-size) collective
_HEAD = 2             # header slots (int64): key count (-1: invalid input), hash of the keys
_key_hashes: dict = {}
_gather_buffers: dict = {}


class Merged(NamedTuple):
    """What a merge over the ranks returns (all of it the same on every rank).

    Attributes:
        states: the (k, STATE_SIZE) float64 merged Welford states, a new array.
        counts: the quantile-sketch counts summed over ranks, float64 in the shape given
            (None if none were given).
        per_rank: the (ranks, m) float64 per-rank values, row r from rank r (None if none
            were given).
    """

    states: Any
    counts: Any
    per_rank: Any


def keys_hash(keys: tuple) -> int:
    """Return a 63-bit hash of ``keys`` (cached), the same in every process."""
    h = _key_hashes.get(keys)
    if h is None:
        import hashlib

        text = "\x1f".join(map(str, keys)).encode("utf-8", "surrogatepass")
        h = int.from_bytes(hashlib.blake2b(text, digest_size=8).digest(), "little") >> 1
        if len(_key_hashes) > 1024:
            _key_hashes.clear()
        _key_hashes[keys] = h
    return h


def check_states(keys, states):
    """Return (keys tuple, (k, STATE_SIZE) float64 array, None) or (..., error message)."""
    import numpy as np

    from spinfast._stats import STATE_SIZE

    if isinstance(keys, (str, bytes)):
        return (keys,), None, (f"keys must be a sequence of key names, got the string "
                               f"{keys!r}; pass [{keys!r}]")
    try:
        keys = tuple(keys)
        arr = np.ascontiguousarray(states, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        return (), None, (f"cannot read keys/states ({exc}); pass keys and a "
                          f"(k, {STATE_SIZE}) float array")
    if arr.shape != (len(keys), STATE_SIZE):
        return keys, None, (f"states must have shape (len(keys), {STATE_SIZE}) = "
                            f"({len(keys)}, {STATE_SIZE}), got {arr.shape!r}; pass one "
                            f"(count, mean, M2, min, max) row per key")
    return keys, arr, None


def reduce_states(world, keys, states, counts=None, per_rank=None) -> Merged:
    """Merge per-key states over the ranks of ``world`` (``(comm, rank, size)``).

    What :func:`spinfast.mpi_tools.reduce_stat_states` documents, in the world it resolved:
    with one rank nothing of MPI is touched and the inputs come back converted (copies, in
    float64) as several ranks return them.
    """
    import numpy as np

    comm, rank, size = world
    keys, arr, err = check_states(keys, states)
    if size > 1:
        return merge_over_ranks(comm, rank, size, keys, arr, err, counts, per_rank)
    if err is not None:
        raise ValueError(f"reduce_stat_states(): {err}")
    return Merged(arr.copy(), None if counts is None else np.array(counts, np.float64),
                  None if per_rank is None else np.array(per_rank, np.float64).reshape(1, -1))



def merge_over_ranks(comm, rank, size, keys, arr, err, counts=None, per_rank=None):
    """Merge this rank's state rows ``arr`` for ``keys`` with every other rank's.

    Args:
        comm, rank, size: the world (``size`` > 1).
        keys, arr, err: what :func:`check_states` returned; with ``err`` set, every rank
            raises it (or names the rank that passed invalid input).
        counts: optional float64 sketch counts, the same shape on every rank; summed.
        per_rank: optional float64 values of this rank (m of them, the same m on every
            rank), gathered (not summed) in the same collective.

    Returns:
        A :class:`Merged`.

    Raises:
        ValueError: invalid input or keys that differ between ranks, on every rank.
    """
    import numpy as np

    from spinfast._stats import STATE_SIZE, merge_states

    flat = None if counts is None else np.ascontiguousarray(counts, np.float64).reshape(-1)
    ncounts = 0 if flat is None else flat.size
    if per_rank is not None:
        mine = np.ascontiguousarray(per_rank, np.float64).reshape(-1)
        flat = mine if flat is None else np.concatenate([flat, mine])
    extra = 0 if flat is None else flat.size
    bufs = _gather_buffers.get((size, extra))
    if bufs is None:  # persistent: a header + ROWS rows (+ the counts) per rank
        send = np.zeros(_HEAD + STATE_SIZE * ROWS + extra, np.float64)
        recv = np.zeros((size, _HEAD + STATE_SIZE * ROWS + extra), np.float64)
        bufs = _gather_buffers[(size, extra)] = (send, recv, send[:_HEAD].view(np.int64),
                                                 recv[:, :_HEAD].view(np.int64))
    send, recv, head, heads = bufs
    k = len(keys) if err is None else -1
    head[0] = k
    head[1] = keys_hash(keys) if err is None else 0
    first = min(max(k, 0), ROWS)
    body = _HEAD + STATE_SIZE * ROWS  # where the counts and per-rank values start
    if first:
        send[_HEAD:_HEAD + STATE_SIZE * first] = arr[:first].reshape(-1)
    if extra:
        send[body:] = flat
    comm.Allgather(send, recv)
    rows = heads.tolist()
    if err is not None or any(row != rows[0] for row in rows):
        merged = _states_mismatch(comm, rank, size, keys, arr, err)
    else:
        gathered = recv[:, _HEAD:_HEAD + STATE_SIZE * first].reshape(size, first, STATE_SIZE)
        if k > ROWS:
            rest = np.empty((size, k - ROWS, STATE_SIZE), np.float64)
            comm.Allgather(arr[ROWS:], rest)
            gathered = np.concatenate([gathered, rest], axis=1)
        merged = merge_states(np.ascontiguousarray(gathered))
    summed = None
    if counts is not None:  # summed in rank order: the same on every rank
        summed = recv[:, body:body + ncounts].sum(axis=0).reshape(np.shape(counts))
    return Merged(merged, summed,
                  None if per_rank is None else recv[:, body + ncounts:].copy())


def _states_mismatch(comm, rank, size, keys, arr, err):
    # Every rank is here together (the headers are the same everywhere): gather the keys, then
    # either merge by name (same keys, another order) or raise the same error on every rank.
    import numpy as np

    from spinfast._stats import STATE_SIZE, merge_states

    everyone = comm.allgather(("error", err) if err is not None else ("keys", keys))
    if err is not None:
        raise ValueError(f"reduce_stat_states(): {err}")
    for r, (tag, value) in enumerate(everyone):
        if tag == "error":
            raise ValueError(f"reduce_stat_states(): rank {r} passed invalid input: {value}")
    key_lists = [value for _, value in everyone]
    reference = key_lists[0]
    unique = all(len(set(ks)) == len(ks) for ks in key_lists)
    if unique and all(set(ks) == set(reference) for ks in key_lists):
        # Same keys in another order: send rows in rank 0's order, merge, map back to ours.
        order = {key: i for i, key in enumerate(keys)}
        mine = np.ascontiguousarray(arr[[order[key] for key in reference]])
        gathered = np.empty((size, len(reference), STATE_SIZE), np.float64)
        comm.Allgather(mine, gathered)
        merged = merge_states(gathered)
        where = {key: i for i, key in enumerate(reference)}
        return merged[[where[key] for key in keys]]
    all_keys = []
    for ks in key_lists:
        all_keys += [key for key in ks if key not in all_keys]
    differing = {}
    for key in all_keys:
        having = [r for r, ks in enumerate(key_lists) if key in ks]
        if len(having) != size:
            differing[key] = having
    if differing:
        shown = ", ".join(f"{key!r} only on rank{'s' if len(r) > 1 else ''} "
                          f"{', '.join(map(str, r))}"
                          for key, r in list(differing.items())[:8])
        more = f" and {len(differing) - 8} more" if len(differing) > 8 else ""
        problem = f"keys differ between MPI ranks: {shown}{more}"
    else:
        problem = (f"a key repeats with different counts on different ranks: "
                   f"{[list(ks) for ks in key_lists]!r}")
    raise ValueError(f"reduce_stat_states(): {problem}; every rank must log the same keys "
                     f"(log_tabular/get_stats in the same order on every rank)")


class RowMerge(NamedTuple):
    """A logger row's statistics merged over the ranks (:func:`merge_row`).

    Attributes:
        states: the merged ``(count, mean, M2, min, max)`` of each key, as lists.
        sketches: ``{key: summed quantile-sketch counts}`` of every tracked key (empty if
            no counts travelled).
        per_rank: the (ranks, m) per-rank samples gathered (None if none travelled).
    """

    states: list
    sketches: dict
    per_rank: Any


def merge_row(reduce, keys, states, tracked, taken=None, per_rank=None) -> RowMerge:
    """Merge a logger row's ``states`` ((k, STATE_SIZE) array, one per key) in one collective.

    Args:
        reduce: the merge over the ranks, ``spinfast.mpi_tools.reduce_stat_states`` (passed
            in by the logger: the world is ``mpi_tools``', above this module).
        keys: the key each state is merged under.
        tracked: ``{key: relative accuracy}`` of the keys whose quantiles are tracked.
        taken: the quantile-sketch counts of the keys logged with quantiles (``{key:
            counts}``); then the counts of every tracked key (zeros where not logged with
            quantiles) travel in the same collective.
        per_rank: this rank's samples (system metrics), gathered in the same collective.
    """
    import numpy as np

    from spinfast._stats import sketch_size

    counts = None
    if taken is not None and tracked:
        counts = np.concatenate([taken[key] if key in taken and taken[key].size else
                                 np.zeros(sketch_size(acc)) for key, acc in tracked.items()])
    merged = reduce(keys, states, counts, per_rank)
    sketches = {}
    if counts is not None:
        at = 0
        for key, acc in tracked.items():
            sketches[key] = merged.counts[at:at + sketch_size(acc)]
            at += sketch_size(acc)
    return RowMerge(merged.states.tolist(), sketches, merged.per_rank)
