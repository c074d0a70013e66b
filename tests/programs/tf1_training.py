"""TF1 graph training with MpiAdamOptimizer: ``tf1_training.py SYNC_EVERY``.

Saves each rank's weights after six steps to ``tf1_rank{rank}.npy``. Then rank 1 diverges on
purpose: with SYNC_EVERY 1 the next step repairs it (``tf1_repaired_rank{rank}.npy`` and which
weights the step changed, ``tf1_changed_rank{rank}.npy``); otherwise the check after
SYNC_EVERY steps raises and each rank prints ``rank R diverged: True``.
"""

import sys

import numpy as np
import tensorflow as tf
from tf_data import data, init

from spinfast.mpi_tf import MpiAdamOptimizer, sync_all_params
from spinfast.mpi_tools import proc_id

tf1 = tf.compat.v1
rank = proc_id()
sync_every = int(sys.argv[1])
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
    for step in range(6):
        sess.run(train, {x: X, y: Y})
    np.save(f"tf1_rank{rank}.npy", np.concatenate([v.ravel() for v in sess.run([W0, W1])]))
    if rank == 1:
        sess.run(W1.assign(W1 + 1.0))  # diverge on purpose
    if sync_every == 1:  # the next step repairs: rank 0's values
        before = sess.run([W0, W1])
        sess.run(train, {x: X, y: Y})
        after = np.concatenate([v.ravel() for v in sess.run([W0, W1])])
        np.save(f"tf1_repaired_rank{rank}.npy", after)
        np.save(f"tf1_changed_rank{rank}.npy",
                after != np.concatenate([b.ravel() for b in before]))
        sys.exit(0)
    try:
        for step in range(sync_every):
            sess.run(train, {x: X, y: Y})
    except tf.errors.OpError as exc:
        print(f"rank {rank} diverged: {'differ between MPI ranks' in str(exc)}", flush=True)
