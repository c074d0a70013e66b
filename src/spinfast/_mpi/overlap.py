"""Averaging gradients while backward runs: buckets, gradient hooks, non-blocking collectives.

Private to spinfast; :class:`spinfast.mpi_pytorch.FlatGrads` uses it with ``overlap=True``.

The trainable parameters are cut into buckets in the reverse of their order (the order in
which backward usually produces their gradients, as DDP does), each bucket one flat tensor of
one dtype whose slices are the parameters' ``grad``. A hook on each parameter
(``Tensor.register_post_accumulate_grad_hook``) runs once backward has accumulated its
gradient; when every parameter of a bucket has run it, the bucket's sum starts as a
non-blocking ``Iallreduce`` on a duplicate of the communicator. Buckets start in their order
only (bucket k waits for k-1), so that every rank posts the same collectives in the same order
whatever order its hooks run in. Each hook also tests the outstanding requests, which moves
MPI's progress engine on while backward computes (MPICH and Open MPI progress a non-blocking
collective only inside MPI calls). :meth:`Buckets.wait` starts the buckets whose hooks did not
all run (a parameter that got no gradient counts as zeros), waits for all of them and divides
by the number of ranks (as the engine's mean: ``x / size``).

Where it pays: where the link is slower than the cores, the transfer of the late layers'
buckets hides behind the early layers' backward (see docs/large-models.md). On shared memory
the transfer is a memory copy by the same cores that compute, and the non-blocking collective
(MPI's, without the engine's ring) is slower than the engine's blocking one.
"""

from __future__ import annotations

import dataclasses
import threading
import time

__all__ = ["DEFAULT_BUCKET_BYTES", "PROGRESS", "Bucket", "Buckets", "plan"]

DEFAULT_BUCKET_BYTES = 4 << 20
# How the collectives in flight progress during backward: "hooks" (a test of them in each
# gradient hook) or "thread" (also a thread that tests them every POLL_S while any is in flight,
# so that the link stays busy between hooks).
PROGRESS = "thread"
POLL_S = 0.0002


def flat_grads(params, views):
    """Return one flat tensor holding the gradients of ``params`` (all of one dtype), each
    parameter's gradient becoming its view into it (kept in ``views[p]``).

    The memory is numpy's: large buffers land on transparent huge pages, which MPI moves
    noticeably faster here than torch's default allocations.
    """
    import numpy as np
    import torch

    dtype = torch.empty(0, dtype=params[0].dtype).numpy().dtype
    flat = torch.from_numpy(np.zeros(sum(p.numel() for p in params), dtype=dtype))
    offset = 0
    for p in params:
        view = flat[offset:offset + p.numel()].view_as(p)
        if p.grad is not None:
            view.copy_(p.grad)
        p.grad = view
        views[p] = view
        offset += p.numel()
    return flat


def rebind(params, views):
    """Make each parameter's gradient its view ``views[p]`` again: a gradient that is None
    becomes a zeroed view, one that autograd replaced by a new tensor is copied in."""
    for p in params:
        view = views[p]
        if p.grad is None:
            view.zero_()
        elif p.grad.data_ptr() != view.data_ptr():
            view.copy_(p.grad)
        else:
            continue
        p.grad = view


@dataclasses.dataclass
class Bucket:
    """One bucket: its parameters, its flat tensor and that tensor's numpy view."""
    params: list
    flat: object
    array: object
    pending: int = 0        # hooks still to run in this backward
    request: object = None  # the Iallreduce in flight, if started


def plan(params, bucket_bytes):
    """Cut ``params`` (in order) into buckets, reversed: lists of parameters of one dtype, each
    at most ``bucket_bytes`` unless one parameter alone is larger."""
    buckets: list[list] = []
    open_by_dtype: dict = {}
    for p in reversed(params):
        nbytes = p.numel() * p.element_size()
        current = open_by_dtype.get(p.dtype)
        if current is None or (current[1] + nbytes > bucket_bytes and current[0]):
            current = open_by_dtype[p.dtype] = [[], 0]
            buckets.append(current[0])
        current[0].append(p)
        current[1] += nbytes
    return buckets


