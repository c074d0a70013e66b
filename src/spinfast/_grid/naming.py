"""Where an experiment writes: :func:`setup_logger_kwargs` (re-exported by
:mod:`spinfast.run_utils`, as Spinning Up has it)."""

from __future__ import annotations

import os
import os.path as osp
import time

from spinfast import user_config

__all__ = ["setup_logger_kwargs"]


def setup_logger_kwargs(exp_name, seed=None, data_dir=None, datestamp=False):
    """Return ``dict(output_dir=..., exp_name=exp_name)`` for a Logger.

    Folder layout (``data_dir`` defaults to ``user_config.DEFAULT_DATA_DIR``):

    - no seed: ``data_dir/exp_name``
    - seed: ``data_dir/exp_name/exp_name_s<seed>``
    - datestamp (or ``user_config.FORCE_DATESTAMP``): ``data_dir/<Y-m-d>_exp_name`` and, with a
      seed, ``.../<Y-m-d_H-M-S>-exp_name_s<seed>`` inside it.

    Args:
        exp_name: experiment name.
        seed: seed of the run, or None.
        data_dir: folder holding all experiments.
        datestamp: prefix folder names with the date (and time).

    Returns:
        dict with keys ``output_dir`` and ``exp_name``.

    Raises:
        TypeError: ``exp_name`` is not a string.
    """
    if not isinstance(exp_name, str):
        raise TypeError(f"setup_logger_kwargs(): exp_name must be a string, got {exp_name!r}; "
                        f"pass the experiment's name")
    datestamp = datestamp or user_config.FORCE_DATESTAMP
    relpath = (time.strftime("%Y-%m-%d_") if datestamp else "") + exp_name
    if seed is not None:
        if datestamp:
            subfolder = time.strftime("%Y-%m-%d_%H-%M-%S") + "-" + exp_name + "_s" + str(seed)
        else:
            subfolder = exp_name + "_s" + str(seed)
        relpath = osp.join(relpath, subfolder)
    data_dir = os.fspath(data_dir) if data_dir else user_config.DEFAULT_DATA_DIR
    return dict(output_dir=osp.join(data_dir, relpath), exp_name=exp_name)
