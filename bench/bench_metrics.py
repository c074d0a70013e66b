"""Stratified bootstrap intervals: spinfast.metrics against a replicate-at-a-time loop.

The reference (``reference.stratified_bootstrap_loop``) does what rliable's
``get_interval_estimates`` does per replicate (draw indices, apply the metric); rliable itself
adds arch's bookkeeping on top and is timed by ``bench/rliable_speed.py`` (figures in
bench/README.md; the issue's target, >= 20x over rliable, is met there by 80x to 250x). The
reference here is leaner than rliable (no arch), so its target is 10x. 2000 replicates keep
it short enough for CI.
"""

from __future__ import annotations

import numpy as np
import pytest
from conftest import alternating
from reference import stratified_bootstrap_loop, trim_mean_25

from spinfast.metrics import interval_estimates

REPS = 2000


@pytest.fixture(scope="module")
def scores():
    rng = np.random.default_rng(0)
    return {f"algo{i}": rng.normal(i * 0.1, 1.0, size=(10, 5)) for i in range(3)}


def test_reference_agrees(scores):
    ours = interval_estimates(scores, "iqm", reps=20000, seed=1)
    ref = stratified_bootstrap_loop(scores, trim_mean_25, 20000, seed=2)
    for name in scores:
        assert ours[name].point == pytest.approx(ref[name][0], rel=1e-12)
        width = ref[name][2] - ref[name][1]
        assert abs(ours[name].lower - ref[name][1]) < 0.05 * width
        assert abs(ours[name].upper - ref[name][2]) < 0.05 * width


def test_iqm_interval(benchmark, scores):
    alternating(benchmark, f"IQM interval, {REPS} reps, 3 algos x 10 runs x 5 tasks", 10, 10,
                lambda: interval_estimates(scores, "iqm", reps=REPS),
                lambda: stratified_bootstrap_loop(scores, trim_mean_25, REPS))


def test_mean_interval(benchmark, scores):
    alternating(benchmark, f"mean interval, {REPS} reps, 3 algos x 10 runs x 5 tasks", 10, 10,
                lambda: interval_estimates(scores, "mean", reps=REPS),
                lambda: stratified_bootstrap_loop(scores, np.mean, REPS))
