"""Aggregate metrics over runs and tasks with stratified bootstrap confidence intervals.

The estimators of Agarwal et al., "Deep Reinforcement Learning at the Edge of the Statistical
Precipice" (NeurIPS 2021), with the definitions of their library ``rliable``:

- ``iqm``: interquartile mean, the 25% trimmed mean of all runs x tasks scores pooled
  (``scipy.stats.trim_mean(scores, 0.25, axis=None)``: ``int(0.25 * n)`` values cut at each end);
- ``median``: median over tasks of the per-task mean over runs;
- ``mean``: mean over tasks of the per-task mean over runs;
- ``optimality_gap``: ``gamma - mean(minimum(scores, gamma))`` (``gamma=1``, for normalised
  scores);
- performance profiles: the fraction of runs (or of task means) scoring above each threshold;
- probability of improvement: ``P(X > Y)`` per task (Mann-Whitney U over the ``nx * ny`` pairs,
  ties count one half), averaged over tasks.

Confidence intervals come from a stratified bootstrap: each replicate resamples, within each
task independently, as many runs as there are, with replacement; the interval is the
percentile interval of the replicates (``rliable``'s default ``method='percentile'``), the
point estimate the metric on the data themselves.

Everything is vectorised with numpy: a batch of replicates is one array of run indices
``(reps, runs, tasks)``; the metrics are computed on the gathered batch at once (IQM with
``np.partition`` along the pooled axis). Scores ``(runs, tasks, points)`` give curves: the same
resampled runs serve every point, and each result is an array over points.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

__all__ = ["METRICS", "Interval", "aggregate", "interval_estimates", "performance_profile",
           "probability_of_improvement"]

#: Names of the aggregate metrics that :func:`aggregate` and :func:`interval_estimates` take.
METRICS = ("iqm", "median", "mean", "optimality_gap")

# Elements of one gathered batch (reps x runs x tasks x points): bounds memory for long curves.
_CHUNK_ELEMENTS = 1 << 22


class Interval(NamedTuple):
    """A point estimate and its confidence interval (floats, or arrays over curve points)."""

    #: The metric of the data themselves.
    point: float | np.ndarray
    #: Lower end of the percentile interval of the bootstrap replicates.
    lower: float | np.ndarray
    #: Upper end of the percentile interval of the bootstrap replicates.
    upper: float | np.ndarray


# ---------------------------------------------------------------------------------------------
# Checking inputs
# ---------------------------------------------------------------------------------------------

def _check_scores(fn, scores, curves_allowed=True):
    """Return ``{name: float64 array (runs, tasks, points)}`` and whether points were given."""
    if not isinstance(scores, dict):
        raise TypeError(f"{fn}(): scores must be a dict of algorithm name -> array (runs, "
                        f"tasks), got {type(scores).__name__}; wrap one array as "
                        f"{{'name': array}}")
    if not scores:
        raise ValueError(f"{fn}(): scores is empty {scores!r}; give at least one algorithm")
    out = {}
    ndim = tasks = points = None
    for name, arr in scores.items():
        try:
            a = np.asarray(arr, dtype=np.float64)
        except (TypeError, ValueError):
            raise TypeError(f"{fn}(): scores of {name!r} are not numbers; give a float array "
                            f"(runs, tasks)") from None
        shapes = "(runs, tasks) or (runs, tasks, points)" if curves_allowed else "(runs, tasks)"
        if a.ndim not in ((2, 3) if curves_allowed else (2,)):
            raise ValueError(f"{fn}(): scores of {name!r} have shape {a.shape!r}; give an "
                             f"array of shape {shapes}")
        if 0 in a.shape:
            raise ValueError(f"{fn}(): scores of {name!r} have shape {a.shape!r} with no "
                             f"runs, tasks or points; give at least one of each")
        if ndim is None:
            ndim, tasks = a.ndim, a.shape[1]
            points = a.shape[2] if a.ndim == 3 else 1
        elif a.ndim != ndim or a.shape[1] != tasks or (ndim == 3 and a.shape[2] != points):
            first = next(iter(scores))
            raise ValueError(f"{fn}(): scores of {name!r} have shape {a.shape!r} but those of "
                             f"{first!r} have {np.shape(scores[first])!r}; every algorithm "
                             f"needs the same tasks (and points), only runs may differ")
        bad = ~np.isfinite(a)
        if bad.any():
            runs = sorted({int(r) for r in np.nonzero(bad)[0]})
            raise ValueError(f"{fn}(): scores of {name!r} hold NaN or inf in runs {runs!r}; "
                             f"drop those runs (or fill them) before aggregating")
        # task-major (tasks, runs, points): a task's runs are contiguous
        out[name] = np.ascontiguousarray(
            a.reshape(a.shape[0], a.shape[1], points).transpose(1, 0, 2))
    return out, ndim == 3


def _check_options(fn, reps, ci):
    """Raise ValueError (message from ``fn``) unless ``reps`` >= 1 and 0 < ``ci`` < 1."""
    if isinstance(reps, bool) or not isinstance(reps, (int, np.integer)) or reps < 1:
        raise ValueError(f"{fn}(): reps must be an int >= 1, got {reps!r}; the paper uses "
                         f"50000 for intervals, 2000 for profiles")
    if not (isinstance(ci, (int, float, np.floating)) and 0 < ci < 1):
        raise ValueError(f"{fn}(): ci must be a fraction in (0, 1), got {ci!r}; e.g. 0.95")


def _rng(seed):
    """Return ``seed`` if it is a Generator, else a new Generator seeded with it."""
    return seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)


# ---------------------------------------------------------------------------------------------
# Bootstrap kernels. Data are held task-major, ``xt`` (tasks, runs, points); a batch of
# replicates is an index array ``idx`` (n, tasks, runs) of small ints: replicate k takes run
# ``idx[k, t, j]`` of task t as its j-th run of that task. Each kernel returns (n, points).
# ---------------------------------------------------------------------------------------------

def _draw(rng, n, runs, tasks):
    """Run indices for ``n`` replicates: each task's runs drawn with replacement."""
    dtype = np.uint8 if runs <= 255 else (np.uint16 if runs <= 65535 else np.intp)
    return rng.integers(0, runs, size=(n, tasks, runs), dtype=dtype)


