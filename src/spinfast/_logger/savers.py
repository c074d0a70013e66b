"""What :meth:`Logger.save_state <spinfast.logx.Logger.save_state>` writes, and reading it back.

:class:`StateSaving` is the base class of :class:`spinfast.logx.Logger` that holds
``save_state``, ``load_state`` and the framework model savers: ``setup_tf_saver``,
``setup_tf2_saver`` and ``setup_pytorch_saver`` say what to save; each ``save_state`` then
writes the state (``vars.pkl``), its resume record (:mod:`spinfast._logger.resume`) and the model
(``tf1_save``, ``tf2_save``, ``pyt_save``, with the iteration's number if given) through
temporary names, so a crash never leaves half a file. :func:`restore_tf_graph` and
:func:`restore_tf2_model` load the models back. TensorFlow, PyTorch and joblib are imported
when used.
"""

from __future__ import annotations

import os
import os.path as osp
import pickle
import warnings

from spinfast import mpi_tools
from spinfast._logger import resume as _resume
from spinfast._logger.files import atomic_dir, atomic_path

__all__ = ["StateSaving", "save_tf1", "save_tf2", "save_pytorch", "restore_tf_graph",
           "restore_tf2_model"]


class _Unpicklable(Exception):
    """``save_state``'s state could not be pickled (the pickling error is its argument)."""


class StateSaving:
    """The saving of state and models of :class:`spinfast.logx.Logger` (one of its bases).

    It uses the logger's ``output_dir`` and ``_run_dir`` (the run's folder, on rank 0 and on
    every rank), ``_rows_dumped``, ``_next_step`` and ``log_headers`` (what the resume record
    holds).
    """

    def save_state(self, state_dict, itr=None):
        """Save ``state_dict`` with joblib as ``vars.pkl`` (``itr`` None) or ``vars<itr>.pkl``.

        Then saves the framework model if a saver is set up. Files are written to a temporary
        name and renamed, so a crash or an error never leaves a truncated file and never
        touches the checkpoint saved before. A vanished output folder is created again.

        The checkpoint also records how many rows were dumped so far (``spinfast_resume.json``):
        a run resumed from it (``resume=True``) keeps those rows. Call it after the
        ``dump_tabular`` of the epoch it checkpoints.

        Warns:
            RuntimeWarning: ``state_dict`` cannot be pickled (what pickle raises for it:
                ``pickle.PicklingError``, ``TypeError``, ``AttributeError``); the run goes
                on, the models are still saved, and the state file and the resume record
                stay those of the last checkpoint.

        Raises:
            OSError: the state file or the resume record could not be written (a full disk,
                a folder not writable); the last checkpoint stays whole, and a run resumed
                from the folder continues from it.
        """
        if mpi_tools.proc_id() == 0:
            import joblib  # loaded on first save: it costs more to import than all of logx

            os.makedirs(self.output_dir, exist_ok=True)
            fname = "vars.pkl" if itr is None else f"vars{itr}.pkl"
            try:  # the resume record is the commit point of the state file (see load_state)
                with atomic_path(osp.join(self.output_dir, fname),
                                 lambda tmp: self._write_resume_record(fname, tmp)) as tmp:
                    try:
                        joblib.dump(state_dict, tmp)
                    except (pickle.PicklingError, TypeError, AttributeError) as exc:
                        raise _Unpicklable(exc) from exc  # leave atomic_path: nothing renamed
            except _Unpicklable as failed:
                exc = failed.args[0]
                warnings.warn(f"save_state(): could not pickle state_dict ({type(exc).__name__}: "
                              f"{exc}); {fname} keeps the last state saved. Leave objects that "
                              f"cannot be pickled (locks, generators, lambdas) out of "
                              f"state_dict", RuntimeWarning, stacklevel=2)
            if hasattr(self, "tf_saver_elements"):
                self._tf_simple_save(itr)
            if hasattr(self, "tf2_saver_elements"):
                self._tf2_simple_save(itr)
            if hasattr(self, "pytorch_saver_elements"):
                self._pytorch_simple_save(itr)

    def _write_resume_record(self, state_file, pending):
        """Record the rows dumped so far with the state file being saved (``pending``, the
        complete file under its temporary name, is renamed to ``state_file`` next)."""
        _resume.write_record(self.output_dir, self._rows_dumped, self._next_step,
                             self.log_headers, state_file, pending, self._rates.last)

    def load_state(self):
        """Return the state dict of the run's last :meth:`save_state` (None if none).

        On a resumed run (``resume=True``) that is the checkpoint the run continues from;
        every rank reads it. The rows kept by the resume are always those dumped before that
        state was saved, even if the run was killed in the middle of ``save_state``.
        """
        return _resume.load_checkpoint(self.output_dir or self._run_dir)

    def setup_tf_saver(self, sess, inputs, outputs):
        """Save a TF1 graph (through ``tf.compat.v1``) with each :meth:`save_state`.

        Writes ``tf1_save`` (or ``tf1_save<itr>``) with ``simple_save``, plus
        ``model_info.pkl`` mapping the keys of ``inputs``/``outputs`` to tensor names, which
        :func:`restore_tf_graph` reads back.

        Args:
            sess: the ``tf.compat.v1.Session`` holding the variables.
            inputs: ``{key: tensor}`` of the model's inputs (placeholders).
            outputs: ``{key: tensor}`` of the model's outputs.
        """
        self.tf_saver_elements = dict(session=sess, inputs=inputs, outputs=outputs)
        self.tf_saver_info = {"inputs": {k: v.name for k, v in inputs.items()},
                              "outputs": {k: v.name for k, v in outputs.items()}}

    def _tf_simple_save(self, itr=None):
        if mpi_tools.proc_id() == 0:
            save_tf1(self.output_dir, self.tf_saver_elements, self.tf_saver_info, itr)

    def setup_tf2_saver(self, model):
        """Save a TF2 model (a ``tf.Module`` or Keras model) with each :meth:`save_state`.

        Writes a SavedModel to ``tf2_save`` (or ``tf2_save<itr>``); load it with
        :func:`restore_tf2_model`.
        """
        self.tf2_saver_elements = model

    def _tf2_simple_save(self, itr=None):
        if mpi_tools.proc_id() == 0:
            save_tf2(self.output_dir, self.tf2_saver_elements, itr)

    def setup_pytorch_saver(self, what_to_save):
        """Save ``what_to_save`` (a module or any torch-picklable object) with each save_state.

        Files go to ``<output_dir>/pyt_save/model.pt`` (or ``model<itr>.pt``).
        """
        self.pytorch_saver_elements = what_to_save

    def _pytorch_simple_save(self, itr=None):
        if mpi_tools.proc_id() == 0:
            save_pytorch(self.output_dir, self.pytorch_saver_elements, itr)


