"""The columns of ``EpochLogger.log_tabular``'s statistics, and how a row's merge fills them.

``log_tabular(key, with_min_and_max, average_only, quantiles)`` names its columns by Spinning
Up's rules (:func:`stat_columns`, cached per call signature in :data:`COLUMNS`); under MPI the
statistics of a row wait as :data:`PENDING` placeholders until ``dump_tabular`` merges them in
one collective, and :class:`RowLayout` says which merged value goes to which column. A
column shows one number of a state's summary (``spinfast._stats.summarize``: mean, std, max,
min, at the positions ``SUMMARY_*``) or one of its quantiles, which follow the summary.
"""

from __future__ import annotations

from typing import NamedTuple

from spinfast._stats import SUMMARY_MAX, SUMMARY_MEAN, SUMMARY_MIN, SUMMARY_SIZE, SUMMARY_STD

__all__ = ["Pending", "PENDING", "Columns", "RowLayout", "row_layout", "COLUMNS",
           "stat_columns", "quantile_list"]


class Pending:
    """Placeholder of a statistic whose value is known once the row's states are merged."""

    __slots__ = ()

    def __repr__(self):
        return "<pending: resolved at dump_tabular>"


PENDING = Pending()


class Columns(NamedTuple):
    """The columns of ``log_tabular(key, ...)`` for a statistic, and what each one shows.

    ``which[j]`` indexes ``(*summary, *quantiles)`` for column ``names[j]`` (the summary's
    positions are ``spinfast._stats.SUMMARY_*``, its quantiles follow it); the
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

    The statistics of the k-th pending key are ``(*summary, *quantiles)``;
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
        at += SUMMARY_SIZE + len(columns.quantiles)
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
        pairs = [(key if average_only else "Average" + key, SUMMARY_MEAN)]
        if not average_only:
            pairs.append(("Std" + key, SUMMARY_STD))
        if with_min_and_max:
            pairs += [("Max" + key, SUMMARY_MAX), ("Min" + key, SUMMARY_MIN)]
        pairs += [("P%g%s" % (100 * q, key), SUMMARY_SIZE + j) for j, q in enumerate(qs)]
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
