"""Spinning Up's TF1 code on TensorFlow 2 and NumPy 2.4.

Modules under ``spinup.algos.tf1`` and ``spinup.exercises.tf1`` run with an ``__import__`` of
their own (their ``__builtins__`` is swapped, nothing else in the process changes):

- ``import tensorflow as tf`` gives ``tf.compat.v1`` with TF2 behaviour disabled, plus a
  ``tf.layers.dense`` of compat's own (TensorFlow 2.16+ has no ``tf.compat.v1.layers``
  without the ``tf-keras`` package);
- ``import numpy as np`` gives numpy whose ``np.zeros`` arrays take one-element values in
  scalar slots, as their buffers need on NumPy 2.4+.

:data:`TF1_BUILTINS` is that ``__builtins__``; :mod:`spinfast.compat._scripts` gives it to
Spinning Up's ``utils/test_policy.py`` run as a script too.
"""

from __future__ import annotations

import builtins
import importlib.machinery
import types

# spinup/algos/tf1/ppo/ppo.py:2 (every TF1 module) does `import tensorflow as tf`.
TF1_PREFIXES = ("spinup.algos.tf1", "spinup.exercises.tf1")

_tf1_module = None


class _TF1Namespace(types.ModuleType):
    """``tf.compat.v1``, with the ``layers.dense`` Spinning Up's TF1 code needs."""

    def __getattr__(self, name):
        if name == "layers":
            self.layers = _tf1_layers()
            return self.layers
        if name == "contrib":
            raise AttributeError("tf.contrib does not exist in TensorFlow 2; spinfast.compat "
                                 "cannot provide it")
        import tensorflow as tf

        return getattr(tf.compat.v1, name)


def _tf1_layers():
    """``tf.layers`` for Spinning Up's TF1 code: ``dense``, the one layer it uses.

    TensorFlow 2.16+ keeps ``tf.compat.v1.layers`` only in the separate ``tf-keras`` package,
    which requires the full ``tensorflow`` distribution beside ``tensorflow-cpu``. This is
    ``tf.compat.v1.layers.dense`` in graph terms: variables ``kernel`` (Glorot uniform) and
    ``bias`` (zeros) in a variable scope named ``dense``, ``dense_1``, ... as tf.layers names
    them, then ``activation(inputs @ kernel + bias)``.
    """
    import tensorflow as tf

    tf1 = tf.compat.v1

    # spinup/algos/tf1/ppo/core.py:31 (every TF1 core.py) builds its MLPs with tf.layers.dense.
    def dense(inputs, units, activation=None, use_bias=True, kernel_initializer=None,
              bias_initializer=None, name=None, reuse=None, trainable=True):
        """Apply a fully connected layer (as ``tf.compat.v1.layers.dense``)."""
        inputs = tf.convert_to_tensor(inputs)
        dtype = inputs.dtype.base_dtype
        with tf1.variable_scope(name, default_name="dense", reuse=reuse):
            kernel = tf1.get_variable(
                "kernel", [int(inputs.shape[-1]), units], dtype=dtype, trainable=trainable,
                initializer=kernel_initializer or tf1.glorot_uniform_initializer())
            if inputs.shape.rank == 2:
                out = tf.matmul(inputs, kernel)
            else:
                out = tf.tensordot(inputs, kernel, [[inputs.shape.rank - 1], [0]])
            if use_bias:
                bias = tf1.get_variable("bias", [units], dtype=dtype, trainable=trainable,
                                        initializer=bias_initializer or tf1.zeros_initializer())
                out = tf.nn.bias_add(out, bias)
            return activation(out) if activation is not None else out

    layers = types.ModuleType("tensorflow.layers", "tf.layers for Spinning Up's TF1 code "
                              "(spinfast.compat): dense")
    layers.dense = dense
    return layers


def tf1():
    """Return the ``tensorflow`` seen by Spinning Up's TF1 modules (made once, v2 off)."""
    global _tf1_module
    if _tf1_module is None:
        import tensorflow as tf

        tf.compat.v1.disable_v2_behavior()
        tf.compat.v1.logging.set_verbosity(tf.compat.v1.logging.ERROR)
        _tf1_module = _TF1Namespace("tensorflow", "tf.compat.v1 for Spinning Up's TF1 code "
                                    "(spinfast.compat)")
    return _tf1_module


_numpy_module = None


def numpy_for_tf1():
    """Return the ``numpy`` seen by Spinning Up's TF1 modules: arrays from ``zeros`` take
    1-element values in scalar slots.

    Their buffers do ``self.val_buf[self.ptr] = v_t`` with ``v_t`` of shape ``(1,)`` (one
    ``sess.run`` row); NumPy 2.4 made that conversion of a 1-D array to a scalar an error.
    """
    global _numpy_module
    if _numpy_module is None:
        import numpy as np

        # spinup/algos/tf1/ppo/ppo.py:37 (vpg.py:37, trpo.py:41) stores a (1,) array from
        # sess.run into a scalar slot: self.val_buf[self.ptr] = val.
        class ScalarSlotArray(np.ndarray):
            """An ndarray whose scalar elements accept any one-element value."""

            def __setitem__(self, key, value):
                try:
                    np.ndarray.__setitem__(self, key, value)
                except (TypeError, ValueError):
                    arr = np.asarray(value)
                    if arr.size != 1:
                        raise
                    np.ndarray.__setitem__(self, key, arr.reshape(-1)[0])

        def zeros(shape, dtype=float, order="C", **kwargs):
            """Return ``numpy.zeros(...)`` as a :class:`ScalarSlotArray`."""
            return np.zeros(shape, dtype, order, **kwargs).view(ScalarSlotArray)

        class NumpyNamespace(types.ModuleType):
            def __getattr__(self, name):
                return getattr(np, name)

        _numpy_module = NumpyNamespace("numpy", "numpy for Spinning Up's TF1 code "
                                       "(spinfast.compat)")
        _numpy_module.zeros = zeros
        _numpy_module.ScalarSlotArray = ScalarSlotArray
    return _numpy_module


def tf1_import(name, globals=None, locals=None, fromlist=(), level=0):
    """``__import__`` of TF1 modules: ``tensorflow`` is :func:`tf1`, ``numpy`` is
    :func:`numpy_for_tf1`, the rest as usual."""
    if level == 0 and name == "tensorflow":
        return tf1()
    if level == 0 and name == "numpy" and not fromlist:
        return numpy_for_tf1()
    return builtins.__import__(name, globals, locals, fromlist, level)


#: The ``__builtins__`` of Spinning Up's TF1 modules: the usual ones, with :func:`tf1_import`.
TF1_BUILTINS = dict(vars(builtins), __import__=tf1_import)


class TF1SourceLoader(importlib.machinery.SourceFileLoader):
    """Run a Spinning Up TF1 module with :func:`tf1_import` as its ``__import__``."""

    def exec_module(self, module):
        module.__builtins__ = TF1_BUILTINS
        super().exec_module(module)


def find_spec(fullname, path):
    """Return the spec of a Spinning Up TF1 module, loaded by :class:`TF1SourceLoader`;
    None for other names."""
    if not fullname.startswith(TF1_PREFIXES):
        return None
    spec = importlib.machinery.PathFinder.find_spec(fullname, path)
    if spec is not None and type(spec.loader) is importlib.machinery.SourceFileLoader:
        spec.loader = TF1SourceLoader(fullname, spec.origin)
    return spec
