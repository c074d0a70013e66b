"""An emulated cluster on one machine: network namespaces as nodes, joined by shaped links.

Each node is a network namespace of its own (its own network stack, as a separate host has).
A further namespace, the switch, holds a bridge; every node's interface is one end of a veth
pair whose other end is a port of that bridge. Both directions of each node's link are shaped
with ``tc qdisc ... tbf`` to the chosen rate (the node's egress on its own end, its ingress on
the switch's port), so a node sends and receives at most ``rate`` at once, as through a NIC.
The kernel moves the bytes; a rank waits for them as it waits for a network card. (This
kernel has no ``netem``: latency is the veth's own, a few microseconds.)

Everything lives inside the namespaces the cluster makes: veth pairs are created between two
of them, never in the caller's namespace, and the addresses (198.18.0.0/15, the range set
aside for network benchmarks, RFC 2544) exist only on the nodes' interfaces, so traffic never
leaves them. Removing a namespace removes its links, addresses and qdiscs.

Names: ``sfnc<pid>x<serial>s`` (switch) and ``sfnc<pid>x<serial>n<i>`` (node ``i``), where
``pid`` is the process that made the cluster. Cleanup, three ways: leaving the ``with`` block
(or :meth:`Cluster.remove`), ``atexit`` for a cluster still up at interpreter exit, and, for a
process killed without either, :func:`cleanup_leftovers` (called by every new cluster): it
removes every namespace of the prefix whose process is gone. Removing a namespace first kills
the processes still inside it (a rank left by a killed launcher keeps the namespace, and so its
links, alive after its name is gone).

Needs root and ``ip``/``tc`` (iproute2): :func:`unavailable` says why not, for a skip.

Launching ranks on the nodes: :func:`mpich_launch` and :func:`openmpi_launch` build an MPMD
command line (``ranks_per_node`` ranks per node, each started through ``ip netns exec``) and
its environment, including gloo's (``MASTER_ADDR`` on node 0, ``GLOO_SOCKET_IFNAME`` per
node), so that ``torch.distributed`` runs over the same links.

As a script: ``python bench/netcluster.py cleanup`` removes leftovers; ``python
bench/netcluster.py list`` lists this prefix's namespaces.
"""

from __future__ import annotations

import atexit
import dataclasses
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

PREFIX = "sfnc"
SUBNET = "198.18.31"  # RFC 2544's benchmark range; exists only inside the cluster's namespaces
MAX_NODES = 8
RATES = ("1gbit", "10gbit", "25gbit")
GLOO_PORT = 29531  # a fresh namespace: every port of node 0 is free
_SERIAL = [0]
_LIVE: set = set()  # clusters not yet removed, for atexit


def unavailable() -> str | None:
    """Why clusters cannot be made here (a reason for ``pytest.skip``), or None if they can."""
    if sys.platform != "linux":
        return f"network namespaces are Linux's; this is {sys.platform}"
    if os.geteuid() != 0:
        return "making network namespaces needs root"
    for tool in ("ip", "tc"):
        if shutil.which(tool) is None:
            return f"no {tool!r} command (install iproute2)"
    probe = f"{PREFIX}{os.getpid()}probe"
    made = _run(["ip", "netns", "add", probe], check=False)
    if made.returncode != 0:
        return f"ip netns add failed: {made.stderr.strip()}"
    _run(["ip", "netns", "del", probe], check=False)
    return None


def _run(cmd, check=True, input=None):
    proc = subprocess.run(cmd, capture_output=True, text=True, input=input, timeout=60)
    if check and proc.returncode != 0:
        raise RuntimeError(f"netcluster: {' '.join(cmd)} failed ({proc.returncode}): "
                           f"{proc.stderr.strip()}")
    return proc


def _batch(lines, netns=None):
    """Run ``ip`` commands in one process (``ip -batch``), inside ``netns`` if given."""
    _run(["ip", *(["-n", netns] if netns else []), "-batch", "-"],
         input="\n".join(lines) + "\n")


def namespaces(prefix: str = PREFIX) -> list[str]:
    """The network namespaces whose names start with ``prefix``."""
    out = _run(["ip", "netns", "list"], check=False).stdout
    names = [line.split()[0] for line in out.splitlines() if line.strip()]
    return sorted(n for n in names if n.startswith(prefix))


