"""Logger / EpochLogger: stdout table, progress.txt, config.json and vars*.pkl formats."""

from __future__ import annotations

import contextlib
import io
import json
import math
import os
import subprocess
import sys
import threading

import joblib
import numpy as np
import pytest
from helpers import read_progress
from hypothesis import given, settings
from hypothesis import strategies as st

from spinfast import logx
from spinfast._outputs import Row
from spinfast._outputs.table import StdoutWriter
from spinfast.logx import EpochLogger, Logger, colorize
from spinfast.serialization_utils import convert_json

DOCS_TABLE = """\
-------------------------------------
|     AverageTest |             4.5 |
|         StdTest |            2.87 |
|         MaxTest |               9 |
|         MinTest |               0 |
-------------------------------------
"""


def test_docs_example_table_and_progress(tmp_path, capsys):
    logger = EpochLogger(output_dir=str(tmp_path))
    assert f"Logging data to {tmp_path}/progress.txt" in capsys.readouterr().out
    for i in range(10):
        logger.store(Test=i)
    logger.log_tabular("Test", with_min_and_max=True)
    logger.dump_tabular()
    assert capsys.readouterr().out == DOCS_TABLE
    rows = read_progress(tmp_path).table
    assert rows[0] == ["AverageTest", "StdTest", "MaxTest", "MinTest"]
    values = [float(v) for v in rows[1]]
    assert values[0] == 4.5
    assert values[1] == pytest.approx(np.std(np.arange(10)), rel=1e-15)
    assert values[2:] == [9.0, 0.0]
    assert len(rows) == 2


def test_logging_message_is_green_bold(tmp_path, capsys):
    Logger(output_dir=str(tmp_path / "new"))
    out = capsys.readouterr().out
    assert out == f"\x1b[32;1mLogging data to {tmp_path}/new/progress.txt\x1b[0m\n"
    Logger(output_dir=str(tmp_path / "new"))
    out = capsys.readouterr().out
    assert out.startswith(f"Warning: Log dir {tmp_path}/new already exists! Storing info there "
                          "anyway.\n")


def test_colorize_codes():
    assert colorize("x", "red") == "\x1b[31mx\x1b[0m"
    assert colorize("x", "crimson", bold=True) == "\x1b[38;1mx\x1b[0m"
    assert colorize("x", "gray", bold=True, highlight=True) == "\x1b[40;1mx\x1b[0m"
    with pytest.raises(ValueError, match="unknown color 'pink'"):
        colorize("x", "pink")


def test_rows_columns_and_empty_fields(tmp_path, capsys):
    logger = Logger(output_dir=str(tmp_path))
    logger.log_tabular("Epoch", 0)
    logger.log_tabular("Loss", 0.25)
    logger.log_tabular("Name", "run-a")
    logger.dump_tabular()
    logger.log_tabular("Loss", np.float32(0.5))
    logger.log_tabular("Epoch", 1)  # order of calls does not matter after the first row
    logger.dump_tabular()
    rows = read_progress(tmp_path).table
    assert rows == [["Epoch", "Loss", "Name"], ["0", "0.25", "run-a"], ["1", "0.5", ""]]
    out = capsys.readouterr().out
    assert "|           Epoch |               1 |" in out
    assert "|            Name |                 |" in out


def test_long_keys_widen_table(tmp_path, capsys):
    logger = Logger(output_dir=str(tmp_path))
    capsys.readouterr()
    key = "AVeryLongDiagnosticNameIndeed"  # 29 characters
    logger.log_tabular(key, 1234567.0)
    logger.dump_tabular()
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "-" * (22 + len(key))
    assert out[1] == f"| {key} | {'%8.3g' % 1234567.0:>15} |"


