# The cost model (included by _flat.pyx): which path moves a buffer.
#
# A path is one way of moving a buffer of n bytes among p ranks:
#
#   mpi       MPI's own Allreduce / Bcast (whatever the site's MPI does best)
#   ring      the engine's ring reduce-scatter + allgather (sums and means)
#   doubling  the engine's recursive doubling (sums and means, p a power of two)
#   tree      the engine's binomial tree, every buffer of a transfer posted at once (broadcast)
#   pair      the engine's two-rank broadcast, the layout agreement travelling with the data
#
# Each is predicted with the alpha-beta model (Hockney; the collective formulas of Thakur,
# Rabenseifner and Gropp, "Optimization of Collective Communication Operations in MPICH",
# 2005), with L = ceil(log2 p):
#
#   alpha   seconds per message (latency)            beta   seconds per byte moved
#   gamma   seconds per byte added (reduction)       delta  seconds per byte of a temporary
#   over    seconds the engine adds per message            buffer MPI's Allreduce allocates
#           (the mpi4py call of each piece)                 (fresh pages) on large messages
#
#   mpi allreduce      n <= 2 KiB: L (alpha + n beta + n gamma)
#                      else: 2 L alpha + 2 (p-1)/p n beta + (p-1)/p n gamma + n delta
#                      + n gamma when a mean is divided in a separate pass (arrays in place)
#   ring               2 (p-1) (alpha + over) + 2 (p-1)/p n beta + (p-1)/p n gamma
#   doubling           L (alpha + over + n beta + n gamma)
#   mpi bcast          per buffer: p < 8 or n < 12 KiB: L (alpha + n beta)
#                      else (scatter + allgather): (L + p - 1) alpha + 2 (p-1)/p n beta
#                      + the agreement flag, a one-element Allreduce: L alpha
#   tree               L (alpha + m over + N beta) for m buffers of N bytes in all, + the flag
#   pair               alpha + m over + N beta (the flag rides along: no collective for it)
#
# The engine's paths are candidates only where they were measured to win: ranks that share
# memory (one node) up to SHARED["engine_max_ranks"] ranks, and beyond one node up to
# NETWORK["engine_max_ranks"]. Elsewhere MPI's collectives move the packed buffers and the
# large arrays (the fusion stays, the hand-written algorithms go). Every input to a choice
# (the op, the number of ranks, the buffer sizes, whether all ranks share memory, the user's
# algorithm) is equal on every rank once the layouts agree, so every rank makes the same
# choice.

cdef enum path_t:
    P_MPI = 0
    P_RING = 1
    P_DOUBLING = 2
    P_TREE = 3
    P_PAIR = 4

# Names of the paths, by path_t value (FlatBuffer.paths, choose()).
PATHS = ("mpi", "ring", "doubling", "tree", "pair")


cdef struct cost_model_t:
    double alpha
    double beta
    double gamma
    double delta
    double over
    int engine_max_ranks


# Ranks sharing memory: measured on the 2-core VM this package is developed on (MPICH 4 from
# PyPI, mpi4py 4): one-way latency of an 8-byte message 1.8 us; 16 GB/s for 1-16 MB messages;
# numpy adds 0.05 ns/B; a fresh temporary buffer costs 0.14 ns/B to fault in; one mpi4py
# point-to-point call 1 us. The engine won at 2 ranks (the bench) and kept winning at 4.
cdef cost_model_t _SHARED = cost_model_t(alpha=1.8e-6, beta=0.061e-9, gamma=0.05e-9,
                                         delta=0.14e-9, over=1.0e-6, engine_max_ranks=4)
# Ranks on several nodes: published figures of an EDR InfiniBand cluster (100 Gb/s per link,
# 12.5 GB/s; 2 us MPI latency). The engine's paths are kept up to 2 ranks, where the ring is
# MPI's own algorithm without its temporary buffer and separate division (measured under
# MPIR_CVAR_NOLOCAL=1: 10M-float means 14 ms against 17 ms for MPI's Allreduce + division).
cdef cost_model_t _NETWORK = cost_model_t(alpha=2.0e-6, beta=0.08e-9, gamma=0.05e-9,
                                          delta=0.14e-9, over=1.0e-6, engine_max_ranks=2)
