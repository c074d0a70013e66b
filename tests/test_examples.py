"""The docs' train_mnist example, ported to TF1 and PyTorch, runs end to end (1 and 2 ranks)."""

from __future__ import annotations

import functools
from pathlib import Path

import pytest
from conftest import Step
from helpers import read_progress, run_program

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
COLUMNS = ["Epoch", "AverageAcc", "StdAcc", "MaxAcc", "MinAcc", "Loss", "TotalGradientSteps",
           "Time"]
SCRIPTS = ["train_mnist_tf1.py", "train_mnist_torch.py"]


def train(tmp_path_factory, script, cpu):
    folder = tmp_path_factory.mktemp("ex")
    run_program([EXAMPLES / script, "--cpu", cpu, "--epochs", "3", "--steps_per_epoch", "40",
                 "--data_dir", folder, "--exp_name", "ex"], timeout=240)
    return folder / "ex" / "ex_s0"


# Each run starts with the session (conftest.early_steps).
RUNS = {(script, cpu): Step(functools.partial(train, script=script, cpu=cpu),
                            name=f"{script} --cpu {cpu}", timeout=900)
        for script in SCRIPTS for cpu in (1, 2)}


@pytest.mark.slow
@pytest.mark.parametrize("script, cpu", [
    pytest.param(script, cpu, marks=pytest.mark.early(step), id=f"{cpu}-{script}")
    for (script, cpu), step in RUNS.items()])
def test_train_mnist_example(early_steps, script, cpu):
    run = early_steps.result(RUNS[script, cpu])
    progress = read_progress(run)
    assert progress.header == COLUMNS
    rows = progress.rows
    assert list(rows[:, 0]) == [0, 1, 2]
    assert list(rows[:, 6]) == [40, 80, 120]
    assert rows[-1][1] > rows[0][1]          # accuracy improves
    assert (run / "config.json").exists()
    saved = "tf1_save" if "tf1" in script else "pyt_save"
    assert (run / saved).is_dir()
