"""TF2 training with MpiAdam: ``tf2_training.py eager|function``.

Saves each rank's weights after six steps to ``tf2_{mode}_rank{rank}.npy``; then rank 1
diverges on purpose and one more step repairs it (``tf2_{mode}_repaired_rank{rank}.npy``).
"""

import sys

import numpy as np
import tensorflow as tf
from tf_data import data, init

from spinfast.mpi_tf import MpiAdam, sync_all_params
from spinfast.mpi_tools import proc_id

rank = proc_id()
mode = sys.argv[1]
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
np.save(f"tf2_{mode}_rank{rank}.npy", np.concatenate([W0.numpy().ravel(), W1.numpy().ravel()]))
if rank == 1:
    W1.assign(W1 + 1.0)  # diverge on purpose: the next step repairs
step()
np.save(f"tf2_{mode}_repaired_rank{rank}.npy",
        np.concatenate([W0.numpy().ravel(), W1.numpy().ravel()]))
