"""Write tests/goldens/rliable_goldens.json: rliable's own estimates on fixed data.

Run it with an interpreter that has rliable (1.2.0 pins arch<8, and arch 7.2 needs pandas<3)::

    python -m venv .venv-rliable
    .venv-rliable/bin/pip install rliable 'pandas<3'
    .venv-rliable/bin/python tests/make_rliable_goldens.py

The data are stored in the file with the results, so the test does not depend on a random
generator. rliable draws from numpy's global generator; every interval is computed with
``SEEDS`` seeds, and the file keeps the mean and standard deviation of each endpoint over
them, so the test can judge agreement against Monte Carlo error.
"""

from __future__ import annotations

import json
import sys
import time
from importlib.metadata import version
from pathlib import Path

import numpy as np
from rliable import library as rly
from rliable import metrics

OUT = Path(__file__).resolve().parent / "goldens" / "rliable_goldens.json"
SEEDS = 4
REPS = 20000
PROFILE_REPS = 2000
METRIC_FUNCS = {
    "iqm": metrics.aggregate_iqm,
    "median": metrics.aggregate_median,
    "mean": metrics.aggregate_mean,
    "optimality_gap": metrics.aggregate_optimality_gap,
}


def make_data():
    """Final scores (runs, tasks) and curves (runs, tasks, points), rounded to 6 digits."""
    rng = np.random.default_rng(20211206)
    offsets = np.array([0.0, 0.3, 0.6, 0.9, 1.2])
    finals = {
        "A": rng.normal(0.5, 0.3, size=(10, 5)) + offsets * 0.5,
        "B": rng.gamma(2.0, 0.3, size=(7, 5)) + offsets * 0.4,  # fewer runs, skewed
        "ties": rng.integers(0, 4, size=(10, 5)) / 3.0,  # many exact ties
        "one_run": rng.normal(0.7, 0.2, size=(1, 5)),
    }
    steps = np.linspace(0.2, 1.0, 4)
    curves = {
        "A": rng.normal(0.0, 0.2, size=(10, 5, 4)) + steps + offsets[:, None] * 0.3,
        "B": rng.normal(0.0, 0.3, size=(6, 5, 4)) + steps * 0.8,
    }
    return ({k: np.round(v, 6) for k, v in finals.items()},
            {k: np.round(v, 6) for k, v in curves.items()})


def summarize(runs):
    """Mean and sd over seeds of lower/upper arrays; runs is a list of (2, ...) arrays."""
    arr = np.asarray(runs, dtype=np.float64)
    return {"lower_mean": arr[:, 0].mean(axis=0).tolist(),
            "upper_mean": arr[:, 1].mean(axis=0).tolist(),
            "lower_sd": arr[:, 0].std(axis=0, ddof=1).tolist(),
            "upper_sd": arr[:, 1].std(axis=0, ddof=1).tolist()}


def interval_golden(score_dict, func, reps):
    points, cis = {}, {k: [] for k in score_dict}
    for seed in range(SEEDS):
        np.random.seed(seed)
        pts, ci = rly.get_interval_estimates(score_dict, func, reps=reps)
        for k in score_dict:
            cis[k].append(np.asarray(ci[k]).reshape(2, -1))
            points[k] = np.asarray(pts[k]).reshape(-1).tolist()
    return {k: {"point": points[k], **summarize(cis[k])} for k in score_dict}


def main():
    finals, curves = make_data()
    golden = {"rliable": version("rliable"), "arch": version("arch"),
              "numpy": np.__version__, "seeds": SEEDS, "reps": REPS,
              "profile_reps": PROFILE_REPS,
              "finals": {k: v.tolist() for k, v in finals.items()},
              "curves": {k: v.tolist() for k, v in curves.items()},
              "intervals": {}, "curve_intervals": {}, "profiles": {}, "poi": {}}
    t0 = time.perf_counter()
    for name, f in METRIC_FUNCS.items():
        golden["intervals"][name] = interval_golden(
            finals, lambda x, f=f: np.array([f(x)]), REPS)
        print(f"{name}: {time.perf_counter() - t0:.1f} s", file=sys.stderr)
    for name in ("iqm", "mean"):
        f = METRIC_FUNCS[name]
        golden["curve_intervals"][name] = interval_golden(
            curves, lambda x, f=f: np.array([f(x[..., p]) for p in range(x.shape[-1])]),
            REPS // 4)
    golden["curve_reps"] = REPS // 4
    taus = np.linspace(-0.2, 2.0, 12)
    golden["taus"] = taus.tolist()
    for kind, use in (("runs", True), ("tasks", False)):
        profs, cis = {}, {k: [] for k in finals}
        for seed in range(SEEDS):
            np.random.seed(seed)
            p, c = rly.create_performance_profile(finals, taus, use_score_distribution=use,
                                                  reps=PROFILE_REPS)
            for k in finals:
                profs[k] = np.asarray(p[k]).tolist()
                cis[k].append(np.asarray(c[k]))
        golden["profiles"][kind] = {k: {"point": profs[k], **summarize(cis[k])}
                                    for k in finals}
    pairs = {"A,B": (finals["A"], finals["B"]), "ties,A": (finals["ties"], finals["A"]),
             "ties,ties": (finals["ties"], finals["ties"])}
    golden["poi"] = interval_golden(pairs, metrics.probability_of_improvement, PROFILE_REPS)
    OUT.parent.mkdir(exist_ok=True)
    OUT.write_text(json.dumps(golden, indent=1) + "\n")
    print(f"wrote {OUT} in {time.perf_counter() - t0:.1f} s", file=sys.stderr)


if __name__ == "__main__":
    main()
