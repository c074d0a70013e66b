"""TF optimizers with compress: ``compress_tf.py KIND MODE [MODE ...]``, MODE tf1 or tf2.

For each mode, trains the model of ``tf_data.py`` for 20 steps twice from rank 0's initial
weights, once with ``compress=KIND`` and once with None (tf1: ``MpiAdamOptimizer`` in a graph;
tf2: ``MpiAdam`` in a ``tf.function``), with a float64 variable beside; saves both final
weights to ``{mode}_{rank}.npz`` (``compressed``, ``float32``).
"""

import sys

import numpy as np
import tensorflow as tf
from tf_data import data, init

from spinfast.mpi_tf import MpiAdam, MpiAdamOptimizer, sync_all_params
from spinfast.mpi_tools import proc_id

tf1 = tf.compat.v1
rank = proc_id()
kind, modes = sys.argv[1], sys.argv[2:]
X, Y = data(rank)
STEPS = 20


def train_tf1(compress):
    graph = tf.Graph()
    with graph.as_default():
        x = tf1.placeholder(tf.float32, [None, 3])
        y = tf1.placeholder(tf.float32, [None, 1])
        w0, w1 = init(seed=rank)
        W0, W1 = tf1.Variable(w0), tf1.Variable(w1)
        b = tf1.Variable(np.zeros(1, np.float64))  # float64: averaged uncompressed
        pred = tf.matmul(tf.tanh(tf.matmul(x, W0)), W1) + tf.cast(b, tf.float32)
        loss = tf.reduce_mean((pred - y) ** 2) + tf.cast(tf.reduce_sum((b - 1.0) ** 2),
                                                         tf.float32)
        train = MpiAdamOptimizer(learning_rate=0.05, compress=compress).minimize(loss)
        sess = tf1.Session(graph=graph)
        sess.run(tf1.global_variables_initializer())
        sess.run(sync_all_params())
        for _ in range(STEPS):
            sess.run(train, {x: X, y: Y})
        return np.concatenate([v.ravel() for v in sess.run([W0, W1, b])])


def train_tf2(compress):
    w0, w1 = init(seed=rank)
    W0, W1 = tf.Variable(w0), tf.Variable(w1)
    b = tf.Variable(np.zeros(1, np.float64))
    sync_all_params([W0, W1, b])
    opt = MpiAdam(learning_rate=0.05, compress=compress)

    @tf.function
    def step():
        with tf.GradientTape() as tape:
            pred = tf.matmul(tf.tanh(tf.matmul(X, W0)), W1) + tf.cast(b, tf.float32)
            loss = tf.reduce_mean((pred - Y) ** 2) + tf.cast(tf.reduce_sum((b - 1.0) ** 2),
                                                             tf.float32)
        grads = tape.gradient(loss, [W0, W1, b])
        opt.apply_gradients(zip(grads, [W0, W1, b]))

    for _ in range(STEPS):
        step()
    return np.concatenate([W0.numpy().ravel(), W1.numpy().ravel(), b.numpy().ravel()])


for mode in modes:
    train = {"tf1": train_tf1, "tf2": train_tf2}[mode]
    np.savez(f"{mode}_{rank}.npz", compressed=train(kind), float32=train(None))
