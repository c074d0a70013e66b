"""What :mod:`spinfast.plot` is made of, one module per concern.

- ``formats``: one reader per run file format (``progress.txt``, ``.csv``, ``.jsonl``,
  TensorBoard event files) and the table that says which file of a folder is read. A new run
  format is one reader there, plus its row in ``FORMATS``.
- ``runs``: finding runs under logdirs, their ``config.json`` and groups
  (:func:`~spinfast.plot.get_datasets`, :func:`~spinfast.plot.get_all_datasets`), and what
  every figure does to a run's columns (checking one, :func:`~spinfast.plot.moving_average`).
- ``figure``: what every figure kind shares: where it goes (files, a pyplot window, or both,
  decided and done once by :class:`~spinfast._plot.figure.Output`) and the house look of our
  own figures (Okabe and Ito's palette, line styles, rc settings).
- ``scores``: runs arranged as score arrays (runs, tasks, points) for :mod:`spinfast.metrics`,
  with per-task normalisation.
- ``aggregate``: the aggregate figure kind (``--aggregate``): sample-efficiency curves,
  interval estimates, performance profile, and the text summary.
- ``timings``: the timings figure kind (``--timings``): per-epoch phase timers as stacked
  bars, one panel per run, with the max over ranks as ticks.

Spinning Up's learning curves (``plot_data``, ``make_plots``) and the command line stay in
:mod:`spinfast.plot` itself. A new figure kind is one module here, built like ``aggregate``:
read runs with ``runs``, draw, hand each figure to ``figure.Output``; then one flag in
``spinfast.plot.build_parser`` and one branch in ``spinfast.plot.main``.

Nothing here imports pandas, seaborn or matplotlib at module level.
"""