# MPICH's switch points: short Allreduce (recursive doubling) and short/large Bcast.
cdef Py_ssize_t _MPI_SHORT_ALLREDUCE = 2048
cdef Py_ssize_t _MPI_SHORT_BCAST = 12288
cdef int _MPI_LARGE_BCAST_RANKS = 8


cdef inline int _ceil_log2(int p) noexcept nogil:
    cdef int steps = 0
    while (1 << steps) < p:
        steps += 1
    return steps


cdef double _predict(const cost_model_t* m, int path, bint reduce, int p, double n,
                     Py_ssize_t count, bint divide_apart) noexcept nogil:
    # Seconds to move ``count`` buffers of ``n`` bytes in all among ``p`` ranks along ``path``
    # (a reduction if ``reduce``, else a broadcast); ``divide_apart``: a mean whose division
    # costs a pass of its own after MPI's Allreduce. Reductions are one buffer (count 1).
    cdef int steps = _ceil_log2(p)
    cdef double frac = (p - 1.0) / p, t
    if p < 2:
        return 0.0
    if reduce:
        if path == P_RING:
            return 2 * (p - 1) * (m.alpha + m.over) + 2 * frac * n * m.beta + frac * n * m.gamma
        if path == P_DOUBLING:
            return steps * (m.alpha + m.over + n * (m.beta + m.gamma))
        if n <= _MPI_SHORT_ALLREDUCE:
            t = steps * (m.alpha + n * (m.beta + m.gamma))
        else:
            t = (2 * steps * m.alpha + 2 * frac * n * m.beta + frac * n * m.gamma
                 + n * m.delta)
        return t + (n * m.gamma if divide_apart else 0.0)
    if path == P_PAIR:
        return m.alpha + count * m.over + n * m.beta
    if path == P_TREE:
        return steps * (2 * m.alpha + count * m.over + n * m.beta)  # (+ the flag's alpha)
    # MPI's Bcast of each buffer (all of the same size here), and the flag
    n = n / count
    if p < _MPI_LARGE_BCAST_RANKS or n < _MPI_SHORT_BCAST:
        t = steps * (m.alpha + n * m.beta)
    else:
        t = (steps + p - 1) * m.alpha + 2 * frac * n * m.beta
    return count * t + steps * m.alpha


cdef inline bint _engine_allowed(const cost_model_t* m, int algo, int p) noexcept nogil:
    if algo == ALG_MPI:
        return False
    return algo == ALG_ENGINE or p <= m.engine_max_ranks


cdef int _choose_reduce(const cost_model_t* m, int algo, int code, int p, Py_ssize_t nbytes,
                        bint packed) noexcept nogil:
    # The path of one reduction of ``nbytes`` (a packed buffer, or an array in place).
    cdef double best, t
    cdef int path = P_MPI
    cdef bint pow2 = p & (p - 1) == 0
    if (code != OP_SUM and code != OP_MEAN) or nbytes == 0 or not _engine_allowed(m, algo, p):
        return P_MPI
    best = _predict(m, P_MPI, True, p, nbytes, 1, code == OP_MEAN and not packed)
    if algo == ALG_ENGINE:
        best = 1e300  # the engine's own paths only
    t = _predict(m, P_RING, True, p, nbytes, 1, False)
    if t < best:
        best, path = t, P_RING
    if pow2:
        t = _predict(m, P_DOUBLING, True, p, nbytes, 1, False)
        if t < best:
            best, path = t, P_DOUBLING
    return path


cdef int _choose_bcast(const cost_model_t* m, int algo, int p, Py_ssize_t nbytes,
                       Py_ssize_t count) noexcept nogil:
    # The path of a broadcast of ``count`` buffers, ``nbytes`` in all.
    cdef double best
    if count == 0 or not _engine_allowed(m, algo, p):
        return P_MPI
    if p == 2:
        return P_PAIR  # (one message each way, where MPI needs a flag collective too)
    best = _predict(m, P_MPI, False, p, nbytes, count, False)
    if algo == ALG_ENGINE or _predict(m, P_TREE, False, p, nbytes, count, False) < best:
        return P_TREE
    return P_MPI


cdef const cost_model_t* _model_named(str transport) except NULL:
    if transport == "shared":
        return &_SHARED
    if transport == "network":
        return &_NETWORK
    raise ValueError(f"transport must be 'shared' or 'network', got {transport!r}")


