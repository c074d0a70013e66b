"""Start an experiment from inside an MPI launch (as a submitit job that srun started).

Usage: experiment_in_launch.py TESTS_DIR. The experiment (``record_kwargs`` of
tests/test_run_utils.py, 2 ranks) must fork its own ranks, not run as rank 0 of 1 of this one.
"""

import sys

sys.path.insert(0, sys.argv[1])

from test_run_utils import record_kwargs  # noqa: E402

from spinfast.run_utils import call_experiment  # noqa: E402

call_experiment("inl", record_kwargs, num_cpu=2, data_dir="d", out_file="r")
