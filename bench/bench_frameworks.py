"""PyTorch, TensorFlow and EpochLogger MPI paths beside Spinning Up's, in the same run.

Run (two ranks; rank 0 reports)::

    mpiexec -n 2 python -m pytest bench/bench_frameworks.py -p no:cacheprovider

(collected without a launch, this file runs itself that way). Ratio = reference / spinfast
median (above 1: spinfast faster); for the TF1 step it compares overheads over plain Adam.

* ``torch grads+params``: ``mpi_avg_grads(model)`` then ``sync_params(model)`` on MLP
  actor-critics of ~10k, ~1M and ~10M parameters, against Spinning Up's per-tensor paths
  (one ``mpi_avg`` per gradient, one ``Bcast`` per parameter; target >= 3x at 10k) and against
  the raw collectives of the same bytes, ONE ``Allreduce(IN_PLACE)`` of all gradients plus ONE
  ``Bcast`` of all parameters (target: overhead <= 1.15x at 1M and 10M).
* ``torch grads`` / ``torch params``: each function alone against the same references;
  ``FlatGrads.average()`` against the raw Allreduce. ``sync_params`` against one raw ``Bcast``
  of the same bytes: at most 1.5x at 10k and 1.10x at 1M and 10M (ratio >= 0.67 / 0.91), on
  shared memory and with ``MPIR_CVAR_NOLOCAL=1``.
* ``logger dump 20 keys``: 20 ``log_tabular`` + ``dump_tabular`` (one collective) against
  Spinning Up's 2 to 4 Allreduces per key (target >= 5x: rows are formatted by Python).
* ``logger dump 20 keys + system metrics``: the same dump by an ``EpochLogger(system_metrics=
  True)`` against one without, timed in alternation (target: at most 1.2x, ratio >= 0.83).
* ``tf1 adam step ~1M``: ``MpiAdamOptimizer`` (``sync_every=1``, the default: broadcast every
  step; and ``sync_every=100``) against Spinning Up's optimizer (concat + ``py_func`` into a
  fresh buffer + broadcast of all parameters every step); the ratio compares the overheads over
  a plain Adam step measured in the same group (target: >= 1.5x less).
"""

from __future__ import annotations

import contextlib
import io
import os

import numpy as np
import pytest
from mpibench import COMM, RANK, SIZE, UNDER_MPI, interleaved, select_tests
from reference import ReferenceEpochLogger, reference_module_avg_grads, reference_sync_params

if UNDER_MPI:
    from mpi4py import MPI

# hidden sizes of a 3-layer actor plus a 3-layer critic (obs 64, act 8): ~10k, ~1M, ~10M params
TORCH_MODELS = {"10k": (40, 1000), "1M": (495, 200), "10M": (1575, 60)}


def actor_critic(hidden):
    import torch
    from torch import nn

    from spinfast.mpi_pytorch import setup_pytorch_for_mpi

    setup_pytorch_for_mpi()  # as every Spinning Up PyTorch program does (1 thread per rank here)
    torch.manual_seed(RANK)

    def mlp(out):
        return nn.Sequential(nn.Linear(64, hidden), nn.Tanh(), nn.Linear(hidden, hidden),
                             nn.Tanh(), nn.Linear(hidden, out))

    model = nn.ModuleDict({"pi": mlp(8), "v": mlp(1)})
    x = torch.randn(32, 64)
    (model["pi"](x).pow(2).mean() + model["v"](x).pow(2).mean()).backward()
    return model


def raw_buffer(model, what):
    """One buffer of the model's bytes, allocated by torch like the model's own tensors.

    (numpy would put it on transparent huge pages, which MPI moves ~1.5x faster here than
    torch's memory: a raw reference in numpy memory would measure the allocator, not us.)
    """
    import torch

    return torch.cat([(p.grad if what == "grad" else p).detach().reshape(-1)
                      for p in model.parameters()]).numpy()


def _spinfast_call(what, model):
    from spinfast.mpi_pytorch import FlatGrads, mpi_avg_grads, sync_params

    if what == "grads":
        return lambda: mpi_avg_grads(model)
    if what == "FlatGrads":
        return FlatGrads(model).average
    if what == "params":
        return lambda: sync_params(model)

    def both():
        mpi_avg_grads(model)
        sync_params(model)
    return both


def _reference_call(what, against, model):
    """(the reference's call, the memory it moves: None for the model's own)."""
    if against == "per-tensor":
        calls = {"grads": [reference_module_avg_grads], "params": [reference_sync_params],
                 "grads+params": [reference_module_avg_grads, reference_sync_params]}[what]
    else:
        grads, params = raw_buffer(model, "grad"), raw_buffer(model, "param")
        allreduce = lambda: COMM.Allreduce(MPI.IN_PLACE, grads)  # noqa: E731
        bcast = lambda: COMM.Bcast(params, root=0)  # noqa: E731
        return {"grads": allreduce, "FlatGrads": allreduce, "params": bcast,
                "grads+params": lambda: (allreduce(), bcast())}[what], {
            "grads": [grads], "FlatGrads": [grads], "params": [params],
            "grads+params": [grads, params]}[what]
    if len(calls) == 1:
        return (lambda: calls[0](COMM, model)), None
    return (lambda: [call(COMM, model) for call in calls]), None


