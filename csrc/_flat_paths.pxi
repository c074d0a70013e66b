# Which path moves a buffer (included by _flat.pyx): ONE table, looked up by the transport, the
# number of ranks and the buffer's bytes.
#
#   mpi       MPI's own Allreduce / Bcast (whatever the site's MPI does best)
#   ring      the engine's ring reduce-scatter + allgather (sums and means)
#   doubling  the engine's recursive doubling (sums and means, a power-of-two number of ranks)
#   tree      the engine's binomial tree, every buffer of a transfer posted at once (broadcast)
#   pair      the engine's two-rank broadcast, the layout agreement travelling with the data
#
# The rows are the alpha-beta cost model of issue 13 (bench/scale.py keeps it, for predictions
# on paper) evaluated at its constants: the model reduces to these thresholds, and
# tests/test_flat.py checks that the table and bench/scale.py's model choose alike for 2 to 8
# ranks. The constants behind them: alpha 1.83 us and beta 0.061 ns/B on shared memory,
# measured by `python bench/scale.py --measure` on the 2-core development VM (MPICH 4, mpi4py
# 4; bench/README.md, "Collectives at scale"); across nodes the published figures of an EDR
# InfiniBand cluster (2 us, 12.5 GB/s), with the engine kept to 2 ranks, where the ring measured
# 14 ms against 17 ms for MPI's Allreduce + division (10M-float means, MPIR_CVAR_NOLOCAL=1,
# bench/README.md). MPI's own Allreduce wins up to 2 KiB because MPICH does a recursive doubling
# there itself, without the engine's per-message mpi4py call (~1 us).
#
# Every input (transport, ranks, bytes, op, the user's algorithm) is equal on every rank once
# the layouts agree; the paths chosen are part of the layout hash as well (_fold_paths), so a
# rank whose table differs (another build) raises the same ValueError as the others.

cdef enum path_t:
    P_MPI = 0
    P_RING = 1
    P_DOUBLING = 2
    P_TREE = 3
    P_PAIR = 4

# Names of the paths, by path_t value (FlatBuffer.paths, choose()).
PATHS = ("mpi", "ring", "doubling", "tree", "pair")

cdef struct paths_t:
    # The paths a plan chose (FlatBuffer.paths; folded into the layout hash). Arrays moved in
    # place carry theirs in their slot.
    int f32               # the packed float32 buffer (reductions)
    int f64               # the packed float64 buffer
    int bcast             # a broadcast


cdef enum transport_t:
    T_SHARED = 0        # every rank on one node (one shared-memory domain)
    T_NETWORK = 1       # ranks on several nodes (or MPIR_CVAR_NOLOCAL=1)

cdef struct rule_t:
    # One row: for `transport` and min_ranks..max_ranks ranks.
    int transport
    int min_ranks
    int max_ranks
    bint auto_engine          # algorithm='auto' takes the engine's paths here at all
    Py_ssize_t mpi_upto       # 'auto': a sum/mean of at most this many bytes goes to MPI...
    Py_ssize_t mean_mpi_upto  # ... a mean of an array in place (MPI divides in a pass of its own)
    Py_ssize_t doubling_below  # power-of-two ranks: doubling below this many bytes, ring above
    Py_ssize_t tree_from      # 'auto' broadcast (more than 2 ranks): the tree from this many
                              # buffers, MPI's Bcast below (2 ranks: always the pair)


# The table. First matching row wins (every transport and number of ranks >= 2 has one; one
# rank moves nothing); under algorithm='engine' mpi_upto is 0 and the tree takes every
# broadcast (the engine's own paths wherever one applies); 'mpi' never looks here.
#   transport  ranks  auto  mpi<=   mean<=  doubling<  tree>=  evidence
cdef enum:
    _N_RULES = 7   # rows of the table
