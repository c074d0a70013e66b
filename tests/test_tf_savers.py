"""TensorFlow savers: TF1 graphs (tf1_save + model_info.pkl) and TF2 SavedModels."""

from __future__ import annotations

import os

import joblib
import numpy as np
import pytest
import tensorflow as tf  # noqa: E402  (CI installs the tf extra; a missing TF must fail)

from spinfast.logx import EpochLogger, restore_tf2_model, restore_tf_graph  # noqa: E402

tf1 = tf.compat.v1


def _tf1_model(seed):
    graph = tf.Graph()
    with graph.as_default():
        tf1.set_random_seed(seed)
        x = tf1.placeholder(tf.float32, [None, 3], name="x")
        w = tf1.get_variable("w", [3, 2], initializer=tf1.random_normal_initializer(seed=seed))
        pi = tf.identity(tf.matmul(x, w), name="pi")
        sess = tf1.Session(graph=graph)
        sess.run(tf1.global_variables_initializer())
    return sess, x, pi


def test_tf1_save_and_restore(tmp_path):
    logger = EpochLogger(output_dir=str(tmp_path))
    sess, x, pi = _tf1_model(0)
    logger.setup_tf_saver(sess, inputs={"x": x}, outputs={"pi": pi})
    logger.save_state({"env": "E"})
    logger.save_state({"env": "E"}, itr=2)
    info = joblib.load(tmp_path / "tf1_save" / "model_info.pkl")
    assert info == {"inputs": {"x": "x:0"}, "outputs": {"pi": "pi:0"}}
    obs = np.arange(6, dtype=np.float32).reshape(2, 3)
    expected = sess.run(pi, {x: obs})
    for folder in ("tf1_save", "tf1_save2"):
        graph = tf.Graph()
        sess2 = tf1.Session(graph=graph)
        model = restore_tf_graph(sess2, str(tmp_path / folder))
        assert set(model) == {"x", "pi"}
        np.testing.assert_allclose(sess2.run(model["pi"], {model["x"]: obs}), expected)
    # Saving again replaces the folder in place, and leaves no temporary folder behind.
    logger.save_state({"env": "E"})
    assert sorted(p for p in os.listdir(tmp_path) if "tf1" in p) == ["tf1_save", "tf1_save2"]


def test_restore_tf_graph_missing_folder(tmp_path):
    with pytest.raises(FileNotFoundError, match="no model_info.pkl"):
        restore_tf_graph(tf1.Session(graph=tf.Graph()), str(tmp_path))


class _Policy(tf.Module):
    def __init__(self):
        super().__init__()
        self.w = tf.Variable(np.arange(6, dtype=np.float32).reshape(3, 2))

    @tf.function(input_signature=[tf.TensorSpec([None, 3], tf.float32)])
    def __call__(self, x):
        return tf.matmul(x, self.w)


def test_tf2_save_and_restore(tmp_path):
    logger = EpochLogger(output_dir=str(tmp_path))
    policy = _Policy()
    logger.setup_tf2_saver(policy)
    logger.save_state({}, itr=1)
    restored = restore_tf2_model(str(tmp_path / "tf2_save1"))
    obs = np.ones((4, 3), dtype=np.float32)
    np.testing.assert_allclose(restored(obs).numpy(), policy(obs).numpy())
    with pytest.raises(FileNotFoundError, match="no saved_model.pb"):
        restore_tf2_model(str(tmp_path))
