"""An MLflow run (format ``mlflow``)."""

from __future__ import annotations

import json
import numbers
import os
import posixpath
import re
import time
import warnings
from pathlib import Path
from typing import Any

from spinfast._logger.files import atomic_path
from spinfast._outputs import ResumePoint, Row, Writer

__all__ = ["MlflowWriter", "RUN_ID_FILE", "flatten"]

RUN_ID_FILE = "mlflow_run_id.txt"  # beside progress.txt: the MLflow run a resumed run continues
_BAD_CHARS = re.compile(r"[^\w./\- :]")  # what MLflow refuses in a metric or param name
_PARAMS_PER_BATCH = 100  # MLflow's limits on one log_batch call
_METRICS_PER_BATCH = 1000
_PARAM_LENGTH = 6000  # characters of a param's value that MLflow keeps
_KEY_LENGTH = 250


def _name(key: str) -> str:
    """``key`` as MLflow accepts a metric or param name: other characters become ``_``."""
    name = _BAD_CHARS.sub("_", key)[:_KEY_LENGTH] or "_"
    if posixpath.normpath(name) != name or name.startswith((".", "/")):
        name = name.replace("/", "_").replace(".", "_")  # a name MLflow would read as a path
    return name


def flatten(config: Any, prefix: str = "") -> dict[str, str]:
    """Return a JSON-safe config as MLflow params: nested dict keys joined by ``.``.

    Strings stay as they are; other values (numbers, lists, null) become their JSON text, as
    ``config.json`` writes them. A config that is not a dict is the one param ``config``.
    """
    if not isinstance(config, dict):
        return {prefix or "config": config if isinstance(config, str) else json.dumps(config)}
    out: dict[str, str] = {}
    for key, value in config.items():
        name = f"{prefix}.{key}" if prefix else str(key)
        if isinstance(value, dict) and value:
            out.update(flatten(value, name))
        else:
            out[name] = value if isinstance(value, str) else json.dumps(value)
    return out


