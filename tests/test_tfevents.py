"""The pure-Python TensorBoard reader, against event files written by torch and read by
TensorBoard's own EventAccumulator."""

from __future__ import annotations

import struct
import sys

import numpy as np
import pytest
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from tensorboard.compat.proto.event_pb2 import Event, SessionLog
from tensorboard.util.tensor_util import make_ndarray
from torch.utils.tensorboard import SummaryWriter

from spinfast.tfevents import crc32c, event_files, read_scalars


def tensorboard_scalars(folder):
    """{tag: [(step, value)]} as TensorBoard itself reads the folder."""
    acc = EventAccumulator(str(folder), size_guidance={"scalars": 0, "tensors": 0})
    acc.Reload()
    out = {tag: [(e.step, e.value) for e in acc.Scalars(tag)] for tag in acc.Tags()["scalars"]}
    for tag in acc.Tags()["tensors"]:
        arrays = [(e.step, make_ndarray(e.tensor_proto)) for e in acc.Tensors(tag)]
        if all(a.dtype.kind in "biuf" and a.size == 1 for _, a in arrays):  # not text
            out[tag] = [(step, float(a.item())) for step, a in arrays]
    return out


def ours(folder):
    out = {}
    for s in read_scalars(folder):
        out.setdefault(s.tag, []).append((s.step, s.value))
    return out


def test_crc32c_known_values():
    # RFC 3720 (iSCSI) test vectors for CRC32C
    assert crc32c(b"") == 0
    assert crc32c(b"123456789") == 0xE3069283
    assert crc32c(bytes(32)) == 0x8A9136AA
    assert crc32c(bytes([0xFF] * 32)) == 0x62A8AB43


def test_torch_simple_and_tensor_scalars_match_tensorboard(tmp_path):
    rng = np.random.default_rng(0)
    w = SummaryWriter(log_dir=str(tmp_path))
    for step in range(0, 5000, 250):
        w.add_scalar("charts/episodic_return", float(rng.normal(100, 20)), step)
        w.add_scalar("losses/value", float(rng.normal()), step, new_style=True)  # tensor
        if step % 1000 == 0:
            w.add_scalar("big", 1e30 * (step + 1), step)
            w.add_histogram("hist", rng.normal(size=50), step)  # skipped by both
            w.add_text("note", f"step {step}", step)
    w.close()
    assert len(event_files(tmp_path)) == 1
    mine, theirs = ours(tmp_path), tensorboard_scalars(tmp_path)
    assert set(mine) == {"charts/episodic_return", "losses/value", "big"}
    for tag in mine:
        assert mine[tag] == [(s, pytest.approx(v, rel=1e-7)) for s, v in theirs[tag]], tag
    scalars = read_scalars(event_files(tmp_path)[0])
    assert all(s.wall_time > 1.6e9 for s in scalars)


def test_restart_discards_later_steps_and_truncated_tail_is_quiet(tmp_path):
    w = SummaryWriter(log_dir=str(tmp_path))
    for step in range(10):
        w.add_scalar("x", float(step), step)
    # a resumed run: TensorBoard drops steps >= 6 from before the restart
    w.file_writer.add_event(Event(step=6, session_log=SessionLog(status=SessionLog.START)))
    for step in range(6, 8):
        w.add_scalar("x", 100.0 + step, step)
    w.close()
    expected = [(s, float(s)) for s in range(6)] + [(6, 106.0), (7, 107.0)]
    assert ours(tmp_path)["x"] == expected
    assert tensorboard_scalars(tmp_path)["x"] == expected
    # a writer killed mid-record leaves a partial record: read what is complete
    path = event_files(tmp_path)[0]
    data = open(path, "rb").read()
    with open(path, "wb") as f:
        f.write(data[:-7])
    assert ours(tmp_path)["x"] == expected[:-1]


def test_damaged_files_raise(tmp_path):
    w = SummaryWriter(log_dir=str(tmp_path))
    w.add_scalar("x", 1.0, 0)
    w.add_scalar("x", 2.0, 1)
    w.close()
    path = event_files(tmp_path)[0]
    data = bytearray(open(path, "rb").read())
    (first_len,) = struct.unpack("<Q", data[:8])
    data[12 + first_len + 4 + 20] ^= 0xFF  # a byte inside the second record's data
    open(path, "wb").write(bytes(data))
    with pytest.raises(ValueError, match=r"read_scalars\(\): data checksum mismatch in .* at "
                                         r"byte \d+; the file is damaged"):
        read_scalars(path)
    data[0] ^= 0x01  # the first length
    open(path, "wb").write(bytes(data))
    with pytest.raises(ValueError, match="corrupt record header"):
        read_scalars(path)
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="no events.out.tfevents"):
        read_scalars(tmp_path / "empty")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        read_scalars(tmp_path / "missing")


def test_no_heavy_imports():
    import subprocess

    code = ("import sys, spinfast.tfevents, spinfast.metrics; "
            "print([m for m in ('torch', 'tensorflow', 'tensorboard', 'pandas', 'matplotlib') "
            "if m in sys.modules])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout.strip()
    assert out == "[]"


def test_tf2_summary_scalars_match_tensorboard(tmp_path):
    import tensorflow as tf  # the tf extra, part of the test setup
    writer = tf.summary.create_file_writer(str(tmp_path))
    with writer.as_default():
        for step in range(0, 300, 30):
            tf.summary.scalar("eval/return", 0.5 * step - 3.25, step=step)
            tf.summary.scalar("lr", tf.constant(1e-3 / (step + 1), dtype=tf.float64), step=step)
            tf.summary.text("note", "hello", step=step)  # a string tensor: skipped
    writer.close()
    mine, theirs = ours(tmp_path), tensorboard_scalars(tmp_path)
    assert set(mine) == {"eval/return", "lr"} == set(theirs)
    for tag in mine:
        assert mine[tag] == theirs[tag], tag
    assert mine["eval/return"][-1] == (270, 131.75)