def test_key_errors(tmp_path):
    logger = Logger(output_dir=str(tmp_path))
    logger.log_tabular("A", 1)
    with pytest.raises(ValueError, match="You already set A this iteration. Maybe you forgot "
                                         r"to call dump_tabular\(\)"):
        logger.log_tabular("A", 2)
    logger.dump_tabular()
    with pytest.raises(ValueError, match="Trying to introduce a new key B that you didn't "
                                         "include in the first iteration"):
        logger.log_tabular("B", 1)
    logger.log_tabular("A", 3)
    logger.dump_tabular()
    assert read_progress(tmp_path).table == [["A"], ["1"], ["3"]]  # nothing logged was lost


def test_epoch_logger_rows_after_the_first(tmp_path, capsys):
    """From the second row on log_tabular takes its compiled path; every rule still holds."""
    logger = EpochLogger(output_dir=str(tmp_path))
    for epoch, values in enumerate(([1.0, 3.0], [2.0, 4.0, 6.0], [5.0])):
        for v in values:
            logger.store(R=v, Q=-v)
        logger.log_tabular("Epoch", epoch)
        if epoch == 1:  # refused calls change nothing: Q keeps its values for the next one
            with pytest.raises(ValueError, match="introduce a new key AverageQ that you didn't"):
                logger.log_tabular("Q", with_min_and_max=True)
            with pytest.raises(ValueError, match="introduce a new key AverageQ"):
                logger.log_tabular("Q")
            with pytest.raises(KeyError, match="key 'Nope' was never stored"):
                logger.log_tabular("Nope")
        logger.log_tabular("R", with_min_and_max=True)
        if epoch == 1:
            with pytest.raises(ValueError, match="You already set AverageR this iteration"):
                logger.log_tabular("R", with_min_and_max=True)
        logger.log_tabular("Q", average_only=True)
        logger.dump_tabular()
    rows = read_progress(tmp_path).table
    assert rows[0] == ["Epoch", "AverageR", "StdR", "MaxR", "MinR", "Q"]
    expected = [np.array(v) for v in ([1.0, 3.0], [2.0, 4.0, 6.0], [5.0])]
    for row, epoch, v in zip(rows[1:], range(3), expected):
        assert row == [str(epoch), str(v.mean()), str(v.std()), str(v.max()), str(v.min()),
                       str(-v.mean())]


def test_dump_with_nothing_logged_warns(tmp_path):
    logger = Logger(output_dir=str(tmp_path))
    with pytest.warns(RuntimeWarning, match="nothing was logged"):
        logger.dump_tabular()
    logger.log_tabular("A", 1)
    logger.dump_tabular()
    assert read_progress(tmp_path).table == [["A"], ["1"]]


def test_arrays_and_unsafe_strings(tmp_path, capsys):
    logger = Logger(output_dir=str(tmp_path))
    logger.log_tabular("Vec", np.array([1.0, 2.0]))
    logger.log_tabular("Text", "a\tb\nc\rd")
    with pytest.warns(RuntimeWarning, match="'Text' holds tabs or line breaks"):
        logger.dump_tabular()
    assert read_progress(tmp_path).table == [["Vec", "Text"], ["[1. 2.]", "a b c d"]]
    assert "|             Vec |         [1. 2.] |" in capsys.readouterr().out


def test_epoch_logger_column_order_and_average_only(tmp_path):
    logger = EpochLogger(output_dir=str(tmp_path))
    logger.store(EpRet=[1.0, 3.0], Q=np.array([[1.0, 2.0], [3.0, 4.0]]), V=5)
    logger.log_tabular("Epoch", 7)
    logger.log_tabular("EpRet", with_min_and_max=True)
    logger.log_tabular("Q", average_only=True)
    logger.log_tabular("V", average_only=True, with_min_and_max=True)
    row = dict(logger.log_current_row)
    logger.dump_tabular()
    header, values = read_progress(tmp_path).table
    assert header == ["Epoch", "AverageEpRet", "StdEpRet", "MaxEpRet", "MinEpRet", "Q", "V",
                      "MaxV", "MinV"]
    assert [float(v) for v in values] == [7, 2.0, 1.0, 3.0, 1.0, 2.5, 5.0, 5.0, 5.0]
    assert row["Q"] == 2.5  # every element of a 2-D array counts (Spinning Up: 5.0 by rows)


