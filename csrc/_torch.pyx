# cython: language_level=3, boundscheck=False, wraparound=False
# cython: embedsignature=True
"""Module walk and zero-copy tensor views for spinfast.mpi_pytorch (private).

Per call, ``mpi_avg_grads``/``sync_params`` must find a module's parameters again (a program
may replace them at any time) and hand their memory to the flat engine. In Python that costs
more than the collective itself for a small model (~9 us for ``_modules``/``_parameters`` of a
6-layer actor-critic, ~0.7 us per ``Tensor.numpy()``). Here the walk runs on the dicts from C,
and each tensor's memory is wrapped in a one-dimensional float32/float64 ``memoryview`` from
its ``data_ptr()`` and ``nbytes``: no numpy array, no copy. (Other dtypes and strided tensors
are handed over as ``Tensor.numpy()`` arrays, for the engine to reject on every rank.)

A memoryview made this way does not keep its tensor alive, so every function also returns the
tensors themselves; the caller holds them until the engine returns.

Duck-typed: torch is never imported here. Tensor dtypes are compared with the objects handed
to :func:`set_dtypes` by spinfast.mpi_pytorch (``torch.float32``, ``torch.float64``).
"""

from cpython.dict cimport PyDict_Next
from cpython.memoryview cimport PyMemoryView_FromBuffer
from cpython.object cimport PyObject, PyObject_GenericGetAttr
from libc.string cimport memset

cdef object _DT32 = None
cdef object _DT64 = None
cdef char _ZERO[8]         # the address handed out for a tensor of zero bytes
cdef Py_ssize_t _SCAN_MAX = 32   # parameters deduplicated by a scan, not a set


def set_dtypes(f32, f64):
    """Tell the module which objects are ``torch.float32`` and ``torch.float64``."""
    global _DT32, _DT64
    _DT32 = f32
    _DT64 = f64


cdef object _view(Py_ssize_t addr, Py_ssize_t nbytes, bint f64):
    # A writable 1-D memoryview of nbytes at addr; format and sizes as a numpy array's.
    cdef Py_buffer b
    memset(&b, 0, sizeof(b))            # obj NULL: PyMemoryView_FromBuffer ignores it anyway
    b.buf = <void*>addr if nbytes else <void*>_ZERO   # (it refuses a NULL buf)
    b.len = nbytes
    b.itemsize = 8 if f64 else 4
    b.readonly = 0
    b.ndim = 1
    if f64:                              # C literals: they live as long as the module
        b.format = b"d"
    else:
        b.format = b"f"
    # shape, strides NULL: 1-D, len // itemsize elements, contiguous
    return PyMemoryView_FromBuffer(&b)


def parameters(module, bint trainable_only):
    """``list(module.parameters())`` (only those with ``requires_grad`` if asked), same order.

    Walks ``_modules``/``_parameters`` depth-first as ``Module.named_modules`` does; a shared
    parameter is listed once. Objects without those dicts fall back to ``parameters()``.
    """
    cdef list out = []
    if not hasattr(module, "_modules") or not hasattr(module, "_parameters"):
        return [p for p in module.parameters() if p.requires_grad or not trainable_only]
    _walk(module, trainable_only, out, set())
    return out


cdef int _walk(object mod, bint trainable_only, list out, set seen) except -1:
    # Pre-order: this module's parameters, then each child's subtree. A parameter already in
    # ``out`` is skipped: up to _SCAN_MAX found, by scanning ``out`` for the object (cheaper
    # than hashing each one); past that, through the ``seen`` set of their ids.
    cdef Py_ssize_t pos = 0, i, n
    cdef PyObject* key
    cdef PyObject* value
    cdef bint dup
    # Module defines __getattr__, which routes every attribute read through a slower hook;
    # _parameters and _modules live in the instance dict, read them there.
    params = PyObject_GenericGetAttr(mod, "_parameters")
    if type(params) is not dict:
        params = dict(params)
    while PyDict_Next(params, &pos, &key, &value):
        if value == <PyObject*>None or (trainable_only and not (<object>value).requires_grad):
            continue
        n = len(out)
        if n < _SCAN_MAX:
            dup = False
            for i in range(n):
                if <PyObject*>out[i] == value:
                    dup = True
                    break
            if dup:
                continue
            out.append(<object>value)
            if n + 1 == _SCAN_MAX:
                seen.update([id(p) for p in out])
        elif id(<object>value) not in seen:
            seen.add(id(<object>value))
            out.append(<object>value)
    children = PyObject_GenericGetAttr(mod, "_modules")
    if type(children) is not dict:
        children = dict(children)
    pos = 0
    while PyDict_Next(children, &pos, &key, &value):
        if value != <PyObject*>None:
            _walk(<object>value, trainable_only, out, seen)
    return 0


cdef object _tensor_view(object t, str where, str what, Py_ssize_t index, bint contiguous):
    # A view of a CPU float32/float64 contiguous tensor (``contiguous``: already known to be).
    # Another dtype or a strided tensor goes to the engine as a numpy array, which it rejects
    # on every rank together (an error raised here, on some ranks only, would leave the others
    # waiting in the collective).
    dt = t.dtype
    if not t.is_cpu:
        raise ValueError(f"{where}: {what} {index} is on {t.device}; spinfast averages CPU "
                         f"tensors only, move the module to the CPU first")
    if (dt is _DT32 or dt is _DT64) and (contiguous or t.is_contiguous()):
        return _view(t.data_ptr(), t.nbytes, dt is _DT64)
    return t.detach().numpy()


def grad_views(list params, str where):
    """Views of the parameters' gradients, for an in-place reduction.

    A non-contiguous gradient is first replaced by a contiguous copy (``p.grad``). Returns
    ``(views, tensors, missing)``: ``views[i]`` is None where ``params[i].grad`` is None (those
    indices are listed in ``missing``); ``tensors`` must be held while the views are used.

    Raises:
        ValueError: a gradient is not on the CPU.
    """
    cdef Py_ssize_t i, n = len(params)
    cdef list views = [None] * n, tensors = [None] * n, missing = []
    for i in range(n):
        p = params[i]
        g = p.grad
        if g is None:
            missing.append(i)
            continue
        if not g.is_contiguous():
            g = g.contiguous()
            p.grad = g
        views[i] = _tensor_view(g, where, "the gradient of parameter", i, True)
        tensors[i] = g
    return views, tensors, missing


def tensor_views(list tensors, str where):
    """Views of the tensors' memory (parameters, for an in-place broadcast).

    Raises:
        ValueError: a tensor is not on the CPU.
    """
    cdef Py_ssize_t i, n = len(tensors)
    cdef list views = [None] * n
    for i in range(n):
        views[i] = _tensor_view(tensors[i], where, "parameter", i, False)
    return views