def _model_memory(model, what):
    """numpy views of the model's memory that ``what`` moves (as bound now): gradients, then
    parameters, in the order the raw reference's buffers are rewritten."""
    grads = [p.grad.numpy() for p in model.parameters() if p.grad is not None]
    params = [p.detach().numpy() for p in model.parameters()]
    return {"grads": grads, "FlatGrads": grads, "params": params,
            "grads+params": grads + params}[what]


def _rewrite(arrays):
    """Write every byte again in place (x *= 1), untimed, before each timed call: in training
    the optimizer step and the backward pass have just written the parameters and gradients,
    so a collective always moves freshly written memory (on this VM that can cost twice as much
    as moving memory untouched since the last round). Each side rewrites only the memory its
    call moves, in the same order (gradients, then parameters): memory rewritten last is the
    warmest in the caches, so rewriting more, or in another order, on one side would favour
    the other."""
    for a in arrays:
        a *= 1


# (what spinfast does, what it is measured against): the targets of the issue are on the pair
# mpi_avg_grads + sync_params, against the per-tensor reference at 10k and against the raw
# collectives of the same bytes (an Allreduce of the gradients, a Bcast of the parameters) at
# 1M and 10M; the single functions are shown too.
TORCH_CASES = {
    ("grads+params", "per-tensor"): {"10k": 3.0},
    ("grads+params", "raw"): {"1M": 1 / 1.15, "10M": 1 / 1.15},
    ("grads", "per-tensor"): {},
    ("grads", "raw"): {},
    ("params", "per-tensor"): {},
    ("params", "raw"): {"10k": 1 / 1.5, "1M": 1 / 1.10, "10M": 1 / 1.10},  # issue 13
    ("FlatGrads", "raw"): {},
}


@pytest.mark.parametrize("size", list(TORCH_MODELS))
@pytest.mark.parametrize("case", list(TORCH_CASES), ids="-vs-".join)
def test_torch(benchmark, case, size):
    what, against = case
    hidden, rounds = TORCH_MODELS[size]
    model = actor_critic(hidden)
    ours = _spinfast_call(what, model)  # (FlatGrads re-binds the gradients here)
    reference, reference_memory = _reference_call(what, against, model)
    model_memory = _model_memory(model, what)

    def prepare(impl):
        _rewrite(reference_memory if impl == "reference" and reference_memory else model_memory)

    interleaved(benchmark, f"torch {what} {size}: vs {against}", TORCH_CASES[case].get(size),
                rounds, ours, reference, prepare=prepare)


KEYS = [f"Key{i:02d}" for i in range(20)]


def test_logger_dump_20_keys(benchmark, tmp_path):
    from spinfast.logx import EpochLogger

    rng = np.random.default_rng(RANK)
    values = {k: rng.standard_normal(10 + RANK).astype(np.float32) for k in KEYS}
    with contextlib.redirect_stdout(io.StringIO()):
        loggers = {"spinfast": EpochLogger(output_dir=str(tmp_path / f"log{RANK}")),
                   "reference": ReferenceEpochLogger(comm=COMM)}
    out = open(os.devnull, "w")

    def prepare(impl):
        logger = loggers[impl]
        for k, v in values.items():
            for x in v:
                logger.store(**{k: float(x)})

    def dump(impl):
        logger = loggers[impl]
        for k in KEYS:
            logger.log_tabular(k, with_min_and_max=True)
        with contextlib.redirect_stdout(out):
            if impl == "spinfast":
                logger.dump_tabular()
            else:
                logger.dump_tabular(out)

    for impl in loggers:
        prepare(impl)
        dump(impl)
    # Rows are formatted by Python (no compiled formatter since issue 11): >= 5x is the target.
    interleaved(benchmark, "logger dump 20 keys (2 ranks)", 5.0, 300,
                lambda: dump("spinfast"), lambda: dump("reference"), prepare=prepare,
                warmup_rounds=5)


