"""TF1 sync_all_params with a variable of the same size but another shape on rank 1.

Each rank writes ``out<rank>.json``: the error it got (``error``, None if none) and the value it
kept in another variable (``kept``). (Files, not stdout: ranks' stdout may interleave.)
"""

import json

import numpy as np
import tensorflow as tf

from spinfast.mpi_tf import sync_all_params
from spinfast.mpi_tools import proc_id

tf1 = tf.compat.v1
rank = proc_id()
graph = tf.Graph()
with graph.as_default():
    shape = (3, 8) if rank == 0 else (8, 3)      # the same size, another shape on rank 1
    W = tf1.Variable(np.full(shape, float(rank), np.float32))
    b = tf1.Variable(np.full(5, float(rank), np.float32))
    sess = tf1.Session(graph=graph)
    sess.run(tf1.global_variables_initializer())
    error = None
    try:
        sess.run(sync_all_params())
    except tf.errors.OpError as exc:
        error = " ".join(exc.message.split())
    with open(f"out{rank}.json", "w") as f:
        json.dump({"error": error, "kept": float(sess.run(b)[0])}, f)
