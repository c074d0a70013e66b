"""Compressed (16-bit) gradient averaging over MPI ranks, with error feedback (private).

``compress="bf16"`` / ``"fp16"`` on ``mpi_avg_grads``, ``FlatGrads`` and the TensorFlow
optimizers ends here. One average of n float32 values over p ranks:

1. encode (compiled): v = gradient + residual, rounded to 16 bits into one send buffer; the
   residual keeps what rounding lost (error feedback);
2. agreement: one tiny collective through the flat engine (``FlatBuffer.allreduce`` of a
   header: setting, n, a hash of the shapes, float16 range errors, plus the caller's presence
   flags), so that ranks whose setting or layout differ all raise the same ValueError;
3. reduce-scatter by direct exchange: chunk r (rank r's n/p values, the same boundaries on
   every rank) goes from every rank to rank r, point to point (in p - 1 steps, step k sending
   to rank + k and receiving from rank - k, as MPI's pairwise Alltoall; MPICH's ``Alltoallv``
   of the same bytes took 2.5-4x as long here, ``Allgatherv`` 3-10x, see bench/README.md);
4. reduce (compiled): the owner of a chunk sums the p rows (its own where it lies, the p - 1
   received) widened to float32, in rank order, divides by p, adds its output residual and
   rounds to 16 bits in place (error feedback on the second rounding too, so no bias);
5. all-gather of the 16-bit chunks into the send buffer (the same pairwise steps), then decode
   (compiled) into the float32 arrays. Every rank, owner included, ends with the same bits.

Messages are cut into pieces of at most 2**30 values, so no count exceeds MPI's int; they
travel on the engine's duplicate of the communicator (``engine_comm``), apart from the
program's messages.

Memory of a :class:`Compressor` (gradients of n float32 = 4n bytes): the input residual
(1x the gradients), the output residual (1/p x), the 16-bit send/gather buffer (0.5x) and the
receive buffer ((p - 1)/p x 0.5x): 2 + 1/(2p) times the gradients' size at most (2.25x at 2
ranks), kept between steps.
"""

from __future__ import annotations

import numpy as np

from spinfast import _compress as _kernels
from spinfast._flat import FlatBuffer, engine_comm

KINDS = ("bf16", "fp16")
_CODE = {None: 0, "bf16": 1, "fp16": 2}
_FP16_MAX = 65504.0
_PIECE = 1 << 30  # values per message at most (2 GiB of 16-bit values)


def _pieces(buf):
    return [buf[i:i + _PIECE] for i in range(0, len(buf), _PIECE)] or [buf]


def _send_and_receive(comm, sends, recvs):
    """Post every receive and send of ``(peer, buffer)``, in pieces; wait for them all."""
    from mpi4py import MPI

    reqs = [comm.Irecv([b, MPI.UINT16_T], peer) for peer, buf in recvs for b in _pieces(buf)]
    reqs += [comm.Isend([b, MPI.UINT16_T], peer) for peer, buf in sends for b in _pieces(buf)]
    MPI.Request.Waitall(reqs)


def check_compress(compress, where: str):
    """Return ``compress`` if it is None, ``'bf16'`` or ``'fp16'``; raise ValueError if not."""
    if compress is None or (isinstance(compress, str) and compress in KINDS):
        return compress
    raise ValueError(f"{where}: compress must be None, 'bf16' or 'fp16', got {compress!r}; "
                     f"None averages float32 as it is, 'bf16'/'fp16' send 16-bit values")


def _split(h: int) -> list[float]:
    """A hash below 2**62 as three float64-exact integers of 21 bits."""
    return [float((h >> s) & 0x1FFFFF) for s in (0, 21, 42)]


