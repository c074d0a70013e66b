"""The plotter: real files from our Logger and in Spinning Up's format, real images."""

from __future__ import annotations

import os
import subprocess
import sys

import matplotlib.image as mpimg
import numpy as np
import pytest

from spinfast.logx import EpochLogger
from spinfast.plot import get_all_datasets, make_plots, moving_average


def smooth_reference(y, s):
    """Centred moving average written out window by window (independent of the plotter)."""
    y = np.asarray(y, dtype=float)
    out = np.empty(len(y))
    for i in range(len(y)):
        window = y[max(0, i - s // 2): i + (s - 1) // 2 + 1]
        out[i] = sum(window) / len(window)
    return out


def curve(exp, seed, epochs=12):
    """Deterministic, distinct learning curves per experiment and seed."""
    e = np.arange(epochs, dtype=float)
    base = {"alpha": 1.0, "beta": 2.0}[exp]
    return base * e + np.sin(e * (seed + 1)) * 3 + seed


def write_our_runs(root, epochs=12):
    """Two experiments x two seeds, written by spinfast's EpochLogger."""
    for exp in ("alpha", "beta"):
        for seed in (0, 1):
            logger = EpochLogger(output_dir=str(root / exp / f"{exp}_s{seed}"), exp_name=exp)
            logger.save_config(dict(seed=seed))
            for epoch, ret in enumerate(curve(exp, seed, epochs)):
                logger.store(EpRet=[ret - 1.0, ret + 1.0])
                logger.log_tabular("Epoch", epoch)
                logger.log_tabular("EpRet", with_min_and_max=True)
                logger.log_tabular("TotalEnvInteracts", (epoch + 1) * 1000)
                logger.dump_tabular()
            logger.close()


SU_CONFIG = """{
    "ac_kwargs":\t{
        "hidden_sizes":\t[
            64,
            64
        ]
    },
    "env_fn":\t"<function <lambda> at 0x7f0c2d4c1e18>",
    "exp_name":\t"su_ppo",
    "seed":\t%d
}"""


def write_spinning_up_run(folder, seed, epochs=8, test_ret=True):
    """A run folder exactly as Spinning Up's Logger writes it (hand-written here)."""
    folder.mkdir(parents=True)
    (folder / "config.json").write_text(SU_CONFIG % seed)
    cols = ["Epoch", "AverageEpRet", "StdEpRet", "MaxEpRet", "MinEpRet"]
    if test_ret:
        cols += ["AverageTestEpRet", "StdTestEpRet"]
    cols += ["EpLen", "TotalEnvInteracts", "LossPi", "Time"]
    lines = ["\t".join(cols)]
    for e in range(epochs):
        row = {"Epoch": e, "AverageEpRet": 10.0 * e + seed, "StdEpRet": 1.5, "MaxEpRet": 12.0,
               "MinEpRet": -3.25, "AverageTestEpRet": 20.0 * e - seed, "StdTestEpRet": 0.5,
               "EpLen": 200, "TotalEnvInteracts": 4000 * (e + 1), "LossPi": -0.01 * e,
               "Time": 1.5 * e}
        lines.append("\t".join(str(row[c]) for c in cols))
    (folder / "progress.txt").write_text("\n".join(lines) + "\n")


def assert_image(path, fmt="png"):
    data = open(path, "rb").read()
    if fmt == "png":
        assert data[:8] == b"\x89PNG\r\n\x1a\n"
        img = mpimg.imread(path)
        assert img.ndim == 3 and img.shape[0] > 100 and img.shape[1] > 100
        assert img[..., :3].std() > 0.01  # not a blank canvas
    elif fmt == "svg":
        assert b"<svg" in data[:2000]
    elif fmt == "pdf":
        assert data[:5] == b"%PDF-"


def test_moving_average_matches_reference():
    rng = np.random.default_rng(0)
    y = rng.normal(size=23)
    for s in (1, 2, 3, 4, 5, 10, 23, 40):
        np.testing.assert_allclose(moving_average(y, s), smooth_reference(y, s), rtol=1e-12)
    # Spinning Up's definition, where it is defined (window not longer than the series).
    k = np.ones(5)
    np.testing.assert_allclose(moving_average(y, 5), np.convolve(y, k, "same")
                               / np.convolve(np.ones(len(y)), k, "same"), rtol=1e-12)
    assert moving_average([], 3).shape == (0,)


def test_moving_average_nan_stays_local_and_errors():
    y = np.arange(10.0)
    y[5] = np.nan
    out = moving_average(y, 3)
    assert np.isnan(out[4:7]).all() and np.isfinite(np.delete(out, [4, 5, 6])).all()
    with pytest.raises(ValueError, match=r"moving_average\(\): window must be >= 1, got 0"):
        moving_average(y, 0)
    with pytest.raises(TypeError, match="window must be an int"):
        moving_average(y, 2.5)
    with pytest.raises(ValueError, match="x must be 1-D"):
        moving_average(np.ones((2, 2)), 2)


def test_plot_our_runs_returns_smoothed_data_and_png(tmp_path):
    write_our_runs(tmp_path / "data")
    out = tmp_path / "fig.png"
    (res,) = make_plots([str(tmp_path / "data") + "/"], xaxis="Epoch", values="AverageEpRet",
                        smooth=3, save=str(out))
    assert res.path == str(out) and res.value == "AverageEpRet" and res.xaxis == "Epoch"
    assert_image(out)
    df = res.data
    assert sorted(df["Condition1"].unique()) == ["alpha", "beta"]
    for exp in ("alpha", "beta"):
        for unit, seed in ((0, 0), (1, 1)):  # folders are read in sorted order
            rows = df[(df["Condition1"] == exp) & (df["Unit"] == unit)]
            np.testing.assert_allclose(rows["AverageEpRet"].to_numpy(),
                                       smooth_reference(curve(exp, seed), 3), rtol=1e-12)
            np.testing.assert_array_equal(rows["Epoch"].to_numpy(), np.arange(12))
    # The line drawn for each group is the mean over its runs of the smoothed curves.
    ax = res.figure.axes[0]
    for exp in ("alpha", "beta"):
        expected = (smooth_reference(curve(exp, 0), 3) + smooth_reference(curve(exp, 1), 3)) / 2
        ys = [line.get_ydata() for line in ax.get_lines() if len(line.get_ydata()) == 12]
        assert any(np.allclose(y, expected, rtol=1e-12) for y in ys), exp
    assert {"alpha", "beta"} <= set(t.get_text() for t in ax.get_legend().get_texts())


def test_plot_spinning_up_folder_performance_and_estimator(tmp_path):
    root = tmp_path / "su"
    write_spinning_up_run(root / "su_ppo_s0", 0)
    write_spinning_up_run(root / "su_ppo_s5", 5)
    out = tmp_path / "perf.png"
    (res,) = make_plots([str(root / "su_ppo")], save=str(out), estimator="max")
    assert_image(out)
    df = res.data
    assert set(df["Condition1"]) == {"su_ppo"}  # grouped by config.json's exp_name
    assert res.xaxis == "TotalEnvInteracts" and res.value == "Performance"
    # Performance is AverageTestEpRet when present.
    for unit, seed in ((0, 0), (1, 5)):
        rows = df[df["Unit"] == unit]
        np.testing.assert_array_equal(rows["Performance"].to_numpy(),
                                      20.0 * np.arange(8) - seed)
    line = res.figure.axes[0].get_lines()[0]
    np.testing.assert_array_equal(line.get_xdata(), 4000.0 * np.arange(1, 9))
    np.testing.assert_array_equal(line.get_ydata(), 20.0 * np.arange(8))  # max over seeds
    # x above 5e3: scientific tick labels with an offset (drawn when saved)
    assert res.figure.axes[0].xaxis.get_offset_text().get_text() == "1e4"


def test_performance_falls_back_to_average_ep_ret(tmp_path):
    write_spinning_up_run(tmp_path / "r_s0", 3, test_ret=False)
    data = get_all_datasets([str(tmp_path / "r")])
    np.testing.assert_array_equal(data[0]["Performance"], 10.0 * np.arange(8) + 3)


def test_count_legend_select_exclude(tmp_path):
    write_our_runs(tmp_path / "data")
    (res,) = make_plots([str(tmp_path / "data" / "alpha") + "/",
                         str(tmp_path / "data" / "beta") + "/"], legend=["A", "B"],
                        xaxis="Epoch", values=["AverageEpRet"], count=True,
                        save=str(tmp_path / "c.png"))
    assert sorted(res.data["Condition2"].unique()) == ["A-0", "A-1", "B-2", "B-3"]
    assert sorted(res.data["Condition1"].unique()) == ["A", "B"]
    data = get_all_datasets([str(tmp_path / "data") + "/alpha", str(tmp_path / "data/beta")],
                            select=["alp"])
    assert {d["Condition1"].iloc[0] for d in data} == {"alpha"}
    data = get_all_datasets([str(tmp_path / "data") + "/"], exclude=["data"])
    assert data == []
    with pytest.raises(ValueError, match=r"2 legend names \['A', 'B'\] for 1 logdirs"):
        get_all_datasets([str(tmp_path / "data") + "/"], legend=["A", "B"])


def test_several_values_and_formats(tmp_path):
    write_our_runs(tmp_path / "data")
    res = make_plots([str(tmp_path / "data") + "/"], xaxis="Epoch",
                     values=["AverageEpRet", "MaxEpRet"], save=str(tmp_path / "out.svg"))
    assert [r.path for r in res] == [str(tmp_path / "out_AverageEpRet.svg"),
                                     str(tmp_path / "out_MaxEpRet.svg")]
    for r in res:
        assert_image(r.path, "svg")
    (res,) = make_plots([str(tmp_path / "data") + "/"], xaxis="Epoch", values=["StdEpRet"],
                        save=str(tmp_path / "sub" / "s.pdf"))
    assert_image(res.path, "pdf")
    with pytest.raises(ValueError, match=r"cannot save .*x\.abc'.*unknown file type 'abc'"):
        make_plots([str(tmp_path / "data") + "/"], xaxis="Epoch", save=str(tmp_path / "x.abc"))


def test_missing_column_names_file_and_columns(tmp_path):
    write_our_runs(tmp_path / "data")
    with pytest.raises(ValueError) as err:
        make_plots([str(tmp_path / "data") + "/"], xaxis="Epoch", values=["LossQ"],
                   save=str(tmp_path / "x.png"))
    msg = str(err.value)
    assert "column 'LossQ' (y value) not found in " + str(
        tmp_path / "data" / "alpha" / "alpha_s0" / "progress.txt") in msg
    assert "['Epoch', 'AverageEpRet', 'StdEpRet', 'MaxEpRet', 'MinEpRet', " \
           "'TotalEnvInteracts', 'Performance']" in msg
    with pytest.raises(ValueError, match=r"column 'Steps' \(x axis\).*-x/--xaxis"):
        make_plots([str(tmp_path / "data") + "/"], xaxis="Steps", save=str(tmp_path / "x.png"))
    with pytest.raises(ValueError, match="unknown estimator 'avg'"):
        make_plots([str(tmp_path / "data") + "/"], estimator="avg")


def test_empty_and_header_only_files(tmp_path):
    (tmp_path / "e_empty").mkdir()
    (tmp_path / "e_empty" / "progress.txt").write_text("")
    (tmp_path / "e_header").mkdir()
    (tmp_path / "e_header" / "progress.txt").write_text("Epoch\tAverageEpRet\n")
    with pytest.warns(RuntimeWarning) as record:
        with pytest.raises(ValueError, match="no runs with data"):
            make_plots([str(tmp_path / "e")], save=str(tmp_path / "x.png"))
    messages = [str(w.message) for w in record]
    assert any(str(tmp_path / "e_empty" / "progress.txt") + " is empty" in m for m in messages)
    assert any(str(tmp_path / "e_header" / "progress.txt") in m
               and "no rows yet (columns ['Epoch', 'AverageEpRet'])" in m for m in messages)


def test_logdir_forms(tmp_path, monkeypatch):
    write_spinning_up_run(tmp_path / "runs" / "exp_s0", 0)
    monkeypatch.chdir(tmp_path)
    # A bare name (no folder part): Spinning Up's plotter crashes on it.
    assert len(get_all_datasets(["runs"])) == 1
    assert len(get_all_datasets(["runs/ex"])) == 1
    with pytest.raises(FileNotFoundError, match=r"no folder in 'runs' starts with 'zzz'"):
        get_all_datasets(["runs/zzz"])
    with pytest.raises(FileNotFoundError, match=r"folder 'nope' of logdir 'nope/x' does not"):
        get_all_datasets(["nope/x"])


@pytest.mark.slow
def test_cli_headless_writes_png_next_to_data(tmp_path):
    write_our_runs(tmp_path / "data")
    env = {k: v for k, v in os.environ.items()
           if k not in ("DISPLAY", "WAYLAND_DISPLAY", "MPLBACKEND")}
    proc = subprocess.run([sys.executable, "-m", "spinfast.run", "plot",
                           str(tmp_path / "data" / "alpha") + "/", "-x", "Epoch", "-s", "2"],
                          env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    png = tmp_path / "data" / "alpha" / "plot_Performance.png"
    assert f"Saved plot of Performance vs Epoch to {png}" in proc.stdout
    assert_image(png)
    # --save and a missing column through the command line
    proc = subprocess.run([sys.executable, "-m", "spinfast.run", "plot",
                           str(tmp_path / "data") + "/", "-y", "Nope", "--save",
                           str(tmp_path / "n.png")],
                          env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode != 0
    assert "spinfast: error: plot_data(): column 'Nope' (y value) not found in" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_public_api_is_lazy_and_documented():
    code = ("import sys, inspect, spinfast.plot as p\n"
            "heavy = [m for m in ('pandas', 'seaborn', 'matplotlib') if m in sys.modules]\n"
            "assert not heavy, heavy\n"
            "for name in p.__all__:\n"
            "    obj = getattr(p, name)\n"
            "    if callable(obj):\n"
            "        assert inspect.getdoc(obj), name\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr


@pytest.mark.parametrize("fmt", ["txt", "csv", "jsonl"])
def test_readers_read_floats_exactly(tmp_path, fmt):
    """Each value the logger writes reads back through the plotter as the same float."""
    rng = np.random.default_rng(7)
    # 1.0000000000000002 and 0.12345678901234568: 17 significant digits; the smallest
    # subnormal and normal floats, the largest, a negative zero
    special = [0.1 + 0.2, 1e-300, 1.0000000000000002, 0.12345678901234568, 5e-324,
               2.2250738585072014e-308, 1.7976931348623157e308, -0.0, 1 / 3, 2.0 ** 0.5]
    values = special + [float(v) for v in rng.normal(size=400) *
                        10.0 ** rng.integers(-300, 300, 400)]
    logger = EpochLogger(output_dir=str(tmp_path / f"exact_{fmt}"), formats=fmt)
    for v in values:
        logger.log_tabular("X", v)
        logger.log_tabular("Y", -v)
        logger.dump_tabular()
    logger.close()
    (data,) = get_all_datasets([str(tmp_path / f"exact_{fmt}")])
    assert data.attrs["format"] == fmt
    for key, want in (("X", values), ("Y", [-v for v in values])):
        got = data[key].to_numpy(np.float64)
        assert got.tolist() == want  # every float exactly, not within a tolerance
        assert np.array_equal(np.signbit(got), np.signbit(want))  # -0.0 stays -0.0
