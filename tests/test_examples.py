"""The scripts in examples/ run to completion and print what they promise."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def run(
    script: str, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(REPO / "examples" / script), *args],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        env={**os.environ, **(env or {})},
    )


def test_chat_bot_answers_every_command() -> None:
    proc = run("chat_bot.py")
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert "bot: alice, bot, bob  (re: !members)" in lines
    assert "bot: ping  (re: !echo ping)" in lines
    assert any(line.startswith("bot: rolled a ") for line in lines)
    assert not any("re: hello bot" in line for line in lines)  # not a command: no answer


def test_group_call_across_add_and_remove() -> None:
    proc = run("group_call.py")
    assert proc.returncode == 0, proc.stderr
    assert "bob cannot decrypt a copy of the frame: UnknownKeyID" in proc.stdout
    assert proc.stdout.rstrip().endswith("All checks passed.")


def test_conformance_from_python(tmp_path: Path) -> None:
    proc = run("conformance.py", "mlswg/tree-math.json", "sframe-mls.json")
    assert proc.returncode == 0, proc.stderr
    assert "mlswg/tree-math.json: 10/10 passed" in proc.stdout
    assert "58 cases passed" in proc.stdout
    # A vectors folder without the file: named as missing, and the exit status says so.
    proc = run("conformance.py", "mlswg/tree-math.json", env={"MLS_VECTORS": str(tmp_path)})
    assert proc.returncode == 1
    assert "mlswg/tree-math.json: MISSING" in proc.stdout
