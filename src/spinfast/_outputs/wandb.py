"""A Weights & Biases run (format ``wandb``)."""

from __future__ import annotations

import numbers
import os
from typing import Any

from spinfast._outputs import ResumePoint, Row, Writer

__all__ = ["WandbWriter"]


class WandbWriter(Writer):
    """A Weights & Biases run (format ``wandb``; needs ``pip install 'spinfast[wandb]'``).

    ``wandb`` is imported when the writer opens. The run is ``wandb.init(dir=output_dir,
    name=<output folder's name>)`` (project from ``$WANDB_PROJECT``, else ``spinfast``; mode,
    entity and the rest from wandb's own environment variables, e.g. ``WANDB_MODE=offline``).
    Each row's numeric columns (Python or numpy real numbers, under their column names) are
    logged at ``row.step``; other columns are skipped. :meth:`write_config` sets the run's
    config. The run id is kept in ``<output_dir>/wandb_run_id.txt``; a resumed run continues
    that W&B run (``resume="allow"``). W&B keeps the first value logged at a step: rows that
    the killed run logged after its checkpoint keep their old values there (W&B's own
    ``resume_from`` rewind is a server-side feature this writer does not use). Crash safety
    and the local files under ``<output_dir>/wandb/`` are wandb's.

    Raises:
        ImportError: wandb is not installed (the message names the extra to install).
    """

    def __init__(self, output_dir: str, resume: ResumePoint | None = None,
                 output_fname: str = "progress.txt"):
        try:
            import wandb
        except ImportError as e:
            raise ImportError("Logger(): output format 'wandb' needs the wandb package, which "
                              "is not installed; pip install 'spinfast[wandb]' or drop "
                              "'wandb' from formats") from e
        id_path = os.path.join(output_dir, "wandb_run_id.txt")
        run_id = None
        if resume is not None and os.path.exists(id_path):
            with open(id_path) as f:
                run_id = f.read().strip() or None
        os.makedirs(output_dir, exist_ok=True)
        self.run = wandb.init(dir=output_dir, project=os.environ.get("WANDB_PROJECT", "spinfast"),
                              name=os.path.basename(os.path.normpath(output_dir)), id=run_id,
                              resume="allow" if run_id else None, reinit="create_new")
        if run_id is None:
            tmp = id_path + ".tmp"
            with open(tmp, "w") as f:
                f.write(self.run.id + "\n")
            os.replace(tmp, id_path)
        self._headers: list[str] = []

    def write_row(self, row: Row) -> None:
        """Log the row's numeric columns at ``row.step``."""
        data = {}
        for key in row.headers:
            v = row.values.get(key)
            if type(v) is float or type(v) is int:
                data[key] = v
            elif isinstance(v, numbers.Real) and not isinstance(v, (str, bytes)):
                data[key] = float(v)
        self.run.log(data, step=row.step)

    def write_config(self, config: Any, text: str) -> None:
        """Set the run's config to ``config`` (a JSON-safe dict, as config.json holds)."""
        if isinstance(config, dict):
            self.run.config.update(config, allow_val_change=True)
        else:
            self.run.config.update({"config": config}, allow_val_change=True)

    def close(self) -> None:
        """Finish the run (wandb uploads or, offline, closes its files); once."""
        if self.run is not None:
            self.run.finish()
            self.run = None
