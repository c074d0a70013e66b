"""Spinning Up's ``train_mnist`` logger example, ported to ``tf.compat.v1`` and MPI.

    python examples/train_mnist_tf1.py --cpu 2 --epochs 5

A TF1 graph (placeholders, Session) trained with :class:`spinfast.mpi_tf.MpiAdamOptimizer`
on a generated digits-like dataset (no download), each MPI rank on its own data. Logs with
:class:`spinfast.logx.EpochLogger` exactly the docs' columns, saves the graph with
``setup_tf_saver`` + ``save_state`` each ``--save_freq`` epochs. Results go to
``<data_dir>/<exp_name>/<exp_name>_s<seed>``.
"""

import os
import time

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def mlp(x, hidden_sizes, activation):
    import tensorflow as tf

    tf1 = tf.compat.v1
    for i, h in enumerate(hidden_sizes):
        fan_in = int(x.shape[-1])
        w = tf1.get_variable(f"w{i}", [fan_in, h],
                             initializer=tf1.glorot_uniform_initializer())
        b = tf1.get_variable(f"b{i}", [h], initializer=tf1.zeros_initializer())
        x = tf.matmul(x, w) + b
        if i < len(hidden_sizes) - 1:
            x = activation(x)
    return x


def train_mnist(steps_per_epoch=100, epochs=5, lr=1e-3, layers=2, hidden_size=64,
                logger_kwargs=dict(), save_freq=1, seed=0):
    import tensorflow as tf
    from _common import make_digits

    from spinfast.logx import EpochLogger
    from spinfast.mpi_tf import MpiAdamOptimizer, sync_all_params
    from spinfast.mpi_tools import proc_id

    tf1 = tf.compat.v1
    tf1.disable_eager_execution()
    logger = EpochLogger(**logger_kwargs)
    logger.save_config(locals())

    x_train, y_train = make_digits(seed=seed + 1000 * proc_id())   # each rank its own data
    rng = np.random.default_rng(seed + proc_id())
    tf1.set_random_seed(seed)

    x_ph = tf1.placeholder(tf.float32, shape=(None, 64))
    y_ph = tf1.placeholder(tf.int32, shape=(None,))
    logits = mlp(x_ph, hidden_sizes=[hidden_size] * layers + [10], activation=tf.nn.relu)
    predict = tf.argmax(logits, axis=1, output_type=tf.int32)

    y = tf.one_hot(y_ph, 10)
    loss = tf.reduce_mean(tf.nn.softmax_cross_entropy_with_logits(labels=y, logits=logits))
    acc = tf.reduce_mean(tf.cast(tf.equal(y_ph, predict), tf.float32))
    train_op = MpiAdamOptimizer(learning_rate=lr).minimize(loss)

    sess = tf1.Session()
    sess.run(tf1.global_variables_initializer())
    sess.run(sync_all_params())
    logger.setup_tf_saver(sess, inputs={"x": x_ph}, outputs={"logits": logits, "predict": predict})

    start_time = time.time()
    for epoch in range(epochs):
        for t in range(steps_per_epoch):
            idxs = rng.integers(0, len(x_train), 32)
            feed_dict = {x_ph: x_train[idxs], y_ph: y_train[idxs]}
            outs = sess.run([loss, acc, train_op], feed_dict=feed_dict)
            logger.store(Loss=outs[0], Acc=outs[1])

        if (epoch % save_freq == 0) or (epoch == epochs - 1):
            logger.save_state(state_dict=dict(), itr=None)

        logger.log_tabular("Epoch", epoch)
        logger.log_tabular("Acc", with_min_and_max=True)
        logger.log_tabular("Loss", average_only=True)
        logger.log_tabular("TotalGradientSteps", (epoch + 1) * steps_per_epoch)
        logger.log_tabular("Time", time.time() - start_time)
        logger.dump_tabular()


if __name__ == "__main__":
    from _common import main

    main(train_mnist, __doc__.splitlines()[0], "train_mnist_tf1")