def _flat_index(idx):
    """Indices into the flattened (tasks * runs) table: ``idx[k, t, j] + t * runs``.

    Kept in the smallest unsigned type that holds tasks * runs: one flat gather of small
    ints is cheaper than numpy's broadcast 2-D fancy indexing.
    """
    _, tasks, runs = idx.shape
    n = tasks * runs
    dtype = np.uint8 if n <= 256 else (np.uint16 if n <= 65536 else np.intp)
    offsets = (np.arange(tasks) * runs).astype(dtype)[:, None]
    return idx.astype(dtype, copy=False) + offsets


def _task_means(xt, idx):
    """Per-task means of the resampled runs: (n, tasks, points)."""
    tasks, runs, points = xt.shape
    g = xt.reshape(tasks * runs, points)[_flat_index(idx)]  # (n, tasks, runs, points)
    if points == 1:  # a matrix-vector product sums the short runs axis fastest
        return (g[..., 0] @ np.ones(runs) / runs)[:, :, None]
    return g.mean(axis=2)


class _Sorted:
    """Global ranks of the pooled runs x tasks scores, per point, for trimmed means.

    A replicate's pooled sample is a multiset of the N = runs * tasks original values; sorting
    their (small int) ranks instead of the values gives the order statistics, and the
    trimmed mean is the mean of the sorted values at the middle ranks.
    """

    def __init__(self, xt):
        tasks, runs, points = xt.shape
        flat = xt.transpose(2, 0, 1).reshape(points, tasks * runs)  # (points, N)
        order = np.argsort(flat, axis=1, kind="stable")
        self.values = np.take_along_axis(flat, order, axis=1)  # sorted, (points, N)
        n = tasks * runs
        rank = np.empty((points, n), dtype=np.int16 if n < 2**15 else np.int32)
        np.put_along_axis(rank, order, np.arange(n), axis=1)
        self.rank = np.ascontiguousarray(rank.reshape(points, tasks, runs).transpose(1, 2, 0))
        self.n = n


