"""Output formats: csv, jsonl and TensorBoard writers, and the compiled TFRecord encoder.

Every file is read back by an independent reader: pandas, Python's json, TensorBoard's own
EventAccumulator and protobuf classes, and a bit-by-bit CRC32C written here from the
polynomial's definition.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import signal
import struct
import subprocess
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pytest

from spinfast import _tbevent
from spinfast._outputs import FORMATS, ResumePoint, Row, make_writers, parse_formats
from spinfast._outputs.csv import CsvWriter
from spinfast._outputs.jsonl import JsonlWriter
from spinfast._outputs.tensorboard import TensorBoardWriter
from spinfast._outputs.txt import TxtWriter

PROGRAMS = Path(__file__).with_name("programs")


# --------------------------------------------------------------------------- references

def crc32c_bitwise(data: bytes) -> int:
    """CRC32C from its definition: reflected polynomial 0x82F63B78, one bit at a time."""
    crc = 0xFFFFFFFF
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = (crc >> 1) ^ (0x82F63B78 if crc & 1 else 0)
    return crc ^ 0xFFFFFFFF


def masked(crc: int) -> int:
    return (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF


def read_records(path, crc=crc32c_bitwise) -> tuple[list[bytes], bytes]:
    """Split a TFRecord file into its payloads, checking both CRCs; also the bytes left over.

    ``crc`` computes the CRC32C (the bit-by-bit reference unless a file is large).
    """
    data = Path(path).read_bytes()
    out, pos = [], 0
    while len(data) - pos >= 12:
        head = data[pos:pos + 8]
        (length,) = struct.unpack("<Q", head)
        (head_crc,) = struct.unpack("<I", data[pos + 8:pos + 12])
        assert head_crc == masked(crc(head)), f"bad length CRC at byte {pos}"
        end = pos + 12 + length + 4
        if end > len(data):
            break
        payload = data[pos + 12:pos + 12 + length]
        (data_crc,) = struct.unpack("<I", data[end - 4:end])
        assert data_crc == masked(crc(payload)), f"bad data CRC at byte {pos}"
        out.append(payload)
        pos = end
    return out, data[pos:]


def events(path, crc=crc32c_bitwise):
    """The Event protos of an event file (TensorBoard's own protobuf classes)."""
    from tensorboard.compat.proto import event_pb2

    payloads, rest = read_records(path, crc)
    assert rest == b""
    return [event_pb2.Event.FromString(p) for p in payloads]


def accumulator(folder):
    """TensorBoard's EventAccumulator over ``folder``, every event kept, loaded."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(folder), size_guidance={"scalars": 0, "tensors": 0})
    acc.Reload()
    return acc


def tb_scalars(folder) -> dict[str, list[tuple[int, float]]]:
    acc = accumulator(folder)
    return {tag: [(e.step, e.value) for e in acc.Scalars(tag)] for tag in acc.Tags()["scalars"]}


def event_files(folder) -> list[Path]:
    return sorted(Path(folder, "tb").glob("events.out.tfevents.*"))


# --------------------------------------------------------------------------- CRC32C

def test_crc32c_known_vectors():
    assert _tbevent.crc32c(b"123456789") == 0xE3069283
    assert _tbevent.crc32c(b"") == 0
    assert _tbevent.crc32c(bytes(32)) == 0x8A9136AA      # RFC 3720 B.4: 32 zero bytes
    assert _tbevent.crc32c(b"\xff" * 32) == 0x62A8AB43   # RFC 3720 B.4: 32 bytes of 0xff
    assert _tbevent.crc32c(bytes(range(32))) == 0x46DD794E
    assert crc32c_bitwise(b"123456789") == 0xE3069283


@pytest.mark.parametrize("hardware", [False, True])
def test_crc32c_matches_bitwise_reference(hardware):
    rng = np.random.default_rng(0)
    blob = rng.integers(0, 256, 3000, dtype=np.uint8).tobytes()
    used = _tbevent.use_crc32c_hardware(hardware)
    try:
        assert used == (hardware and _tbevent.crc32c_hardware())
        for start in range(9):  # every alignment of the start
            for n in [0, 1, 3, 7, 8, 9, 15, 16, 17, 63, 64, 65, 1000, 2990 - start]:
                chunk = blob[start:start + n]
                assert _tbevent.crc32c(chunk) == crc32c_bitwise(chunk), (start, n)
        # continuing a CRC equals the CRC of the concatenation
        assert _tbevent.crc32c(blob[100:], _tbevent.crc32c(blob[:100])) == \
            crc32c_bitwise(blob)
    finally:
        _tbevent.use_crc32c_hardware(True)


def test_masked_crc_matches_tensorboard_reference():
    from tensorboard.compat.tensorflow_stub.pywrap_tensorflow import masked_crc32c

    for data in [b"", b"x", b"123456789", bytes(range(256)) * 3]:
        assert _tbevent.masked_crc32c(data) == masked_crc32c(data) == \
            masked(crc32c_bitwise(data))


# --------------------------------------------------------------------------- records

def test_encode_scalars_records_decode_as_events():
    from tensorboard.compat.proto import event_pb2

    tags = [b"Loss", b"AverageEpRet", "Ünïcode/λ".encode()]
    values = [0.25, -1e30, float("nan")]
    for step in [0, 1, 127, 128, 2**40, -1, -(2**63)]:
        blob = _tbevent.encode_scalars(tags, values, step, 1234.5)
        path_payloads = []
        pos = 0
        while pos < len(blob):  # split by the length fields
            (length,) = struct.unpack("<Q", blob[pos:pos + 8])
            path_payloads.append(blob[pos + 12:pos + 12 + length])
            assert blob[pos + 12 + length:pos + 16 + length] == \
                struct.pack("<I", masked(crc32c_bitwise(path_payloads[-1])))
            pos += 16 + length
        assert pos == len(blob) and len(path_payloads) == 3
        for payload, tag, value in zip(path_payloads, tags, values):
            ev = event_pb2.Event.FromString(payload)
            assert ev.wall_time == 1234.5 and ev.step == step
            assert len(ev.summary.value) == 1
            v = ev.summary.value[0]
            assert v.tag == tag.decode()
            assert v.WhichOneof("value") == "simple_value"
            if math.isnan(value):
                assert math.isnan(v.simple_value)
            else:
                assert v.simple_value == float(np.float32(value))


def test_encode_scalars_accepts_arrays_and_checks_lengths():
    tags = [f"k{i}".encode() for i in range(100)]  # beyond the stack buffer of 64
    values = np.linspace(-3, 3, 100)
    assert _tbevent.encode_scalars(tags, values, 5, 1.0) == \
        _tbevent.encode_scalars(tags, values.tolist(), 5, 1.0) == \
        _tbevent.encode_scalars(tuple(tags), values.astype(np.float32), 5, 1.0)
    with pytest.raises(ValueError, match="2 tags but 1 values"):
        _tbevent.encode_scalars([b"a", b"b"], [1.0], 0, 0.0)
    with pytest.raises(ValueError, match="1 tags but 2 values"):
        _tbevent.encode_scalars([b"a"], np.ones(2), 0, 0.0)
    with pytest.raises(TypeError, match="tags must be bytes"):
        _tbevent.encode_scalars(["a"], [1.0], 0, 0.0)
    with pytest.raises(TypeError, match="values must be real numbers, got '1.5' for tag b'a'"):
        _tbevent.encode_scalars([b"a"], ["1.5"], 0, 0.0)
    assert _tbevent.encode_scalars([b"a", b"b"], [1, np.float32(2)], 0, 0.0) == \
        _tbevent.encode_scalars([b"a", b"b"], [1.0, 2.0], 0, 0.0)
    assert _tbevent.encode_scalars([], [], 0, 0.0) == b""


def test_encode_row_skips_non_numeric_columns():
    from tensorboard.compat.proto import event_pb2

    keys = ("Epoch", "Name", "Arr", "F32", "Flag", "Missing", "Big", "I64", "Loss")
    values = {"Epoch": 3, "Name": "x", "Arr": np.ones(3), "F32": np.float32(0.1),
              "Flag": True, "Big": 10**400, "I64": np.int64(-7), "Loss": 0.5}
    blob = _tbevent.encode_row(keys, tuple(k.encode() for k in keys), values, 9, 2.0)
    path = Path(os.environ.get("TMPDIR", "/tmp"), f"rec{os.getpid()}")
    try:
        path.write_bytes(blob)
        payloads, rest = read_records(path)
    finally:
        path.unlink()
    got = {}
    for p in payloads:
        (v,) = event_pb2.Event.FromString(p).summary.value
        got[v.tag] = v.simple_value
    assert rest == b""
    assert got == {"Epoch": 3.0, "F32": float(np.float32(0.1)), "Flag": 1.0,
                   "Big": math.inf, "I64": -7.0, "Loss": 0.5}
    assert list(got) == ["Epoch", "F32", "Flag", "Big", "I64", "Loss"]
    with pytest.raises(TypeError, match="must be tuples"):
        _tbevent.encode_row(list(keys), tuple(keys), values, 0, 0.0)
    with pytest.raises(ValueError, match="2 keys but 1 tags"):
        _tbevent.encode_row(("a", "b"), (b"a",), {}, 0, 0.0)


def test_file_version_and_session_start_records(tmp_path):
    from tensorboard.compat.proto import event_pb2

    path = tmp_path / "ev"
    path.write_bytes(_tbevent.encode_file_version(7.0)
                     + _tbevent.encode_session_start(42, 8.0)
                     + _tbevent.frame_record(b""))
    payloads, rest = read_records(path)
    assert rest == b"" and len(payloads) == 3
    first, start, empty = (event_pb2.Event.FromString(p) for p in payloads)
    assert first.file_version == "brain.Event:2" and first.wall_time == 7.0
    assert start.step == 42 and start.wall_time == 8.0
    assert start.session_log.status == event_pb2.SessionLog.START
    assert empty == event_pb2.Event()


# --------------------------------------------------------------------------- TensorBoard writer

def rows(n, start=0, offset=0.0):
    """Rows with an int, floats of every sign and size, a NaN, and a text column."""
    rng = np.random.default_rng(start)
    headers = ["Epoch", "AverageEpRet", "StdEpRet", "Tiny", "Huge", "Nan", "Env"]
    out = []
    for i in range(start, start + n):
        values = {"Epoch": i, "AverageEpRet": float(rng.normal(-50, 30)) + offset,
                  "StdEpRet": float(rng.gamma(2.0)), "Tiny": float(rng.normal()) * 1e-20,
                  "Huge": float(rng.normal()) * 1e30, "Nan": float("nan"), "Env": "Hopper-v5"}
        out.append(Row(list(headers), values, i))
    return out


def read_txt(path):
    import pandas as pd

    return pd.read_table(path)


def test_tensorboard_scalars_equal_progress_txt_row_by_row(tmp_path):
    tb, txt = TensorBoardWriter(str(tmp_path)), TxtWriter(str(tmp_path))
    data = rows(25)
    for row in data:
        tb.write_row(row)
        txt.write_row(row)
    tb.close()
    txt.close()
    assert not any(tmp_path.joinpath("tb").glob("*.tmp"))
    scalars = tb_scalars(tmp_path / "tb")
    table = read_txt(tmp_path / "progress.txt")
    assert sorted(scalars) == sorted(["Epoch", "AverageEpRet", "StdEpRet", "Tiny", "Huge", "Nan"])
    for tag, series in scalars.items():
        assert [s for s, _ in series] == list(range(25))
        want = table[tag].to_numpy(np.float64).astype(np.float32)
        got = np.array([v for _, v in series], np.float32)
        np.testing.assert_array_equal(got, want)  # NaN equals NaN here
        # and the numbers written, row by row
        np.testing.assert_array_equal(
            got, np.array([r.values[tag] for r in data], np.float64).astype(np.float32))


def test_tensorboard_event_file_layout(tmp_path):
    w = TensorBoardWriter(str(tmp_path))
    w.write_row(Row(["a", "b"], {"a": 1.0, "b": "text"}, 5))
    w.write_row(Row(["a", "b", "c"], {"a": 2.0, "c": 3}, 6))
    w.close()
    (path,) = event_files(tmp_path)
    evs = events(path)
    assert evs[0].file_version == "brain.Event:2"
    got = [(e.step, e.summary.value[0].tag, e.summary.value[0].simple_value) for e in evs[1:]]
    assert got == [(5, "a", 1.0), (6, "a", 2.0), (6, "c", 3.0)]
    now = time.time()
    assert all(now - 60 < e.wall_time <= now for e in evs)


def test_tensorboard_config_as_text(tmp_path):
    config = {"exp_name": "demo", "lr": 0.001}
    text = json.dumps(config, separators=(",", ":\t"), indent=4, sort_keys=True)
    w = TensorBoardWriter(str(tmp_path))
    w.write_config(config, text)
    w.close()
    acc = accumulator(tmp_path / "tb")
    assert acc.SummaryMetadata("config").plugin_data.plugin_name == "text"
    (ev,) = acc.Tensors("config")
    (body,) = ev.tensor_proto.string_val
    lines = body.decode().split("\n")
    assert all(line.startswith("    ") for line in lines)  # a Markdown code block
    assert json.loads("\n".join(line[4:] for line in lines)) == config


def test_tensorboard_resume_purges_later_steps(tmp_path):
    w = TensorBoardWriter(str(tmp_path))
    for row in rows(10):
        w.write_row(row)
    w.close()
    # the run resumes from a checkpoint after row 6: rows 6.. are written again, differently
    w = TensorBoardWriter(str(tmp_path), ResumePoint(rows=6, step=6))
    for row in rows(7, start=6, offset=1000.0):
        w.write_row(row)
    w.close()
    files = event_files(tmp_path)
    assert len(files) == 2 and files[1].name > files[0].name
    scalars = tb_scalars(tmp_path / "tb")
    want = rows(6) + rows(7, start=6, offset=1000.0)
    for tag in ["Epoch", "AverageEpRet", "Huge"]:
        assert [s for s, _ in scalars[tag]] == list(range(13))  # each step once, in order
        assert [v for _, v in scalars[tag]] == \
            [float(np.float32(r.values[tag])) for r in want]
    # the second file starts with its version, then the restart marker at step 6
    from tensorboard.compat.proto import event_pb2

    first, start = events(files[1])[:2]
    assert first.file_version == "brain.Event:2"
    assert (start.step, start.session_log.status) == (6, event_pb2.SessionLog.START)


def test_tensorboard_new_run_in_old_folder_hides_the_old_one(tmp_path):
    for offset in [0.0, 500.0]:  # two runs, the second not resumed
        w = TensorBoardWriter(str(tmp_path))
        for row in rows(4 if offset else 8, offset=offset):
            w.write_row(row)
        w.close()
    assert len(event_files(tmp_path)) == 2
    scalars = tb_scalars(tmp_path / "tb")
    assert [s for s, _ in scalars["Epoch"]] == [0, 1, 2, 3]
    assert [v for _, v in scalars["AverageEpRet"]] == \
        [float(np.float32(r.values["AverageEpRet"])) for r in rows(4, offset=500.0)]


def test_tensorboard_files_read_by_spinfast_tfevents(tmp_path):
    """spinfast's own reader (for plots) sees what TensorBoard sees, purges included."""
    from spinfast.tfevents import read_scalars

    w = TensorBoardWriter(str(tmp_path))
    for row in rows(8):
        w.write_row(row)
    w.close()
    w = TensorBoardWriter(str(tmp_path), ResumePoint(rows=5, step=5))
    for row in rows(4, start=5, offset=7.0):
        w.write_row(row)
    w.close()
    ours = {}
    for s in read_scalars(str(tmp_path / "tb")):
        ours.setdefault(s.tag, []).append((s.step, s.value))
    theirs = tb_scalars(tmp_path / "tb")
    assert sorted(ours) == sorted(theirs)
    for tag, series in theirs.items():
        assert [st for st, _ in ours[tag]] == [st for st, _ in series] == list(range(9))
        np.testing.assert_array_equal([v for _, v in ours[tag]], [v for _, v in series])


# --------------------------------------------------------------------------- csv and jsonl

def write_all(tmp_path, data, names=("txt", "csv", "jsonl"), resume=None):
    writers = make_writers(names, str(tmp_path), resume)
    for row in data:
        for w in writers:
            w.write_row(row)
    for w in writers:
        w.close()


def test_csv_and_jsonl_read_as_progress_txt(tmp_path):
    import pandas as pd

    data = rows(20)
    # a column missing from the first rows, values needing quotes, numpy scalars, a bool
    for row in data:
        row.headers.append("Late")
    for i, row in enumerate(data[10:]):
        row.values.update({"Late": np.float32(0.1 * i), "Env": 'a, "quoted" name',
                           "Epoch": np.int64(i + 10), "Tiny": True})
    write_all(tmp_path, data)
    txt = read_txt(tmp_path / "progress.txt")
    csv = pd.read_csv(tmp_path / "progress.csv")
    jsonl = pd.read_json(tmp_path / "progress.jsonl", lines=True, precise_float=True)
    assert txt["AverageEpRet"].tolist() == [r.values["AverageEpRet"] for r in data]
    assert list(csv.columns) == list(txt.columns) == list(jsonl.columns) == data[0].headers
    pd.testing.assert_frame_equal(csv, txt)
    assert txt["Late"].isna().sum() == 10 and txt["Late"][12] == 0.2
    for col in ["AverageEpRet", "StdEpRet", "Huge", "Nan", "Late"]:
        np.testing.assert_array_equal(jsonl[col].to_numpy(), txt[col].to_numpy(np.float64))
    assert csv["Env"].tolist() == ["Hopper-v5"] * 10 + ['a, "quoted" name'] * 10
    records = [json.loads(line) for line in (tmp_path / "progress.jsonl").read_text()
               .splitlines()]
    assert [r["Epoch"] for r in records] == list(range(20))
    assert records[12]["Late"] == 0.2 and records[12]["Tiny"] is True
    assert all(math.isnan(r["Nan"]) for r in records)


def test_jsonl_values(tmp_path):
    w = JsonlWriter(str(tmp_path))
    headers = ["f", "i", "b", "s", "nan", "inf", "ninf", "arr", "f32", "f32nan", "obj", "absent"]
    w.write_row(Row(headers, {"f": 0.1, "i": 3, "b": False, "s": 'a "q"\n', "nan": math.nan,
                              "inf": math.inf, "ninf": -math.inf,
                              "arr": np.arange(4).reshape(2, 2), "f32": np.float32(0.1),
                              "f32nan": np.float32("nan"), "obj": {1, 2}}, 0))
    w.close()
    text = (tmp_path / "progress.jsonl").read_text()
    assert text.count("\n") == 1 and text.endswith("}\n")
    assert '"nan":NaN' in text and '"inf":Infinity' in text and '"ninf":-Infinity' in text
    got = json.loads(text)
    assert list(got) == headers[:-1]
    assert got["f"] == 0.1 and got["i"] == 3 and got["b"] is False and got["s"] == 'a "q"\n'
    assert math.isnan(got["nan"]) and got["inf"] == math.inf and got["ninf"] == -math.inf
    assert got["arr"] == [[0, 1], [2, 3]] and got["f32"] == 0.1  # as str(np.float32(0.1))
    assert math.isnan(got["f32nan"]) and got["obj"] == "{1, 2}"


def test_jsonl_rows_of_plain_numbers(tmp_path):
    # the common row (every column a finite float or an int) takes a template; check it
    # against json.dumps, with names that need escaping in JSON or in a % template
    headers = ["Epoch", 'Q "quoted"', "100%", "Ünï\\code", "Neg"]
    w = JsonlWriter(str(tmp_path))
    data = [{"Epoch": i, 'Q "quoted"': 0.1 * i, "100%": 1e-300 * i, "Ünï\\code": 2**70 + i,
             "Neg": -1.5e300} for i in range(5)]
    for i, values in enumerate(data):
        w.write_row(Row(headers, values, i))
    w.write_row(Row(headers, {**data[0], "Neg": math.inf}, 5))  # non-finite: no template
    w.close()
    lines = (tmp_path / "progress.jsonl").read_text().splitlines()
    assert lines[:5] == [json.dumps(v, separators=(",", ":")) for v in data]
    assert [json.loads(line) for line in lines] == data + [{**data[0], "Neg": math.inf}]


def test_csv_line_breaks_become_spaces(tmp_path):
    w = CsvWriter(str(tmp_path))
    with pytest.warns(RuntimeWarning, match="line breaks"):
        w.write_row(Row(["a", "b"], {"a": "x\ny,z", "b": 1.5}, 0))
    w.close()
    assert (tmp_path / "progress.csv").read_text() == 'a,b\n"x y,z",1.5\n'


def test_files_named_after_output_fname(tmp_path):
    writers = make_writers(("txt", "csv", "jsonl"), str(tmp_path), None, "run1.log")
    for w in writers:
        w.write_row(Row(["a"], {"a": 1}, 0))
        w.close()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run1.csv", "run1.jsonl", "run1.log"]


def written_epochs(out, name, headers):
    """The Epoch of each row in the file of format ``name``, checking its header."""
    if name == "tensorboard":
        (path,) = event_files(out)
        assert events(path)[0].file_version == "brain.Event:2"
        return [s for s, _ in tb_scalars(out / "tb")["Epoch"]]
    lines = (out / f"progress.{name}").read_text().splitlines()
    if name == "jsonl":
        return [json.loads(line)["Epoch"] for line in lines]
    sep = "\t" if name == "txt" else ","
    assert lines[0].split(sep) == headers  # started again with its header
    return [int(line.split(sep)[0]) for line in lines[1:]]


@pytest.mark.parametrize("name", ["txt", "csv", "jsonl", "tensorboard"])
@pytest.mark.parametrize("pace", ["epochs", "burst"])
def test_vanished_folder_loses_no_row_written_after(tmp_path, monkeypatch, name, pace):
    """A folder removed mid-run is made again holding every row written since: at the next
    row when rows are CHECK_SECONDS or more apart (as epochs are), else within CHECK_ROWS
    rows (or at close); with one warning naming the file."""
    import spinfast._outputs._appender as writers

    if pace == "epochs":  # rows far apart, as in training: every row is checked
        monkeypatch.setattr(writers, "CHECK_SECONDS", 0.0)
    out = tmp_path / "run"
    out.mkdir()  # the logger makes the output folder
    (w,) = make_writers((name,), str(out))
    n = 3 * writers.CHECK_ROWS
    data = rows(n)
    for row in data[:5]:
        w.write_row(row)
    shutil.rmtree(out)
    path = out / "tb" if name == "tensorboard" else out / f"progress.{name}"
    warned_at = None
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        for i, row in enumerate(data[5:], 5):
            w.write_row(row)
            if record and warned_at is None:
                warned_at = i
        w.close()
    assert [str(r.message).split(" vanished")[0] for r in record] == [
        f"dump_tabular(): {path}"]  # once, not per row
    assert path.exists()
    epochs = written_epochs(out, name, data[0].headers)
    # The rows since the last check before the folder vanished (checked before row 4 at the
    # latest) are written again too: they were in the removed file.
    if pace == "epochs":
        assert warned_at == 5
        assert epochs == list(range(4, n))
    else:
        assert warned_at is not None and warned_at <= 5 + writers.CHECK_ROWS
        assert epochs == list(range(epochs[0], n)) and epochs[0] <= 4


@pytest.mark.parametrize("name", ["txt", "csv", "jsonl"])
@pytest.mark.parametrize("torn", [False, True])
def test_line_files_resume_truncates(tmp_path, name, torn):
    write_all(tmp_path, rows(10), (name,))
    (path,) = list(tmp_path.iterdir())
    if torn:  # a crash inside the last write left half a line
        with open(path, "a") as f:
            f.write("10\t-3.5" if name == "txt" else '{"Epoch":10,"Aver')
    # resume from a checkpoint taken after 6 rows; rows 6.. are written again, differently
    write_all(tmp_path, rows(4, start=6, offset=1000.0), (name,), ResumePoint(rows=6, step=6))
    want = rows(6) + rows(4, start=6, offset=1000.0)
    if name == "jsonl":
        got = [json.loads(line) for line in path.read_text().splitlines()]
        assert [r["Epoch"] for r in got] == list(range(10))
        assert [r["AverageEpRet"] for r in got] == [r.values["AverageEpRet"] for r in want]
    else:
        import pandas as pd

        table = pd.read_csv(path, sep="\t" if name == "txt" else ",")
        assert table["Epoch"].tolist() == list(range(10))
        assert table["AverageEpRet"].tolist() == [r.values["AverageEpRet"] for r in want]
        assert path.read_text().count("Epoch") == 1  # one header


def test_resume_of_missing_file_starts_it(tmp_path):
    write_all(tmp_path, rows(3), ("csv", "jsonl"), ResumePoint(rows=5, step=5))
    assert (tmp_path / "progress.csv").read_text().count("\n") == 4
    assert (tmp_path / "progress.jsonl").read_text().count("\n") == 3


# --------------------------------------------------------------------------- SIGKILL

def _expected_files(folder, n_rows):
    """The line files of ``write_rows.py``'s first ``n_rows`` rows, written without a kill."""
    sys.path.insert(0, str(PROGRAMS))
    try:
        import write_rows
    finally:
        sys.path.remove(str(PROGRAMS))
    folder.mkdir()
    writers = make_writers(("txt", "csv", "jsonl"), str(folder))
    for i in range(n_rows):
        for w in writers:
            w.write_row(write_rows.row(i))
    for w in writers:
        w.close()
    return {name: (folder / name).read_bytes()
            for name in ["progress.txt", "progress.csv", "progress.jsonl"]}


@pytest.mark.slow
def test_sigkill_leaves_only_complete_rows(tmp_path):
    """A SIGKILL leaves whole rows, in order, in every format.

    Each row is one ``write``. Linux copies a write into the page cache a page at a time and
    gives up between pages once a fatal signal is pending, so a kill that lands inside a row
    that crosses a page boundary of the file can leave that one row's first bytes: only the
    last line, and only a prefix of it. A resume cuts it off (checked here); without one, the
    file is started anew.
    """
    rng = np.random.default_rng(1)
    for attempt in range(4):
        out = tmp_path / f"run{attempt}"
        out.mkdir()
        proc = subprocess.Popen([sys.executable, str(PROGRAMS / "write_rows.py"), str(out)],
                                stdout=subprocess.PIPE, text=True)
        try:
            assert proc.stdout.readline() == "ready\n"
            time.sleep(float(rng.uniform(0.05, 0.4)))
        finally:
            proc.send_signal(signal.SIGKILL)
            proc.wait(timeout=30)
        import pandas as pd

        got = {name: (out / name).read_bytes()
               for name in ["progress.txt", "progress.csv", "progress.jsonl"]}
        n_txt = got["progress.txt"].count(b"\n") - 1
        # The writers go in the order txt, csv, jsonl, tensorboard: the others trail txt by
        # at most the row being written, which may also be torn in txt itself.
        expected = _expected_files(tmp_path / f"expected{attempt}", n_txt + 1)
        for name, data in got.items():
            assert expected[name].startswith(data), f"{name} is not a prefix of the rows"
            whole = data[:data.rfind(b"\n") + 1]
            rows_in = whole.count(b"\n") - (name != "progress.jsonl")
            assert n_txt - 1 <= rows_in <= n_txt, name
            # a resume keeps the whole rows and drops the torn line
            w = FORMATS[name.split(".")[1]](str(out), resume=ResumePoint(rows_in, rows_in))
            w.close()
            assert (out / name).read_bytes() == whole
        csv = pd.read_csv(out / "progress.csv")
        assert len(csv.columns) == 10 and not csv.isna().any().any()
        assert csv["Epoch"].tolist() == list(range(len(csv)))
        (path,) = event_files(out)
        # the compiled CRC (checked against the bitwise one above) keeps this fast
        payloads, rest = read_records(path, _tbevent.crc32c)
        # at most one record torn, the last: shorter than a whole one, whose length it starts
        # with once it has 8 bytes
        assert len(rest) < 48 and (len(rest) < 8 or len(rest) < 16 + int.from_bytes(
            rest[:8], "little"))
        evs = [event_pb2_event(p) for p in payloads[1:]]
        n_tb = len(evs) // 9  # 9 numeric columns a row; the row being written may be partial
        assert n_txt - 1 <= n_tb <= n_txt + 1
        want = [(i, f"Value{j - 1}" if j else "Epoch") for i in range(n_tb + 1) for j in range(9)]
        assert [(e.step, e.summary.value[0].tag) for e in evs] == want[:len(evs)]


def event_pb2_event(payload: bytes):
    from tensorboard.compat.proto import event_pb2

    return event_pb2.Event.FromString(payload)


def test_epoch_logger_tensorboard_equals_progress_txt(tmp_path, capsys):
    """Through EpochLogger: TensorBoard scalars equal progress.txt's numbers, row by row,
    and a resumed logger shows each step once."""
    from spinfast.logx import EpochLogger

    def epochs(logger, first, last):
        for epoch in range(first, last):
            rng = np.random.default_rng(epoch)
            for _ in range(10):
                logger.store(EpRet=float(rng.normal(-100, 20)),
                             Q=rng.normal(size=4).astype(np.float32))
            logger.log_tabular("Epoch", epoch)
            logger.log_tabular("EpRet", with_min_and_max=True)
            logger.log_tabular("Q", average_only=True)
            logger.log_tabular("Env", "Hopper")
            logger.dump_tabular(step=100 * epoch)
            if epoch % 2 == 1:
                logger.save_state({"epoch": epoch})

    out = str(tmp_path)
    logger = EpochLogger(output_dir=out, formats="txt,csv,jsonl,tensorboard")
    logger.save_config({"lr": 0.5})
    epochs(logger, 0, 5)  # checkpoints after epochs 1 and 3; epoch 4 is dropped on resume
    logger.close()
    logger = EpochLogger(output_dir=out, formats="txt,csv,jsonl,tensorboard", resume=True)
    epochs(logger, 4, 7)
    logger.close()
    capsys.readouterr()
    txt = read_txt(tmp_path / "progress.txt")
    assert txt["Epoch"].tolist() == list(range(7))
    scalars = tb_scalars(tmp_path / "tb")
    assert sorted(scalars) == sorted(["Epoch", "AverageEpRet", "StdEpRet", "MaxEpRet",
                                      "MinEpRet", "Q"])
    for tag, series in scalars.items():
        assert [s for s, _ in series] == [100 * e for e in range(7)]
        np.testing.assert_array_equal(np.array([v for _, v in series], np.float32),
                                      txt[tag].to_numpy(np.float64).astype(np.float32))
    acc = accumulator(tmp_path / "tb")
    (ev,) = acc.Tensors("config")
    assert json.loads("\n".join(line[4:] for line in
                                ev.tensor_proto.string_val[0].decode().split("\n"))) == \
        {"lr": 0.5}


# --------------------------------------------------------------------------- registry

def test_formats_registered():
    assert list(FORMATS) == ["stdout", "txt", "csv", "jsonl", "tensorboard", "wandb", "mlflow"]
    assert parse_formats("txt, CSV,jsonl,tensorboard,csv") == ("txt", "csv", "jsonl",
                                                              "tensorboard")
    with pytest.raises(ValueError, match="valid formats: .*tensorboard"):
        parse_formats("tensorbored")


def test_tensorboard_writer_imports_no_framework(tmp_path):
    code = ("import sys\nfrom spinfast._outputs import Row\n"
            "from spinfast._outputs.tensorboard import TensorBoardWriter\n"
            f"w = TensorBoardWriter({str(tmp_path)!r})\n"
            "w.write_row(Row(['a'], {'a': 1.0}, 0)); w.close()\n"
            "bad = [m for m in ('tensorflow', 'torch', 'tensorboard', 'pandas', 'wandb') "
            "if m in sys.modules]\n"
            "assert not bad, bad\n")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


def test_compiled_encoder_is_the_extension():
    assert Path(_tbevent.__file__).suffix in {".so", ".pyd"}


def test_writer_warnings_are_not_raised_for_clean_rows(tmp_path):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        write_all(tmp_path, rows(3), ("txt", "csv", "jsonl", "tensorboard"))


# --------------------------------------------------------------------------- Weights & Biases

@pytest.fixture
def wandb_offline(tmp_path, monkeypatch):
    """W&B in offline mode, its settings and caches inside tmp_path, no console capture."""
    try:
        import wandb  # noqa: F401
    except ImportError:  # part of the test setup; say so loudly
        pytest.fail("wandb is not installed: pip install '.[test]' (or '.[wandb]')")
    for var, sub in [("WANDB_CONFIG_DIR", "wb_config"), ("WANDB_CACHE_DIR", "wb_cache"),
                     ("WANDB_DATA_DIR", "wb_data"), ("WANDB_ARTIFACT_DIR", "wb_artifacts")]:
        monkeypatch.setenv(var, str(tmp_path / sub))
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    monkeypatch.setenv("WANDB_CONSOLE", "off")
    monkeypatch.setenv("WANDB_PROJECT", "spinfast-tests")


def wandb_records(path):
    """The Record protos of a W&B ``.wandb`` file (a LevelDB-style log of 32 KiB blocks)."""
    from wandb.proto import wandb_internal_pb2

    data = Path(path).read_bytes()
    assert data[:4] == b":W&B"
    out, pos, pending = [], 7, b""
    while pos + 7 <= len(data):
        left = 32768 - pos % 32768
        if left < 7:  # a block's zero-padded tail
            pos += left
            continue
        _crc, length, kind = struct.unpack("<IHB", data[pos:pos + 7])
        chunk = data[pos + 7:pos + 7 + length]
        pos += 7 + length
        if kind == 0:
            continue
        if kind == 1:  # FULL
            out.append(chunk)
        elif kind == 2:  # FIRST
            pending = chunk
        elif kind == 3:  # MIDDLE
            pending += chunk
        elif kind == 4:  # LAST
            out.append(pending + chunk)
    records = []
    for raw in out:
        rec = wandb_internal_pb2.Record()
        rec.ParseFromString(raw)
        records.append(rec)
    return records


def wandb_history(folder):
    """{step: {key: value}} logged in every offline run under ``folder``, and the config."""
    history, config = {}, {}
    for path in sorted(Path(folder, "wandb").glob("offline-run-*/run-*.wandb")):
        # wandb's service process may still be writing after finish(): wait for its exit record
        deadline = time.monotonic() + 30
        records = wandb_records(path)
        while not any(r.WhichOneof("record_type") == "exit" for r in records):
            assert time.monotonic() < deadline, f"{path} has no exit record after 30 s"
            time.sleep(0.05)
            records = wandb_records(path)
        for rec in records:
            kind = rec.WhichOneof("record_type")
            if kind == "history":
                items = {i.key or "/".join(i.nested_key): json.loads(i.value_json)
                         for i in rec.history.item}
                items = {k: v for k, v in items.items() if not k.startswith("_")}
                history.setdefault(rec.history.step.num, {}).update(items)
            elif kind == "config":
                items = {i.key or "/".join(i.nested_key): json.loads(i.value_json)
                         for i in rec.config.update}
                config.update({k: v for k, v in items.items() if not k.startswith("_")})
    return history, config


@pytest.mark.slow
def test_wandb_logs_rows_at_their_steps(tmp_path, wandb_offline):
    from spinfast._outputs.wandb import WandbWriter

    out = tmp_path / "exp_s0"
    w = WandbWriter(str(out))
    w.write_config({"exp_name": "exp", "lr": 0.001}, "{}")
    data = rows(5)
    for row in data:
        w.write_row(Row(row.headers + ["F32"], {**row.values, "F32": np.float32(0.5)},
                        10 * row.step))
    w.close()
    history, config = wandb_history(out)
    assert config == {"exp_name": "exp", "lr": 0.001}
    assert sorted(history) == [0, 10, 20, 30, 40]
    for row in data:
        got = history[10 * row.step]
        assert "Env" not in got  # text columns are skipped
        assert got["Epoch"] == row.values["Epoch"] and got["F32"] == 0.5
        for key in ["AverageEpRet", "StdEpRet", "Tiny", "Huge"]:
            assert got[key] == row.values[key]  # float64, exactly
    run_id = (out / "wandb_run_id.txt").read_text().strip()
    assert len(list((out / "wandb").glob(f"offline-run-*-{run_id}"))) == 1


def test_wandb_resume_continues_the_run(tmp_path, wandb_offline):
    from spinfast._outputs.wandb import WandbWriter

    out = tmp_path / "exp_s0"
    w = WandbWriter(str(out))
    for row in rows(3):
        w.write_row(row)
    w.close()
    run_id = (out / "wandb_run_id.txt").read_text().strip()
    w = WandbWriter(str(out), ResumePoint(rows=3, step=3))
    for row in rows(2, start=3):
        w.write_row(row)
    w.close()
    assert (out / "wandb_run_id.txt").read_text().strip() == run_id
    runs = sorted(p.name for p in (out / "wandb").glob("offline-run-*"))
    assert len(runs) == 2 and all(f"-{run_id}" in name for name in runs)  # the same run id
    history, _ = wandb_history(out)
    assert sorted(history) == [0, 1, 2, 3, 4]
    assert [history[s]["Epoch"] for s in range(5)] == list(range(5))


def test_wandb_missing_names_the_extra():
    code = ("import sys; sys.modules['wandb'] = None\n"
            "from spinfast._outputs import make_writers\n"
            "try:\n    make_writers(('wandb',), '.')\n"
            "except ImportError as e:\n    print(e)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=60, check=True).stdout
    assert "pip install 'spinfast[wandb]'" in out and "'wandb'" in out


@pytest.mark.parametrize("system_metrics", [False, True])
def test_epoch_logger_to_wandb(tmp_path, wandb_offline, capsys, system_metrics):
    from spinfast.logx import EpochLogger

    logger = EpochLogger(output_dir=str(tmp_path / "run"), formats="txt,wandb",
                         exp_name="demo", system_metrics=system_metrics)
    logger.save_config({"lr": 0.25})
    for epoch in range(3):
        logger.store(Ret=float(epoch), Loss=np.float32(0.5))
        logger.log_tabular("Epoch", epoch)
        logger.log_tabular("Ret", average_only=True)
        logger.log_tabular("Loss", with_min_and_max=True)
        logger.dump_tabular(step=1000 * epoch)
    logger.close()
    capsys.readouterr()
    history, config = wandb_history(tmp_path / "run")
    txt = read_txt(tmp_path / "run" / "progress.txt")
    assert config == {"lr": 0.25, "exp_name": "demo"}
    assert sorted(history) == [0, 1000, 2000]
    for epoch, step in enumerate(sorted(history)):
        assert history[step] == {k: txt[k][epoch] for k in txt.columns}
    assert ("SysRSSMaxMB" in txt.columns and "SysCPUMean" in txt.columns) == system_metrics

