"""What :mod:`spinfast.mpi_tools`, :mod:`spinfast.mpi_pytorch` and :mod:`spinfast.mpi_tf` are
made of (private), beside the compiled engine (``spinfast._flat``).

- ``launch``: how ``mpi_fork`` starts ranks (launcher, flags, environment);
- ``statmerge``: logger statistics merged over ranks in one ``Allgather`` per dump;
- ``compression``: 16-bit gradient averaging with error feedback.
"""
