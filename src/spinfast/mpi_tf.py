"""TensorFlow + MPI, as ``spinup.utils.mpi_tf``, on spinfast's flat-buffer engine.

Two optimizers average gradients over MPI ranks with one hop out of TensorFlow per step
(``tf.numpy_function``) and few collectives (the compiled engine packs small tensors into one
buffer and reduces large ones in place):

* :class:`MpiAdamOptimizer`: TF1-style graphs through ``tf.compat.v1`` (placeholders,
  ``Session``, ``minimize`` or ``compute_gradients``/``apply_gradients``), as Spinning Up.
* :class:`MpiAdam`: TF2 eager and ``tf.function`` code (a Keras Adam whose ``apply`` /
  ``apply_gradients`` averages the gradients first).

After each update every rank's parameters equal rank 0's, as with Spinning Up
(``sync_every=1``, the default). Spinning Up broadcasts all parameters every step; here each
step compares a 64-bit checksum of the updated parameters over ranks (reading them once, one
tiny collective) and broadcasts them from rank 0 only when some rank differs (for example the
first step of ranks that started unsynced). Ranks that start synced and apply the same averaged
gradients stay bit-identical, so the broadcast is rarely needed; the outcome is the same.
``sync_every=N`` (N > 1) only verifies, every N steps, and raises ``RuntimeError`` on every
rank if the parameters differ (baselines' MpiAdam does this); ``sync_every=0`` never checks.

Importing this module imports TensorFlow.
"""

from __future__ import annotations

import sys

import numpy as np
import tensorflow as tf

from spinfast import mpi_tools
from spinfast._flat import FlatBuffer, checksum
from spinfast._mpi import compression as _compression

__all__ = ["MpiAdamOptimizer", "MpiAdam", "sync_all_params", "sync_params", "flat_concat",
           "assign_params_from_flat"]

tf1 = tf.compat.v1


def flat_concat(xs):
    """Flatten and concatenate a list of tensors into one 1-D tensor."""
    return tf.concat([tf.reshape(x, (-1,)) for x in xs], axis=0)


def assign_params_from_flat(x, params):
    """Return an op assigning the 1-D tensor ``x`` to the variables ``params`` (TF1 graphs)."""
    splits = tf.split(x, [int(np.prod(p.shape.as_list())) for p in params])
    new_params = [tf.reshape(s, p.shape) for s, p in zip(splits, params)]
    return tf.group([p.assign(n) for p, n in zip(params, new_params)])


