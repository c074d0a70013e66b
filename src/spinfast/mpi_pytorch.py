"""PyTorch + MPI, as ``spinup.utils.mpi_pytorch``, on spinfast's flat-buffer engine.

``mpi_avg_grads(module)`` and ``sync_params(module)`` find the module's tensors with compiled
code (``spinfast._torch``) and hand their memory to the engine without copies: small tensors
move with one collective (packed into a persistent buffer), large ones are reduced (one ring
over all of them) or broadcast in place: never one collective per tensor. :class:`FlatGrads`
goes further: the module's gradients become views into one flat buffer, so averaging them
moves one contiguous buffer with no copies.

Tensors must live on the CPU (MPI here moves host memory). PyTorch is imported by the
functions that need it, not by ``import spinfast``.
"""

from __future__ import annotations

import numpy as np

from spinfast import _compression, mpi_tools
from spinfast._flat import FlatBuffer

__all__ = ["setup_pytorch_for_mpi", "mpi_avg_grads", "sync_params", "FlatGrads"]

_GRADS = FlatBuffer()
_PARAMS = FlatBuffer()


def setup_pytorch_for_mpi():
    """Avoid slowdowns caused by each rank using all cores: threads = max(1, threads // procs)."""
    import torch

    if torch.get_num_threads() == 1:
        return
    fair = max(int(torch.get_num_threads() / mpi_tools.num_procs()), 1)
    torch.set_num_threads(fair)


def _walker():
    """spinfast._torch, told which objects are torch's float dtypes (on first use)."""
    global _TORCH
    if _TORCH is None:
        import torch

        from spinfast import _torch

        _torch.set_dtypes(torch.float32, torch.float64)
        _TORCH = _torch
    return _TORCH


_TORCH = None
_PRESENT: dict = {}  # presence flags of mpi_avg_grads, by parameter count


def _trainable(module):
    return _walker().parameters(module, True)


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
    if compress is not None:
        return _compression.average_module_grads(_walker(), module, compress)
    if mpi_tools.num_procs() == 1:
        return
    walker = _walker()
    params = walker.parameters(module, True)
    arrays, tensors, missing = walker.grad_views(params, "mpi_avg_grads()")
    # Which parameters had a gradient on some rank: averaged with the rest in one collective.
    present = _PRESENT.get(len(params))
    if present is None:
        present = _PRESENT[len(params)] = np.ones(len(params), np.float32)
    present.fill(1.0)
    for i in missing:
        present[i] = 0.0
        tensors[i] = params[i].detach().new_zeros(params[i].shape)
        arrays[i] = tensors[i].numpy()
    arrays.append(present)
    mpi_tools.allreduce_arrays(arrays, op="mean", engine=_GRADS)
    for i in missing:  # (``tensors`` keeps the viewed memory alive until here)
        if present[i] > 0:
            params[i].grad = tensors[i]


def sync_params(module):
    """Copy the parameters of ``module`` on rank 0 into the same module on every other rank.

    Raises:
        ValueError: a parameter is not on the CPU or not contiguous, or the modules differ
            between ranks (on every rank, except for the device).
        TypeError: a parameter is neither float32 nor float64 (on every rank).
    """
    if mpi_tools.num_procs() == 1:
        return
    walker = _walker()
    params = walker.parameters(module, False)  # keeps the viewed memory alive
    mpi_tools.broadcast_arrays(walker.tensor_views(params, "sync_params()"), root=0,
                               engine=_PARAMS)


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
    """

    def __init__(self, module, compress=None):
        import torch

        self.compress = _compression.check_compress(compress, "FlatGrads()")
        self._compressor = compress and _compression.Compressor(compress, "FlatGrads.average()")
        self.params = _trainable(module)
        by_dtype: dict = {}
        for p in self.params:
            if p.device.type != "cpu":
                raise ValueError(f"FlatGrads(): a parameter is on {p.device}; spinfast "
                                 f"averages CPU tensors only, move the module to the CPU first")
            by_dtype.setdefault(p.dtype, []).append(p)
        self.buffers = []
        self.views = {}
        for dtype, ps in by_dtype.items():
            # numpy allocates large buffers on transparent huge pages, which MPI moves
            # noticeably faster here than torch's default allocations.
            n = sum(p.numel() for p in ps)
            flat = torch.from_numpy(np.zeros(n, dtype=torch.empty(0, dtype=dtype).numpy().dtype))
            offset = 0
            for p in ps:
                view = flat[offset:offset + p.numel()].view_as(p)
                if p.grad is not None:
                    view.copy_(p.grad)
                p.grad = view
                self.views[p] = view
                offset += p.numel()
            self.buffers.append(flat)
        self._arrays = [b.numpy() for b in self.buffers]
        self._engine = FlatBuffer(fusion_threshold=0)  # whole buffers, reduced in place

    def _rebind(self):
        for p in self.params:
            view = self.views[p]
            if p.grad is None:
                view.zero_()
            elif p.grad.data_ptr() != view.data_ptr():
                view.copy_(p.grad)
            else:
                continue
            p.grad = view

    def zero(self):
        """Set every gradient to zero, keeping the views."""
        for b in self.buffers:
            b.zero_()
        self._rebind()

    def average(self):
        """Average the gradients over MPI ranks in place (one reduction per dtype buffer)."""
        self._rebind()
        if mpi_tools.num_procs() > 1 and self._compressor:
            _compression.average_arrays(self._compressor, mpi_tools.comm_world(), self._arrays)
        elif mpi_tools.num_procs() > 1:
            mpi_tools.allreduce_arrays(self._arrays, op="mean", engine=self._engine)