def cost_model(transport="shared"):
    """Return the constants of the cost model for ``'shared'`` memory or the ``'network'``.

    A dict of ``alpha`` (s per message), ``beta`` (s per byte moved), ``gamma`` (s per byte
    added), ``delta`` (s per byte of MPI's temporary buffer), ``over`` (s the engine adds per
    message) and ``engine_max_ranks`` (the most ranks for which the engine's own paths are
    candidates under ``algorithm='auto'``).
    """
    cdef const cost_model_t* m = _model_named(transport)
    return {"alpha": m.alpha, "beta": m.beta, "gamma": m.gamma, "delta": m.delta,
            "over": m.over, "engine_max_ranks": m.engine_max_ranks}


cdef cost_model_t _model_from(object model, str transport) except *:
    cdef cost_model_t m = _model_named(transport)[0]
    if model is not None:
        unknown = set(model) - {"alpha", "beta", "gamma", "delta", "over", "engine_max_ranks"}
        if unknown:
            raise ValueError(f"model has unknown keys {sorted(unknown)}; use the keys of "
                             f"cost_model()")
        m.alpha = model.get("alpha", m.alpha)
        m.beta = model.get("beta", m.beta)
        m.gamma = model.get("gamma", m.gamma)
        m.delta = model.get("delta", m.delta)
        m.over = model.get("over", m.over)
        m.engine_max_ranks = model.get("engine_max_ranks", m.engine_max_ranks)
    return m


cdef int _op_code(str where, object op) except -1:
    if op == "bcast":
        return OP_BCAST
    if isinstance(op, str) and op in _OP_NAMES:
        return _OP_NAMES.index(op)
    raise ValueError(f"{where}: op must be one of {', '.join(map(repr, _OP_NAMES))} or "
                     f"'bcast', got {op!r}")


def predict(path, op, int ranks, double nbytes, transport="shared", Py_ssize_t buffers=1,
            model=None):
    """Return the seconds the cost model predicts for moving ``nbytes`` along ``path``.

    Args:
        path: one of :data:`PATHS`.
        op: ``'sum'``, ``'mean'``, ``'min'``, ``'max'``, ``'prod'`` or ``'bcast'``.
        ranks: the number of ranks (>= 1).
        nbytes: bytes of the buffer (a broadcast: of all its ``buffers``).
        transport: ``'shared'`` (every rank on one node) or ``'network'``.
        buffers: how many buffers a broadcast moves.
        model: a dict overriding some constants of :func:`cost_model` (e.g. measured ones).

    Raises:
        ValueError: an unknown path, op, transport or model key, or ``ranks`` < 1.
    """
    cdef int code = _op_code("predict()", op)
    cdef cost_model_t m = _model_from(model, transport)
    if path not in PATHS:
        raise ValueError(f"predict(): path must be one of {', '.join(map(repr, PATHS))}, "
                         f"got {path!r}")
    if ranks < 1:
        raise ValueError(f"predict(): ranks must be >= 1, got {ranks!r}")
    return _predict(&m, PATHS.index(path), code != OP_BCAST, ranks, nbytes, max(buffers, 1),
                    code == OP_MEAN and path == "mpi")


def choose(op, int ranks, Py_ssize_t nbytes, transport="shared", algorithm="auto",
           Py_ssize_t buffers=1, bint packed=False, model=None):
    """Return the path (a name of :data:`PATHS`) FlatBuffer takes for such a buffer.

    ``packed``: the buffer is the packed buffer of small arrays (a mean is then divided while
    unpacking, not in a pass of its own). Other arguments as :func:`predict`; ``algorithm``
    as ``FlatBuffer(algorithm=)``.
    """
    cdef int code = _op_code("choose()", op)
    cdef cost_model_t m = _model_from(model, transport)
    if algorithm not in ALGORITHMS:
        raise ValueError(f"choose(): algorithm must be one of 'auto', 'mpi', 'engine', got "
                         f"{algorithm!r}")
    if ranks < 1:
        raise ValueError(f"choose(): ranks must be >= 1, got {ranks!r}")
    if code == OP_BCAST:
        return PATHS[_choose_bcast(&m, ALGORITHMS.index(algorithm), ranks, nbytes, buffers)]
    return PATHS[_choose_reduce(&m, ALGORITHMS.index(algorithm), code, ranks, nbytes, packed)]
