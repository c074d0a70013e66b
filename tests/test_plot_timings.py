"""The timings figure (--timings): stacked phase timers per epoch with the max over ranks."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import matplotlib.image as mpimg
import numpy as np
import pytest
from helpers import read_progress
from test_plot import assert_image

from spinfast.logx import EpochLogger
from spinfast.plot import main, make_timing_plots, timer_keys

# One run, written by hand: two timers with min and max, one logged average only, Spinning
# Up's plain Time, and a non-timer family with Average and Max.
HAND_COLUMNS = ["Epoch", "AverageEpRet", "MaxEpRet",
                "AverageDataTime", "StdDataTime", "MaxDataTime", "MinDataTime",
                "AverageUpdateTime", "StdUpdateTime", "MaxUpdateTime", "MinUpdateTime",
                "AverageEvalTime", "Time"]
DATA_AVG = [0.5, 0.25, 1.0]
DATA_MAX = [0.75, 0.25, 3.0]   # epoch 2: one rank lags (3x its mean)
UPDATE_AVG = [2.0, 1.5, 1.25]
UPDATE_MAX = [2.5, 1.5, 4.0]
EVAL_AVG = [0.125, 0.375, 0.0625]
EPOCHS = [10, 11, 12]


def write_hand_run(folder, epoch_column=True):
    """progress.txt with the numbers above (and config.json), as a logger writes them."""
    folder.mkdir(parents=True)
    (folder / "config.json").write_text('{"exp_name": "hand"}')
    cols = HAND_COLUMNS if epoch_column else HAND_COLUMNS[1:]
    lines = ["\t".join(cols)]
    for i in range(3):
        row = {"Epoch": EPOCHS[i], "AverageEpRet": 5.0, "MaxEpRet": 9.0,
               "AverageDataTime": DATA_AVG[i], "StdDataTime": 0.1, "MaxDataTime": DATA_MAX[i],
               "MinDataTime": 0.01, "AverageUpdateTime": UPDATE_AVG[i], "StdUpdateTime": 0.2,
               "MaxUpdateTime": UPDATE_MAX[i], "MinUpdateTime": 0.02,
               "AverageEvalTime": EVAL_AVG[i], "Time": 7.0 * i}
        lines.append("\t".join(repr(row[c]) for c in cols))
    (folder / "progress.txt").write_text("\n".join(lines) + "\n")


def bars(ax):
    """key -> (x centres, bottoms, heights, width) of the stacked bars on ``ax``."""
    out = {}
    for c in ax.containers:
        rects = list(c)
        out[c.get_label()] = (np.array([r.get_x() + r.get_width() / 2 for r in rects]),
                              np.array([r.get_y() for r in rects]),
                              np.array([r.get_height() for r in rects]),
                              rects[0].get_width())
    return out


def ticks(ax):
    """Max<KEY> -> (x centres, levels, half widths) of the max ticks on ``ax``."""
    out = {}
    for c in ax.collections:
        if c.get_gid():
            segs = np.array(c.get_segments())  # (n, 2 points, xy)
            assert np.all(segs[:, 0, 1] == segs[:, 1, 1])  # horizontal
            out[c.get_gid()] = ((segs[:, 0, 0] + segs[:, 1, 0]) / 2, segs[:, 0, 1],
                                (segs[:, 1, 0] - segs[:, 0, 0]) / 2)
    return out


def test_hand_written_numbers_default_keys(tmp_path):
    write_hand_run(tmp_path / "data" / "hand_s0")
    save = tmp_path / "t.png"
    res = make_timing_plots([str(tmp_path / "data") + "/"], save=save)
    # EvalTime has no Max, Time no Average/Max, EpRet does not end in Time
    assert res.keys == ["DataTime", "UpdateTime"]
    assert res.path == str(save) and res.titles == ["hand: hand_s0"]
    (ax,) = res.figure.axes
    assert ax.get_xlabel() == "Epoch"
    got = bars(ax)
    assert list(got) == ["DataTime", "UpdateTime"]
    x, bottom, height, width = got["DataTime"]
    assert x.tolist() == EPOCHS and width == pytest.approx(0.8)
    assert bottom.tolist() == [0, 0, 0] and height.tolist() == DATA_AVG
    x, bottom, height, _ = got["UpdateTime"]
    assert x.tolist() == EPOCHS
    assert bottom.tolist() == DATA_AVG and height.tolist() == UPDATE_AVG
    marks = ticks(ax)
    assert set(marks) == {"MaxDataTime", "MaxUpdateTime"}
    x, level, half = marks["MaxDataTime"]
    assert x.tolist() == EPOCHS and np.allclose(half, 0.4)
    assert level.tolist() == DATA_MAX  # bottom 0 + max
    x, level, _ = marks["MaxUpdateTime"]
    assert level.tolist() == [DATA_AVG[i] + UPDATE_MAX[i] for i in range(3)]
    # the lagging epoch: the DataTime tick stands above its segment's top
    assert level[2] > DATA_AVG[2] + UPDATE_AVG[2]
    # what was plotted is returned
    np.testing.assert_array_equal(res.data[0]["AverageUpdateTime"], UPDATE_AVG)
    assert "AverageEvalTime" not in res.data[0]


def test_explicit_keys_order_and_no_max(tmp_path):
    write_hand_run(tmp_path / "hand", epoch_column=False)
    res = make_timing_plots([str(tmp_path / "hand") + "/"], keys=["EvalTime", "UpdateTime"],
                            save=tmp_path / "t.png")
    assert res.keys == ["EvalTime", "UpdateTime"]
    (ax,) = res.figure.axes
    assert ax.get_xlabel() == "row"
    got = bars(ax)
    assert list(got) == ["EvalTime", "UpdateTime"]
    x, bottom, height, _ = got["EvalTime"]
    assert x.tolist() == [0, 1, 2] and bottom.tolist() == [0, 0, 0]
    assert height.tolist() == EVAL_AVG
    x, bottom, height, _ = got["UpdateTime"]
    assert bottom.tolist() == EVAL_AVG and height.tolist() == UPDATE_AVG
    marks = ticks(ax)
    assert set(marks) == {"MaxUpdateTime"}  # EvalTime has no Max column: no ticks
    assert marks["MaxUpdateTime"][1].tolist() == [EVAL_AVG[i] + UPDATE_MAX[i]
                                                  for i in range(3)]
    assert timer_keys(res.data[0].rename(columns={"x": "Epoch"})) == ["UpdateTime"]


def logged_run(folder, epochs=4, keys=("DataTime", "UpdateTime"), epoch_column=True):
    """A run whose timers are real ``EpochLogger.timer`` blocks (sleeps of known length)."""
    lg = EpochLogger(output_dir=str(folder), exp_name="real")
    lg.save_config({"exp_name": "real"})
    for epoch in range(epochs):
        for call in range(3):
            for j, key in enumerate(keys):
                with lg.timer(key):
                    time.sleep(0.001 * (j + 1) * (1 + (call == 2 and epoch == 1)))
        if epoch_column:
            lg.log_tabular("Epoch", epoch)
        for key in keys:
            lg.log_tabular(key, with_min_and_max=True)
        lg.log_tabular("Time", 0.5 * epoch)
        lg.dump_tabular()
    lg.close()


@pytest.mark.parametrize("fmt", ["png", "svg", "pdf"])
def test_real_logger_timers_saved_as(tmp_path, fmt, capsys):
    logged_run(tmp_path / "data" / "real_s0")
    logged_run(tmp_path / "data" / "real_s1", epochs=3, keys=("UpdateTime",),
               epoch_column=False)
    save = tmp_path / "figs" / f"timings.{fmt}"
    res = make_timing_plots([str(tmp_path / "data") + "/"], legend=["R"], save=save)
    assert f"Saved timings of DataTime, UpdateTime to {save}" in capsys.readouterr().out
    assert_image(save, fmt)
    if fmt == "png":
        img = mpimg.imread(save)[..., :3]
        assert len(np.unique(img.reshape(-1, 3), axis=0)) > 1  # not blank
    assert res.keys == ["DataTime", "UpdateTime"]  # union over runs, Time excluded
    assert res.titles == ["R: real_s0", "R: real_s1"]
    ax0, ax1 = res.figure.axes
    # The plotter reads each float exactly; matplotlib keeps a stacked segment as its two
    # edges, so its height is within a bit of the column's.
    cols = read_progress(tmp_path / "data" / "real_s0").columns
    got, marks = bars(ax0), ticks(ax0)
    assert got["DataTime"][0].tolist() == [0, 1, 2, 3]
    np.testing.assert_array_equal(got["DataTime"][2], cols["AverageDataTime"])
    np.testing.assert_array_equal(got["UpdateTime"][1], cols["AverageDataTime"])
    np.testing.assert_allclose(got["UpdateTime"][2], cols["AverageUpdateTime"], rtol=1e-15)
    np.testing.assert_array_equal(marks["MaxDataTime"][1], cols["MaxDataTime"])
    np.testing.assert_allclose(marks["MaxUpdateTime"][1],
                               cols["AverageDataTime"] + cols["MaxUpdateTime"], rtol=1e-15)
    # epoch 1's third calls slept twice as long: the max is above the mean
    assert cols["MaxDataTime"][1] > cols["AverageDataTime"][1] * 1.2
    # the second run has only UpdateTime (no DataTime segment) and no Epoch column
    cols = read_progress(tmp_path / "data" / "real_s1").columns
    got = bars(ax1)
    assert list(got) == ["UpdateTime"] and ax1.get_xlabel() == "row"
    assert got["UpdateTime"][0].tolist() == [0, 1, 2]
    assert got["UpdateTime"][1].tolist() == [0, 0, 0]
    np.testing.assert_array_equal(got["UpdateTime"][2], cols["AverageUpdateTime"])
    np.testing.assert_array_equal(ticks(ax1)["MaxUpdateTime"][1], cols["MaxUpdateTime"])


def test_missing_values_draw_nothing(tmp_path):
    run = tmp_path / "csvrun"
    run.mkdir()
    (run / "progress.csv").write_text("Epoch,AverageXTime,MaxXTime\n0,1.0,2.0\n1,,\n"
                                      "2,0.5,\n")
    res = make_timing_plots([str(run) + "/"], save=tmp_path / "t.png")
    (ax,) = res.figure.axes
    assert bars(ax)["XTime"][2].tolist() == [1.0, 0.0, 0.5]
    x, level, _ = ticks(ax)["MaxXTime"]
    assert x.tolist() == [0] and level.tolist() == [2.0]


def test_errors_name_columns_and_how_to_pass_keys(tmp_path):
    plain = tmp_path / "plain"
    plain.mkdir()
    (plain / "progress.txt").write_text("Epoch\tAverageEpRet\tTime\n0\t1.0\t2.0\n")
    with pytest.raises(ValueError) as exc:
        make_timing_plots([str(plain) + "/"], save=tmp_path / "t.png")
    msg = str(exc.value)
    assert msg.startswith("make_timing_plots(): no timer columns (Average<KEY> of a key the "
                          "logger timed, or, in runs without its record, Average<KEY> and "
                          "Max<KEY> with KEY ending in 'Time') in 1 run(s); their columns are ")
    assert "['Epoch', 'AverageEpRet', 'Time']" in msg and "--timings KEY [KEY ...]" in msg
    assert "logger.timer(KEY)" in msg
    write_hand_run(tmp_path / "hand")
    with pytest.raises(ValueError, match=r"make_timing_plots\(\): column 'AverageNope' "
                       r"\(average of timer 'Nope'\) not found in .*progress.txt; its "
                       r"columns are \['Epoch', .*--timings KEY"):
        make_timing_plots([str(tmp_path / "hand") + "/"], keys="Nope")
    with pytest.raises(ValueError, match="unknown file type 'xyz'"):
        make_timing_plots([str(tmp_path / "hand") + "/"], save=tmp_path / "t.xyz")


def test_command_line(tmp_path, capsys):
    write_hand_run(tmp_path / "data" / "hand_s0")
    data = str(tmp_path / "data") + "/"
    assert main([data, "--timings", "UpdateTime", "--save", str(tmp_path / "u.svg")]) == 0
    assert "Saved timings of UpdateTime to" in capsys.readouterr().out
    assert_image(tmp_path / "u.svg", "svg")
    for extra, words in ((["--aggregate", "iqm"], "--aggregate and --timings draw different"),
                         (["--count", "-s", "3"], "--timings does not use --count, "
                                                  "-s/--smooth")):
        with pytest.raises(SystemExit) as exc:
            main([data, "--timings", *extra])
        assert exc.value.code == 2 and words in capsys.readouterr().err
    # headless, without --save: timings.png next to the data; errors on one line, status 1
    env = {k: v for k, v in os.environ.items()
           if k not in ("DISPLAY", "WAYLAND_DISPLAY", "MPLBACKEND")}
    proc = subprocess.run([sys.executable, "-m", "spinfast.run", "plot", data, "--timings"],
                          env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    png = tmp_path / "data" / "hand_s0" / "timings.png"  # the folder common to the runs
    assert f"Saved timings of DataTime, UpdateTime to {png}" in proc.stdout
    assert_image(png)
    proc = subprocess.run([sys.executable, "-m", "spinfast.run", "plot", data, "--timings",
                           "Nope"], env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert "spinfast: error: make_timing_plots(): column 'AverageNope'" in proc.stderr


def timed_epochs(logger, epochs, order, first=0):
    """``epochs`` epochs timing ``order``'s keys (sleeps of 1, 2, ... ms a key), each logged
    with min and max; a stored ``LossTime`` family (not a timer) and ``Epoch`` beside them."""
    for epoch in range(first, first + epochs):
        for j, key in enumerate(order):
            with logger.timer(key):
                time.sleep(0.001 * (j + 1))
        logger.store(LossTime=0.5)
        logger.log_tabular("Epoch", epoch)
        for key in ("Update", "Collect"):
            logger.log_tabular(key, with_min_and_max=True)
        logger.log_tabular("LossTime", with_min_and_max=True)
        logger.dump_tabular()


def test_timers_recorded_by_the_logger_are_drawn_whatever_their_names(tmp_path, capsys):
    run = tmp_path / "data" / "timed_s0"
    logger = EpochLogger(output_dir=str(run))
    timed_epochs(logger, 3, ("Update", "Collect"))
    logger.close()
    assert timer_keys_of(run) == ["Update", "Collect"]
    res = make_timing_plots([str(run)], save=tmp_path / "t.png")
    # exactly the timed keys: not LossTime (stored, though it ends in Time and has a Max)
    assert res.keys == ["Update", "Collect"]
    cols = read_progress(run).columns
    got = bars(res.figure.axes[0])
    assert list(got) == ["Update", "Collect"]
    np.testing.assert_array_equal(got["Update"][2], cols["AverageUpdate"])
    np.testing.assert_array_equal(got["Collect"][1], cols["AverageUpdate"])
    np.testing.assert_allclose(got["Collect"][2], cols["AverageCollect"], rtol=1e-15)
    assert np.all(cols["AverageCollect"] >= 0.002)  # the sleeps: real timings were read
    # the command line with no keys draws the same keys
    capsys.readouterr()
    assert main([str(run), "--timings", "--save", str(tmp_path / "cli.png")]) == 0
    assert f"Saved timings of Update, Collect to {tmp_path / 'cli.png'}" in capsys.readouterr().out
    # without the record, the name rule: only LossTime ends in Time
    (run / "spinfast_run.json").unlink()
    assert make_timing_plots([str(run)], save=tmp_path / "t.png").keys == ["LossTime"]


def timer_keys_of(run):
    import json

    return json.loads((run / "spinfast_run.json").read_text())["timers"]


def test_timer_record_survives_resume_and_a_new_run_drops_it(tmp_path):
    run = tmp_path / "run"
    logger = EpochLogger(output_dir=str(run))
    timed_epochs(logger, 2, ("Update", "Collect"))
    logger.save_state({"epoch": 1})
    timed_epochs(logger, 1, ("Update", "Collect"), first=2)  # dropped by the resume
    logger.close()
    resumed = EpochLogger(output_dir=str(run), resume=True)
    assert timer_keys_of(run) == ["Update", "Collect"]      # kept at the resume
    timed_epochs(resumed, 2, ("Collect", "Update"), first=2)  # first used in the other order
    resumed.close()
    assert timer_keys_of(run) == ["Update", "Collect"]      # each key once, the run's order
    res = make_timing_plots([str(run)], save=tmp_path / "t.png")
    assert res.keys == ["Update", "Collect"]
    cols = read_progress(run).columns
    assert cols["Epoch"].tolist() == [0, 1, 2, 3]
    got = bars(res.figure.axes[0])
    assert got["Update"][0].tolist() == [0, 1, 2, 3]
    np.testing.assert_array_equal(got["Update"][2], cols["AverageUpdate"])
    # a new run in the folder (not resumed) starts without the old run's record
    fresh = EpochLogger(output_dir=str(run))
    assert not (run / "spinfast_run.json").exists()
    fresh.log_tabular("Epoch", 0)
    fresh.dump_tabular()
    fresh.close()
    assert not (run / "spinfast_run.json").exists()
