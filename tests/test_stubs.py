"""The hand-written .pyi stubs agree with the compiled modules (mypy's stubtest)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ALLOWLIST = Path(__file__).with_name("stubtest_allowlist.txt")


@pytest.mark.slow
def test_stubs_match_compiled_modules(tmp_path):
    cmd = [sys.executable, "-m", "mypy.stubtest", "spinfast._stats", "spinfast._flat",
           "spinfast._tbevent", "spinfast._compress",
           "--allowlist", str(ALLOWLIST), "--mypy-config-file", str(tmp_path / "none.ini")]
    (tmp_path / "none.ini").write_text("[mypy]\n")
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=240, cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