def test_logger_dump_with_system_metrics(benchmark, tmp_path):
    from spinfast.logx import EpochLogger

    rng = np.random.default_rng(RANK)
    values = {k: rng.standard_normal(10 + RANK).astype(np.float32) for k in KEYS}
    with contextlib.redirect_stdout(io.StringIO()):
        loggers = {impl: EpochLogger(output_dir=str(tmp_path / f"{impl}{RANK}"),
                                     system_metrics=impl == "spinfast")
                   for impl in ("spinfast", "reference")}
    out = open(os.devnull, "w")

    def prepare(impl):
        for k, v in values.items():
            loggers[impl].store(**{k: v})

    def dump(impl):
        logger = loggers[impl]
        for k in KEYS:
            logger.log_tabular(k, with_min_and_max=True)
        with contextlib.redirect_stdout(out):
            logger.dump_tabular()

    for impl in loggers:
        prepare(impl)
        dump(impl)
    interleaved(benchmark, "logger dump 20 keys + system metrics", 1 / 1.2, 300,
                lambda: dump("spinfast"), lambda: dump("reference"), prepare=prepare,
                warmup_rounds=5)


# ~1M parameters: 64 -> 700 -> 700 -> 700 -> 8
TF_DIMS = [64, 700, 700, 700, 8]


def reference_mpi_adam(tf, comm, size):
    """Spinning Up's MpiAdamOptimizer data path, written out: flat concat, py_func Allreduce
    into a fresh buffer, split; after apply, broadcast all parameters through py_func."""
    tf1 = tf.compat.v1

    def flat_concat(xs):
        return tf.concat([tf.reshape(x, (-1,)) for x in xs], axis=0)

    class SpinupMpiAdam(tf1.train.AdamOptimizer):
        def compute_gradients(self, loss, var_list, **kwargs):
            gv = [(g, v) for g, v in super().compute_gradients(loss, var_list, **kwargs)
                  if g is not None]
            flat = flat_concat([g for g, _ in gv])
            shapes = [v.shape.as_list() for _, v in gv]
            sizes = [int(np.prod(s)) for s in shapes]

            def collect(x):
                buf = np.zeros_like(x)
                comm.Allreduce(x, buf, op=MPI.SUM)
                np.divide(buf, float(size), out=buf)
                return buf

            avg = tf1.py_func(collect, [flat], tf.float32)
            avg.set_shape(flat.shape)
            parts = tf.split(avg, sizes, axis=0)
            return [(tf.reshape(g, s), v) for g, s, (_, v) in zip(parts, shapes, gv)]

        def apply_gradients(self, gv, global_step=None, name=None):
            opt = super().apply_gradients(gv, global_step, name)
            with tf.control_dependencies([opt]):
                params = [v for _, v in gv]
                flat = flat_concat(params)

                def bcast(x):
                    comm.Bcast(x, root=0)
                    return x

                synced = tf1.py_func(bcast, [flat], tf.float32)
                parts = tf.split(synced, [int(np.prod(p.shape.as_list())) for p in params])
                sync = tf.group([p.assign(tf.reshape(s, p.shape)) for p, s in zip(params, parts)])
            return tf.group([opt, sync])

    return SpinupMpiAdam


def tf1_step(tf, impl, sync_every):
    """A session step of a ~1M-parameter MLP trained with the ``impl`` optimizer."""
    from spinfast.mpi_tf import MpiAdamOptimizer

    tf1 = tf.compat.v1
    graph = tf.Graph()
    with graph.as_default():
        tf1.set_random_seed(0)
        x = tf1.placeholder(tf.float32, [None, TF_DIMS[0]])
        h = x
        for i, (a, b) in enumerate(zip(TF_DIMS[:-1], TF_DIMS[1:])):
            w = tf1.get_variable(f"w{i}", [a, b])
            h = tf.matmul(h, w)
            if i < len(TF_DIMS) - 2:
                h = tf.tanh(h)
        loss = tf.reduce_mean(h ** 2)
        if impl == "baseline":
            opt = tf1.train.AdamOptimizer(1e-4)
        elif impl == "spinfast":
            opt = MpiAdamOptimizer(learning_rate=1e-4, sync_every=sync_every)
        else:
            opt = reference_mpi_adam(tf, COMM, SIZE)(1e-4)
        train = opt.minimize(loss)
        sess = tf1.Session(graph=graph, config=tf1.ConfigProto(
            intra_op_parallelism_threads=1, inter_op_parallelism_threads=1))
        sess.run(tf1.global_variables_initializer())
    feed = {x: np.random.default_rng(RANK).standard_normal((32, TF_DIMS[0]), np.float32)}
    return lambda: sess.run(train, feed)


@pytest.mark.parametrize("sync_every", [1, 100])
def test_tf1_adam_step(benchmark, sync_every):
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import tensorflow as tf

    steps = {impl: tf1_step(tf, impl, sync_every) for impl in ("spinfast", "reference",
                                                                "baseline")}
    interleaved(benchmark, f"tf1 adam step ~1M, overhead, sync_every={sync_every}", 1.5, 60,
                steps["spinfast"], steps["reference"], baseline=steps["baseline"],
                warmup_rounds=5)


select_tests(globals(), __file__)