class Buckets:
    """The buckets of ``params``, their gradient views and hooks; averaged over ``comm``.

    ``where`` names the public caller in error messages; ``progress`` is ``"hooks"`` or
    ``"thread"`` (default :data:`PROGRESS`; the thread only where MPI allows calls from more
    than one thread, one at a time).
    """

    def __init__(self, params, comm, bucket_bytes=DEFAULT_BUCKET_BYTES,
                 where="FlatGrads.average()", progress=None):

        if comm is not None:
            from mpi4py import MPI

            self._mpi = MPI
        self.where = where
        self.comm = comm.Dup() if comm is not None else None
        self.size = comm.Get_size() if comm is not None else 1
        self.buckets: list[Bucket] = []
        self.views: dict = {}
        self._bucket_of: dict = {}
        for group in plan(params, bucket_bytes):
            flat = flat_grads(group, self.views)
            for p in group:
                self._bucket_of[p] = len(self.buckets)
            self.buckets.append(Bucket(group, flat, flat.numpy(), len(group)))
        self._next = 0          # the next bucket to start
        self._fired: set = set()  # the parameters whose hook ran in this backward
        self._late = False        # a hook ran twice before wait()
        self._handles = [p.register_post_accumulate_grad_hook(self._hook) for p in params]
        # The requests in flight are tested by one thread at a time (a request completed by
        # one test is gone for the other): the hooks' pokes and the progress thread take this.
        self._lock = threading.Lock()
        self._in_flight = threading.Event()
        self._thread = None
        if (progress or PROGRESS) == "thread" and self.size > 1 \
                and self._mpi.Query_thread() >= self._mpi.THREAD_SERIALIZED:
            self._thread = threading.Thread(target=self._progress, daemon=True,
                                            name="spinfast-overlap-progress")
            self._closing = False
            self._thread.start()

    def _progress(self):
        while True:
            self._in_flight.wait()
            if self._closing:
                return
            self._poke()
            time.sleep(POLL_S)

    # -- during backward ------------------------------------------------------------------------
    def _hook(self, p):
        view = self.views[p]
        if p.grad is None:
            view.zero_()
            p.grad = view
        elif p.grad.data_ptr() != view.data_ptr():  # backward made a new tensor
            view.copy_(p.grad)
            p.grad = view
        if p in self._fired:  # a second backward before wait()
            self._late = True
            return
        self._fired.add(p)
        self.buckets[self._bucket_of[p]].pending -= 1
        while self._next < len(self.buckets) and self.buckets[self._next].pending <= 0:
            self._start(self.buckets[self._next])
        self._poke()

    def _start(self, bucket):
        if self.size > 1:
            with self._lock:
                bucket.request = self.comm.Iallreduce(self._mpi.IN_PLACE, bucket.array,
                                                      self._mpi.SUM)
            self._in_flight.set()
        self._next += 1

    def _poke(self):
        """Let MPI progress the collectives in flight (one test of them)."""
        with self._lock:
            requests = [b.request for b in self.buckets[:self._next] if b.request is not None]
            if requests:
                self._mpi.Request.Testall(requests)

    # -- after backward -------------------------------------------------------------------------
    def zero(self):
        """Set every gradient to zero, keeping the views."""
        for bucket in self.buckets:
            bucket.flat.zero_()
            rebind(bucket.params, self.views)

    def wait(self):
        """Start the buckets not started, wait for all, divide by the number of ranks; ready
        for the next backward.

        Raises:
            RuntimeError: a parameter's gradient was accumulated twice (two backward passes
                before one average); its bucket may have left with the first only.
        """
        while self._next < len(self.buckets):
            rebind(self.buckets[self._next].params, self.views)
            self._start(self.buckets[self._next])
        self._in_flight.clear()
        with self._lock:  # (the progress thread's last test done)
            requests = [b.request for b in self.buckets if b.request is not None]
            if requests:
                self._mpi.Request.Waitall(requests)
        for bucket in self.buckets:
            if self.size > 1:
                bucket.flat.div_(self.size)
            bucket.request = None
            bucket.pending = len(bucket.params)
        self._next = 0
        self._fired.clear()
        late, self._late = self._late, False
        if late:
            raise RuntimeError(f"{self.where}: a backward pass ran again after its gradients "
                               f"started averaging (overlap=True averages each backward as it "
                               f"runs); call average() after every backward, or use "
                               f"overlap=False to accumulate gradients over several")

    def remove(self):
        """Remove the hooks (the gradients stay views of the buckets)."""
        for handle in self._handles:
            handle.remove()
        self._handles = []
        if self._thread is not None:
            self._closing = True
            self._in_flight.set()
            self._thread.join()
            self._thread = None
        if self.comm is not None:
            self.comm.Free()
            self.comm = None