def _owner(name: str, prefix: str = PREFIX) -> int | None:
    """The pid in ``<prefix><pid>x...``, or None for a name not made by this module."""
    head = name[len(prefix):].split("x", 1)[0]
    return int(head) if head.isdigit() else None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # a zombie is gone for our purposes
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(") ", 1)[1][0] != "Z"
    except (OSError, IndexError):
        return False


def _kill_inside(name: str, timeout: float = 10.0):
    """SIGKILL the processes inside namespace ``name`` (they are this cluster's ranks) and wait
    until none is left."""
    deadline = time.monotonic() + timeout
    while True:
        out = _run(["ip", "netns", "pids", name], check=False).stdout.split()
        pids = [int(p) for p in out if p.isdigit() and int(p) != os.getpid()]
        if not pids:
            return
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        if time.monotonic() > deadline:
            raise RuntimeError(f"netcluster: processes {pids} in namespace {name!r} survive "
                               f"SIGKILL")
        time.sleep(0.05)


def _delete(name: str):
    _kill_inside(name)
    _run(["ip", "netns", "del", name], check=False)


def cleanup_leftovers(prefix: str = PREFIX) -> list[str]:
    """Remove the namespaces of ``prefix`` whose making process is gone; return their names.

    Those of a live process (another cluster in use, here or in a concurrent run) stay.
    """
    gone = [n for n in namespaces(prefix) if (pid := _owner(n, prefix)) is None
            or not _alive(pid)]
    for name in gone:
        _delete(name)
    return gone


def net_inode(name: str) -> int:
    """The inode of namespace ``name`` (``/run/netns/<name>``), which identifies it while any
    process or mount holds it."""
    return os.stat(f"/run/netns/{name}").st_ino


def live_net_inodes() -> set[int]:
    """The inodes of every network namespace some process is in (``/proc/*/ns/net``)."""
    inodes = set()
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                inodes.add(os.stat(proc / "ns" / "net").st_ino)
            except OSError:
                continue
    return inodes


@dataclasses.dataclass(frozen=True)
class Node:
    """One node: its namespace, its interface (inside the namespace) and that interface's
    address."""
    index: int
    netns: str
    ifname: str
    addr: str

    def exec_prefix(self) -> list[str]:
        """The command prefix that runs a program on this node."""
        return ["ip", "netns", "exec", self.netns]


def _rate_bits(rate: str) -> str:
    rate = str(rate).lower()
    if not rate.endswith("bit") or not rate[:-3].rstrip("kmgt").replace(".", "", 1).isdigit():
        raise ValueError(f"Cluster(): rate must read like '10gbit', got {rate!r}; pass one of "
                         f"{RATES} or another tc rate")
    return rate


