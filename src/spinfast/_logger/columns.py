"""The columns of ``EpochLogger.log_tabular``'s statistics, and how a row's merge fills them.

``log_tabular(key, with_min_and_max, average_only, quantiles)`` names its columns by Spinning
Up's rules (:func:`stat_columns`, cached per call signature in :data:`COLUMNS`); under MPI the
statistics of a row wait as :data:`PENDING` placeholders until ``dump_tabular`` merges them in
one collective, and :class:`RowLayout` says which merged value goes to which column.
:func:`statistics` turns an accumulator state ``(count, mean, M2, min, max)`` into
``(mean, std, max, min)``.
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple

__all__ = ["Pending", "PENDING", "EMPTY_STATE", "Columns", "RowLayout", "row_layout",
           "COLUMNS", "stat_columns", "quantile_list", "statistics", "RowMerge", "merge_row"]


class Pending:
    """Placeholder of a statistic whose value is known once the row's states are merged."""

    __slots__ = ()

    def __repr__(self):
        return "<pending: resolved at dump_tabular>"


PENDING = Pending()
EMPTY_STATE = (0.0, 0.0, 0.0, float("inf"), float("-inf"))  # Welford().state


class Columns(NamedTuple):
    """The columns of ``log_tabular(key, ...)`` for a statistic, and what each one shows.

    ``which[j]`` indexes ``(mean, std, max, min, *quantiles)`` for column ``names[j]``; the
    order is Spinning Up's: ``Average<key>`` (or ``<key>`` with ``average_only``),
    ``Std<key>``, then ``Max<key>``, ``Min<key>``; then ``P<100 q><key>`` per quantile.

    Under MPI it is also the record of a statistic logged in the current row and waiting for
    the merge over the ranks (``EpochLogger._pending``): its state is the row of the same
    index in the batch of taken states (``EpochStats.take_into_batch``).
    """

    key: str
    names: tuple[str, ...]
    which: tuple[int, ...]
    quantiles: tuple[float, ...]
    placeholders: dict  # {name: PENDING}: the row's entries until the MPI merge (not mutated)


class RowLayout(NamedTuple):
    """How the merged statistics of a row's pending keys fill its columns (cached per layout).

    The statistics of the k-th pending key are ``(mean, std, max, min, *quantiles)``;
    concatenated over the keys they form one flat list, and column ``names[j]`` takes its
    element ``select[j]``.
    """

    columns: list  # the Columns of each pending statistic, in log_tabular order
    keys: tuple[str, ...]  # the merge's key of each (``key[quantiles]`` with quantiles)
    names: tuple[str, ...]  # every column filled by the merge
    select: tuple[int, ...]


def row_layout(pending: list) -> RowLayout:
    """Return the :class:`RowLayout` of a row's pending statistics (a list of Columns).

    A key logged with quantiles merges under another name than without: a rank that logs it
    with quantiles while another does not is caught as a key mismatch.
    """
    keys, names, select, at = [], [], [], 0
    for columns in pending:
        keys.append(columns.key + "[quantiles]" if columns.quantiles else columns.key)
        names += columns.names
        select += [at + which for which in columns.which]
        at += 4 + len(columns.quantiles)
    return RowLayout(list(pending), tuple(keys), tuple(names), tuple(select))


COLUMNS: dict = {}


def stat_columns(key, with_min_and_max, average_only, quantiles=None) -> Columns:
    """Return the :class:`Columns` of a statistic (cached per call signature).

    Raises:
        ValueError: a quantile outside [0, 1] (or not a number).
    """
    spec = (key, with_min_and_max, average_only, quantiles)
    columns = COLUMNS.get(spec)
    if columns is None:
        qs = quantile_list(quantiles)
        pairs = [(key if average_only else "Average" + key, 0)]
        if not average_only:
            pairs.append(("Std" + key, 1))
        if with_min_and_max:
            pairs += [("Max" + key, 2), ("Min" + key, 3)]
        pairs += [("P%g%s" % (100 * q, key), 4 + j) for j, q in enumerate(qs)]
        names, which = zip(*pairs)
        columns = Columns(key, names, which, qs, dict.fromkeys(names, PENDING))
        try:
            COLUMNS[spec] = columns
        except TypeError:  # quantiles given as a list: not hashable, not cached
            pass
    return columns


def quantile_list(quantiles) -> tuple[float, ...]:
    """Return ``quantiles`` (None or a sequence of numbers in [0, 1]) as a tuple of floats.

    Raises:
        ValueError: a quantile outside [0, 1], or not a number.
    """
    if quantiles is None:
        return ()
    try:
        qs = tuple(float(q) for q in quantiles)
    except (TypeError, ValueError):
        raise ValueError(f"log_tabular(): quantiles must be a sequence of numbers in [0, 1], "
                         f"got {quantiles!r}") from None
    for q in qs:
        if not 0.0 <= q <= 1.0:
            raise ValueError(f"log_tabular(): quantiles must be in [0, 1], got {q!r} in "
                             f"{quantiles!r}")
    return qs


def statistics(state) -> tuple[float, ...]:
    """Return ``(mean, std, max, min)`` of a state ``(count, mean, M2, min, max)``.

    NaNs if the state is empty. std is the population std (ddof=0), as ``np.std``.
    """
    n, mean, m2, lo, hi = state
    if n > 0.0:
        return (mean, math.sqrt(m2 / n) if m2 >= 0.0 else math.nan, hi, lo)
    return (math.nan, math.nan, math.nan, math.nan)



class RowMerge(NamedTuple):
    """A row's statistics merged over the ranks (:func:`merge_row`).

    Attributes:
        states: the merged ``(count, mean, M2, min, max)`` of each key, as lists.
        sketches: ``{key: summed quantile-sketch counts}`` of every tracked key (empty if
            no counts travelled).
        per_rank: the (ranks, m) per-rank samples gathered (None if none travelled).
    """

    states: list
    sketches: dict
    per_rank: Any


def merge_row(keys, states, tracked, taken=None, per_rank=None) -> RowMerge:
    """Merge a row's ``states`` ((k, 5) array, one per key) over the ranks, one collective.

    Args:
        keys: the key each state is merged under.
        tracked: ``{key: relative accuracy}`` of the keys whose quantiles are tracked.
        taken: the quantile-sketch counts of the keys logged with quantiles (``{key:
            counts}``); then the counts of every tracked key (zeros where not logged with
            quantiles) travel in the same collective.
        per_rank: this rank's samples (system metrics), gathered in the same collective.
    """
    import numpy as np

    from spinfast import mpi_tools
    from spinfast._stats import sketch_size

    counts = None
    if taken is not None and tracked:
        counts = np.concatenate([taken[key] if key in taken and taken[key].size else
                                 np.zeros(sketch_size(acc)) for key, acc in tracked.items()])
    merged = mpi_tools.reduce_stat_states(keys, states, counts, per_rank)
    summed = gathered = None
    if per_rank is not None:
        merged, summed, gathered = merged
    elif counts is not None:
        merged, summed = merged
    sketches = {}
    if counts is not None:
        at = 0
        for key, acc in tracked.items():
            sketches[key] = summed[at:at + sketch_size(acc)]
            at += sketch_size(acc)
    return RowMerge(merged.tolist(), sketches, gathered)
