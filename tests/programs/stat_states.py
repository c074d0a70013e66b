"""reduce_stat_states over every rank: a union of states, key orders, and errors on all ranks.

Writes ``out{rank}.json``: the merged states of all keys, of the first three, of four keys in
a rank-dependent order, the error messages of three bad calls, and a merge after them; the
type and fields each combination of optional arguments returns, and summed counts and gathered
per-rank values.
"""

import json

import numpy as np
from states_data import N_KEYS, key_values

from spinfast import mpi_tools as mt
from spinfast._stats import Welford

rank, size = mt.proc_id(), mt.num_procs()
keys = [f"K{i}" for i in range(N_KEYS)]
rows = []
for i in range(N_KEYS):
    w = Welford()
    w.push(key_values(rank, i))
    rows.append(w.state)
merged = mt.reduce_stat_states(keys, np.array(rows))
few = mt.reduce_stat_states(keys[:3], np.array(rows[:3]))
swapped = keys[:4] if rank % 2 == 0 else [keys[1], keys[0], keys[3], keys[2]]
order = [keys.index(k) for k in swapped]
reordered = mt.reduce_stat_states(swapped, np.array(rows)[order])
errors = []
for label, ks, st in [
        ("differ", ["Loss", "Ret"] if rank == 0 else ["Loss", f"Only{rank}"], np.zeros((2, 5))),
        ("count", ["Loss"] * (1 + (rank > 0)), np.zeros((1 + (rank > 0), 5))),
        ("shape", ["Loss"], np.zeros((1, 5)) if rank == 0 else np.zeros((2, 5)))]:
    try:
        mt.reduce_stat_states(ks, st)
    except ValueError as exc:
        errors.append([label, str(exc)])
after = mt.reduce_stat_states(keys[:3], np.array(rows[:3]))  # usable after the errors
counts = np.arange(6.0).reshape(2, 3) * (rank + 1)
returned = {}
for label, extra in [("plain", {}), ("counts", {"counts": counts}),
                     ("per_rank", {"per_rank": [rank, 10.0 * rank]}),
                     ("both", {"counts": counts, "per_rank": [rank, 10.0 * rank]})]:
    got = mt.reduce_stat_states(keys[:3], np.array(rows[:3]), **extra)
    returned[label] = {
        "type": type(got).__name__, "states": got.states.tolist(),
        "counts": None if got.counts is None else got.counts.tolist(),
        "per_rank": None if got.per_rank is None else got.per_rank.tolist()}
with open(f"out{rank}.json", "w") as f:
    json.dump({"merged": merged.states.tolist(), "few": few.states.tolist(),
               "reordered": reordered.states.tolist(), "swapped": swapped, "errors": errors,
               "after": after.states.tolist(), "returned": returned}, f)