class Cluster:
    """``nodes`` namespaces joined through a bridge, each link shaped to ``rate`` both ways.

    Use as a context manager (``with Cluster(2, "10gbit") as c: ...``); :attr:`nodes` lists the
    :class:`Node` records. :meth:`shape` changes the rate of every link in place.
    """

    def __init__(self, nodes: int = 2, rate: str = "10gbit", prefix: str = PREFIX):
        if not 1 <= nodes <= MAX_NODES:
            raise ValueError(f"Cluster(): nodes must be 1 to {MAX_NODES}, got {nodes!r}")
        self.rate = _rate_bits(rate)
        self.prefix = prefix
        _SERIAL[0] += 1
        self.name = f"{prefix}{os.getpid()}x{_SERIAL[0]}"
        self.switch = self.name + "s"
        self.nodes = [Node(i, f"{self.name}n{i}", f"nc{i}", f"{SUBNET}.{i + 1}")
                      for i in range(nodes)]
        self.inodes: list[int] = []
        self._up = False

    # -- life cycle -----------------------------------------------------------------------------
    def create(self) -> Cluster:
        cleanup_leftovers(self.prefix)
        _LIVE.add(self)
        self._up = True
        try:
            self._create()
        except BaseException:
            self.remove()
            raise
        return self

    def _create(self):
        sw = self.switch
        _batch([f"netns add {sw}"] + [f"netns add {n.netns}" for n in self.nodes])
        switch = ["link add br0 type bridge", "link set br0 up"]
        for n in self.nodes:
            switch += [f"link add p{n.index} type veth peer name {n.ifname} netns {n.netns}",
                       f"link set p{n.index} master br0", f"link set p{n.index} up"]
        _batch(switch, sw)
        for n in self.nodes:
            _batch([f"addr add {n.addr}/24 dev {n.ifname}", f"link set {n.ifname} up",
                    "link set lo up"], n.netns)
        self.inodes = [net_inode(self.switch)] + [net_inode(n.netns) for n in self.nodes]
        self.shape(self.rate)
        self._wait_links()

    def _wait_links(self, timeout: float = 10.0):
        """Wait until each node's interface carries traffic (the bridge's ports forward)."""
        deadline = time.monotonic() + timeout
        for n in self.nodes:
            while "LOWER_UP" not in _run(["ip", "-n", n.netns, "link", "show", n.ifname]).stdout:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"netcluster: link {n.ifname} of {n.netns} not up")
                time.sleep(0.02)

    def shape(self, rate: str):
        """Shape every link to ``rate`` (a tc rate: '1gbit', '10gbit', '25gbit'), both ways.

        tbf with a 1 MB bucket: a burst above the rate lasts at most 1 MB.
        """
        self.rate = _rate_bits(rate)
        for n in self.nodes:
            for ns, dev in ((n.netns, n.ifname), (self.switch, f"p{n.index}")):
                _run(["tc", "-n", ns, "qdisc", "replace", "dev", dev, "root", "tbf", "rate",
                      self.rate, "burst", "1mb", "latency", "100ms"])

    def qdiscs(self) -> dict[str, str]:
        """``tc qdisc show`` of each of the cluster's namespaces (name -> text)."""
        return {ns: _run(["tc", "-n", ns, "qdisc", "show"], check=False).stdout
                for ns in [self.switch] + [n.netns for n in self.nodes]}

    def remove(self):
        """Remove the cluster (its processes, namespaces, links, qdiscs); idempotent."""
        if not self._up:
            return
        for name in [n.netns for n in self.nodes] + [self.switch]:
            if name in namespaces(self.name):
                _delete(name)
        self._up = False
        _LIVE.discard(self)

    def __enter__(self) -> Cluster:
        return self.create()

    def __exit__(self, *exc):
        self.remove()

    # -- launching ------------------------------------------------------------------------------
    def gloo_env(self, node: Node) -> dict[str, str]:
        """gloo's variables for a rank on ``node`` (rank and world size come from MPI)."""
        return {"MASTER_ADDR": self.nodes[0].addr, "MASTER_PORT": str(GLOO_PORT),
                "GLOO_SOCKET_IFNAME": node.ifname, "NETCLUSTER_NODE": str(node.index)}


@atexit.register
def _remove_live():
    for cluster in list(_LIVE):
        cluster.remove()


# MPICH (ch4): every message through libfabric's TCP provider, also between ranks of one node
# (MPIR_CVAR_NOLOCAL=1, so that every rank counts as a node of its own and the engine takes
# its network rows); FI_TCP_IFACE is set per node.
MPICH_ENV = {"MPIR_CVAR_NOLOCAL": "1", "MPIR_CVAR_CH4_NETMOD": "ofi", "FI_PROVIDER": "tcp"}


def _segments(cluster, ranks_per_node, argv, python, node_env):
    cmd = []
    for node in cluster.nodes:
        env = [f"{k}={v}" for k, v in {**cluster.gloo_env(node), **node_env(node)}.items()]
        cmd += [":", "-n", str(ranks_per_node), *node.exec_prefix(), "env", *env, python,
                *map(str, argv)]
    return cmd[1:]


def _mpiexec_beside(python: str) -> str:
    beside = Path(python).parent / "mpiexec"
    return str(beside) if beside.exists() else shutil.which("mpiexec") or "mpiexec"


def mpich_missing(python: str = sys.executable) -> str | None:
    """Why :func:`mpich_launch` cannot run ``python``'s ranks (its ``mpiexec`` is not MPICH's
    Hydra, e.g. an Open MPI or Intel MPI virtual environment), or None."""
    launcher = _mpiexec_beside(python)
    text = _run([launcher, "--version"], check=False) if shutil.which(launcher) else None
    out = "" if text is None else text.stdout + text.stderr
    if "HYDRA build details" in out and "Intel" not in out:
        return None
    first = out.strip().splitlines()[0] if out.strip() else "none found"
    return f"the mpiexec beside {python} is not MPICH's ({first})"