cdef rule_t _RULES[_N_RULES]
_RULES[0] = rule_t(T_SHARED, 2, 2, True, 2048, 2048, 112000, 1)
#   scale.py "here, shared memory": 10k floats 0.0073 ms doubling vs 0.0147 MPI; 1M: ring
#   0.35 ms vs doubling 0.45 vs MPI 1.11 (bench/README.md); the bench's 2-rank mpi_avg_grads.
_RULES[1] = rule_t(T_NETWORK, 2, 2, True, 2048, 2048, 120000, 1)
#   scale.py EDR row at 2 ranks; MPIR_CVAR_NOLOCAL=1 measured: ring 14 ms vs MPI 17 ms at 10M.
_RULES[2] = rule_t(T_SHARED, 3, 3, True, 28571, 21052, 0, 3)
#   scale.py, shared memory, 3 ranks (extrapolated on the 2-core VM; tests run 3 ranks
#   oversubscribed): no doubling on 3 ranks; the ring's 4 messages beat MPI's from 28 KB
#   (21 KB for a mean in place, which MPI divides in an extra pass); the tree from 3 buffers.
_RULES[3] = rule_t(T_SHARED, 4, 4, True, 2048, 2048, 120431, 3)
#   scale.py "here, shared memory" at 4 ranks: 10k floats doubling 0.0145 ms vs MPI 0.0201;
#   1M: ring 0.53 vs MPI 1.28 (bench/README.md).
_RULES[4] = rule_t(T_NETWORK, 3, 4, False, 0, 0, 117074, 1)
#   across nodes the engine is measured at 2 ranks only: MPI's collectives under 'auto'.
#   (The crossover is scale.py's EDR figure at 4 ranks; 'engine' only.)
_RULES[5] = rule_t(T_SHARED, 5, 1 << 30, False, 0, 0, 168768, 1)
_RULES[6] = rule_t(T_NETWORK, 5, 1 << 30, False, 0, 0, 160001, 1)
#   beyond 4 ranks nothing was measured (2-core VM): MPI's collectives under 'auto'. For
#   'engine' (a test mode there) the crossover is scale.py's at 8 ranks; the model would move
#   it up with log2(ranks) (257 KB at 16, 6 MB at 1024), which only scale.py predicts.


cdef const rule_t* _rule(const rule_t* rules, int transport, int ranks) except NULL:
    # The first row of ``rules`` (a copy of _RULES) for this transport and number of ranks.
    cdef int i
    for i in range(_N_RULES):
        if rules[i].transport == transport and rules[i].min_ranks <= ranks <= rules[i].max_ranks:
            return &rules[i]
    raise ValueError(f"FlatBuffer: no row of the decision table for transport {transport!r} "
                     f"and {ranks!r} ranks; the table (csrc/_flat_paths.pxi) must cover them")


cdef int _choose_reduce(const rule_t* r, int algo, int code, int p, Py_ssize_t nbytes,
                        bint packed) noexcept nogil:
    # The path of one reduction of ``nbytes`` (a packed buffer, or an array in place) on p
    # ranks, by the row ``r`` of its transport and p.
    cdef Py_ssize_t mpi_upto = r.mean_mpi_upto if code == OP_MEAN and not packed else r.mpi_upto
    if (code != OP_SUM and code != OP_MEAN) or nbytes == 0 or algo == ALG_MPI:
        return P_MPI
    if algo == ALG_AUTO and (not r.auto_engine or nbytes <= mpi_upto):
        return P_MPI
    if p & (p - 1) == 0 and nbytes < r.doubling_below:
        return P_DOUBLING
    return P_RING


cdef int _choose_bcast(const rule_t* r, int algo, int p, Py_ssize_t count) noexcept nogil:
    # The path of a broadcast of ``count`` buffers on p ranks, by the row ``r``.
    if count == 0 or algo == ALG_MPI or (algo == ALG_AUTO and not r.auto_engine):
        return P_MPI
    if p == 2:
        return P_PAIR  # (one message each way, where MPI needs a flag collective too)
    if algo == ALG_ENGINE or count >= r.tree_from:
        return P_TREE
    return P_MPI


cdef int _transport_code(str where, str transport) except -1:
    if transport == "shared":
        return T_SHARED
    if transport == "network":
        return T_NETWORK
    raise ValueError(f"{where}: transport must be 'shared' or 'network', got {transport!r}")


