"""A training loop that checkpoints every epoch and resumes where its last checkpoint left off.

Usage: python resumable.py OUT_DIR EPOCHS FORMATS [SLEEP_S]

Each epoch stores values drawn from a generator seeded by the epoch (so a re-run epoch logs
the same numbers), dumps its row, then saves a checkpoint. Run it again after a kill -9 and
it continues (``resume=True``); the outputs must read as if it had never been killed.
"""

import sys
import time

import numpy as np

from spinfast.logx import EpochLogger


def main(out_dir: str, epochs: int, formats: str, sleep_s: float) -> None:
    logger = EpochLogger(output_dir=out_dir, formats=formats, resume=True)
    state = logger.load_state() or {"epoch": -1}
    for epoch in range(state["epoch"] + 1, epochs):
        rng = np.random.default_rng(epoch)
        for t in range(20):
            logger.store(Ret=rng.normal(), Q=rng.normal(size=3).astype(np.float32))
        time.sleep(sleep_s)
        logger.log_tabular("Epoch", epoch)
        logger.log_tabular("Ret", with_min_and_max=True)
        logger.log_tabular("Q", average_only=True)
        logger.log_tabular("Name", f"epoch-{epoch}")
        logger.dump_tabular(step=10 * epoch)
        logger.save_state({"epoch": epoch})
    logger.close()


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]), sys.argv[3],
         float(sys.argv[4]) if len(sys.argv) > 4 else 0.0)
