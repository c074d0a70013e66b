"""The aggregate plotter (--aggregate) and the readers of csv, jsonl and TensorBoard runs."""

from __future__ import annotations

import csv
import json
import subprocess
import sys

import numpy as np
import pytest
from test_plot import assert_image, write_spinning_up_run

from spinfast import metrics as m
from spinfast.logx import EpochLogger
from spinfast.plot import (
    aggregate_save_paths,
    get_all_datasets,
    load_normalization,
    make_aggregate_plots,
)

EPOCHS = 8
TASKS = {"Hopper": 3000.0, "Walker": 4000.0}
ALGOS = {"ppo": 1.0, "sac": 1.4}


def returns(algo, task, seed):
    """Deterministic learning curve of one run (distinct per algorithm, task and seed)."""
    e = np.arange(EPOCHS, dtype=float)
    return TASKS[task] * ALGOS[algo] * (1 - np.exp(-e / 3)) * (1 + 0.05 * seed) + 7 * seed


def write_grid(root, seeds=3):
    """Runs written by spinfast's EpochLogger: 2 algorithms x 2 tasks x ``seeds`` seeds."""
    for algo in ALGOS:
        for task in TASKS:
            for seed in range(seeds):
                lg = EpochLogger(output_dir=str(root / algo / f"{algo}_{task}_s{seed}"),
                                 exp_name=algo)
                lg.save_config(dict(seed=seed, env_name=task, exp_name=algo))
                for epoch, ret in enumerate(returns(algo, task, seed)):
                    lg.store(EpRet=[ret])
                    lg.log_tabular("Epoch", epoch)
                    lg.log_tabular("EpRet", average_only=True)
                    lg.log_tabular("TotalEnvInteracts", (epoch + 1) * 1000)
                    lg.dump_tabular()
                lg.close()


def labels(fig):
    return [(ax.get_xlabel(), ax.get_ylabel(), ax.get_title(loc="left")) for ax in fig.axes]


@pytest.mark.parametrize("fmt", ["png", "svg", "pdf"])
def test_spinfast_runs_three_figures(tmp_path, capsys, fmt):
    write_grid(tmp_path / "data")
    bounds = tmp_path / "bounds.json"
    bounds.write_text(json.dumps({"Hopper": {"min": 0, "max": 3000}, "Walker": [0, 4000]}))
    save = tmp_path / "figs" / f"out.{fmt}"
    res = make_aggregate_plots([str(tmp_path / "data") + "/"], value="EpRet", metric="iqm",
                               tasks_from="env_name", normalize=bounds, reps=2000,
                               curve_reps=500, profile_reps=200, points=EPOCHS, save=save)
    assert res.paths == {"curves": str(save), "intervals": str(tmp_path / "figs" /
                                                                 f"out_intervals.{fmt}"),
                         "profile": str(tmp_path / "figs" / f"out_profile.{fmt}")}
    for path in res.paths.values():
        assert_image(path, fmt)
    assert res.tasks == ["Hopper", "Walker"]
    # the grid is the logged x, so the curves are the logged returns, normalised
    np.testing.assert_allclose(res.x, np.arange(1, EPOCHS + 1) * 1000.0)
    for algo in ALGOS:
        expected = np.array([[returns(algo, t, s) / TASKS[t] for t in TASKS] for s in range(3)])
        np.testing.assert_allclose(res.curves[algo], expected, rtol=1e-12)
        np.testing.assert_allclose(res.finals[algo], expected[:, :, -1], rtol=1e-12)
        np.testing.assert_allclose(res.curve_intervals[algo].point,
                                   [m.aggregate(expected[..., p], "iqm") for p in range(EPOCHS)],
                                   rtol=1e-12)
        assert res.intervals["mean"][algo].point == pytest.approx(expected[..., -1].mean())
    # every ppo run is below every sac run on both tasks
    assert list(res.improvement) == [("ppo", "sac")]
    assert res.improvement[("ppo", "sac")] == (0.0, 0.0, 0.0)
    out = capsys.readouterr().out
    assert "Final normalised EpRet at TotalEnvInteracts = 8000 over 2 task(s) (Hopper, " \
           "Walker); runs: ppo 3, sac 3" in out
    assert "  P(ppo > sac) = 0.000 [0.000, 0.000]" in out
    iqm = res.intervals["iqm"]["sac"]
    assert f"{iqm.point:<8.4g} [{iqm.lower:.4g}, {iqm.upper:.4g}]" in out
    curves, intervals, profile = (res.figures[k] for k in ("curves", "intervals", "profile"))
    assert labels(curves) == [("TotalEnvInteracts", "IQM normalised EpRet",
                               "IQM over runs and 2 tasks")]
    assert [ax.get_title(loc="left") for ax in intervals.axes] == [
        "Median", "IQM", "Mean", "Optimality gap"]
    for ax in intervals.axes:
        assert [t.get_text() for t in ax.get_yticklabels()] == ["sac", "ppo"]
    assert intervals.axes[-1].get_xlabel() == "final normalised EpRet (at TotalEnvInteracts " \
                                              "= 8000)"
    xlabel, ylabel, title = labels(profile)[0]
    assert xlabel == "final normalised EpRet threshold \N{GREEK SMALL LETTER TAU}"
    assert ylabel.startswith("Fraction of runs with score >")
    assert [t.get_text() for t in curves.axes[0].get_legend().get_texts()] == ["ppo", "sac"]


