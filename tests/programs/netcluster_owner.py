"""A process that makes a 2-node cluster, launches netcluster_wait.py on it and waits: killed
with SIGKILL by tests/test_netcluster.py, it leaves the cluster behind for the next one's
cleanup at start.

``netcluster_owner.py BENCH_DIR``: prints the cluster's name once every rank is ready.
"""

import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, sys.argv[1])
import netcluster  # noqa: E402

cluster = netcluster.Cluster(2, "25gbit").create()
cmd, env = netcluster.mpich_launch(cluster, 1, [Path(__file__).with_name("netcluster_wait.py")])
launch = subprocess.Popen(cmd, env=env)
while not all(Path(f"ready{r}").exists() for r in range(2)):
    time.sleep(0.05)
print(cluster.name, flush=True)
launch.wait()
