"""``python -m mls demo`` runs end to end and its checks hold."""

from __future__ import annotations

import io
import os
import subprocess
import sys
from pathlib import Path

import pytest

from mls.app.demo import main

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("args", [[], ["--memory"]], ids=["sqlite", "memory"])
def test_demo_passes_its_checks(args: list[str]) -> None:
    out = io.StringIO()
    assert main(args, out=out) == 0, out.getvalue()
    text = out.getvalue()
    assert text.rstrip().endswith("All checks passed.")
    assert "DEMO FAILED" not in text
    for needle in (
        "what bob sees:",
        "(edited) [carol \N{THUMBS UP SIGN}]",
        "(reply to 'Hello team, lunch at 12:30?')",
        "at exactly sent+30 s the message is gone",
        "WE WERE REMOVED",
        "carol's rogue client cannot decrypt",
        "bob still decrypts alice's in-flight",
        "occurs in anything the delivery service saw",
        "[DS] from alice: PrivateMessage (commit, epoch 0)",
    ):
        assert needle in text, needle
    # Every member's last view is printed and carol (removed) no longer gets new messages.
    tail = text[text.index("== 6.") :]
    assert tail.count("dave: Hi all, dave here.") == 3


def test_python_dash_m_mls_demo(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLS_")}
    env["PYTHONPATH"] = str(ROOT)
    proc = subprocess.run(
        [sys.executable, "-m", "mls", "demo"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "All checks passed." in proc.stdout
    assert list(tmp_path.iterdir()) == []  # the demo leaves no files behind
