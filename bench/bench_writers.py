"""Output formats and quantile sketches against their references, in one run.

Run: ``python -m pytest bench/bench_writers.py -p no:cacheprovider`` (add ``--check-targets``).

- TensorBoard: a row of 20 scalars through :class:`TensorBoardWriter` (compiled encoder, one
  write) against 20 ``torch.utils.tensorboard.SummaryWriter.add_scalar`` calls.
- All formats: the same row to ``txt,csv,jsonl,tensorboard`` against ``txt`` alone; the ratio
  is txt / all, so the target 0.5 means "at most 2x the cost of txt".
- Step-indexed sinks, a dump of 20 keys: MLflow (``MlflowWriter``, a local file store in the
  output folder, ``log_batch`` per row) against W&B (``WandbWriter``, offline) and TensorBoard
  (``TensorBoardWriter``), in alternation, row by row; the ratio is W&B / MLflow, and
  ``--check-targets`` also fails an MLflow median of 5 ms or more.
- Sketch: pushing 1e6 float32 into an accumulator tracking quantiles (``Welford`` with
  ``track_quantiles``, what ``store`` feeds for a key logged with quantiles) and reading 3
  quantiles, against keeping them and calling ``numpy.quantile`` (what one does without a
  sketch); and 1000 scalar pushes into it against 1000 pushes into an untracked ``Welford``.
"""

from __future__ import annotations

import numpy as np
from conftest import alternating

from spinfast._outputs import Row, make_writers
from spinfast._stats import Welford, sketch_quantiles

HEADERS = ["Epoch"] + [f"Metric{i:02d}" for i in range(19)]
CALLS = 1000


def make_row(step: int) -> Row:
    """A row of 20 numbers: the epoch and 19 floats, as a training loop logs them."""
    rng = np.random.default_rng(step)
    values = {"Epoch": step}
    values.update({k: float(v) for k, v in zip(HEADERS[1:], rng.normal(size=19))})
    return Row(HEADERS, values, step)


def torch_add_scalars(tmp_path, row: Row):
    """The reference: ``torch.utils.tensorboard``'s ``add_scalar`` for each column of ``row``.

    Returns ``(run, writer)``: a call writes the row once; close the writer after.
    """
    from torch.utils.tensorboard import SummaryWriter

    writer = SummaryWriter(str(tmp_path / "torch"))
    items = [(k, row.values[k]) for k in HEADERS]
    step = iter(range(10**9))

    def run():
        s = next(step)
        for k, v in items:
            writer.add_scalar(k, v, s)
    return run, writer


def flushed(torch_writer):
    """``prepare`` of :func:`conftest.alternating`: before our side's call, untimed, torch's
    writer thread writes what the reference's calls queued, so it does not run during ours."""
    def prepare(side):
        if side == "spinfast":
            torch_writer.flush()
    return prepare


def test_tensorboard_row_of_20_scalars(benchmark, tmp_path):
    row = make_row(1)
    (writer,) = make_writers(("tensorboard",), str(tmp_path))
    values = row.values
    step = iter(range(10**9))

    def run():  # a new Row per call, built as dump_tabular builds it
        writer.write_row(Row(HEADERS, values, next(step)))
    torch_run, torch_writer = torch_add_scalars(tmp_path, row)
    alternating(benchmark, "tensorboard: 20 scalars (ref: torch add_scalar)", 100, 2000, run,
                torch_run, prepare=flushed(torch_writer), warmup_rounds=20)
    writer.close()
    torch_writer.close()


def test_tensorboard_encode_20_scalars(benchmark, tmp_path):
    # the compiled encoder alone (no file, no check): what a scalar costs before the syscalls
    from spinfast._tbevent import encode_row

    row = make_row(1)
    keys, tags = tuple(HEADERS), tuple(k.encode() for k in HEADERS)
    values = row.values
    torch_run, torch_writer = torch_add_scalars(tmp_path, row)
    alternating(benchmark, "tb encode only: 20 scalars (ref: torch)", 100, 2000,
                lambda: encode_row(keys, tags, values, 7, 1.0e9), torch_run,
                prepare=flushed(torch_writer), warmup_rounds=20)
    torch_writer.close()
    if "spinfast_median" in benchmark.extra_info:  # not under --benchmark-disable
        benchmark.extra_info["ns_per_scalar"] = benchmark.extra_info["spinfast_median"] / 20 * 1e9