def mpich_launch(cluster: Cluster, ranks_per_node: int, argv, python: str = sys.executable,
                 launcher: str | None = None) -> tuple[list[str], dict[str, str]]:
    """``(command, environment)`` that starts ``python argv`` as ``ranks_per_node`` ranks on
    each node, under MPICH's ``mpiexec`` (Hydra), every message over libfabric's TCP.

    The rank order is node by node: ranks ``i*R .. i*R+R-1`` on node ``i``. Hydra's proxy runs
    in the caller's namespace and hands each rank its PMI connection as an inherited
    descriptor, which crosses into the node's namespace.
    """
    launcher = launcher or _mpiexec_beside(python)
    cmd = [launcher, *_segments(cluster, ranks_per_node, argv, python,
                                lambda node: {"FI_TCP_IFACE": node.ifname})]
    return cmd, {**_clean_env(), **MPICH_ENV}


def openmpi_launch(cluster: Cluster, ranks_per_node: int, argv, python: str,
                   launcher: str) -> tuple[list[str], dict[str, str]]:
    """As :func:`mpich_launch`, under an Open MPI ``mpirun`` (byte transfer layer ``tcp``).

    ``python`` is an interpreter whose mpi4py loads that Open MPI, ``launcher`` its mpirun.
    """
    cmd = [launcher, "--oversubscribe", "--mca", "btl", "tcp,self", "--mca", "pml", "ob1",
           "--mca", "btl_tcp_if_include", f"{SUBNET}.0/24",
           *_segments(cluster, ranks_per_node, argv, python, lambda node: {})]
    env = {**_clean_env(), "OMPI_ALLOW_RUN_AS_ROOT": "1", "OMPI_ALLOW_RUN_AS_ROOT_CONFIRM": "1"}
    return cmd, env


def find_openmpi(root: Path | None = None) -> tuple[str, str] | None:
    """``(python, mpirun)`` of a virtual environment whose MPI is Open MPI, or None.

    Looked for in ``$NETCLUSTER_OPENMPI`` (a virtual environment's folder), then in the
    folders of ``<root>/.mpi-envs/`` (``root``: the repository), where ``.ci/mpi-envs`` makes
    one virtual environment per MPI library.
    """
    root = root or Path(__file__).resolve().parent.parent
    candidates = [Path(os.environ["NETCLUSTER_OPENMPI"])] if "NETCLUSTER_OPENMPI" in os.environ \
        else sorted((root / ".mpi-envs").glob("*"))
    for venv in candidates:
        python, mpirun = venv / "bin" / "python", venv / "bin" / "mpirun"
        if python.exists() and mpirun.exists():
            version = _run([str(mpirun), "--version"], check=False)
            if "open mpi" in (version.stdout + version.stderr).lower():
                return str(python), str(mpirun)
    return None


def run(command: tuple[list[str], dict[str, str]], cwd, timeout: float = 120,
        check: bool = True) -> subprocess.CompletedProcess:
    """Run a launch of :func:`mpich_launch` / :func:`openmpi_launch` in ``cwd``; a failure (or
    a hang, at ``timeout``) raises AssertionError with its output."""
    cmd, env = command
    try:
        proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True,
                              timeout=timeout)
    except subprocess.TimeoutExpired as exc:
        raise AssertionError(f"netcluster launch timed out after {timeout}s: {' '.join(cmd)}\n"
                             f"{exc.stdout}\n{exc.stderr}") from None
    if check and proc.returncode != 0:
        raise AssertionError(f"netcluster launch failed ({proc.returncode}): {' '.join(cmd)}\n"
                             f"--- stdout\n{proc.stdout}\n--- stderr\n{proc.stderr}")
    return proc


def _clean_env() -> dict[str, str]:
    """This environment without any launcher's variables, one thread per rank."""
    prefixes = ("PMI_", "PMIX_", "OMPI_", "HYDRA_", "MPI_LOCAL", "MV2_", "IN_MPI", "MPIR_CVAR",
                "FI_", "UCX_")
    env = {k: v for k, v in os.environ.items() if not k.startswith(prefixes)}
    env["OMP_NUM_THREADS"] = "1"
    return env


if __name__ == "__main__":
    what = sys.argv[1] if len(sys.argv) > 1 else "list"
    if what == "cleanup":
        print("\n".join(cleanup_leftovers()) or "nothing to remove")
    elif what == "list":
        print("\n".join(namespaces()) or "none")
    else:
        sys.exit(f"netcluster.py: unknown command {what!r}; use 'cleanup' or 'list'")
