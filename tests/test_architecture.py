"""The package's shape: faces at the top, one private folder per concern below them, no circle.

Every ``import`` of a spinfast module in ``src/spinfast`` is read from the source (module level
and inside functions alike: a lazy import that closes a circle is still a circle). Each module
belongs to a unit: a public module (a face), a private subpackage (a room) or a compiled
module. Units are ranked below; a unit imports only units of lower rank, or rooms of its own
rank, never a face of its own rank from a room ("upward").
"""

from __future__ import annotations

import ast
import json
import re
import subprocess
import sys
from pathlib import Path

SRC = Path(__file__).resolve().parent.parent / "src" / "spinfast"
DOCS = Path(__file__).resolve().parent.parent / "docs"

# Rank of each unit: faces (public modules, importable by users) and rooms (private
# subpackages). Compiled modules and the leaf helpers are rank 0.
RANKS = {
    0: ["spinfast", "_stats", "_flat", "_compress", "_tbevent", "serialization_utils",
        "user_config", "compat", "gym_compat"],
    1: ["_mpi", "mpi_tools"],
    2: ["_logger", "_outputs", "logx", "mpi_pytorch", "mpi_tf", "tfevents", "metrics"],
    3: ["_grid", "run_utils", "_plot", "plot", "test_policy", "examples_demo"],
    4: ["_cli", "run"],
    5: ["__main__"],
}
RANK = {unit: rank for rank, units in RANKS.items() for unit in units}
FACES = {"logx", "mpi_tools", "mpi_pytorch", "mpi_tf", "run_utils", "plot", "test_policy",
         "serialization_utils", "user_config", "run", "metrics", "tfevents", "gym_compat",
         "examples_demo"}


def module_name(path: Path) -> str:
    parts = path.relative_to(SRC.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def unit_of(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "spinfast"


def imports_of(path: Path) -> set[str]:
    """The spinfast modules that ``path`` imports (``from spinfast import x`` counts x)."""
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.split(".")[0] == "spinfast"}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[:len(base) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if target.split(".")[0] != "spinfast":
                continue
            for alias in node.names:
                sub = f"{target}.{alias.name}"
                found.add(sub if is_module(sub) else target)
    found.discard(name)
    return found


def is_module(name: str) -> bool:
    rel = Path(*name.split(".")[1:])
    return ((SRC / rel).with_suffix(".py").exists() or (SRC / rel / "__init__.py").exists()
            or any(SRC.glob(f"{rel}.*.so")) or (SRC / rel).with_suffix(".pyi").exists())


def graph() -> dict[str, set[str]]:
    return {module_name(p): imports_of(p) for p in SRC.rglob("*.py")}


def test_graph_reads_imports():
    g = graph()
    # a module-level import, a lazy one inside a function, a relative one, a compiled one
    assert "spinfast.mpi_tools" in g["spinfast.logx"]
    assert "spinfast.compat" in g["spinfast._grid.experiment"]
    assert "spinfast.compat._aliases" in g["spinfast.compat._gym"]
    assert "spinfast._stats" in g["spinfast._logger.epochtable"]


def find_cycle(g: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node):
        state[node] = 1
        stack.append(node)
        for nxt in sorted(g.get(node, ())):
            if state.get(nxt) == 1:
                return stack[stack.index(nxt):] + [nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(g):
        if node not in state and (found := visit(node)):
            return found
    return None


def test_find_cycle_finds_one():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": set()}) is None


def test_no_import_circle():
    assert find_cycle(graph()) is None


def test_every_unit_is_ranked():
    units = {unit_of(m) for m in graph()}
    assert units - set(RANK) == set(), "rank the new module in RANKS"


def test_imports_go_down():
    wrong = []
    for module, targets in graph().items():
        src = unit_of(module)
        for target in targets:
            dst = unit_of(target)
            if dst == src:
                continue
            room_or_lower = RANK[dst] < RANK[src] or (RANK[dst] == RANK[src]
                                                    and dst not in FACES)
            if not room_or_lower:
                wrong.append(f"{module} -> {target}")
    assert wrong == []


def test_top_level_holds_faces_and_folders_only():
    names = {p.name for p in SRC.iterdir() if p.name != "__pycache__"}
    modules = {n[:-3] for n in names if n.endswith(".py")}
    assert modules - {"__init__", "__main__"} == FACES
    loose = {n for n in names if not n.endswith((".py", ".pyi", ".so", ".typed"))
             and not (SRC / n / "__init__.py").exists()}
    assert loose == set()


def missing_names(imports: dict[str, list[str]]) -> list[str]:
    """``module.name`` of each name of ``imports[module]``, or of the module's ``__all__``, that
    ``from spinfast.<module> import <name>`` cannot import.

    Checked in a fresh interpreter: importing every face here would load TensorFlow and
    PyTorch into the test process, which later tests fork.
    """
    code = ("import importlib, json, sys\n"
            "missing = []\n"
            "for m, names in json.loads(sys.argv[1]).items():\n"
            "    mod = importlib.import_module('spinfast.' + m)\n"
            "    missing += [f'{m}.{n}' for n in [*getattr(mod, '__all__', ()), *names]\n"
            "                if not hasattr(mod, n)]\n"
            "print(json.dumps(missing))\n")
    proc = subprocess.run([sys.executable, "-c", code, json.dumps(imports)], capture_output=True,
                          text=True, timeout=240)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_missing_names_sees_a_missing_name():
    assert missing_names({"serialization_utils": ["convert_json", "NoSuchName"]}) == [
        "serialization_utils.NoSuchName"]


def test_public_names_and_switching_table_import():
    """Every name of every face's ``__all__``, and every ``from spinfast.X import a, b`` of
    docs/switching.md's table, imports."""
    wanted: dict[str, list[str]] = {face: [] for face in sorted(FACES)}
    rows = re.findall(r"\| `from spinup\.utils\.(\w+) import ([^`]+)` \| `from spinfast\.(\w+) "
                      r"import \.\.\.` \|", (DOCS / "switching.md").read_text())
    assert len(rows) >= 8
    for spinup_module, names, module in rows:
        assert spinup_module == module
        wanted[module] += [n.strip() for n in names.split(",") if n.strip() != "..."]
    assert missing_names(wanted) == []