def _trimmed_mean_sorted(sorted_, idx, lo):
    """Trimmed means (``lo`` cut at each end) of the replicates ``idx``: (n, points)."""
    n_rep = idx.shape[0]
    points = sorted_.values.shape[0]
    g = sorted_.rank.reshape(sorted_.n, points)[_flat_index(idx)]  # (n, tasks, runs, points)
    g = g.reshape(n_rep, sorted_.n, points)
    g = np.ascontiguousarray(g.transpose(0, 2, 1)) if points > 1 else g.reshape(n_rep, 1, -1)
    g.sort(axis=2)
    mid = g[:, :, lo:sorted_.n - lo]
    if points == 1:
        return sorted_.values[0][mid[:, 0, :]].mean(axis=1)[:, None]
    return sorted_.values[np.arange(points)[:, None], mid].mean(axis=2)


class _Metric:
    """A metric: ``prepare(xt)`` once per algorithm, then ``boot(state, idx)`` per batch."""

    def __init__(self, gamma):
        self.gamma = gamma

    def prepare(self, xt):
        return xt

    def point(self, xt):
        runs = xt.shape[1]
        idx = np.broadcast_to(np.arange(runs), (1, xt.shape[0], runs))
        return self.boot(self.prepare(xt), idx)[0]


class _IQM(_Metric):
    """Interquartile mean of the pooled runs x tasks scores (scipy's ``trim_mean(0.25)``)."""

    def prepare(self, xt):
        return _Sorted(xt)

    def boot(self, state, idx):
        lo = int(0.25 * state.n)  # scipy.stats.trim_mean's cut, at each end
        return _trimmed_mean_sorted(state, idx, lo)


class _Median(_Metric):
    """Median over tasks of the per-task mean over runs."""

    def boot(self, xt, idx):
        return np.median(_task_means(xt, idx), axis=1)


class _Mean(_Metric):
    """Mean over tasks of the per-task mean over runs."""

    def boot(self, xt, idx):
        return _task_means(xt, idx).mean(axis=1)


class _OptimalityGap(_Metric):
    """``gamma`` minus the mean of the scores clipped at ``gamma``."""

    def prepare(self, xt):
        return np.minimum(xt, self.gamma)

    def boot(self, clipped, idx):
        return self.gamma - _task_means(clipped, idx).mean(axis=1)


_METRIC_CLASSES = {"iqm": _IQM, "median": _Median, "mean": _Mean,
                   "optimality_gap": _OptimalityGap}


def _metric(fn, metric, gamma):
    """Return the :class:`_Metric` named ``metric``; ValueError (from ``fn``) if unknown."""
    try:
        cls = _METRIC_CLASSES[metric]
    except (KeyError, TypeError):
        raise ValueError(f"{fn}(): unknown metric {metric!r}; use one of "
                         f"{', '.join(METRICS)}") from None
    return cls(float(gamma))