def test_log_tabular_resets_and_empty_epoch_is_nan(tmp_path):
    logger = EpochLogger(output_dir=str(tmp_path))
    logger.store(L=2.0)
    logger.log_tabular("L")
    logger.dump_tabular()
    with pytest.warns(RuntimeWarning, match="no values stored for 'L'"):
        logger.log_tabular("L")
    assert math.isnan(logger.log_current_row["AverageL"])
    logger.dump_tabular()
    logger.store(L=4.0)
    logger.store(L=6.0)
    assert logger.get_stats("L") == [5.0, 1.0]
    assert logger.get_stats("L") == [5.0, 1.0]  # no reset
    logger.log_tabular("L")
    logger.dump_tabular()
    rows = read_progress(tmp_path).table
    assert rows[2] == ["nan", "nan"] and rows[3] == ["5.0", "1.0"]


def test_unknown_key_raises_keyerror_listing_keys(tmp_path):
    logger = EpochLogger(output_dir=str(tmp_path))
    logger.store(EpRet=1.0)
    with pytest.raises(KeyError, match=r"'EpLen' was never stored.*\['EpRet'\]"):
        logger.log_tabular("EpLen")
    with pytest.raises(KeyError):
        logger.get_stats("EpLen")


def test_store_type_error_keeps_earlier_values(tmp_path):
    logger = EpochLogger(output_dir=str(tmp_path))
    logger.store(X=1.0)
    for bad in ("text", None, {"a": 1}, np.array(["x"], dtype=object)):
        with pytest.raises(TypeError, match=r"store\(\): key 'X'"):
            logger.store(X=bad)
    logger.store(X=3.0)
    logger.log_tabular("X")
    assert logger.log_current_row == {"AverageX": 2.0, "StdX": 1.0}


def test_save_config_format(tmp_path, capsys):
    logger = Logger(output_dir=str(tmp_path), exp_name="exp")
    capsys.readouterr()
    config = {"lr": 1e-3, "hid": (64, 64), "fn": np.tanh, "name": "x", "arr": np.arange(2)}
    logger.save_config(config)
    assert "exp_name" not in config  # the caller's dict is untouched
    text = (tmp_path / "config.json").read_text()
    expected = {"arr": "[0 1]", "exp_name": "exp", "fn": "tanh", "hid": [64, 64],
                "lr": 0.001, "name": "x"}
    assert json.loads(text) == expected
    assert text == json.dumps(expected, separators=(",", ":\t"), indent=4, sort_keys=True)
    assert not text.endswith("\n")
    assert capsys.readouterr().out == ("\x1b[36;1mSaving config:\n\x1b[0m\n" + text + "\n")


class _Obj:
    def __init__(self):
        self.a = 1
        self.f = lambda x: x


class _Empty:
    pass


def test_convert_json_rules():
    lam = lambda: None  # noqa: E731
    assert convert_json({"a": 1, 2: [1, 2]}) == {"a": 1, 2: [1, 2]}
    assert convert_json(np.tanh) == "tanh"
    assert convert_json(_Obj) == "_Obj"
    assert convert_json(lam) == str(lam)
    obj = _Obj()
    assert convert_json(obj) == {str(obj): {"a": 1, "f": str(obj.f)}}
    empty = _Empty()
    assert convert_json(empty) == str(empty)
    assert convert_json((1, np.float32(2))) == (1, "2.0")
    assert convert_json({1, 2}) == "{1, 2}"
    assert convert_json([np.int64(3), "s"]) == ["3", "s"]


def test_save_config_never_raises(tmp_path):
    logger = Logger(output_dir=str(tmp_path))
    logger.save_config({"t": (1, object()), "s": {1}, "l": lambda: 0, "e": _Empty()})
    saved = json.loads((tmp_path / "config.json").read_text())
    assert saved["t"][0] == 1 and isinstance(saved["t"][1], str)


