"""The command line ``python -m mls``: help, version, one-line errors, vector discovery."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import mls
from mls.__main__ import build_parser, main
from mls.conformance.core import iter_cases, locate_vectors, repo_vectors
from mls.conformance.registry import GENERATED, HANDLERS

REPO = Path(__file__).resolve().parents[1]


def _commands() -> list[str]:
    sub = next(a for a in build_parser()._actions if a.dest == "command")
    assert isinstance(sub.choices, dict)
    return list(sub.choices)


COMMANDS = _commands()


def test_help_lists_every_command_on_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    for name in COMMANDS:
        lines = [line for line in out.splitlines() if line.strip().startswith(name + " ")]
        assert len(lines) == 1, f"{name} is not listed on one line"
        assert len(lines[0]) <= 80


@pytest.mark.parametrize("argv", [[c] for c in COMMANDS] + [["vectors", "run"]])
def test_every_subcommand_has_help(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main([*argv, "--help"])
    assert exc.value.code == 0
    assert capsys.readouterr().out.startswith(f"usage: python -m mls {' '.join(argv)}")


def test_every_command_is_in_the_readme() -> None:
    readme = (REPO / "README.md").read_text()
    assert {"vectors", "demo", "interop"} <= set(COMMANDS)
    for name in COMMANDS:
        assert f"`{name}" in readme or f"python -m mls {name}" in readme, name


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["--version"])
    assert exc.value.code == 0
    assert capsys.readouterr().out.strip() == f"mls-protocol {mls.__version__}"


def test_changelog_starts_with_this_version() -> None:
    text = (REPO / "CHANGELOG.md").read_text()
    first = re.search(r"^## \[(\d[^\]]*)\]", text, re.M)
    assert first is not None and first.group(1) == mls.__version__


@pytest.mark.parametrize(
    "argv",
    [[], ["bogus"], ["vectors"], ["vectors", "run", "--nope"], ["demo", "extra"]],
)
def test_usage_errors_are_one_line(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "error:" in err


def test_runtime_error_is_one_line_without_traceback(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "mls", "vectors", "run", str(tmp_path / "nope.json")],
        capture_output=True,
        text=True,
        cwd=REPO,
        check=False,
    )
    assert proc.returncode == 1
    assert proc.stderr.strip().splitlines() == [
        f"python -m mls vectors: error: no such vector file or folder: {tmp_path / 'nope.json'}"
    ]


def test_checkout_carries_every_vector_file(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MLS_VECTORS", raising=False)
    located = locate_vectors()
    assert [rel for rel, path in located if path is None] == []
    assert all(path is not None and repo_vectors() in path.parents for _, path in located)
    for folder in ("mlswg", "hpke", "sframe", "mimi", "pq"):
        assert (repo_vectors() / folder / "SOURCE.md").is_file()


def test_missing_files_are_named_and_fail(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "mlswg").mkdir()
    shutil.copy(repo_vectors() / "mlswg" / "tree-math.json", tmp_path / "mlswg")
    monkeypatch.setenv("MLS_VECTORS", str(tmp_path))
    assert main(["vectors", "run", "-q", "--json"]) == 1
    captured = capsys.readouterr()
    doc = json.loads(captured.out)
    ran = {f["file"] for f in doc["files"]}
    assert ran == {"mlswg/tree-math.json", *GENERATED}
    generated = sum(len(list(iter_cases(repo_vectors() / rel))) for rel in GENERATED)
    assert doc["failed"] == 0 and sum(f["cases"] for f in doc["files"]) == 10 + generated
    assert set(doc["missing"]) == set(HANDLERS) - ran
    assert "mlswg/welcome.json" in captured.err and "MLS_VECTORS" in captured.err