def choose(op, int ranks, Py_ssize_t nbytes, transport="shared", algorithm="auto",
           Py_ssize_t buffers=1, bint packed=False):
    """Return the path (a name of :data:`PATHS`) FlatBuffer takes for such a buffer.

    Args:
        op: ``'sum'``, ``'mean'``, ``'min'``, ``'max'``, ``'prod'`` or ``'bcast'``.
        ranks: the number of ranks (>= 1).
        nbytes: bytes of the buffer (a broadcast: of all its ``buffers``; unused there).
        transport: ``'shared'`` (every rank on one node) or ``'network'``.
        algorithm: as ``FlatBuffer(algorithm=)``.
        buffers: how many buffers a broadcast moves.
        packed: the buffer is the packed buffer of small arrays (a mean is then divided while
            unpacking, not in a pass of its own).

    Raises:
        ValueError: an unknown op, transport or algorithm, or ``ranks`` < 1.
    """
    cdef int code
    cdef const rule_t* r
    cdef int t = _transport_code("choose()", transport)
    if op == "bcast":
        code = OP_BCAST
    elif isinstance(op, str) and op in _OP_NAMES:
        code = _OP_NAMES.index(op)
    else:
        raise ValueError(f"choose(): op must be one of {', '.join(map(repr, _OP_NAMES))} or "
                         f"'bcast', got {op!r}")
    if algorithm not in ALGORITHMS:
        raise ValueError(f"choose(): algorithm must be one of 'auto', 'mpi', 'engine', got "
                         f"{algorithm!r}")
    if ranks < 1:
        raise ValueError(f"choose(): ranks must be >= 1, got {ranks!r}")
    if ranks == 1:
        return "mpi"  # (nothing moves)
    r = _rule(_RULES, t, ranks)
    if code == OP_BCAST:
        return PATHS[_choose_bcast(r, ALGORITHMS.index(algorithm), ranks, buffers)]
    return PATHS[_choose_reduce(r, ALGORITHMS.index(algorithm), code, ranks, nbytes, packed)]


def _table():
    """The rows of the decision table, as tuples (for tests and bench/scale.py)."""
    return [(("shared", "network")[r.transport], r.min_ranks, r.max_ranks, bool(r.auto_engine),
             r.mpi_upto, r.mean_mpi_upto, r.doubling_below, r.tree_from)
            for r in _RULES[:_N_RULES]]


# SPINFAST_FLAT_RULES: changes to the table, read by each FlatBuffer when it is made (tests: a
# build whose table differs from the other ranks'). Items separated by ';', each
# "transport:ranks:field=value[,field=value]" (fields mpi_upto, mean_mpi_upto, doubling_below,
# tree_from), e.g. "shared:2:mpi_upto=1073741824"; the row of that transport and number of
# ranks changes in this instance's copy of the table.
cdef tuple _RULE_FIELDS = ("mpi_upto", "mean_mpi_upto", "doubling_below", "tree_from")


cdef int _apply_rule_changes(rule_t* rules, str spec) except -1:
    cdef rule_t* r
    for item in spec.split(";"):
        if not item.strip():
            continue
        try:
            transport, ranks, fields = item.strip().split(":")
            r = <rule_t*>_rule(rules, _transport_code("", transport), int(ranks))
            for field in fields.split(","):
                name, value = field.split("=")
                _set_rule_field(r, _RULE_FIELDS.index(name.strip()), int(value))
        except ValueError:
            raise ValueError(f"FlatBuffer(): SPINFAST_FLAT_RULES has {item!r}; write "
                             f"'transport:ranks:field=value,...' with a transport 'shared' or "
                             f"'network' and fields among {', '.join(_RULE_FIELDS)}") from None
    return 0


cdef void _set_rule_field(rule_t* r, int field, Py_ssize_t value) noexcept:
    if field == 0:
        r.mpi_upto = value
    elif field == 1:
        r.mean_mpi_upto = value
    elif field == 2:
        r.doubling_below = value
    else:
        r.tree_from = value
