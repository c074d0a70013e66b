"""What :mod:`spinfast.logx` is made of (private).

- ``epochtable``: ``EpochLogger``'s compiled statistics table, ``store``, ``timer``, tensors;
- ``columns``: the columns ``log_tabular`` names, and how a merged row fills them;
- ``rates``: throughput columns (``log_tabular(..., rate=...)``);
- ``sysmetrics``: memory and CPU use of the process, sampled at each dump;
- ``savers``: ``save_state``, the framework model savers and their restore functions;
- ``resume``: the resume record, committing a checkpoint, the header check;
- ``runmeta``: the run's record of its timer keys, which the timings plot reads;
- ``files``: crash-safe writes (write beside the target, then rename);
- ``console``: terminal colors.

The output formats a row goes to live in :mod:`spinfast._outputs`.
"""
