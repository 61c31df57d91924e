"""The README tells the truth: CI runs its test command, and its conformance table is the run's."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from mls.conformance.core import locate_vectors, run_file
from mls.conformance.registry import HANDLERS

REPO = Path(__file__).resolve().parents[1]
README = (REPO / "README.md").read_text()
ROW = re.compile(r"^\| `([^`]+)` \| (\d+) \| (\d+) \| (\d+) \| (\d+) \|$", re.M)
TOTAL = re.compile(
    r"^\| \*\*total\*\* \| \*\*(\d+)\*\* \| \*\*(\d+)\*\* \| \*\*(\d+)\*\* \| \*\*(\d+)\*\* \|$",
    re.M,
)


STALE = "the README's conformance table is stale: paste `python -m mls vectors run -q --markdown`"


def shell_blocks(text: str) -> list[str]:
    return re.findall(r"^```sh\n(.*?)^```", text, re.M | re.S)


def test_ci_runs_exactly_the_readme_test_command() -> None:
    test_commands = [
        line
        for block in shell_blocks(README)
        for line in block.splitlines()
        if "python -m pytest" in line
    ]
    assert len(test_commands) == 1, test_commands
    ci = (REPO / ".ci" / "run").read_text().splitlines()
    assert test_commands[0] in ci
    assert 'pip install -e ".[test,server,interop,docs]"' in test_commands[0]
    assert any(line.startswith("python -m sphinx -W") for line in ci)


def test_readme_keeps_its_first_section() -> None:
    sections = re.findall(r"^## (.+)$", README, re.M)
    assert sections[0] == "Two commands for a fresh machine"
    assert "../shared" not in README


def table() -> dict[str, tuple[int, int, int, int]]:
    return {m[0]: (int(m[1]), int(m[2]), int(m[3]), int(m[4])) for m in ROW.findall(README)}


def test_readme_table_lists_every_vector_file_and_adds_up() -> None:
    rows = table()
    assert list(rows) == list(HANDLERS), STALE
    total = TOTAL.search(README)
    assert total is not None
    sums = tuple(sum(r[i] for r in rows.values()) for i in range(4))
    assert sums == tuple(int(x) for x in total.groups())


@pytest.mark.slow
def test_readme_table_is_what_the_runner_reports() -> None:
    rows = table()
    for name, path in locate_vectors():
        assert path is not None, f"{name} missing"
        r = run_file(path, name)
        got = (r.cases, r.count("passed"), r.count("failed"), r.count("unsupported"))
        assert got == rows.get(name), f"{name}: runner {got}, README {rows.get(name)}; {STALE}"