def test_save_state_files(tmp_path):
    logger = Logger(output_dir=str(tmp_path))
    logger.save_state({"x": 1, "arr": np.arange(3)})
    logger.save_state({"x": 2}, itr=3)
    assert joblib.load(tmp_path / "vars.pkl")["x"] == 1
    np.testing.assert_array_equal(joblib.load(tmp_path / "vars.pkl")["arr"], np.arange(3))
    assert joblib.load(tmp_path / "vars3.pkl") == {"x": 2}


def test_unpicklable_state_keeps_previous_file(tmp_path, capsys):
    logger = Logger(output_dir=str(tmp_path))
    logger.save_state({"good": 1})
    capsys.readouterr()

    class Unpicklable:
        def __reduce__(self):
            raise TypeError("nope")

    with pytest.warns(RuntimeWarning, match=r"save_state\(\): could not pickle state_dict "
                                            r"\(TypeError: nope\); vars.pkl keeps the last"):
        logger.save_state({"good": 2, "bad": Unpicklable()})
    assert capsys.readouterr().out == ""
    assert joblib.load(tmp_path / "vars.pkl") == {"good": 1}
    assert logger.load_state() == {"good": 1}  # the last checkpoint that was saved
    # no temp file left
    assert sorted(os.listdir(tmp_path)) == ["progress.txt", "spinfast_resume.json", "vars.pkl"]


@pytest.mark.parametrize("bad", [lambda: 0, threading.Lock(), (x for x in ()),
                                 type("Local", (), {"__module__": "nowhere"})()],
                         ids=["lambda", "lock", "generator", "unimportable class"])
def test_each_error_pickle_raises_for_a_state_warns_and_the_run_goes_on(tmp_path, bad):
    # What joblib's pickler really raises: PicklingError (lambda, a class it cannot find),
    # TypeError (lock, generator); each a warning, and the next save_state works.
    logger = Logger(output_dir=str(tmp_path))
    with pytest.warns(RuntimeWarning, match=r"could not pickle state_dict \((PicklingError|"
                                            r"TypeError|AttributeError): "):
        logger.save_state({"bad": bad}, itr=1)
    assert not (tmp_path / "vars1.pkl").exists() and logger.load_state() is None
    logger.save_state({"good": 3}, itr=2)
    assert logger.load_state() == {"good": 3}


def test_default_output_dir_is_unique(tmp_path, monkeypatch):
    monkeypatch.setattr(logx, "DEFAULT_ROOT", str(tmp_path))
    dirs = {Logger().output_dir for _ in range(3)}
    assert len(dirs) == 3
    assert all(os.path.isfile(os.path.join(d, "progress.txt")) for d in dirs)


def test_pytorch_saver(tmp_path):
    import torch
    logger = EpochLogger(output_dir=str(tmp_path))
    model = torch.nn.Linear(3, 2)
    logger.setup_pytorch_saver(model)
    logger.save_state({"env": "none"})
    logger.save_state({"env": "none"}, itr=5)
    x = torch.ones(1, 3)
    for name in ("model.pt", "model5.pt"):
        loaded = torch.load(tmp_path / "pyt_save" / name, weights_only=False)
        assert torch.equal(loaded(x), model(x))


