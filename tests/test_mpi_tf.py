"""mpi_tf under real mpiexec: TF1 graphs and TF2 eager/tf.function, against one process."""

from __future__ import annotations

import json

import numpy as np
import pytest
from conftest import Launches, load_mpi_module

pytestmark = pytest.mark.mpi

# The program: tests/programs/tf_cases.py (data and initial weights in tf_data.py).
DATA = load_mpi_module("tf_data")
CASES = ("tf1-1", "tf1-3", "tf2-eager", "tf2-function", "shapes")


@pytest.fixture(scope="module")
def cases(tmp_path_factory):
    """The folder of one ``mpiexec -n 2`` launch of tf_cases.py with every case (TensorFlow
    is imported once per rank, not once per case)."""
    return Launches(tmp_path_factory, "tf_cases", timeout=300)(2, *CASES)[0]


def reference(size):
    import tensorflow as tf

    w0, w1 = DATA.init(seed=0)
    W0, W1 = tf.Variable(w0), tf.Variable(w1)
    opt = tf.keras.optimizers.Adam(learning_rate=0.05)
    for _ in range(6):
        grads = []
        for rank in range(size):
            X, Y = DATA.data(rank)
            with tf.GradientTape() as tape:
                loss = tf.reduce_mean((tf.matmul(tf.tanh(tf.matmul(X, W0)), W1) - Y) ** 2)
            grads.append(tape.gradient(loss, [W0, W1]))
        mean = [sum(g[i] for g in grads) / size for i in range(2)]
        opt.apply_gradients(zip(mean, [W0, W1]))
    return np.concatenate([W0.numpy().ravel(), W1.numpy().ravel()])


def reference_tf1(size):
    """One process, TF1 graph: per-rank gradients averaged by hand, then plain TF1 Adam."""
    import tensorflow as tf

    tf1 = tf.compat.v1
    graph = tf.Graph()
    with graph.as_default():
        x = tf1.placeholder(tf.float32, [None, 3])
        y = tf1.placeholder(tf.float32, [None, 1])
        w0, w1 = DATA.init(seed=0)
        W0, W1 = tf1.Variable(w0), tf1.Variable(w1)
        loss = tf.reduce_mean((tf.matmul(tf.tanh(tf.matmul(x, W0)), W1) - y) ** 2)
        grads = tf.gradients(loss, [W0, W1])
        g_in = [tf1.placeholder(tf.float32, g.shape) for g in grads]
        opt = tf1.train.AdamOptimizer(learning_rate=0.05)
        train = opt.apply_gradients(zip(g_in, [W0, W1]))
        sess = tf1.Session(graph=graph)
        sess.run(tf1.global_variables_initializer())
        for _ in range(6):
            per_rank = [sess.run(grads, dict(zip((x, y), DATA.data(r))))
                        for r in range(size)]
            mean = [sum(g[i] for g in per_rank) / size for i in range(2)]
            sess.run(train, dict(zip(g_in, mean)))
        return np.concatenate([v.ravel() for v in sess.run([W0, W1])])


@pytest.mark.slow
@pytest.mark.parametrize("sync_every", [1, 3])
def test_tf1_graph_training_matches_single_process(cases, sync_every):
    name = f"tf1_{sync_every}"
    r0, r1 = (np.load(cases / f"{name}_rank{r}.npy") for r in range(2))
    np.testing.assert_array_equal(r0, r1)
    np.testing.assert_allclose(r0, reference_tf1(2), rtol=1e-5, atol=1e-6)
    if sync_every > 1:  # the check after sync_every steps named the divergence on each rank
        assert [json.loads((cases / f"{name}_diverged{r}.json").read_text())
                for r in range(2)] == [True, True]
    else:  # the step after rank 1 diverged left every rank with rank 0's parameters
        a0, a1 = (np.load(cases / f"{name}_repaired_rank{r}.npy") for r in range(2))
        np.testing.assert_array_equal(a0, a1)
        assert np.load(cases / f"{name}_changed_rank1.npy").all()  # a real step happened too


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["eager", "function"])
def test_tf2_training_matches_single_process(cases, mode):
    r0, r1 = (np.load(cases / f"tf2_{mode}_rank{r}.npy") for r in range(2))
    np.testing.assert_array_equal(r0, r1)
    np.testing.assert_allclose(r0, reference(2), rtol=1e-5, atol=1e-6)
    a0, a1 = (np.load(cases / f"tf2_{mode}_repaired_rank{r}.npy") for r in range(2))
    np.testing.assert_array_equal(a0, a1)  # rank 1's divergence repaired from rank 0
    assert not np.array_equal(a0, r0)


