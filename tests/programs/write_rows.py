"""Write rows to every file format as fast as possible until killed (for the SIGKILL test).

Usage: ``python write_rows.py OUTPUT_DIR``. Prints ``ready`` once the first row is written;
row ``i`` holds ``Epoch = i`` and ``Value<j> = i + j / 8`` for ``j < 8``, plus a text column.
"""

from __future__ import annotations

import sys

from spinfast._outputs import Row, make_writers

COLUMNS = ["Epoch"] + [f"Value{j}" for j in range(8)] + ["Note"]


def row(i: int) -> Row:
    """Row ``i`` of the sequence."""
    values: dict[str, object] = {"Epoch": i, "Note": f"row {i}"}
    values.update({f"Value{j}": i + j / 8 for j in range(8)})
    return Row(COLUMNS, values, i)


def main(output_dir: str) -> None:
    """Write rows until the process is killed."""
    writers = make_writers(("txt", "csv", "jsonl", "tensorboard"), output_dir)
    i = 0
    while True:
        for w in writers:
            w.write_row(row(i))
        if i == 0:
            print("ready", flush=True)
        i += 1


if __name__ == "__main__":
    main(sys.argv[1])