class MlflowWriter(Writer):
    """An MLflow run (format ``mlflow``; needs ``pip install 'spinfast[mlflow]'``).

    ``mlflow`` (``mlflow-skinny`` is enough) is imported when the writer opens. The tracking
    URI is ``$MLFLOW_TRACKING_URI``, else a local file store in ``<output_dir>/mlruns``
    (``file:``; MLflow 3 refuses its file store unless ``MLFLOW_ALLOW_FILE_STORE`` is true,
    so the writer sets that variable to ``true`` when it is unset or empty and this default
    is used).
    The run is made in the experiment ``$MLFLOW_EXPERIMENT_NAME``, else ``spinfast``, named
    after the output folder. Each row's numeric columns (Python or numpy real numbers, bools
    as 0/1) are logged at ``row.step`` in one ``log_batch``; other columns are skipped.
    Column and config names with characters MLflow refuses get ``_`` in their place.
    :meth:`write_config` logs the config as the run's params, flattened (``{"a": {"b": 1}}``
    gives ``a.b = 1``); MLflow keeps the first value of a param, so a later config that
    changes one warns and keeps the old value. :meth:`close` marks the run finished.

    The run id is kept in ``<output_dir>/mlflow_run_id.txt`` (:data:`RUN_ID_FILE`); a resumed
    run continues that MLflow run. Each metric keeps one value per step: rows that the killed
    run logged after its checkpoint keep their old values there (MLflow cannot delete a
    metric's values), and the resumed run's rows at those steps are not logged again, as
    W&B does.

    Raises:
        ImportError: mlflow is not installed (the message names the extra to install).
    """

    def __init__(self, output_dir: str, resume: ResumePoint | None = None,
                 output_fname: str = "progress.txt"):
        try:
            from mlflow.entities import Metric, Param
            from mlflow.tracking import MlflowClient
        except ImportError as e:
            raise ImportError("Logger(): output format 'mlflow' needs the mlflow package, "
                              "which is not installed; pip install 'spinfast[mlflow]' or drop "
                              "'mlflow' from formats") from e
        self._metric, self._param = Metric, Param
        os.makedirs(output_dir, exist_ok=True)
        uri = os.environ.get("MLFLOW_TRACKING_URI")
        if not uri:
            uri = Path(output_dir, "mlruns").resolve().as_uri()
            if not os.environ.get("MLFLOW_ALLOW_FILE_STORE"):
                os.environ["MLFLOW_ALLOW_FILE_STORE"] = "true"
        self.client = client = MlflowClient(tracking_uri=uri)
        id_path = os.path.join(output_dir, RUN_ID_FILE)
        self.run_id = None
        if resume is not None and os.path.exists(id_path):
            with open(id_path) as f:
                self.run_id = f.read().strip() or None
        self._until: dict[str, int] = {}  # metric -> last step the continued run logged
        if self.run_id is not None:
            run = client.get_run(self.run_id)
            for name in run.data.metrics:
                history = client.get_metric_history(self.run_id, name)
                self._until[name] = max(m.step for m in history)
            client.update_run(self.run_id, status="RUNNING")
        else:
            experiment = self._experiment(os.environ.get("MLFLOW_EXPERIMENT_NAME") or "spinfast")
            self.run_id = client.create_run(
                experiment, run_name=os.path.basename(os.path.normpath(output_dir))).info.run_id
            with atomic_path(id_path) as tmp:
                with open(tmp, "w") as f:
                    f.write(self.run_id + "\n")
        self._last_until = max(self._until.values(), default=None)
        self._headers: list[str] = []
        self._names: list[str] = []

    def _experiment(self, name: str) -> str:
        """The id of experiment ``name``, made if missing (another run may make it first)."""
        from mlflow.exceptions import MlflowException

        found = self.client.get_experiment_by_name(name)
        if found is not None:
            return found.experiment_id
        try:
            return self.client.create_experiment(name)
        except MlflowException:
            found = self.client.get_experiment_by_name(name)
            if found is None:
                raise
            return found.experiment_id

    def write_row(self, row: Row) -> None:
        """Log the row's numeric columns at ``row.step`` (one ``log_batch``)."""
        if row.headers != self._headers:
            self._headers = list(row.headers)
            self._names = [_name(k) for k in row.headers]
        step, until = row.step, self._until
        if until and step > self._last_until:
            until.clear()  # past every step the continued run logged
        now = int(time.time() * 1000)
        metric, values = self._metric, row.values
        metrics = []
        for key, name in zip(self._headers, self._names):
            v = values.get(key)
            if type(v) is not float:
                if type(v) is int or (isinstance(v, numbers.Real)
                                      and not isinstance(v, (str, bytes))):
                    v = float(v)
                else:
                    continue
            if until and step <= until.get(name, step - 1):
                continue
            metrics.append(metric(name, v, now, step))
        for i in range(0, len(metrics), _METRICS_PER_BATCH):
            self.client.log_batch(self.run_id, metrics=metrics[i:i + _METRICS_PER_BATCH],
                                  synchronous=True)

    def write_config(self, config: Any, text: str) -> None:
        """Log ``config`` (JSON-safe, as config.json holds) as the run's params, flattened."""
        have = self.client.get_run(self.run_id).data.params
        params, changed = [], []
        for key, value in flatten(config).items():
            name, value = _name(key), value[:_PARAM_LENGTH]
            if name not in have:
                params.append(self._param(name, value))
            elif have[name] != value:
                changed.append(name)
        if changed:
            warnings.warn(f"Logger.save_config(): MLflow keeps the first value of a param; "
                          f"run {self.run_id} keeps its values of {changed!r}", RuntimeWarning,
                          stacklevel=3)
        for i in range(0, len(params), _PARAMS_PER_BATCH):
            self.client.log_batch(self.run_id, params=params[i:i + _PARAMS_PER_BATCH],
                                  synchronous=True)

    def close(self) -> None:
        """Mark the run finished; once."""
        if self.run_id is not None:
            self.client.set_terminated(self.run_id)
            self.run_id = None
