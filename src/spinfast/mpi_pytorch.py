"""PyTorch + MPI, as ``spinup.utils.mpi_pytorch``, on spinfast's flat-buffer engine.

``mpi_avg_grads(module)`` and ``sync_params(module)`` find the module's tensors
(``module.parameters()``) and hand their memory to the engine as numpy views
(``Tensor.numpy()``), without copies: small tensors
move with one collective (packed into a persistent buffer), large ones are reduced (one ring
over all of them) or broadcast in place: never one collective per tensor. :class:`FlatGrads`
goes further: the module's gradients become views into one flat buffer, so averaging them
moves one contiguous buffer with no copies.

Tensors must live on the CPU (MPI here moves host memory). PyTorch is imported by the
functions that need it, not by ``import spinfast``.
"""

from __future__ import annotations

import weakref

import numpy as np

from spinfast import mpi_tools
from spinfast._flat import FlatBuffer
from spinfast._mpi import compression as _compression
from spinfast._mpi import overlap as _overlap

__all__ = ["setup_pytorch_for_mpi", "mpi_avg_grads", "sync_params", "FlatGrads"]


class _Engines:
    """One module's engines: for its gradients and its parameters, its compressors (by
    setting), its presence flags (by dtype), and the communicator they all use: a duplicate of
    the world made by the module's first call (collectively, as every call is), so that two
    threads may average two modules at once (mpi4py asks MPI for MPI_THREAD_MULTIPLE), each
    module's collectives apart from the other's. Freed with the module."""

    __slots__ = ("grads", "params", "compressors", "present", "comm", "__weakref__")

    def __init__(self, world):
        self.grads, self.params = FlatBuffer(), FlatBuffer()
        self.compressors: dict = {}
        self.present: dict = {}
        self.comm = world.Dup()


_ENGINES: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # module -> _Engines


def _free_comm(comm) -> None:
    from mpi4py import MPI

    if not MPI.Is_finalized():
        comm.Free()


def _engines(module) -> _Engines:
    """``module``'s engines, made by its first call."""
    engines = _ENGINES.get(module)
    if engines is None:
        engines = _ENGINES[module] = _Engines(mpi_tools.comm_world())
        weakref.finalize(module, _free_comm, engines.comm)
    return engines


def setup_pytorch_for_mpi():
    """Avoid slowdowns caused by each rank using all cores: threads = max(1, threads // procs)."""
    import torch

    if torch.get_num_threads() == 1:
        return
    fair = max(int(torch.get_num_threads() / mpi_tools.num_procs()), 1)
    torch.set_num_threads(fair)


def _parameters(module, trainable_only):
    """``module.parameters()`` as a list (only those with ``requires_grad`` if
    ``trainable_only``): PyTorch's public walk, each parameter once, in its order.

    Issue 20 walked the modules' private ``_parameters``/``_modules`` tables instead; that
    saved 3-4 us a call, 0.1% of a whole ppo training loop (bench/README.md, issue 30).
    """
    params = module.parameters()
    return [p for p in params if p.requires_grad] if trainable_only else list(params)


def _view(t, where, what, index, detach=False):
    """A zero-copy numpy view of a CPU tensor's memory, for the engine.

    ``Tensor.numpy()`` shares the tensor's memory (it costs ~0.7 us; ``np.from_dlpack`` costs
    several times that here, see bench/README.md, issue 20). The view keeps the tensor's
    shape (the engine takes any contiguous array as its memory, in order); a strided tensor,
    or one of another dtype, is handed over as it is, for the engine to reject on every rank
    together: an error raised here, on some ranks only, would leave the others waiting in
    the collective. ``detach``: the tensor requires grad (a parameter).

    Raises:
        ValueError: the tensor is not on the CPU (MPI here moves host memory).
    """
    try:
        return t.detach().numpy() if detach else t.numpy()
    except (TypeError, RuntimeError):
        if not t.is_cpu:
            raise ValueError(f"{where}: {what} {index} is on {t.device}; spinfast averages "
                             f"CPU tensors only, move the module to the CPU first") from None
        if detach or not t.requires_grad:
            raise
        return t.detach().numpy()  # (a gradient made with create_graph=True)


