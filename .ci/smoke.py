"""Smoke test of an installed spinfast wheel: run in a fresh venv holding only the wheel.

Checks that the compiled modules load from the installed package (not a source tree), and
that a training-loop cycle writes Spinning Up's progress.txt with the right statistics.
Used by ``.ci/wheel`` and by cibuildwheel's ``test-command``.
"""

import contextlib
import importlib.machinery
import io
import math
import os
import sys
import tempfile

import spinfast._compress
import spinfast._flat
import spinfast._stats
import spinfast._tbevent
from spinfast.logx import EpochLogger

suffixes = tuple(importlib.machinery.EXTENSION_SUFFIXES)
for mod in (spinfast._stats, spinfast._flat, spinfast._tbevent, spinfast._compress):
    if not mod.__file__.endswith(suffixes):
        sys.exit(f"smoke: {mod.__name__} is not a compiled module: {mod.__file__}")
    if "site-packages" not in mod.__file__:
        sys.exit(f"smoke: {mod.__name__} does not come from an installed wheel: {mod.__file__}")

with tempfile.TemporaryDirectory() as d, contextlib.redirect_stdout(io.StringIO()) as out:
    # every file format; TensorBoard's needs no tensorboard package (none is installed here)
    logger = EpochLogger(output_dir=d, formats="stdout,txt,csv,jsonl,tensorboard")
    for epoch in range(2):
        for t in range(10):
            logger.store(Ret=float(t), Q=[t, t + 1.0])
        logger.log_tabular("Epoch", epoch)
        logger.log_tabular("Ret", with_min_and_max=True)
        logger.log_tabular("Q", average_only=True)
        logger.dump_tabular()
    logger.close()
    with open(os.path.join(d, "progress.txt")) as f:
        lines = f.read().splitlines()
    with open(os.path.join(d, "progress.csv")) as f:
        csv_lines = f.read().splitlines()
    with open(os.path.join(d, "progress.jsonl")) as f:
        jsonl_lines = f.read().splitlines()
    events = [n for n in os.listdir(os.path.join(d, "tb")) if "tfevents" in n]
    assert len(events) == 1 and os.path.getsize(os.path.join(d, "tb", events[0])) > 400, events

expected_std = math.sqrt(sum((t - 4.5) ** 2 for t in range(10)) / 10)
assert lines[0].split("\t") == ["Epoch", "AverageRet", "StdRet", "MaxRet", "MinRet", "Q"], lines
assert lines[2].split("\t") == ["1", "4.5", repr(expected_std), "9.0", "0.0", "5.0"], lines
assert "|      AverageRet |             4.5 |" in out.getvalue()
assert csv_lines == [line.replace("\t", ",") for line in lines], csv_lines
assert len(jsonl_lines) == 2 and jsonl_lines[1].startswith('{"Epoch":1,"AverageRet":4.5,'), \
    jsonl_lines
assert "tensorboard" not in sys.modules and "torch" not in sys.modules
assert spinfast._tbevent.crc32c(b"123456789") == 0xE3069283
acc = spinfast._stats.Welford()
acc.track_quantiles(0.01)
acc.push([float(v) for v in range(1, 101)])
[median] = spinfast._stats.sketch_quantiles(acc.quantile_counts, 0.01, [0.5])
assert abs(median - 50.0) <= 0.5, median
print(f"smoke: spinfast wheel OK ({spinfast._stats.__file__})")
