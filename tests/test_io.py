"""Crash-safe writes: a failing write leaves the previous file or folder as it was."""

from __future__ import annotations

import os

import pytest

from spinfast._logger.files import atomic_dir, atomic_path


def test_atomic_path_replaces_or_keeps(tmp_path):
    target = tmp_path / "vars.pkl"
    target.write_text("old")
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            with open(tmp, "w") as f:
                f.write("half")
            raise RuntimeError("crash mid-write")
    assert target.read_text() == "old" and os.listdir(tmp_path) == ["vars.pkl"]
    with atomic_path(target) as tmp:
        with open(tmp, "w") as f:
            f.write("new")
    assert target.read_text() == "new" and os.listdir(tmp_path) == ["vars.pkl"]


def test_atomic_dir_replaces_or_keeps(tmp_path):
    target = tmp_path / "tf1_save"
    target.mkdir()
    (target / "saved_model.pb").write_text("old")
    with pytest.raises(RuntimeError):
        with atomic_dir(target) as tmp:
            os.makedirs(tmp)
            (tmp_path / tmp / "saved_model.pb").write_text("half")
            raise RuntimeError("crash mid-save")
    assert (target / "saved_model.pb").read_text() == "old"
    assert os.listdir(tmp_path) == ["tf1_save"]
    with atomic_dir(str(target) + "/") as tmp:
        os.makedirs(tmp)
        with open(os.path.join(tmp, "saved_model.pb"), "w") as f:
            f.write("new")
    assert (target / "saved_model.pb").read_text() == "new"
    assert os.listdir(tmp_path) == ["tf1_save"]
