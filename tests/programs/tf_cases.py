"""mpi_tf's cases, one after another in one launch: ``tf_cases.py CASE [CASE ...]``.

TensorFlow takes seconds to import, so the test module launches this once per rank count and
each case writes its own files (starting weights differ per rank until synchronised; data and
initial weights come from ``tf_data.py``):

- ``tf1-N``: TF1 graph training with ``MpiAdamOptimizer(sync_every=N)``. Each rank's weights
  after six steps go to ``tf1_{N}_rank{rank}.npy``. Then rank 1 diverges on purpose: with N 1
  the next step repairs it (``tf1_{N}_repaired_rank{rank}.npy``, and which weights the step
  changed, ``tf1_{N}_changed_rank{rank}.npy``); otherwise the check after N steps raises and
  each rank writes whether the error named the divergence to ``tf1_{N}_diverged{rank}.json``.
- ``tf2-eager``, ``tf2-function``: TF2 training with ``MpiAdam``, weights after six steps to
  ``tf2_{mode}_rank{rank}.npy``; rank 1 diverges on purpose and one more step repairs it
  (``tf2_{mode}_repaired_rank{rank}.npy``).
- ``shapes``: TF1 ``sync_all_params`` with a variable of the same size but another shape on
  rank 1; each rank writes the error it got (None if none) and the value it kept in another
  variable to ``shapes{rank}.json``.
"""

import json
import sys

import numpy as np
import tensorflow as tf
from tf_data import data, init

from spinfast.mpi_tf import MpiAdam, MpiAdamOptimizer, sync_all_params
from spinfast.mpi_tools import proc_id

tf1 = tf.compat.v1
rank = proc_id()


def flat(values):
    return np.concatenate([v.ravel() for v in values])


def tf1_training(sync_every):
    graph = tf.Graph()
    with graph.as_default():
        x = tf1.placeholder(tf.float32, [None, 3])
        y = tf1.placeholder(tf.float32, [None, 1])
        w0, w1 = init(seed=rank)  # different per rank until synced
        W0, W1 = tf1.Variable(w0), tf1.Variable(w1)
        unused = tf1.Variable(np.zeros(2, np.float32))  # gradient None on every rank
        loss = tf.reduce_mean((tf.matmul(tf.tanh(tf.matmul(x, W0)), W1) - y) ** 2)
        opt = MpiAdamOptimizer(learning_rate=0.05, sync_every=sync_every)
        train = opt.minimize(loss, var_list=[W0, W1, unused])
        sess = tf1.Session(graph=graph)
        sess.run(tf1.global_variables_initializer())
        sess.run(sync_all_params())
        X, Y = data(rank)
        for _ in range(6):
            sess.run(train, {x: X, y: Y})
        name = f"tf1_{sync_every}"
        np.save(f"{name}_rank{rank}.npy", flat(sess.run([W0, W1])))
        if rank == 1:
            sess.run(W1.assign(W1 + 1.0))  # diverge on purpose
        if sync_every == 1:  # the next step repairs: rank 0's values
            before = flat(sess.run([W0, W1]))
            sess.run(train, {x: X, y: Y})
            after = flat(sess.run([W0, W1]))
            np.save(f"{name}_repaired_rank{rank}.npy", after)
            np.save(f"{name}_changed_rank{rank}.npy", after != before)
            return
        diverged = None
        try:
            for _ in range(sync_every):
                sess.run(train, {x: X, y: Y})
        except tf.errors.OpError as exc:
            diverged = "differ between MPI ranks" in str(exc)
        with open(f"{name}_diverged{rank}.json", "w") as f:
            json.dump(diverged, f)


def tf2_training(mode):
    w0, w1 = init(seed=rank)
    W0, W1 = tf.Variable(w0), tf.Variable(w1)
    extra = tf.Variable(np.zeros(2, np.float32))
    scalar = tf.Variable(np.float64(rank + 0.5))  # a 0-d variable: rank 0's value everywhere
    sync_all_params([W0, W1, extra, scalar])
    assert scalar.shape == () and scalar.numpy() == 0.5, scalar
    opt = MpiAdam(learning_rate=0.05)
    X, Y = data(rank)

    def step():
        with tf.GradientTape() as tape:
            loss = tf.reduce_mean((tf.matmul(tf.tanh(tf.matmul(X, W0)), W1) - Y) ** 2)
        grads = tape.gradient(loss, [W0, W1, extra])
        opt.apply_gradients(zip(grads, [W0, W1, extra]))

    if mode == "function":
        step = tf.function(step)
    for _ in range(6):
        step()
    np.save(f"tf2_{mode}_rank{rank}.npy", flat([W0.numpy(), W1.numpy()]))
    if rank == 1:
        W1.assign(W1 + 1.0)  # diverge on purpose: the next step repairs
    step()
    np.save(f"tf2_{mode}_repaired_rank{rank}.npy", flat([W0.numpy(), W1.numpy()]))


def shapes():
    graph = tf.Graph()
    with graph.as_default():
        shape = (3, 8) if rank == 0 else (8, 3)      # the same size, another shape on rank 1
        W = tf1.Variable(np.full(shape, float(rank), np.float32))  # noqa: F841 (synced)
        b = tf1.Variable(np.full(5, float(rank), np.float32))
        sess = tf1.Session(graph=graph)
        sess.run(tf1.global_variables_initializer())
        error = None
        try:
            sess.run(sync_all_params())
        except tf.errors.OpError as exc:
            error = " ".join(exc.message.split())
        with open(f"shapes{rank}.json", "w") as f:
            json.dump({"error": error, "kept": float(sess.run(b)[0])}, f)


for case in sys.argv[1:]:
    kind, _, arg = case.partition("-")
    if kind == "tf1":
        tf1_training(int(arg))
    elif kind == "tf2":
        tf2_training(arg)
    elif kind == "shapes":
        shapes()
    else:
        raise SystemExit(f"unknown case {case!r}: expected tf1-N, tf2-eager, tf2-function or "
                         "shapes")
