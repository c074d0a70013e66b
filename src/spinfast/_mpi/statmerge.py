"""The statistics merge: per-key Welford states (and sketch counts) combined over MPI ranks.

Private to spinfast; :func:`spinfast.mpi_tools.reduce_stat_states` and
:func:`~spinfast.mpi_tools.mpi_statistics_scalar` call :func:`merge_over_ranks` with the world
they resolved. One fixed-size ``Allgather`` per logger dump carries a header (key count and a
64-bit hash of the keys), the first :data:`ROWS` state rows and the quantile-sketch counts;
more keys take one more collective for the rest. Ranks that disagree (other keys, another
order, invalid input) see the same headers, so all of them take the slow path together:
keys in another order are matched by name, anything else raises the same error everywhere.
States are merged in rank order by ``spinfast._stats.merge_states`` (Chan, Golub, LeVeque
1979), so the result is bit-identical on every rank.
"""

from __future__ import annotations

from typing import Any, NamedTuple

__all__ = ["ROWS", "Merged", "keys_hash", "check_states", "merge_over_ranks"]

ROWS = 64             # state rows sent by the first (fixed-size) collective
_HEAD = 2             # header slots (int64): key count (-1: invalid input), hash of the keys
_key_hashes: dict = {}
_gather_buffers: dict = {}


class Merged(NamedTuple):
    """What a merge with per-rank values returns (all of it the same on every rank).

    Attributes:
        states: the (k, 5) merged Welford states.
        counts: the quantile-sketch counts summed over ranks (None if none were given).
        per_rank: the (ranks, m) per-rank values, row r from rank r.
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
    """Return (keys tuple, (k, 5) float64 array, None) or (..., error message)."""
    import numpy as np

    if isinstance(keys, (str, bytes)):
        return (keys,), None, (f"keys must be a sequence of key names, got the string "
                               f"{keys!r}; pass [{keys!r}]")
    try:
        keys = tuple(keys)
        arr = np.ascontiguousarray(states, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        return (), None, f"cannot read keys/states ({exc}); pass keys and a (k, 5) float array"
    if arr.shape != (len(keys), 5):
        return keys, None, (f"states must have shape (len(keys), 5) = ({len(keys)}, 5), got "
                            f"{arr.shape!r}; pass one (count, mean, M2, min, max) row per key")
    return keys, arr, None



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
        The (k, 5) merged states; with ``counts``, ``(states, summed counts)``; with
        ``per_rank``, a :class:`Merged`.

    Raises:
        ValueError: invalid input or keys that differ between ranks, on every rank.
    """
    import numpy as np

    from spinfast._stats import merge_states

    flat = None if counts is None else np.ascontiguousarray(counts, np.float64).reshape(-1)
    ncounts = 0 if flat is None else flat.size
    if per_rank is not None:
        mine = np.ascontiguousarray(per_rank, np.float64).reshape(-1)
        flat = mine if flat is None else np.concatenate([flat, mine])
    extra = 0 if flat is None else flat.size
    bufs = _gather_buffers.get((size, extra))
    if bufs is None:  # persistent: a header + ROWS rows (+ the counts) per rank
        send = np.zeros(_HEAD + 5 * ROWS + extra, np.float64)
        recv = np.zeros((size, _HEAD + 5 * ROWS + extra), np.float64)
        bufs = _gather_buffers[(size, extra)] = (send, recv, send[:_HEAD].view(np.int64),
                                                 recv[:, :_HEAD].view(np.int64))
    send, recv, head, heads = bufs
    k = len(keys) if err is None else -1
    head[0] = k
    head[1] = keys_hash(keys) if err is None else 0
    first = min(max(k, 0), ROWS)
    if first:
        send[_HEAD:_HEAD + 5 * first] = arr[:first].reshape(-1)
    if extra:
        send[_HEAD + 5 * ROWS:] = flat
    comm.Allgather(send, recv)
    rows = heads.tolist()
    if err is not None or any(row != rows[0] for row in rows):
        merged = _states_mismatch(comm, rank, size, keys, arr, err)
    else:
        gathered = recv[:, _HEAD:_HEAD + 5 * first].reshape(size, first, 5)
        if k > ROWS:
            rest = np.empty((size, k - ROWS, 5), np.float64)
            comm.Allgather(arr[ROWS:], rest)
            gathered = np.concatenate([gathered, rest], axis=1)
        merged = merge_states(np.ascontiguousarray(gathered))
    summed = None
    if counts is not None:  # summed in rank order: the same on every rank
        summed = recv[:, _HEAD + 5 * ROWS:_HEAD + 5 * ROWS + ncounts].sum(axis=0)
        summed = summed.reshape(np.shape(counts))
    if per_rank is not None:
        return Merged(merged, summed, recv[:, _HEAD + 5 * ROWS + ncounts:].copy())
    return merged if counts is None else (merged, summed)


def _states_mismatch(comm, rank, size, keys, arr, err):
    # Every rank is here together (the headers are the same everywhere): gather the keys, then
    # either merge by name (same keys, another order) or raise the same error on every rank.
    import numpy as np

    from spinfast._stats import merge_states

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
        gathered = np.empty((size, len(reference), 5), np.float64)
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