class Compressor:
    """State of compressed averaging over one communicator: residuals and 16-bit buffers.

    ``Compressor(kind)`` with kind ``'bf16'`` or ``'fp16'``. :meth:`average` averages a list of
    float32 arrays in place. The residuals are reset (to zeros) when the layout (the arrays'
    shapes, or the number of ranks) changes, and after a float16 range error.
    """

    def __init__(self, kind: str, where: str = "Compressor()"):
        self.kind = check_compress(kind, where)
        if kind is None:
            raise ValueError(f"{where}: a Compressor needs kind 'bf16' or 'fp16', got None")
        self.where = where
        self._key = None          # (n, shape hash, ranks) of the allocated state
        self._header = np.zeros(11, np.float64)
        self._engine = FlatBuffer()
        self._exact = FlatBuffer()

    def nbytes(self) -> int:
        """Bytes of state kept between steps (residuals and 16-bit buffers)."""
        if self._key is None:
            return 0
        return (self._res.nbytes + self._outres.nbytes + self._send.nbytes
                + self._recv.nbytes)

    def reset(self) -> None:
        """Forget the residuals (the next average starts without error feedback)."""
        self._key = None

    def _allocate(self, n: int, h: int, size: int, rank: int) -> None:
        base, extra = divmod(n, size)
        counts = [base + (r < extra) for r in range(size)]
        displs = [sum(counts[:r]) for r in range(size)]
        m = counts[rank]
        self._counts, self._displs, self._m = counts, displs, m
        self._res = np.zeros(n, np.float32)
        self._outres = np.zeros(m, np.float32)
        self._send = np.empty(n, np.uint16)
        self._recv = np.empty(m * (size - 1), np.uint16)
        self._key = (n, h, size)

    def average(self, comm, arrays, sources=None, flags=None, exact=None, exact_sources=None,
                agree=None):
        """Average the float32 ``arrays`` over the ranks of ``comm`` in place, as 16-bit values.

        Args:
            comm: an mpi4py communicator with more than one rank.
            arrays: list of writable C-contiguous float32 arrays (the results); every rank
                passes the same shapes in the same order.
            sources: None (read ``arrays``), or read-only arrays of the same shapes to read
                the inputs from.
            flags: None, or a float64 array reduced with MAX in the agreement's collective
                (e.g. which gradients are present on some rank), in place.
            exact: None, or a list of float32/float64 arrays averaged without compression
                (the flat engine's ``op='mean'``), e.g. float64 gradients.
            exact_sources: the inputs of ``exact`` if they are not ``exact`` itself.
            agree: the ``FlatBuffer`` the agreement's collective goes through (default: this
                compressor's own). Callers pass their uncompressed engine: a rank whose
                setting differs then makes its collective on the same instance, and every
                rank raises the same ValueError whatever the instances agreed on before.

        Raises:
            ValueError: the setting or the layout differs between ranks, or (float16) a value
                is beyond float16's range on some rank: the same message on every rank.
        """
        src = arrays if sources is None else sources
        n, h = _kernels.layout(src)
        size, rank = comm.Get_size(), comm.Get_rank()
        if self._key != (n, h, size):
            self._allocate(n, h, size, rank)
        overflow = _kernels.encode(src, self._res, self._send, self.kind)
        hdr = self._header
        mine = [float(_CODE[self.kind]), float(n), *_split(h)]
        hdr[:5] = mine
        hdr[5:10] = [-x for x in mine]
        hdr[10] = 1.0 if overflow is not None else 0.0
        try:
            (agree or self._engine).allreduce(comm, [hdr] if flags is None else [hdr, flags],
                                              op="max")
        except ValueError as exc:  # the engine's layout check: another call on some rank
            self.reset()
            named = ValueError(f"{self.where}: {exc}")  # as the uncompressed call names it
            add_hint(named, self.kind)
            raise named from None
        if not (hdr[:5] == -hdr[5:10]).all():
            self.reset()
            self._raise_disagreement(comm, src)
        if hdr[10] > 0:
            self.reset()
            self._raise_overflow(comm, overflow, arrays)
        dup = engine_comm(comm)  # (the engine's messages travel there too)
        send, recv, counts, displs, m = self._send, self._recv, self._counts, self._displs, self._m
        mine = send[displs[rank]:displs[rank] + m]
        for k in range(1, size):  # reduce-scatter: chunk r to rank r
            to, frm = (rank + k) % size, (rank - k) % size
            row = frm if frm < rank else frm - 1
            _send_and_receive(dup, [(to, send[displs[to]:displs[to] + counts[to]])],
                              [(frm, recv[row * m:(row + 1) * m])])
        _kernels.reduce(recv, size, rank, mine, self._outres, self.kind)
        for k in range(1, size):  # all-gather: every rank's rounded chunk to every rank
            to, frm = (rank + k) % size, (rank - k) % size
            _send_and_receive(dup, [(to, mine)],
                              [(frm, send[displs[frm]:displs[frm] + counts[frm]])])
        _kernels.decode(send, arrays, self.kind)
        if exact:
            self._exact.allreduce(comm, exact, op="mean", sources=exact_sources)

    def _raise_disagreement(self, comm, src):
        shapes = [tuple(memoryview(a).shape) for a in src]
        everyone = comm.allgather((self.where, self.kind, shapes))
        where = everyone[0][0]
        kinds = [e[1] for e in everyone]
        for r, k in enumerate(kinds):
            if k != kinds[0]:
                raise ValueError(f"{where}: compress differs between ranks: rank 0 has "
                                 f"{kinds[0]!r}, rank {r} has {k!r}; pass the same compress "
                                 f"on every rank")
        first = everyone[0][2]
        for r, e in enumerate(everyone):
            if e[2] != first:
                i = next((i for i, (a, b) in enumerate(zip(first, e[2])) if a != b),
                         min(len(first), len(e[2])))
                a = f"float32 {first[i]!r}" if i < len(first) else "no array"
                b = f"float32 {e[2][i]!r}" if i < len(e[2]) else "no array"
                raise ValueError(f"{where}: array {i} differs between ranks: rank 0 has {a}, "
                                 f"rank {r} has {b} (rank 0 passes {len(first)} float32 "
                                 f"arrays, rank {r} {len(e[2])}); pass gradients of the same "
                                 f"shapes in the same order on every rank")
        raise ValueError(f"{where}: the compressed layout differs between ranks; pass the "
                         f"same arrays on every rank")  # (a hash collision: not expected)

    def _raise_overflow(self, comm, overflow, arrays):
        everyone = comm.allgather(overflow)
        r = next(r for r, o in enumerate(everyone) if o is not None)
        i, j, value = everyone[r]
        raise ValueError(f"{self.where}: a value is beyond float16's range (largest "
                         f"{_FP16_MAX:g}) on rank {r}: array {i}, element {j} is {value!r}; "
                         f"use compress='bf16' (float32's range) or scale the loss down")


