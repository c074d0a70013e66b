"""spinfast: a fast, compiled-core drop-in replacement for Spinning Up's utilities.

Modules mirror ``spinup.utils.<name>``: :mod:`spinfast.logx`, :mod:`spinfast.mpi_tools`,
:mod:`spinfast.serialization_utils`, ... Importing :mod:`spinfast` loads nothing heavy.
"""

# The one place the version is written: the build reads it from here (pyproject.toml,
# tool.scikit-build.metadata.version).
__version__ = "0.1.0"