@pytest.mark.slow
def test_spinning_up_runs_from_the_command_line(tmp_path):
    for seed in range(3):
        write_spinning_up_run(tmp_path / "su" / f"su_ppo_s{seed}", seed)
        write_spinning_up_run(tmp_path / "old" / f"old_s{seed}", seed + 10, test_ret=False)
    out = tmp_path / "su.png"
    proc = subprocess.run([sys.executable, "-m", "spinfast.run", "plot", str(tmp_path / "su"),
                           str(tmp_path / "old"), "-l", "SU", "OLD", "--aggregate", "median",
                           "--ci", "0.9", "--reps", "1000", "--save", str(out)],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    for path in aggregate_save_paths(out).values():
        assert_image(path, "png")
    assert "Saved intervals (Median) to " + str(tmp_path / "su_intervals.png") in proc.stdout


def test_spinning_up_runs_numbers(tmp_path):
    for seed in range(3):
        write_spinning_up_run(tmp_path / "su" / f"su_ppo_s{seed}", seed)
    res = make_aggregate_plots([str(tmp_path / "su") + "/"], metric="mean", reps=500,
                               curve_reps=200, profile_reps=100, points=8,
                               save=tmp_path / "x.svg")
    # Performance = AverageTestEpRet = 20 e - seed at TotalEnvInteracts 4000 (e + 1)
    np.testing.assert_allclose(res.x, 4000.0 * np.arange(1, 9))
    np.testing.assert_allclose(res.curve_intervals["su_ppo"].point, 20.0 * np.arange(8) - 1)
    assert labels(res.figures["curves"])[0][:2] == ("TotalEnvInteracts", "Mean Performance")
    assert list(res.intervals) == ["median", "iqm", "mean"]  # no gap without normalising


def write_tensorboard_runs(root, algo, seeds, scale):
    """CleanRL-style runs: episodic returns at irregular global steps, plus a loss tag."""
    from torch.utils.tensorboard import SummaryWriter

    for seed in range(seeds):
        w = SummaryWriter(log_dir=str(root / f"{algo}__{seed}"))
        rng = np.random.default_rng(seed)
        steps = np.sort(rng.choice(np.arange(10, 5000), size=40, replace=False))
        for step in steps:
            w.add_scalar("charts/episodic_return", scale * step / 5000 + seed, int(step))
        for step in range(0, 5001, 500):
            w.add_scalar("losses/value_loss", 1.0 / (step + 1), step)
        w.close()


@pytest.mark.parametrize("fmt", ["png", "svg", "pdf"])
def test_tensorboard_runs(tmp_path, fmt):
    write_tensorboard_runs(tmp_path / "dqn", "dqn", 3, 100.0)
    write_tensorboard_runs(tmp_path / "c51", "c51", 2, 150.0)
    data = get_all_datasets([str(tmp_path / "dqn") + "/", str(tmp_path / "c51") + "/"],
                            legend=["DQN", "C51"])
    assert [d.attrs["format"] for d in data] == ["tensorboard"] * 5
    assert {"Step", "TotalEnvInteracts", "Performance", "losses/value_loss"} <= set(data[0])
    res = make_aggregate_plots([str(tmp_path / "dqn") + "/", str(tmp_path / "c51") + "/"],
                               legend=["DQN", "C51"], metric="iqm", reps=1000, curve_reps=200,
                               profile_reps=100, points=20, save=tmp_path / f"tb.{fmt}")
    for path in res.paths.values():
        assert_image(path, fmt)
    # the common grid spans the x range every run reached
    lo = max(d.dropna(subset=["Performance"])["Step"].min() for d in data)
    hi = min(d.dropna(subset=["Performance"])["Step"].max() for d in data)
    np.testing.assert_allclose(res.x[[0, -1]], [lo, hi])
    # values are float32 in the file: step * scale / 5000 + seed, linear in x
    for algo, scale, n in (("DQN", 100.0, 3), ("C51", 150.0, 2)):
        assert res.curves[algo].shape == (n, 1, 20)
        expected = scale * res.x / 5000 + np.arange(n)[:, None]
        np.testing.assert_allclose(res.curves[algo][:, 0], expected, rtol=1e-5)
    assert labels(res.figures["curves"])[0][:2] == ("TotalEnvInteracts", "IQM Performance")


def test_csv_and_jsonl_read_as_txt(tmp_path):
    rows = [{"Epoch": e, "AverageEpRet": 1.5 * e - 2, "Note, quoted": f"a,{e}",
             "TotalEnvInteracts": 100 * (e + 1)} for e in range(5)]
    cols = list(rows[0])
    (tmp_path / "txt" / "r").mkdir(parents=True)
    (tmp_path / "txt" / "r" / "progress.txt").write_text(
        "\t".join(cols) + "\n" + "".join("\t".join(str(r[c]) for c in cols) + "\n"
                                         for r in rows)
        + "5\t5")  # a row still being written, cut inside a number that pandas would accept
    (tmp_path / "csv" / "r").mkdir(parents=True)
    with open(tmp_path / "csv" / "r" / "progress.csv", "w", newline="") as f:
        wr = csv.DictWriter(f, cols)
        wr.writeheader()
        wr.writerows(rows)
        f.write("5,5.5,a,5")  # torn as above
    (tmp_path / "jsonl" / "r").mkdir(parents=True)
    (tmp_path / "jsonl" / "r" / "progress.jsonl").write_text(
        "".join(json.dumps(r) + "\n" for r in rows) + '{"Epoch": 5, "Average')  # torn tail
    frames = {k: get_all_datasets([str(tmp_path / k) + "/"])[0] for k in ("txt", "csv", "jsonl")}
    assert [frames[k].attrs["format"] for k in frames] == ["txt", "csv", "jsonl"]
    np.testing.assert_array_equal(frames["txt"]["Performance"], [1.5 * e - 2 for e in range(5)])
    for k in ("csv", "jsonl"):
        assert list(frames[k].columns) == list(frames["txt"].columns)
        np.testing.assert_array_equal(frames[k]["Performance"], [1.5 * e - 2 for e in range(5)])
        assert list(frames[k]["Note, quoted"]) == [f"a,{e}" for e in range(5)]


def test_tb_folder_of_a_run_with_progress_is_read_once(tmp_path):
    write_spinning_up_run(tmp_path / "run", 0)
    write_tensorboard_runs(tmp_path / "run", "tb", 1, 1.0)  # run/tb__0 beside progress.txt
    (tmp_path / "run" / "tb__0").rename(tmp_path / "run" / "tb")
    data = get_all_datasets([str(tmp_path) + "/"])
    assert [d.attrs["format"] for d in data] == ["txt"]
    alone = get_all_datasets([str(tmp_path / "run" / "tb") + "/"])
    assert [d.attrs["format"] for d in alone] == ["tensorboard"]
    assert alone[0]["Condition1"].iloc[0] == "su_ppo"  # exp_name from the parent's config


def test_errors_are_clear(tmp_path):
    write_grid(tmp_path / "data", seeds=2)
    root = [str(tmp_path / "data") + "/"]
    with pytest.raises(ValueError, match=r"collect_scores\(\): config.json of run .* has no "
                                         r"key 'env_id'; its keys are \["):
        make_aggregate_plots(root, value="EpRet", tasks_from="env_id", save=tmp_path / "a.png")
    bad = tmp_path / "bounds.json"
    bad.write_text(json.dumps({"Hopper": [0, 1]}))
    with pytest.raises(ValueError, match=r"tasks \['Walker'\] have no bounds in the "
                                         r"normalisation file"):
        make_aggregate_plots(root, value="EpRet", tasks_from="env_name", normalize=bad,
                             save=tmp_path / "a.png")
    bad.write_text(json.dumps({"Hopper": {"min": 1, "max": 1}}))
    with pytest.raises(ValueError, match=r"load_normalization\(\): bounds of task 'Hopper'"):
        load_normalization(bad)
    with pytest.raises(ValueError, match="unknown metric 'iqr'"):
        make_aggregate_plots(root, value="EpRet", metric="iqr")
    with pytest.raises(ValueError, match="cannot save .*: unknown file type 'bmpx'"):
        make_aggregate_plots(root, value="EpRet", reps=10, curve_reps=10, profile_reps=10,
                             save=tmp_path / "a.bmpx")
    # sac lacks a task: every algorithm needs every task
    import shutil

    for seed in range(2):
        shutil.rmtree(tmp_path / "data" / "sac" / f"sac_Walker_s{seed}")
    with pytest.raises(ValueError, match=r"algorithm 'sac' has no runs on tasks \['Walker'\]"):
        make_aggregate_plots(root, value="EpRet", tasks_from="env_name",
                             save=tmp_path / "a.png")
    proc = subprocess.run([sys.executable, "-m", "spinfast.run", "plot", *root, "-y", "EpRet",
                           "LossPi", "--aggregate", "iqm"], capture_output=True, text=True)
    assert proc.returncode == 2 and "--aggregate plots one y value" in proc.stderr
    for flags, message in ((["--tasks-from", "env_id"], "collect_scores(): config.json of run"),
                           (["--normalize", str(tmp_path / "none.json")],
                            "load_normalization(): no file")):
        proc = subprocess.run([sys.executable, "-m", "spinfast.run", "plot", *root, "-y",
                               "EpRet", "--aggregate", "iqm", *flags, "--save",
                               str(tmp_path / "b.png")], capture_output=True, text=True)
        assert proc.returncode == 1, proc.stderr
        assert proc.stderr.startswith("spinfast: error: " + message), proc.stderr


def test_stable_baselines3_csv_with_empty_cells(tmp_path):
    """SB3's progress.csv: the union of keys as header, empty cells where a key was absent."""
    for seed in range(2):
        run = tmp_path / "sb3" / f"PPO_{seed + 1}"
        run.mkdir(parents=True)
        lines = ["time/total_timesteps,rollout/ep_rew_mean,train/loss"]
        for i in range(6):
            steps = 2048 * (i + 1)
            ret = "" if i == 0 else str(10.0 * i + seed)  # no episode finished yet
            loss = "" if i % 2 else "0.5"
            lines.append(f"{steps},{ret},{loss}")
        (run / "progress.csv").write_text("\n".join(lines) + "\n")
    data = get_all_datasets([str(tmp_path / "sb3") + "/"], legend=["PPO"])
    assert [d.attrs["format"] for d in data] == ["csv", "csv"]
    from spinfast.plot import collect_scores

    x, tasks, curves, finals = collect_scores(data, "time/total_timesteps", points=5)
    np.testing.assert_allclose(x, 2048 * np.arange(2, 7))
    np.testing.assert_allclose(curves["PPO"][:, 0], [10.0 * np.arange(1, 6) + s
                                                      for s in range(2)])
    np.testing.assert_allclose(finals["PPO"][:, 0], [50.0, 51.0])