def add_hint(exc: ValueError, kind) -> None:
    """Note on ``exc`` (a layout mismatch raised by the engine) that this rank compresses.

    The message itself stays the one every rank raises; the note shows in the traceback.
    """
    exc.add_note(f"(this rank averages with compress={kind!r}; a rank whose setting differs, "
                 f"e.g. compress=None, makes another collective: pass the same compress on "
                 f"every rank)")


def average_arrays(compressor: Compressor, comm, arrays, sources=None, flags=None,
                   agree=None) -> None:
    """Average ``arrays`` in place: the float32 ones compressed, the others as they are.

    Float64 arrays (and anything else, for the engine to reject on every rank) are averaged
    uncompressed through the flat engine, after the compressed ones. ``agree``: as in
    :meth:`Compressor.average` (the caller's uncompressed engine).
    """
    src = arrays if sources is None else sources
    f32 = [memoryview(a).format == "f" for a in src]
    if all(f32):
        compressor.average(comm, arrays, sources, flags, agree=agree)
        return
    pick = lambda xs, keep: [x for x, f in zip(xs, f32) if f == keep]  # noqa: E731
    compressor.average(comm, pick(arrays, True), None if sources is None else pick(src, True),
                       flags, exact=pick(arrays, False),
                       exact_sources=None if sources is None else pick(src, False), agree=agree)
