"""A launch (PMI_* set by the test) without mpi4py: every call runs as rank 0 of 1, warning once.

Prints rank and size, the warnings caught, then a sum and statistics.
"""

import sys
import warnings

sys.modules["mpi4py"] = None  # make "import mpi4py" fail

import spinfast.mpi_tools as mt  # noqa: E402  (after mpi4py is made unimportable)

with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    print(mt.proc_id(), mt.num_procs())
print([str(w.message) for w in caught])
print(mt.mpi_sum([1, 2]).tolist(), mt.mpi_statistics_scalar([1.0, 2.0, 3.0], True))