def _numbered(name, itr):
    return name + ("%d" % itr if itr is not None else "")


def save_tf1(output_dir, elements, info, itr=None):
    """Save a TF1 graph with ``simple_save`` to ``tf1_save[itr]``, plus ``model_info.pkl``.

    Args:
        output_dir: the run's folder.
        elements: ``dict(session=, inputs=, outputs=)`` as given to ``setup_tf_saver``.
        info: ``{"inputs": {key: tensor name}, "outputs": {...}}`` (``model_info.pkl``).
        itr: the iteration's number in the folder name, or None.
    """
    import joblib
    import tensorflow as tf

    with atomic_dir(osp.join(output_dir, _numbered("tf1_save", itr))) as tmp:
        with elements["session"].graph.as_default():
            tf.compat.v1.saved_model.simple_save(export_dir=tmp, **elements)
        joblib.dump(info, osp.join(tmp, "model_info.pkl"))


def save_tf2(output_dir, model, itr=None):
    """Save a TF2 model (``tf.saved_model.save``) to ``tf2_save[itr]`` in ``output_dir``."""
    import tensorflow as tf

    with atomic_dir(osp.join(output_dir, _numbered("tf2_save", itr))) as tmp:
        tf.saved_model.save(model, tmp)


def save_pytorch(output_dir, what, itr=None):
    """Save ``what`` with ``torch.save`` to ``pyt_save/model[itr].pt`` in ``output_dir``."""
    import torch

    fpath = osp.join(output_dir, "pyt_save")
    os.makedirs(fpath, exist_ok=True)
    fname = osp.join(fpath, _numbered("model", itr) + ".pt")
    with warnings.catch_warnings():
        # torch warns about source files of saved modules; Spinning Up silences it too.
        warnings.simplefilter("ignore")
        with atomic_path(fname) as tmp:
            torch.save(what, tmp)


def restore_tf_graph(sess, fpath):
    """Load a TF1 graph saved by :meth:`Logger.setup_tf_saver` into ``sess``.

    Args:
        sess: a ``tf.compat.v1.Session`` whose graph receives the saved model.
        fpath: a ``tf1_save`` (or ``tf1_save<itr>``) folder.

    Returns:
        ``{key: tensor}`` for every input and output given to ``setup_tf_saver``.

    Raises:
        FileNotFoundError: ``fpath`` holds no saved model.
    """
    import joblib
    import tensorflow as tf

    info_path = osp.join(fpath, "model_info.pkl")
    if not osp.isfile(info_path):
        raise FileNotFoundError(f"restore_tf_graph(): no model_info.pkl in {fpath!r}; pass a "
                                f"tf1_save folder written by Logger.setup_tf_saver")
    tf1 = tf.compat.v1
    with sess.graph.as_default():
        tf1.saved_model.loader.load(sess, [tf1.saved_model.tag_constants.SERVING], fpath)
    model_info = joblib.load(info_path)
    graph = sess.graph
    model = {k: graph.get_tensor_by_name(v) for k, v in model_info["inputs"].items()}
    model.update({k: graph.get_tensor_by_name(v) for k, v in model_info["outputs"].items()})
    return model


def restore_tf2_model(fpath):
    """Load a TF2 model saved by :meth:`Logger.setup_tf2_saver` (``tf.saved_model.load``).

    Returns the restored object: its ``tf.function`` methods (``__call__`` of a Keras model or
    any ``tf.Module`` method decorated with an input signature) can be called directly.

    Raises:
        FileNotFoundError: ``fpath`` holds no saved model.
    """
    import tensorflow as tf

    if not osp.isfile(osp.join(fpath, "saved_model.pb")):
        raise FileNotFoundError(f"restore_tf2_model(): no saved_model.pb in {fpath!r}; pass a "
                                f"tf2_save folder written by Logger.setup_tf2_saver")
    return tf.saved_model.load(fpath)
