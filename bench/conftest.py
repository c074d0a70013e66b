"""Side-by-side benchmarks: each group times a spinfast side and a plain reference, in turns.

:func:`alternating` times the sides round by round (the machine's speed drifts within minutes:
sides timed in separate tests would give ratios of that noise) and records the group's
medians here; after the run a table of the ratios (reference median / spinfast median) is
printed, and with ``--check-targets`` a ratio below its group's target fails the session. A
group may also time a ``baseline`` (e.g. a plain optimizer step): then the ratio compares
overheads, (reference - baseline) / (spinfast - baseline). Under ``--benchmark-disable`` each
side runs once, as a test, and nothing is recorded.
"""

from __future__ import annotations

import statistics
import time
from typing import NamedTuple

import pytest


class Result(NamedTuple):
    """One :func:`alternating` group: its target and the median seconds of each side."""

    group: str
    target: float | None
    medians: dict  # side -> median seconds: "spinfast", "reference", then "baseline"/extras

    @property
    def ratio(self) -> float:
        base = self.medians.get("baseline", 0.0)
        return ((self.medians["reference"] - base)
                / max(self.medians["spinfast"] - base, 1e-12))


RESULTS: list[Result] = []  # every group timed in this session, in order


def pytest_addoption(parser):
    parser.addoption("--check-targets", action="store_true",
                     help="fail the run when a measured speed-up is below its target")


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    tr = terminalreporter
    extras = [r for r in RESULTS if r.medians.keys() - {"spinfast", "reference", "baseline"}]
    if extras:
        tr.section("all sides (median times, ms)")
        for r in sorted(extras):
            cells = "  ".join(f"{side} {t * 1e3:.3f}" for side, t in r.medians.items())
            tr.write_line(f"{r.group}: {cells}")
    rated = [r for r in RESULTS if "reference" in r.medians]
    if not rated:
        return
    tr.section("speed-up over the plain reference (median times, sides timed in turns)")
    tr.write_line(f"{'group':<46}{'spinfast':>14}{'reference':>14}{'ratio':>9}{'target':>9}")
    for r in sorted(rated):
        ours, ref, base = r.medians["spinfast"], r.medians["reference"], r.medians.get("baseline")
        verdict = "" if r.target is None else (" ok" if r.ratio >= r.target else " BELOW TARGET")
        if base is not None:
            verdict += f" (baseline {base * 1e6:.1f}us)"
        tgt = "" if r.target is None else f">={r.target:.2f}x"
        tr.write_line(f"{r.group:<46}{ours * 1e6:>12.3f}us{ref * 1e6:>12.3f}us{r.ratio:>8.1f}x"
                      f"{tgt:>9}{verdict}")


def pytest_sessionfinish(session, exitstatus):
    if session.config.getoption("--check-targets"):
        if any(r.target is not None and "reference" in r.medians and r.ratio < r.target
               for r in RESULTS):
            session.exitstatus = pytest.ExitCode.TESTS_FAILED


def alternating(benchmark, group, target, rounds, spinfast, reference=None, baseline=None,
                prepare=None, warmup_rounds=2, sync=None, extra=None):
    """Time ``spinfast``, ``reference`` (and ``baseline``) in alternation, round by round.

    Each round times one call of every side, in the same moments: pytest-benchmark runs the
    rounds on the spinfast side (its table shows that side) and the setup of each of its
    rounds times one call of every other side. Every side's time is read here with
    ``time.perf_counter`` around the call alone, and the group's medians (warm-up rounds left
    out) go to :data:`RESULTS` and to ``benchmark.extra_info``. ``prepare(side)``, if given,
    runs untimed before each timed call (e.g. to store the values a dump will log). ``sync``,
    if given, runs untimed right before each timed call (an MPI barrier, so that all ranks
    start together). ``extra`` (name -> callable) adds further sides, timed in the same
    rounds and listed with their medians in the "all sides" table (the ratio stays spinfast
    against ``reference``); without ``reference`` the group has no ratio (phases of one
    call, say).
    """
    others = {} if reference is None else {"reference": reference}
    if baseline is not None:
        others["baseline"] = baseline
    others.update(extra or {})
    times: dict[str, list[float]] = {name: [] for name in ("spinfast", *others)}

    def timed(name, fn):
        if prepare is not None:
            prepare(name)
        if sync is not None:
            sync()
        t0 = time.perf_counter()
        fn()
        times[name].append(time.perf_counter() - t0)

    def setup():
        for name, fn in others.items():
            timed(name, fn)
        if prepare is not None:
            prepare("spinfast")
        if sync is not None:
            sync()

    def ours():
        t0 = time.perf_counter()
        spinfast()
        times["spinfast"].append(time.perf_counter() - t0)

    benchmark.group = group
    benchmark.pedantic(ours, setup=setup, rounds=rounds, iterations=1,
                       warmup_rounds=warmup_rounds)
    if benchmark.disabled:  # one call of each side, as a test: no timing to record
        return
    medians = {name: statistics.median(ts[warmup_rounds:] or ts) for name, ts in times.items()}
    benchmark.extra_info.update({f"{name}_median": t for name, t in medians.items()})
    RESULTS.append(Result(group, target, medians))


@pytest.fixture(scope="module", autouse=True)
def one_report(request):
    """Under MPI let rank 0 alone print the tables: other ranks drop their terminal reporter."""
    from spinfast import mpi_tools

    if mpi_tools.proc_id() != 0:
        reporter = request.config.pluginmanager.get_plugin("terminalreporter")
        if reporter is not None:
            request.config.pluginmanager.unregister(reporter)
    yield
    comm = mpi_tools.comm_world()
    if comm is not None:
        comm.Barrier()
