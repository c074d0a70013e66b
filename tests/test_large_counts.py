"""Collectives of more than 2**31 bytes (MPI counts are C ints): every path, two ranks.

Each case needs about 3.3 GB per rank (the arrays, and the ring's half-size scratch), 5.5 GB
per rank for the packed one.
"""

import pytest
from conftest import rank_files


@pytest.mark.slow
@pytest.mark.mpi
@pytest.mark.parametrize("case", ["tensor", "packed",
                                  "torch"])
def test_more_than_2_gib(run_mpi, tmp_path, case):
    if case == "torch":
        pytest.importorskip("torch")
    run_mpi("large_counts", n=2, args=[case], timeout=600)
    expected = {"tensor": ["engine", "mpi", "auto"], "packed": ["engine", "mpi", "auto"],
                "torch": ["torch"]}[case]
    assert [r["checked"] for r in rank_files(tmp_path, 2)] == [expected, expected]
