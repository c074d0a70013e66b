"""A training loop that checkpoints and resumes, to be killed at random (resume test).

Usage: ``python resumable_run.py OUTPUT_DIR ROWS``. Writes rows ``0 .. ROWS-1`` to txt, csv,
jsonl and tensorboard; after every third row it records a checkpoint (the rows complete, as
``save_state`` will); on start it resumes from the last checkpoint, if any. Writes
``OUTPUT_DIR/done`` at the end.
"""

from __future__ import annotations

import json
import os
import sys
import time

from spinfast._writers import ResumePoint, Row, make_writers

COLUMNS = ["Epoch", "AverageEpRet", "LossPi", "Note"]


def row(i: int) -> Row:
    """Row ``i``: the same in every run, so a resumed run must equal an uninterrupted one."""
    return Row(list(COLUMNS), {"Epoch": i, "AverageEpRet": -100.0 + i * 1.37,
                               "LossPi": 1.0 / (i + 3), "Note": f"epoch {i}"}, i)


def main(output_dir: str, rows: int) -> None:
    """Run (or continue) the loop."""
    ckpt = os.path.join(output_dir, "checkpoint.json")
    resume = None
    if os.path.exists(ckpt):
        with open(ckpt) as f:
            done = json.load(f)["rows"]
        resume = ResumePoint(rows=done, step=done)
    start = resume.rows if resume else 0
    writers = make_writers(("txt", "csv", "jsonl", "tensorboard"), output_dir, resume)
    print("started", flush=True)
    for i in range(start, rows):
        r = row(i)
        for w in writers:
            w.write_row(r)
        if (i + 1) % 3 == 0:
            with open(ckpt + ".tmp", "w") as f:
                json.dump({"rows": i + 1}, f)
            os.replace(ckpt + ".tmp", ckpt)
        time.sleep(0.003)
    for w in writers:
        w.close()
    open(os.path.join(output_dir, "done"), "w").close()


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]))
