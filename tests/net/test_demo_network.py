"""``python -m mls demo --network`` runs clean: a server and four chat processes."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_network_demo() -> None:
    r = subprocess.run(
        [sys.executable, "-m", "mls", "demo", "--network"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        encoding="utf-8",
        timeout=300,
    )
    assert r.returncode == 0, r.stdout[-4000:] + r.stderr[-2000:]
    assert r.stdout.rstrip().endswith("All checks passed.")
    assert "none of the 8 plaintexts occurs anywhere in the server's database" in r.stdout
    assert "[server] commit from" in r.stdout  # what the server saw is shown
