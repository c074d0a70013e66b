"""Time spinfast.metrics.interval_estimates against rliable.library.get_interval_estimates.

Same input, same replicates, same process, one after the other (rliable cannot be installed
beside the project's pandas 3, so this is a script, not part of the CI benchmarks)::

    python -m venv .venv-rliable && .venv-rliable/bin/pip install rliable 'pandas<3'
    .venv-rliable/bin/python bench/rliable_speed.py [--reps 50000] [--repeat 3]

spinfast.metrics needs only numpy, so it is imported from ``src/`` of this checkout. Prints
one line per case: the best time of each side over ``--repeat`` calls and the ratio.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "src"))

from rliable import library as rly  # noqa: E402
from rliable import metrics as rlm  # noqa: E402

from spinfast import metrics  # noqa: E402

RLIABLE_FUNCS = {"iqm": rlm.aggregate_iqm, "median": rlm.aggregate_median,
                 "mean": rlm.aggregate_mean, "optimality_gap": rlm.aggregate_optimality_gap}


def best(fn, repeat):
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=50000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--metrics", nargs="*", default=["iqm", "mean"])
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    print(f"numpy {np.__version__}, reps {args.reps}, best of {args.repeat}")
    for algos in (3, 5):
        scores = {f"algo{i}": rng.normal(i * 0.1, 1.0, size=(10, 5)) for i in range(algos)}
        for metric in args.metrics:
            f = RLIABLE_FUNCS[metric]

            def ours(metric=metric, scores=scores):
                metrics.interval_estimates(scores, metric, reps=args.reps)

            def theirs(f=f, scores=scores):
                np.random.seed(0)
                rly.get_interval_estimates(scores, lambda x: np.array([f(x)]), reps=args.reps)

            t_ours = best(ours, args.repeat)
            t_theirs = best(theirs, args.repeat)
            print(f"{metric:>14} {algos} algos x 10 runs x 5 tasks: spinfast {t_ours:.3f} s, "
                  f"rliable {t_theirs:.2f} s, ratio {t_theirs / t_ours:.0f}x", flush=True)


if __name__ == "__main__":
    main()
