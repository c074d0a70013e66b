"""TF1 sync_all_params with a variable of the same size but another shape on rank 1.

Each rank prints the start of the error it got (``rank R error: ...``) and the value it kept in
another variable (``rank R kept V``).
"""

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
    try:
        sess.run(sync_all_params())
        print(f"rank {rank} synced", flush=True)
    except tf.errors.OpError as exc:
        text = " ".join(exc.message.split())      # (short lines: ranks share stdout)
        at = text.find("FlatBuffer.bcast()")
        print(f"rank {rank} error: {text[at:at + 160] if at >= 0 else text[:160]}", flush=True)
    print(f"rank {rank} kept {float(sess.run(b)[0])}", flush=True)