def test_all_formats_vs_txt(benchmark, tmp_path):
    # reference = txt alone; spinfast = all four file formats; ratio = txt / all. Timed in
    # alternation, row by row: both sides are this package's writers, with no thread behind.
    rows = [make_row(i) for i in range(64)]

    def writing(names, folder):
        folder.mkdir()
        writers = make_writers(names, str(folder))
        state = {"i": 0}

        def run():
            i = state["i"]
            state["i"] = i + 1
            row = rows[i % 64]._replace(step=i)
            for w in writers:
                w.write_row(row)
        return run, writers

    ours, ours_w = writing(("txt", "csv", "jsonl", "tensorboard"), tmp_path / "all")
    txt, txt_w = writing(("txt",), tmp_path / "txt")
    alternating(benchmark, "row of 20: txt,csv,jsonl,tb (ref: txt alone)", 0.5, 20000, ours,
                txt, warmup_rounds=100)
    for w in ours_w + txt_w:
        w.close()


def test_mlflow_dump_of_20_keys(benchmark, tmp_path, monkeypatch, request):
    # MLflow, offline on its local file store, against W&B offline and TensorBoard: each side
    # one writer's write_row of a 20-key row (what a dump costs that sink), row by row.
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    for var, sub in [("WANDB_CONFIG_DIR", "wb_config"), ("WANDB_CACHE_DIR", "wb_cache"),
                     ("WANDB_DATA_DIR", "wb_data"), ("WANDB_ARTIFACT_DIR", "wb_artifacts")]:
        monkeypatch.setenv(var, str(tmp_path / sub))
    for var, value in [("WANDB_MODE", "offline"), ("WANDB_SILENT", "true"),
                       ("WANDB_CONSOLE", "off"), ("WANDB_PROJECT", "spinfast-bench")]:
        monkeypatch.setenv(var, value)
    rows = [make_row(i) for i in range(64)]
    writers = []

    def writing(name):
        (writer,) = make_writers((name,), str(tmp_path / name))
        writers.append(writer)
        state = {"i": 0}

        def run():
            i = state["i"]
            state["i"] = i + 1
            writer.write_row(rows[i % 64]._replace(step=i))
        return run

    mlflow, wandb, tensorboard = writing("mlflow"), writing("wandb"), writing("tensorboard")
    alternating(benchmark, "dump of 20 keys: mlflow (ref: wandb offline)", None, 300, mlflow,
                wandb, warmup_rounds=20, extra={"tensorboard": tensorboard})
    for w in writers:
        w.close()
    if request.config.getoption("--check-targets") and not benchmark.disabled:
        median = benchmark.stats.stats.median
        assert median < 5e-3, f"MLflow dump of 20 keys: {median * 1e3:.2f} ms, target < 5 ms"


def _tracked():
    acc = Welford()
    acc.track_quantiles(0.01)
    return acc


def test_sketch_million_float32(benchmark):
    x = np.random.default_rng(0).standard_cauchy(1_000_000).astype(np.float32)
    qs = [0.05, 0.5, 0.95]
    acc = _tracked()
    results = []

    def ours():
        acc.reset()
        acc.push(x)
        results.append(sketch_quantiles(acc.quantile_counts, 0.01, qs))

    alternating(benchmark, "quantiles of 1e6 float32 (ref: np.quantile)", 1, 30, ours,
                lambda: results.append(np.quantile(x, qs)))
    if "spinfast_median" in benchmark.extra_info:  # not under --benchmark-disable
        benchmark.extra_info["ns_per_value"] = (benchmark.extra_info["spinfast_median"]
                                                / x.size * 1e9)
    assert all(len(result) == 3 for result in results)


def test_sketch_scalars(benchmark):
    values = np.random.default_rng(0).normal(size=CALLS).tolist()

    def pushing(push):
        def run():
            for v in values:
                push(v)
        return run
    alternating(benchmark, "push x1000 scalars: tracked (ref: untracked)", None, 300,
                pushing(_tracked().push), pushing(Welford().push))
