"""Run the demo experiment as a hyperparameter grid from Python, then plot it.

    python examples/grid_demo.py --data_dir /tmp/spinfast-grid --cpu 2 --parallel 1

The same as ``python -m spinfast.run demo``, written out: an :class:`ExperimentGrid` over two
learning rates and two seeds of :func:`spinfast.examples_demo.train` (numpy REINFORCE on a
slippery corridor), each variant on ``--cpu`` MPI ranks, ``--parallel`` variants at a time
(with a progress bar, per-variant logs and a summary), then one PNG of the learning curves.
Run it again with ``--skip_finished`` and the finished variants are skipped.
"""

import argparse
import os

from spinfast.examples_demo import train
from spinfast.plot import make_plots
from spinfast.run_utils import ExperimentGrid

if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data_dir", default="data")
    parser.add_argument("--cpu", type=int, default=2)
    parser.add_argument("--parallel", type=int, default=1)
    parser.add_argument("--skip_finished", action="store_true")
    args = parser.parse_args()

    grid = ExperimentGrid(name="corridor")
    grid.add("lr", [2.0, 10.0])
    grid.add("seed", [0, 1])
    grid.add("epochs", 25)
    results = grid.run(train, num_cpu=args.cpu, data_dir=args.data_dir,
                       parallel=args.parallel, skip_finished=args.skip_finished)

    folders = sorted({os.path.dirname(r.output_dir) + os.sep for r in results})
    (figure,) = make_plots(folders, xaxis="TotalEnvInteracts", values=["AverageEpRet"],
                           smooth=3, save=os.path.join(args.data_dir, "corridor.png"))
    print("Learning curves (mean and std over seeds):", figure.path)