def _grad_views(params, where):
    """Views of the parameters' gradients, for an in-place reduction.

    A non-contiguous gradient is first replaced by a contiguous copy (``p.grad``). Returns
    ``(views, missing)``: ``views[i]`` (which keeps its memory alive) is None where
    ``params[i].grad`` is None, and those indices are listed in ``missing``.
    """
    views, missing = [], []
    for i, p in enumerate(params):
        g = p.grad
        if g is None:
            missing.append(i)
            views.append(None)
            continue
        if not g.is_contiguous():
            g = p.grad = g.contiguous()
        views.append(_view(g, where, "the gradient of parameter", i))
    return views, missing


def _tensor_views(tensors, where):
    """Views of the tensors' memory (parameters, for an in-place broadcast)."""
    return [_view(t, where, "parameter", i, True) for i, t in enumerate(tensors)]


def _named(where, call, *args, **kwargs):
    """Call the engine; its errors (which name the compiled call) get the user-facing name."""
    try:
        call(*args, **kwargs)
    except (TypeError, ValueError) as exc:
        raise type(exc)(f"{where}: {exc}") from None


def mpi_avg_grads(module, compress=None):
    """Average the gradients of ``module``'s trainable parameters over MPI ranks, in place.

    A parameter whose ``grad`` is None counts as zeros, so that every rank passes the same
    layout; afterwards it holds the average if any rank had a gradient for it, and stays None
    if none had. One flat collective for all small tensors (the presence flags of the None
    gradients ride along in it), large tensors reduced in place.

    Args:
        module: a ``torch.nn.Module`` on the CPU, with the same parameters on every rank.
        compress: None (the default: gradients averaged as they are), or ``'bf16'`` /
            ``'fp16'``: float32 gradients travel as 16-bit values with error feedback, every
            rank ends with the same bits (see :doc:`compression`); float64 gradients are
            averaged uncompressed. The same on every rank.

    Raises:
        ValueError: a gradient is not on the CPU, the modules or ``compress`` differ between
            ranks, ``compress`` is not None/'bf16'/'fp16', or (fp16) a gradient is beyond
            float16's range.
        TypeError: a gradient is neither float32 nor float64 (on every rank).
    """
    _compression.check_compress(compress, "mpi_avg_grads()")
    if mpi_tools.num_procs() == 1:
        return
    engines = _engines(module)
    params = _parameters(module, True)
    arrays, missing = _grad_views(params, "mpi_avg_grads()")
    # Which parameters had a gradient on some rank: averaged with the rest in one collective
    # (compressed: reduced with MAX in the agreement's collective).
    dtype = np.float32 if compress is None else np.float64
    present = engines.present.get(dtype)
    if present is None or len(present) != len(params):
        present = engines.present[dtype] = np.ones(len(params), dtype)
    present.fill(1.0)
    zeros = {}
    for i in missing:
        present[i] = 0.0
        zeros[i] = params[i].detach().new_zeros(params[i].shape)
        arrays[i] = zeros[i].numpy()
    if compress is None:
        arrays.append(present)
        _named("mpi_avg_grads()", engines.grads.allreduce, engines.comm, arrays, op="mean")
    else:
        compressor = engines.compressors.get(compress)
        if compressor is None:
            compressor = engines.compressors[compress] = _compression.Compressor(
                compress, "mpi_avg_grads()")
        _compression.average_arrays(compressor, engines.comm, arrays, flags=present,
                                    agree=engines.grads)
    for i in missing:
        if present[i] > 0:
            params[i].grad = zeros[i]


def sync_params(module):
    """Copy the parameters of ``module`` on rank 0 into the same module on every other rank.

    Raises:
        ValueError: a parameter is not on the CPU or not contiguous, or the modules differ
            between ranks (on every rank, except for the device).
        TypeError: a parameter is neither float32 nor float64 (on every rank).
    """
    if mpi_tools.num_procs() == 1:
        return
    engines = _engines(module)
    views = _tensor_views(_parameters(module, False), "sync_params()")
    _named("sync_params()", engines.params.bcast, engines.comm, views, root=0)


