"""Side-by-side benchmarks: each group holds a spinfast run and a plain reference run.

Mark a benchmark with ``pair(benchmark, group, impl, target)``: ``impl`` is ``"spinfast"`` or
``"reference"`` and ``target`` the minimum speed-up (reference median / spinfast median) the
spinfast side must reach. A group may also hold a ``"baseline"`` (e.g. a plain optimizer step):
then the ratio compares overheads, (reference - baseline) / (spinfast - baseline). After the
run a table of the measured ratios is printed; with ``--check-targets`` a ratio below its target
fails the session.
"""

from __future__ import annotations

import statistics
import time

import pytest

_TARGETS: dict[str, float] = {}


def pytest_addoption(parser):
    parser.addoption("--check-targets", action="store_true",
                     help="fail the run when a measured speed-up is below its target")


def pair(benchmark, group: str, impl: str, target: float | None = None):
    """Tag ``benchmark`` as the ``impl`` side of ``group`` (with the group's target)."""
    benchmark.group = group
    benchmark.extra_info["impl"] = impl
    if target is not None:
        _TARGETS[group] = target


def _ratios(config):
    session = getattr(config, "_benchmarksession", None)
    if session is None or session.disabled:
        return []
    by_group: dict[str, dict[str, float]] = {}
    for bench in session.benchmarks:
        impl = bench.extra_info.get("impl")
        if impl and bench.stats is not None:
            sides = by_group.setdefault(bench.group, {})
            sides[impl] = bench.stats.median
            for other in ("reference", "baseline"):  # timed alongside (mpibench.interleaved)
                if f"{other}_median" in bench.extra_info:
                    sides[other] = bench.extra_info[f"{other}_median"]
    rows = []
    for group, sides in sorted(by_group.items()):
        if {"spinfast", "reference"} <= sides.keys():
            base = sides.get("baseline", 0.0)
            ratio = (sides["reference"] - base) / max(sides["spinfast"] - base, 1e-12)
            rows.append((group, sides["spinfast"], sides["reference"], ratio,
                         _TARGETS.get(group), sides.get("baseline")))
    return rows


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    tr = terminalreporter
    sides = _all_sides(config)
    if sides:
        _write_all_sides(tr, sides)
    rows = _ratios(config)
    if not rows:
        return
    tr.section("speed-up over the plain reference (median times)")
    tr.write_line(f"{'group':<46}{'spinfast':>14}{'reference':>14}{'ratio':>9}{'target':>9}")
    for group, ours, ref, ratio, target, base in rows:
        verdict = "" if target is None else (" ok" if ratio >= target else " BELOW TARGET")
        if base is not None:
            verdict += f" (baseline {base * 1e6:.1f}us)"
        tgt = "" if target is None else f">={target:.2f}x"
        tr.write_line(f"{group:<46}{ours * 1e6:>12.3f}us{ref * 1e6:>12.3f}us{ratio:>8.1f}x"
                      f"{tgt:>9}{verdict}")


def _all_sides(config):
    """(group, {side: median}) of each benchmark timed with ``extra`` sides."""
    session = getattr(config, "_benchmarksession", None)
    if session is None or session.disabled:
        return []
    rows = []
    for bench in session.benchmarks:
        sides = bench.extra_info.get("sides")
        if sides and bench.stats is not None:
            medians = {s: bench.extra_info.get(f"{s}_median") for s in sides}
            medians["spinfast"] = bench.stats.median
            rows.append((bench.group, medians))
    return sorted(rows, key=lambda r: r[0])


def _write_all_sides(tr, rows):
    tr.section("all sides (median times, ms)")
    for group, medians in rows:
        cells = "  ".join(f"{side} {t * 1e3:.3f}" for side, t in medians.items())
        tr.write_line(f"{group}: {cells}")


def pytest_sessionfinish(session, exitstatus):
    if session.config.getoption("--check-targets"):
        low = [r for r in _ratios(session.config) if r[4] is not None and r[3] < r[4]]
        if low:
            session.exitstatus = pytest.ExitCode.TESTS_FAILED


def alternating(benchmark, group, target, rounds, spinfast, reference, baseline=None,
                prepare=None, warmup_rounds=2, sync=None, extra=None):
    """Time ``spinfast``, ``reference`` (and ``baseline``) in alternation, round by round.

    On this shared VM the speed of the machine drifts by up to 2x within minutes; sides timed
    in separate tests minutes apart give ratios of that noise. Here pytest-benchmark times the
    spinfast side, and the setup of each of its rounds times one round of every other side
    so all sides see the same moments. ``prepare(impl)``, if given,
    runs untimed before each timed call (e.g. to store the values a dump will log). The other
    sides' medians go to ``extra_info`` and the ratio table. ``sync``, if given, runs untimed
    right before each timed call (an MPI barrier, so that all ranks start together).
    ``extra`` (name -> callable) adds further sides, timed in the same rounds and listed with
    their medians in the "all sides" table (the ratio stays spinfast against ``reference``).
    """
    others = {"reference": reference}
    if baseline is not None:
        others["baseline"] = baseline
    others.update(extra or {})
    times: dict[str, list[float]] = {name: [] for name in others}

    def setup():
        for name, fn in others.items():
            if prepare is not None:
                prepare(name)
            if sync is not None:
                sync()
            t0 = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - t0)
        if prepare is not None:
            prepare("spinfast")
        if sync is not None:
            sync()

    pair(benchmark, group, "spinfast", target)
    if extra:
        benchmark.extra_info["sides"] = ["spinfast", *others]
    benchmark.pedantic(spinfast, setup=setup, rounds=rounds, iterations=1,
                       warmup_rounds=warmup_rounds)
    for name, ts in times.items():
        benchmark.extra_info[f"{name}_median"] = statistics.median(ts[warmup_rounds:] or ts)


@pytest.fixture
def paired():
    return pair


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