def _chunks(reps, per_rep):
    """Yield batch sizes summing to ``reps``, each gathering about ``_CHUNK_ELEMENTS``."""
    size = max(1, _CHUNK_ELEMENTS // max(per_rep, 1))
    for start in range(0, reps, size):
        yield min(size, reps - start)


def _bootstrap(xt, metric, reps, rng):
    """``metric`` on ``reps`` stratified resamples of ``xt`` (tasks, runs, points)."""
    tasks, runs, points = xt.shape
    state = metric.prepare(xt)
    out = [metric.boot(state, _draw(rng, n, runs, tasks)) for n in _chunks(reps, xt.size)]
    return np.concatenate(out, axis=0)


def _percentile_interval(samples, ci):
    """Return the ``ci`` percentile interval ``(lower, upper)`` of ``samples`` along axis 0."""
    alpha = 100.0 * (1.0 - ci) / 2.0
    lower, upper = np.percentile(samples, [alpha, 100.0 - alpha], axis=0)
    return lower, upper


def _shape_out(point, lower, upper, curves):
    """Return an :class:`Interval` of arrays for curves, else of floats."""
    if curves:
        return Interval(point, lower, upper)
    return Interval(float(point[0]), float(lower[0]), float(upper[0]))


# ---------------------------------------------------------------------------------------------
# Public functions
# ---------------------------------------------------------------------------------------------

def aggregate(scores, metric="iqm", gamma=1.0):
    """Compute one aggregate metric of one algorithm's scores (no bootstrap).

    Args:
        scores: float array (runs, tasks), or (runs, tasks, points) for curves.
        metric: ``'iqm'``, ``'median'``, ``'mean'`` or ``'optimality_gap'``.
        gamma: threshold of the optimality gap (ignored by the other metrics).

    Returns:
        float, or float64 array (points,) for curves.

    Raises:
        ValueError: unknown metric, bad shape, NaN or inf in the scores.
    """
    m = _metric("aggregate", metric, gamma)
    checked, curves = _check_scores("aggregate", {"scores": scores})
    value = m.point(checked["scores"])
    return value if curves else float(value[0])


def interval_estimates(scores, metric="iqm", reps=50000, ci=0.95, seed=0, gamma=1.0):
    """Estimate an aggregate metric per algorithm with a stratified bootstrap interval.

    Each of ``reps`` replicates resamples the runs of every task independently (with
    replacement, as many as there are); the interval is the percentile interval of the
    replicates' metric, the point estimate the metric of the data. Agrees with
    ``rliable.library.get_interval_estimates`` (its ``StratifiedBootstrap``, percentile method)
    within Monte Carlo error.

    Args:
        scores: dict algorithm name -> float array (runs, tasks), or (runs, tasks, points)
            for curves (runs resampled whole, the metric taken at every point; rliable
            draws runs afresh at every point, which gives each point the same distribution,
            so the per-point intervals agree). Algorithms may have different numbers of runs;
            tasks (and points) must agree.
        metric: ``'iqm'``, ``'median'``, ``'mean'`` or ``'optimality_gap'`` (see module doc).
        reps: number of bootstrap replicates (int >= 1).
        ci: confidence level in (0, 1).
        seed: int seed, None, or a ``numpy.random.Generator``; algorithms are resampled in
            the order of ``scores`` from one generator, so results are reproducible.
        gamma: threshold of the optimality gap.

    Returns:
        dict name -> :class:`Interval` ``(point, lower, upper)``: floats, or float64 arrays
        (points,) for curves.

    Raises:
        TypeError: ``scores`` not a dict of numeric arrays.
        ValueError: unknown metric, bad shapes, NaN or inf (the message names the algorithm
            and its runs), bad ``reps`` or ``ci``.
    """
    fn = "interval_estimates"
    m = _metric(fn, metric, gamma)
    _check_options(fn, reps, ci)
    checked, curves = _check_scores(fn, scores)
    rng = _rng(seed)
    out = {}
    for name, xt in checked.items():
        point = m.point(xt)
        samples = _bootstrap(xt, m, int(reps), rng)
        lower, upper = _percentile_interval(samples, ci)
        out[name] = _shape_out(point, lower, upper, curves)
    return out


def _counts(rng, n, runs, tasks):
    """How often each run is drawn, per replicate and task: int array (n, tasks, runs)."""
    flat = _draw(rng, n, runs, tasks).astype(np.intp)
    flat += (np.arange(n * tasks) * runs).reshape(n, tasks, 1)
    return np.bincount(flat.ravel(), minlength=n * tasks * runs).reshape(n, tasks, runs)


def performance_profile(scores, taus, reps=2000, ci=0.95, seed=0, kind="runs"):
    """Compute performance profiles (fraction of scores above each threshold) with intervals.

    ``kind='runs'`` is the run-score distribution of the paper (rliable's default,
    ``use_score_distribution=True``): the fraction of all runs x tasks scores above ``tau``.
    ``kind='tasks'`` is the average-score distribution: the fraction of tasks whose mean over
    runs is above ``tau``. Intervals come from the same stratified bootstrap as
    :func:`interval_estimates`.

    Args:
        scores: dict algorithm name -> float array (runs, tasks).
        taus: 1-D sequence of thresholds.
        reps: bootstrap replicates (rliable's default for profiles is 2000).
        ci: confidence level in (0, 1).
        seed: int seed, None or a ``numpy.random.Generator``.
        kind: ``'runs'`` or ``'tasks'``.

    Returns:
        dict name -> :class:`Interval` of float64 arrays (len(taus),).

    Raises:
        TypeError, ValueError: as :func:`interval_estimates`; ``taus`` not 1-D finite or
            ``kind`` unknown.
    """
    fn = "performance_profile"
    _check_options(fn, reps, ci)
    if kind not in ("runs", "tasks"):
        raise ValueError(f"{fn}(): unknown kind {kind!r}; use 'runs' (run-score "
                         f"distribution) or 'tasks' (average-score distribution)")
    taus = np.asarray(taus, dtype=np.float64)
    if taus.ndim != 1 or taus.size == 0 or not np.isfinite(taus).all():
        raise ValueError(f"{fn}(): taus must be a non-empty 1-D array of finite thresholds, "
                         f"got shape {taus.shape!r}; e.g. np.linspace(0, 1, 101)")
    checked, _ = _check_scores(fn, scores, curves_allowed=False)
    rng = _rng(seed)
    out = {}
    for name, xt in checked.items():
        x = xt[:, :, 0]
        tasks, runs = x.shape
        if kind == "runs":
            # above[t, r, k]: run r of task t beats tau k; a replicate's fraction is
            # sum of counts * above over (t, r), divided by runs * tasks.
            above = (x[:, :, None] > taus).astype(np.float64).reshape(tasks * runs, -1)
            point = above.mean(axis=0)
            samples = []
            for n in _chunks(int(reps), x.size * taus.size):
                c = _counts(rng, n, runs, tasks).reshape(n, tasks * runs)
                samples.append(c @ above / (runs * tasks))
        else:
            point = (x.mean(axis=1)[:, None] > taus).mean(axis=0)
            samples = []
            for n in _chunks(int(reps), x.size * taus.size):
                c = _counts(rng, n, runs, tasks)
                means = np.einsum("ntr,tr->nt", c, x) / runs
                samples.append((means[:, :, None] > taus).mean(axis=1))
        lower, upper = _percentile_interval(np.concatenate(samples, axis=0), ci)
        out[name] = Interval(point, lower, upper)
    return out


def probability_of_improvement(scores, pairs=None, reps=2000, ci=0.95, seed=0):
    """Estimate P(X > Y) for pairs of algorithms, averaged over tasks, with intervals.

    Per task, ``P(X > Y)`` is the Mann-Whitney U statistic over all pairs of runs (a tie
    counts one half) divided by ``nx * ny``; the result is its mean over tasks, as rliable's
    ``metrics.probability_of_improvement``. The interval resamples X's and Y's runs
    independently within each task (rliable's ``StratifiedIndependentBootstrap``).

    Args:
        scores: dict algorithm name -> float array (runs, tasks); tasks must agree.
        pairs: sequence of ``(x, y)`` names; default every pair ``(a, b)`` with ``a`` before
            ``b`` in ``scores``.
        reps: bootstrap replicates.
        ci: confidence level in (0, 1).
        seed: int seed, None or a ``numpy.random.Generator``.

    Returns:
        dict ``(x, y)`` -> :class:`Interval` of floats.

    Raises:
        KeyError: a pair names an algorithm not in ``scores``.
        TypeError, ValueError: as :func:`interval_estimates`.
    """
    fn = "probability_of_improvement"
    _check_options(fn, reps, ci)
    checked, _ = _check_scores(fn, scores, curves_allowed=False)
    names = list(checked)
    if pairs is None:
        pairs = [(a, b) for i, a in enumerate(names) for b in names[i + 1:]]
    rng = _rng(seed)
    out = {}
    for pair in pairs:
        try:
            xname, yname = pair
        except (TypeError, ValueError):
            raise ValueError(f"{fn}(): pair {pair!r} is not two names; give (x, y)") from None
        for n_ in (xname, yname):
            if n_ not in checked:
                raise KeyError(f"{fn}(): algorithm {n_!r} of pair {pair!r} not in scores; "
                               f"known: {names!r}")
        x, y = checked[xname][:, :, 0], checked[yname][:, :, 0]  # (tasks, runs)
        tasks, nx = x.shape
        ny = y.shape[1]
        # wins[t, i, j] = 1 if x_i > y_j in task t, 1/2 if equal.
        wins = (x[:, :, None] > y[:, None, :]) + 0.5 * (x[:, :, None] == y[:, None, :])
        point = float(wins.mean(axis=(1, 2)).mean())
        samples = []
        for n in _chunks(int(reps), tasks * (nx + ny) + wins.size):
            cx = _counts(rng, n, nx, tasks)
            cy = _counts(rng, n, ny, tasks)
            cxw = np.matmul(cx.transpose(1, 0, 2).astype(np.float64), wins)  # (t, n, j)
            u = (cxw.transpose(1, 0, 2) * cy).sum(axis=2) / (nx * ny)
            samples.append(u.mean(axis=1))
        lower, upper = _percentile_interval(np.concatenate(samples), ci)
        out[(xname, yname)] = Interval(point, float(lower), float(upper))
    return out