class FlatGrads:
    """Keep ``module``'s gradients as views into one flat buffer; average them with no copies.

    ``FlatGrads(module)`` allocates one contiguous tensor per dtype and points every trainable
    parameter's ``grad`` at its slice. Backward passes accumulate into the views, and
    :meth:`average` reduces the whole buffer in place (the engine's ring, or one Allreduce when
    it is small; SUM divided by the number of ranks).

    ``optimizer.zero_grad()`` sets gradients to None by default, which drops the views; call
    ``optimizer.zero_grad(set_to_none=False)`` (or :meth:`zero`) to keep them. If a view was
    dropped or replaced anyway, :meth:`average` copies the new gradient into the buffer and
    re-binds the view, so results stay right (at the cost of that copy).

    ``compress='bf16'`` or ``'fp16'`` averages the float32 buffer as 16-bit values with error
    feedback (see :doc:`compression`; the float64 one, if any, uncompressed); None (the
    default) as it is. The same on every rank.

    ``overlap=True`` averages while backward runs (as DDP does): the gradients are cut into
    buckets of about ``bucket_bytes`` (in the reverse order of the parameters), each bucket's
    sum starts (MPI's non-blocking ``Iallreduce``) as soon as backward has produced its
    gradients, and :meth:`average` waits for them and divides by the number of ranks. One
    backward per :meth:`average` (a second one raises RuntimeError there; accumulate over
    several with ``overlap=False``); a parameter that got no gradient counts as zeros. It
    pays where the link between nodes is slower than the cores (see :doc:`large-models`);
    on one node (shared memory) the default is faster. Not with ``compress``.
    """

    def __init__(self, module, compress=None, overlap=False, bucket_bytes=None):

        self.compress = _compression.check_compress(compress, "FlatGrads()")
        if overlap and compress is not None:
            raise ValueError(f"FlatGrads(): overlap=True averages uncompressed, got compress="
                             f"{compress!r}; pass compress=None or overlap=False")
        self._compressor = compress and _compression.Compressor(compress, "FlatGrads.average()")
        self.params = _parameters(module, True)
        self._overlap = None
        by_dtype: dict = {}
        for p in self.params:
            if p.device.type != "cpu":
                raise ValueError(f"FlatGrads(): a parameter is on {p.device}; spinfast "
                                 f"averages CPU tensors only, move the module to the CPU first")
            by_dtype.setdefault(p.dtype, []).append(p)
        if overlap:
            self._overlap = _overlap.Buckets(self.params, mpi_tools.comm_world(),
                                             bucket_bytes or _overlap.DEFAULT_BUCKET_BYTES)
            self.views = self._overlap.views
            self.buffers = [b.flat for b in self._overlap.buckets]
            return
        self.views = {}
        self.buffers = [_overlap.flat_grads(ps, self.views) for ps in by_dtype.values()]
        self._arrays = [b.numpy() for b in self.buffers]
        self._engine = FlatBuffer(fusion_threshold=0)  # whole buffers, reduced in place

    def zero(self):
        """Set every gradient to zero, keeping the views."""
        if self._overlap is not None:
            return self._overlap.zero()
        for b in self.buffers:
            b.zero_()
        _overlap.rebind(self.params, self.views)

    def average(self):
        """Average the gradients over MPI ranks in place (one reduction per dtype buffer; with
        ``overlap``, wait for the buckets' reductions started during backward)."""
        if self._overlap is not None:
            return self._overlap.wait()
        _overlap.rebind(self.params, self.views)
        if mpi_tools.num_procs() > 1 and self._compressor:
            _compression.average_arrays(self._compressor, mpi_tools.comm_world(), self._arrays,
                                        agree=self._engine)
        elif mpi_tools.num_procs() > 1:
            _named("FlatGrads.average()", mpi_tools.allreduce_arrays, self._arrays, op="mean",
                   buffer=self._engine)