class _Averager:
    """Average (or broadcast) lists of arrays handed over by ``tf.numpy_function``.

    The arrays TensorFlow hands over are read-only views of its tensors, and the results become
    TensorFlow's output tensors: views into one buffer per dtype. An average reads the inputs
    where they lie and writes the results (``FlatBuffer.allreduce(..., sources=inputs)``); a
    broadcast copies the root's inputs into its result arrays, and the engine moves those (the
    other ranks receive into theirs directly), so its layout check sees every variable's shape.

    Every result array starts on a 64-byte boundary: TensorFlow then makes its output tensors
    from the arrays' memory instead of copying them (4 MB per step for a 1M-parameter model,
    into freshly allocated memory). The buffers are reused once nothing refers to them any more
    (TensorFlow has dropped the tensors made from their views): a fresh 4 MB buffer every step
    costs its page faults again, which here is three times the copy itself.
    """

    _POOL = 4  # buffers kept per (dtype, size); beyond that, fresh ones
    _ALIGN = 64  # bytes: TensorFlow aliases numpy outputs aligned to this, copies the others

    def __init__(self, compress=None, where="MpiAdam"):
        self.grads = FlatBuffer()
        self.params = FlatBuffer()
        self._pool: dict = {}
        self._compressor = compress and _compression.Compressor(compress, where)

    def _flat(self, dtype, n):
        """A buffer of n elements of dtype, 64-byte aligned, that nothing else refers to."""
        pool = self._pool.setdefault((dtype, n), [])
        for raw in pool:  # (numpy views of views keep the owner as their base: count on it)
            if sys.getrefcount(raw) <= 3:  # the pool, the loop variable, the argument
                return self._aligned(raw, n)
        raw = np.empty(n + self._ALIGN // np.dtype(dtype).itemsize, dtype)
        if len(pool) < self._POOL:
            pool.append(raw)
        return self._aligned(raw, n)

    def _aligned(self, raw, n):
        skip = (-raw.ctypes.data % self._ALIGN) // raw.itemsize
        return raw[skip:skip + n]

    def _outputs(self, arrays):
        """One result array per input: views into one buffer per dtype."""
        out = [None] * len(arrays)
        by_dtype: dict = {}
        for i, a in enumerate(arrays):
            by_dtype.setdefault(a.dtype, []).append(i)
        for dtype, idx in by_dtype.items():
            step = self._ALIGN // np.dtype(dtype).itemsize  # each array padded to 64 bytes
            padded = [-(-arrays[i].size // step) * step for i in idx]
            flat = self._flat(dtype, sum(padded))
            offset = 0
            for i, n in zip(idx, padded):
                out[i] = flat[offset:offset + arrays[i].size].reshape(arrays[i].shape)
                offset += n
        return out

    def average(self, *arrays):
        out = self._outputs(arrays)
        if self._compressor:  # float32 as 16-bit values, float64 as they are
            _compression.average_arrays(self._compressor, mpi_tools.comm_world(), out,
                                        sources=list(arrays), agree=self.grads)
            return out
        # TensorFlow's read-only arrays are the inputs, read where they lie (no copy first).
        self.grads.allreduce(mpi_tools.comm_world(), out, op="mean", sources=list(arrays))
        return out

    def differ(self, *arrays):
        """Whether ``arrays`` differ on some rank (the same answer on every rank)."""
        return np.bool_(not _same_everywhere(arrays))

    def broadcast(self, *arrays):
        out = self._outputs(arrays)
        if mpi_tools.proc_id() == 0:  # the others receive into ``out`` directly
            for o, a in zip(out, arrays):
                np.copyto(o, a)
        mpi_tools.broadcast_arrays(out, root=0, buffer=self.params)
        return out


def _same_everywhere(arrays) -> bool:
    """Whether every rank holds the same bytes in ``arrays`` (one tiny collective)."""
    comm = mpi_tools.comm_world()
    if comm is None:
        return True
    from mpi4py import MPI

    c = checksum([np.ascontiguousarray(a) for a in arrays])
    both = np.array([c, -c], dtype=np.int64)  # MAX of (c, -c): equal iff every rank has c
    comm.Allreduce(MPI.IN_PLACE, both, op=MPI.MAX)
    return bool(both[0] == -both[1])


def _verify_synced(arrays, where: str) -> None:
    """Raise RuntimeError on every rank if ``arrays`` differ between ranks (one collective)."""
    if not _same_everywhere(arrays):
        raise RuntimeError(f"{where}: parameters differ between MPI ranks; start from synced "
                           f"parameters (sync_all_params) or use sync_every=1")


def _check_sync_every(sync_every) -> int:
    if isinstance(sync_every, bool) or not isinstance(sync_every, int) or sync_every < 0:
        raise ValueError(f"MpiAdam: sync_every must be an int >= 0, got {sync_every!r}; 1 "
                         f"broadcasts every step, N > 1 verifies every N steps, 0 never")
    return sync_every


def _average_graph_grads(averager, grads):
    """Average dense gradient tensors with one ``numpy_function`` (None passes through)."""
    idx = [i for i, g in enumerate(grads) if g is not None]
    if mpi_tools.num_procs() == 1 or not idx:
        return list(grads)
    dense = [tf.convert_to_tensor(grads[i]) for i in idx]  # IndexedSlices -> dense
    avg = tf.numpy_function(averager.average, dense, [g.dtype for g in dense], stateful=True,
                            name="MpiAverageGradients")
    out = list(grads)
    for i, a, g in zip(idx, avg, dense):
        a.set_shape(g.shape)
        out[i] = a
    return out


class MpiAdamOptimizer(tf1.train.AdamOptimizer):
    """Adam for TF1-style graphs whose gradients are averaged over MPI ranks.

    Takes ``tf.compat.v1.train.AdamOptimizer``'s keyword arguments, plus ``sync_every``
    (see the module docstring) and ``compress`` (None, or ``'bf16'``/``'fp16'``: float32
    gradients travel as 16-bit values with error feedback, see :doc:`compression`; the same on
    every rank). Use it as any TF1 optimizer: ``minimize(loss)`` or ``compute_gradients``
    then ``apply_gradients``. Run ``sync_all_params()`` once after initialising the variables
    so that every rank starts from rank 0's values.
    """

    def __init__(self, sync_every=1, compress=None, **kwargs):
        self.sync_every = _check_sync_every(sync_every)
        self._averager = _Averager(_compression.check_compress(compress, "MpiAdamOptimizer"),
                                   "MpiAdamOptimizer")
        self._steps = 0
        super().__init__(**kwargs)

    def compute_gradients(self, loss, var_list=None, **kwargs):
        """Compute gradients as Adam does, then average them over ranks (one hop, in graph)."""
        grads_and_vars = super().compute_gradients(loss, var_list, **kwargs)
        grads = _average_graph_grads(self._averager, [g for g, _ in grads_and_vars])
        return list(zip(grads, [v for _, v in grads_and_vars]))

    def apply_gradients(self, grads_and_vars, global_step=None, name=None):
        """Apply Adam's update, then sync (or verify) the updated variables across ranks."""
        grads_and_vars = list(grads_and_vars)
        opt = super().apply_gradients(grads_and_vars, global_step, name)
        variables = [v for g, v in grads_and_vars if g is not None]
        if mpi_tools.num_procs() == 1 or self.sync_every == 0 or not variables:
            return opt
        with tf.control_dependencies([opt]):
            if self.sync_every == 1:
                sync = _sync_if_differ(self._averager, variables,
                                       [v.read_value() for v in variables])
            else:
                sync = tf.numpy_function(self._maybe_verify, [v.read_value() for v in variables],
                                         [], stateful=True, name="MpiVerifySync")
        return tf.group([opt, sync])

    def _maybe_verify(self, *arrays):
        self._steps += 1
        if self._steps % self.sync_every == 0:
            _verify_synced(arrays, "MpiAdamOptimizer")
        return []


def _sync_if_differ(averager, variables, values):
    """An op: compare ``values`` (of ``variables``) over ranks; if they differ, broadcast
    rank 0's into ``variables``. Every rank takes the same branch."""
    differ = tf.numpy_function(averager.differ, values, tf.bool, stateful=True,
                               name="MpiCheckSync")
    differ.set_shape([])

    def repair():
        synced = tf.numpy_function(averager.broadcast, values,
                                   [tf.as_dtype(v.dtype) for v in variables], stateful=True,
                                   name="MpiBroadcastParams")
        assigns = [v.assign(tf.reshape(a, v.shape)) for v, a in zip(variables, synced)]
        with tf.control_dependencies(assigns):
            return tf.constant(True)

    return tf.cond(differ, repair, lambda: tf.constant(False))


def sync_params(params, _averager=None):
    """Return an op setting ``params`` (TF1 variables) to rank 0's values on every rank."""
    params = list(params)
    if mpi_tools.num_procs() == 1 or not params:
        return tf.no_op()
    averager = _averager or _Averager()
    values = tf.numpy_function(averager.broadcast, [p.read_value() for p in params],
                               [p.dtype.base_dtype for p in params], stateful=True,
                               name="MpiBroadcastParams")
    return tf.group([p.assign(tf.reshape(v, p.shape)) for p, v in zip(params, values)])


def _variables_of(obj):
    if obj is None:
        return None
    if isinstance(obj, tf.Variable):
        return [obj]
    if hasattr(obj, "variables") and not isinstance(obj, (list, tuple)):
        return list(obj.variables)  # tf.Module, Keras model or layer
    return list(obj)


def sync_all_params(variables=None):
    """Make every rank's variables equal to rank 0's.

    TF1 graph mode with no argument: return an op for ``tf.compat.v1.global_variables()``, as
    Spinning Up (run it once after initialising). Eager mode (TF2): broadcast ``variables``
    now; they may be a list of ``tf.Variable``, a ``tf.Module`` or a Keras model.

    Raises:
        ValueError: eager mode without ``variables``; variables differing between ranks.
    """
    if not tf.executing_eagerly():
        params = _variables_of(variables)
        return sync_params(tf1.global_variables() if params is None else params)
    params = _variables_of(variables)
    if params is None:
        raise ValueError("sync_all_params(): in eager mode pass the variables to sync (a list "
                         "of tf.Variable, a tf.Module or a Keras model)")
    if mpi_tools.num_procs() == 1 or not params:
        return None
    # The root sends what ``numpy()`` gives (already a fresh, writable copy) and keeps its
    # values; the others receive into empty arrays and assign them: one copy per side.
    root = mpi_tools.proc_id() == 0
    arrays = [np.asarray(p.numpy()) if root else np.empty(tuple(p.shape), p.dtype.as_numpy_dtype)
              for p in params]
    mpi_tools.broadcast_arrays(arrays, root=0)
    if not root:
        for p, a in zip(params, arrays):
            p.assign(a)
    return None


class MpiAdam(tf.keras.optimizers.Adam):
    """Adam for TF2 (eager and ``tf.function``) whose gradients are averaged over MPI ranks.

    Takes Keras ``Adam``'s arguments plus ``sync_every`` (see the module docstring) and
    ``compress`` (as :class:`MpiAdamOptimizer`'s). Gradients passed to
    ``apply_gradients(zip(grads, vars))`` or ``apply(grads, vars)`` are averaged over ranks
    (one ``numpy_function`` hop; None gradients pass through) before the update. Call
    ``sync_all_params(model)`` once before training.
    """

    def __init__(self, *args, sync_every=1, compress=None, **kwargs):
        compress = _compression.check_compress(compress, "MpiAdam")
        super().__init__(*args, **kwargs)
        self.sync_every = _check_sync_every(sync_every)
        self._averager = _Averager(compress)
        self._mpi_steps = 0

    def apply(self, grads, trainable_variables=None):
        grads = list(grads)
        if trainable_variables is None:
            trainable_variables = self._trainable_variables
        trainable_variables = list(trainable_variables)
        grads = _average_graph_grads(self._averager, grads)
        result = super().apply(grads, trainable_variables)
        updated = [v for g, v in zip(grads, trainable_variables) if g is not None]
        if mpi_tools.num_procs() > 1 and self.sync_every and updated:
            if self.sync_every == 1:
                _sync_if_differ(self._averager, updated,
                                [tf.convert_to_tensor(v) for v in updated])
            else:
                tf.numpy_function(self._maybe_verify, [tf.convert_to_tensor(v) for v in updated],
                                  [], stateful=True)
        return result

    def _maybe_verify(self, *arrays):
        self._mpi_steps += 1
        if self._mpi_steps % self.sync_every == 0:
            _verify_synced(arrays, "MpiAdam")
        return []