def test_single_process_optimizers_are_plain_adam():
    import tensorflow as tf

    from spinfast.mpi_tf import MpiAdam, sync_all_params

    v = tf.Variable([1.0, 2.0])
    plain = tf.Variable([1.0, 2.0])
    opt, ref = MpiAdam(learning_rate=0.1), tf.keras.optimizers.Adam(learning_rate=0.1)
    for _ in range(3):
        opt.apply_gradients([(tf.constant([0.5, -1.0]), v)])
        ref.apply_gradients([(tf.constant([0.5, -1.0]), plain)])
    np.testing.assert_array_equal(v.numpy(), plain.numpy())
    assert sync_all_params([v]) is None
    with pytest.raises(ValueError, match="sync_every must be an int >= 0"):
        MpiAdam(sync_every=-1)
    with pytest.raises(ValueError, match="in eager mode pass the variables"):
        sync_all_params()


def test_result_arrays_are_aligned_for_tensorflow_and_reused_only_when_free():
    """TensorFlow turns a numpy_function's 64-byte-aligned outputs into tensors without a copy
    (checked here with TensorFlow itself); the averager's result arrays are all aligned, and
    their buffer is handed out again only once no result array refers to it."""
    import tensorflow as tf

    from spinfast.mpi_tf import _Averager

    tf1 = tf.compat.v1
    averager = _Averager()
    inputs = [np.ones((3, 5), np.float32), np.ones(7, np.float64), np.ones((), np.float32),
              np.ones(33, np.float32)]
    out = averager._outputs(inputs)
    assert [(o.shape, o.dtype) for o in out] == [(a.shape, a.dtype) for a in inputs]
    assert all(o.ctypes.data % 64 == 0 for o in out)
    spans = sorted((o.ctypes.data, o.ctypes.data + o.nbytes) for o in out)
    assert all(a[1] <= b[0] for a, b in zip(spans, spans[1:]))  # no overlap
    again = averager._outputs(inputs)  # ``out`` still alive: another buffer
    assert again[0].ctypes.data != out[0].ctypes.data
    address = out[0].ctypes.data
    del out, again
    assert averager._outputs(inputs)[0].ctypes.data == address  # free again: reused

    graph = tf.Graph()
    with graph.as_default():
        arrays = averager._outputs(inputs)
        made = tf.numpy_function(lambda: arrays, [], [tf.float32, tf.float64, tf.float32,
                                                      tf.float32], stateful=True)
        addresses = [tf.numpy_function(lambda t: np.int64(t.ctypes.data), [made[i]],
                                       tf.int64, stateful=True)
                     for i in (0, 1, 3)]  # (the 0-d one would arrive as a numpy scalar)
        got = tf1.Session(graph=graph).run(addresses)
    assert [int(g) for g in got] == [arrays[i].ctypes.data for i in (0, 1, 3)]


@pytest.mark.slow
def test_tf1_sync_sees_shapes_not_only_sizes(cases):
    """A variable of the same size but another shape on one rank is named on every rank, and
    no variable is overwritten."""
    for rank in range(2):
        out = json.loads((cases / f"shapes{rank}.json").read_text())
        assert ("FlatBuffer.bcast(): array 0 differs between ranks: rank 0 has float32 (3, 8), "
                "rank 1 has float32 (8, 3)") in (out["error"] or ""), out
        assert out["kept"] == float(rank)
