"""Runs that survive preemption: kill -9 at random moments, resume, same outputs."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import joblib
import pytest
from helpers import run_program

from spinfast.logx import EpochLogger
from spinfast.tfevents import read_scalars

PROGRAM = Path(__file__).parent / "programs" / "resumable.py"
FILE_FORMATS = ["txt", "csv", "jsonl", "tensorboard"]
EPOCHS = 40
KILLS = 20      # kills attempted; a run may finish before all of them
MIN_KILLS = 8   # at least this many must have landed for the test to mean something


def outputs(folder):
    """What a reader sees, per format: the text of each file; TensorBoard's scalars (what
    remains after its restart markers) as (tag, step, value), times left out."""
    seen = {fmt: (folder / f"progress.{fmt}").read_text() for fmt in ("txt", "csv", "jsonl")}
    seen["tensorboard"] = sorted((s.tag, s.step, s.value) for s in read_scalars(folder / "tb"))
    return seen


@pytest.mark.slow
def test_killed_and_resumed_run_reads_as_an_uninterrupted_one(tmp_path):
    formats = ",".join(["stdout", *FILE_FORMATS])
    clean = tmp_path / "clean"
    run_program([PROGRAM, clean, EPOCHS, formats, 0.0], timeout=120)
    expected = outputs(clean)
    assert expected["txt"].count("\n") == EPOCHS + 1

    resumed = tmp_path / "resumed"
    rng = random.Random(0)
    kills = 0
    for _attempt in range(60):
        proc = subprocess.Popen([sys.executable, str(PROGRAM), str(resumed), str(EPOCHS),
                                 formats, "0.01"], stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)
        if kills < KILLS:
            # A random point of the loop: after 0-2 more rows were printed, plus up to an
            # epoch's time (mid-store, between a dump and its checkpoint, during a write...).
            rows = rng.randint(0, 2)
            while rows:
                line = proc.stdout.readline()
                if not line:
                    break
                rows -= "|           Epoch |" in line
            time.sleep(rng.uniform(0.0, 0.015))
            if proc.poll() is None:
                proc.send_signal(signal.SIGKILL)
                kills += 1
        _, err = proc.communicate(timeout=120)
        if proc.returncode == 0:
            break
        assert proc.returncode == -signal.SIGKILL, err
    assert proc.returncode == 0
    assert kills >= MIN_KILLS, f"only {kills} kills landed before the run finished"
    got = outputs(resumed)
    for fmt in FILE_FORMATS:
        assert got[fmt] == expected[fmt], fmt
    steps = [step for tag, step, _ in got["tensorboard"] if tag == "AverageRet"]
    assert steps == [10 * epoch for epoch in range(EPOCHS)]  # each epoch once
    assert got["tensorboard"] == expected["tensorboard"]


def test_resume_keeps_rows_up_to_the_checkpoint_and_drops_a_torn_line(tmp_path, capsys):
    logger = EpochLogger(output_dir=str(tmp_path))
    for epoch in range(3):
        logger.store(X=float(epoch))
        logger.log_tabular("X")
        logger.dump_tabular()
        if epoch == 1:
            logger.save_state({"epoch": epoch})
    logger.close()
    with open(tmp_path / "progress.txt", "a") as f:
        f.write("9.0\t0")  # a torn line, as a crash inside a write would leave
    resumed = EpochLogger(output_dir=str(tmp_path), resume=True)
    assert "Resuming the run in" in capsys.readouterr().out
    assert resumed.load_state() == {"epoch": 1}
    resumed.store(X=7.0)
    resumed.log_tabular("X")
    resumed.dump_tabular()
    resumed.close()
    lines = (tmp_path / "progress.txt").read_text().splitlines()
    assert lines == ["AverageX\tStdX", "0.0\t0.0", "1.0\t0.0", "7.0\t0.0"]


def test_resumed_header_must_match(tmp_path):
    logger = EpochLogger(output_dir=str(tmp_path))
    logger.store(X=1.0)
    logger.log_tabular("X")
    logger.dump_tabular()
    logger.save_state({})
    logger.close()
    resumed = EpochLogger(output_dir=str(tmp_path), resume=True)
    resumed.store(X=1.0)
    resumed.log_tabular("X", with_min_and_max=True)
    with pytest.raises(ValueError, match=r"columns differ.*new \['MaxX', 'MinX'\]"):
        resumed.dump_tabular()
    resumed.close()
    assert (tmp_path / "progress.txt").read_text() == "AverageX\tStdX\n1.0\t0.0\n"


def test_resume_without_checkpoint_starts_afresh_and_needs_a_folder(tmp_path):
    with pytest.raises(ValueError, match="resume=True needs output_dir"):
        EpochLogger(resume=True)
    (tmp_path / "progress.txt").write_text("Old\n1\n")
    logger = EpochLogger(output_dir=str(tmp_path), resume=True)
    assert logger.load_state() is None
    logger.log_tabular("New", 2)
    logger.dump_tabular()
    logger.close()
    assert (tmp_path / "progress.txt").read_text() == "New\n2\n"


def test_a_failing_resume_record_raises_and_keeps_the_last_checkpoint(tmp_path):
    # The record is the commit point of a checkpoint: when it cannot be written (here its
    # path is taken by a folder), save_state raises (an OSError, not a pickling warning), the
    # last checkpoint's files stay as they were, and no temporary file is left.
    logger = EpochLogger(output_dir=str(tmp_path))
    for epoch in range(2):
        logger.log_tabular("Epoch", epoch)
        logger.dump_tabular()
        if epoch == 0:
            logger.save_state({"epoch": 0})
    record = tmp_path / "spinfast_resume.json"
    saved = record.read_bytes()
    record.unlink()
    record.mkdir()
    with pytest.raises(IsADirectoryError):
        logger.save_state({"epoch": 1})
    logger.close()
    assert joblib.load(tmp_path / "vars.pkl") == {"epoch": 0}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["progress.txt", "spinfast_resume.json",
                                                          "vars.pkl"]
    record.rmdir()  # the folder gone, the record of the last checkpoint is what a resume reads
    record.write_bytes(saved)
    resumed = EpochLogger(output_dir=str(tmp_path), resume=True)
    assert resumed.load_state() == {"epoch": 0}
    resumed.close()
    assert (tmp_path / "progress.txt").read_text() == "Epoch\n0\n"


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_a_read_only_folder_raises_and_keeps_the_last_checkpoint(tmp_path):
    logger = EpochLogger(output_dir=str(tmp_path))
    logger.save_state({"epoch": 0})
    os.chmod(tmp_path, 0o555)
    try:
        with pytest.raises(PermissionError):
            logger.save_state({"epoch": 1})
    finally:
        os.chmod(tmp_path, 0o755)
    assert logger.load_state() == {"epoch": 0}
    logger.close()


def test_save_state_names_the_cause_and_recreates_a_vanished_folder(tmp_path, capsys):
    import shutil

    out = tmp_path / "run"
    logger = EpochLogger(output_dir=str(out))
    logger.log_tabular("A", 1)
    logger.dump_tabular()
    shutil.rmtree(out)  # a /tmp cleaner, mid-run
    logger.save_state({"k": 1})
    assert logger.load_state() == {"k": 1}
    # noticed at this row or at close (rows less than CHECK_SECONDS apart are checked less
    # often); the rows since the last check (both) are written again
    with pytest.warns(RuntimeWarning, match=f"{out}/progress.txt vanished"):
        logger.log_tabular("A", 2)
        logger.dump_tabular()
        logger.close()
    assert (out / "progress.txt").read_text() == "A\n1\n2\n"
    assert os.path.exists(out / "vars.pkl")
