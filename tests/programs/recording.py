"""A communicator proxy that records the name of every method called on it (no side effects).

Programs install it as the world (``mpi_tools._world``) to count the collectives a call makes
on the real communicator.
"""


class Recording:
    """``comm``, recording the name of every method called on it."""

    def __init__(self, comm):
        self._comm = comm
        self.calls = []

    def __getattr__(self, name):
        attr = getattr(self._comm, name)
        if not callable(attr):
            return attr

        def call(*args, **kwargs):
            self.calls.append(name)
            return attr(*args, **kwargs)
        return call