def test_import_is_light():
    code = ("import sys, spinfast.logx\n"
            "heavy = [m for m in ('tensorflow', 'torch', 'pandas', 'seaborn', 'mpi4py', 'joblib', "
            "'wandb', 'mlflow') "
            "if m in sys.modules]\n"
            "print(heavy)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, timeout=60).stdout
    assert out.strip() == "[]"


def test_empty_state_constant_matches_compiled_empty_state():
    from spinfast._stats import Welford

    assert logx._EMPTY_STATE == Welford().state


def test_keys_with_percent_signs_and_changing_headers(tmp_path, capsys):
    logger = Logger(output_dir=str(tmp_path))
    capsys.readouterr()
    logger.log_tabular("Success%", 0.5)
    logger.dump_tabular()
    assert "|        Success% |             0.5 |" in capsys.readouterr().out
    other = Logger(output_dir=str(tmp_path / "b"))
    other.log_tabular("A", 1.0)
    other.dump_tabular()
    capsys.readouterr()
    other.log_tabular("A", 2.0)
    other.dump_tabular()
    assert capsys.readouterr().out == "-" * 37 + "\n|               A |               2 |\n" + \
        "-" * 37 + "\n"


def test_store_framework_tensors(tmp_path):
    import tensorflow as tf
    import torch

    logger = EpochLogger(output_dir=str(tmp_path))
    t = torch.tensor([[1.0, 2.0], [3.0, 4.0]], requires_grad=True) * 1  # in an autograd graph
    logger.store(T=t, S=torch.tensor(5.0), F=tf.constant([6.0, 7.0]), V=tf.Variable(8.0))
    t.data.fill_(100.0)  # the stored tensor's own memory: consumed at store, so no effect
    logger.log_tabular("T", with_min_and_max=True)
    logger.log_tabular("S", average_only=True)
    logger.log_tabular("F", average_only=True)
    logger.log_tabular("V", average_only=True)
    assert logger.log_current_row == {"AverageT": 2.5, "StdT": pytest.approx(np.std([1, 2, 3, 4])),
                                      "MaxT": 4.0, "MinT": 1.0, "S": 5.0, "F": 6.5, "V": 8.0}


def test_store_does_not_import_frameworks(tmp_path):
    code = ("import sys\nimport numpy as np\nfrom spinfast.logx import EpochLogger\n"
            "lg = EpochLogger(output_dir=sys.argv[1])\n"
            "lg.store(A=1.0, B=np.ones(3), C=[1, 2], D=np.float32(2))\n"
            "lg.log_tabular('A'); lg.dump_tabular()\n"
            "print([m for m in ('tensorflow', 'torch') if m in sys.modules])")
    out = subprocess.run([sys.executable, "-c", code, str(tmp_path)], capture_output=True,
                         text=True, check=True, timeout=60).stdout
    assert out.strip().endswith("[]")


@settings(max_examples=200, deadline=None)
@given(st.lists(st.one_of(st.floats(allow_nan=True, allow_infinity=True),
                          st.integers(-10**20, 10**20), st.booleans()), min_size=1, max_size=30),
       st.lists(st.text(st.characters(blacklist_characters="\t\n\r\x0b\x0c\x1c\x1d\x1e\x85"
                                      "\u2028\u2029"), min_size=1, max_size=20),
                min_size=30, max_size=30, unique=True))
def test_table_and_progress_line_are_spinning_ups_formats(values, keys):
    """Any numbers and key text: the table and progress.txt as SPEC §2 states them."""
    keys = keys[:len(values)]
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        StdoutWriter().write_row(Row(keys, dict(zip(keys, values)), 0))
    w = max(15, max(len(k) for k in keys))
    rule = "-" * (22 + w)
    assert out.getvalue() == "\n".join(
        [rule, *("| %*s | %15s |" % (w, k, "%8.3g" % v) for k, v in zip(keys, values)),
         rule]) + "\n"


def test_bfloat16_and_float16_tensors_count_as_their_float_values(tmp_path):
    torch = pytest.importorskip("torch")
    logger = EpochLogger(output_dir=str(tmp_path))
    vals = [0.5, 1.25, -3.0, 2.0 ** -8]  # exact in bfloat16 and float16
    logger.store(B=torch.tensor(vals, dtype=torch.bfloat16),
                 H=torch.tensor(vals, dtype=torch.float16))
    logger.store(B=torch.tensor(7.0, dtype=torch.bfloat16, requires_grad=True))
    expected = np.array(vals + [7.0])
    assert logger.get_stats("B") == [expected.mean(), expected.std()]
    assert logger.get_stats("H") == [np.mean(vals), np.std(vals)]


SPINNING_UP_NAMES = {  # EpochLogger's methods and what Spinning Up's code reads of a logger
    "store", "log_tabular", "get_stats", "dump_tabular", "save_config", "save_state",
    "setup_tf_saver", "setup_pytorch_saver", "log", "output_file"}
DOCUMENTED_ADDITIONS = {"close", "load_state", "track_quantiles", "stats_accumulator",
                        "setup_tf2_saver", "timer"}
INSTANCE_ATTRIBUTES = {"output_dir", "first_row", "log_headers", "log_current_row", "exp_name",
                       "formats", "writers"}


def public(names):
    return {name for name in names if not name.startswith("_")}


def test_epoch_logger_public_names_are_spinning_ups_and_the_documented_ones(tmp_path):
    assert public(dir(EpochLogger)) == SPINNING_UP_NAMES | DOCUMENTED_ADDITIONS
    with contextlib.redirect_stdout(io.StringIO()):
        logger = EpochLogger(output_dir=str(tmp_path))
    assert public(dir(logger)) == SPINNING_UP_NAMES | DOCUMENTED_ADDITIONS | INSTANCE_ATTRIBUTES
    logger.close()


def test_store_is_the_tables_compiled_call_bound_per_instance(tmp_path):
    import pydoc

    with contextlib.redirect_stdout(io.StringIO()):
        logger = EpochLogger(output_dir=str(tmp_path))
    table = logger._table
    assert type(logger.store).__name__ == "builtin_function_or_method"
    assert vars(logger)["store"] is logger.store and logger.store.__self__ is table
    assert "Save something" in pydoc.render_doc(logger.store)
    assert "Save something" in pydoc.render_doc(EpochLogger.store)
    logger.store(A=1.0)
    EpochLogger.store(logger, A=3.0)  # the class's method: the same table
    assert logger.stats_accumulator("A").state[:2] == (2.0, 2.0)

    class Counting(EpochLogger):  # a subclass's store override is kept
        calls = 0

        def store(self, **kwargs):
            Counting.calls += 1
            super().store(**kwargs)

    with contextlib.redirect_stdout(io.StringIO()):
        counting = Counting(output_dir=str(tmp_path / "sub"))
    counting.store(B=np.arange(3))
    assert Counting.calls == 1 and "store" not in vars(counting)
    assert counting.stats_accumulator("B").mean == 1.0
    logger.close()
    counting.close()


def test_stats_accumulator_is_the_live_accumulator(tmp_path):
    with contextlib.redirect_stdout(io.StringIO()):
        logger = EpochLogger(output_dir=str(tmp_path))
    logger.store(R=1.0)
    acc = logger.stats_accumulator("R")
    logger.store(R=np.array([2.0, 6.0]))
    assert (acc.count, acc.mean, acc.max) == (3.0, 3.0, 6.0)  # the same object, updated
    logger.log_tabular("R")
    assert acc.count == 0  # log_tabular took the epoch's values
    with pytest.raises(KeyError, match=r"EpochLogger: key 'Q' was never stored.*\['R'\]"):
        logger.stats_accumulator("Q")
    logger.close()


def test_store_errors_name_the_logger_and_the_key(tmp_path):
    with contextlib.redirect_stdout(io.StringIO()):
        logger = EpochLogger(output_dir=str(tmp_path))
    with pytest.raises(TypeError, match=r"^EpochLogger.store\(\) takes keyword arguments only"):
        logger.store(1.0)
    with pytest.raises(TypeError, match=r"^EpochLogger.store\(\): key 'S': got a value of type "
                                        r"str"):
        logger.store(A=1.0, S="x")
    with pytest.raises(TypeError, match=r"^EpochLogger.store\(\): key 'O': .*dtype object"):
        logger.store(O=np.array([1, None], dtype=object))
    assert "A" not in logger._table.stored_keys()  # a failing call stores nothing
    logger.close()


def test_compiled_layer_knows_no_framework():
    import pathlib

    csrc = pathlib.Path(__file__).resolve().parent.parent / "csrc"
    sources = sorted(csrc.glob("_stats*")) + [csrc / "block_kernels.h", csrc / "ddsketch.h"]
    for path in sources:
        text = path.read_text()
        for word in ("detach(", "torch.", "bfloat16", "EpochLogger.store()", "tp_dict",
                     "PyType_Modified", "optimize("):
            assert word not in text, (path.name, word)
