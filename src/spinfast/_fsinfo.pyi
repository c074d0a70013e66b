# Stub for the compiled module spinfast._fsinfo (csrc/_fsinfo.pyx), used by spinfast._writers.

def link_count(fd: int) -> int: ...  # st_nlink of fstat(fd); OSError as os.fstat
