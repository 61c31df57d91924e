"""Every ```python block of the README and the guide (docs/*.md) runs, so examples cannot drift.

The blocks of one file run in order in one namespace, like a reader following the page. A page
whose first line is ``<!-- docs-test: continues OTHER.md -->`` runs after OTHER.md's blocks, in
its namespace. A block that is not meant to run is preceded by the line
``<!-- docs-test: skip -->`` (there is none at present; the marker must be explicit).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SKIP = "<!-- docs-test: skip -->"
CONTINUES = re.compile(r"^<!-- docs-test: continues (\S+) -->$")
FENCE = re.compile(r"^```python\s*$")


@dataclass(frozen=True)
class Block:
    file: Path
    line: int  # 1-based line of the opening fence
    code: str
    skipped: bool


def blocks(path: Path) -> list[Block]:
    """The ```python blocks of a Markdown file, with the line they start on."""
    lines = path.read_text().splitlines()
    out: list[Block] = []
    i = 0
    while i < len(lines):
        if FENCE.match(lines[i]):
            start = i
            end = next((j for j in range(i + 1, len(lines)) if lines[j].startswith("```")), None)
            if end is None:
                raise AssertionError(f"{path}:{start + 1}: unclosed ```python block")
            before = next((lines[j] for j in range(start - 1, -1, -1) if lines[j].strip()), "")
            code = "\n".join(lines[start + 1 : end]) + "\n"
            out.append(Block(path, start + 1, code, before.strip() == SKIP))
            i = end
        i += 1
    return out


def pages() -> list[Path]:
    return [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]


def continues(path: Path) -> Path | None:
    first = path.read_text().splitlines()[:1]
    m = CONTINUES.match(first[0]) if first else None
    return path.parent / m.group(1) if m else None


def run_page(path: Path, namespace: dict[str, object]) -> int:
    """Run the page's runnable blocks (after the page it continues); the number run."""
    prev = continues(path)
    ran = run_page(prev, namespace) if prev is not None else 0
    for block in blocks(path):
        if block.skipped:
            continue
        name = f"{path.relative_to(REPO) if path.is_relative_to(REPO) else path}:{block.line}"
        # Pad with newlines so a traceback's line numbers are the Markdown file's.
        code = compile("\n" * block.line + block.code, name, "exec")
        exec(code, namespace)  # running our own documentation is the point
        ran += 1
    return ran


RUNNABLE = [p for p in pages() if any(not b.skipped for b in blocks(p))]


@pytest.mark.parametrize("path", RUNNABLE, ids=[str(p.relative_to(REPO)) for p in RUNNABLE])
def test_examples_run(path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # examples that write files write them here
    assert run_page(path, {"__name__": "__docs__"}) > 0


def test_the_pages_that_teach_the_api_have_examples() -> None:
    names = {str(p.relative_to(REPO)) for p in RUNNABLE}
    expected = {
        "README.md",
        "docs/quickstart.md",
        "docs/lifecycle.md",
        "docs/errors.md",
        "docs/policy.md",
        "docs/storage.md",
        "docs/chat.md",
        "docs/calls.md",
        "docs/conformance.md",
    }
    assert expected <= names, f"pages without a runnable example: {sorted(expected - names)}"


def test_collector_sees_skip_markers_and_fences(tmp_path: Path) -> None:
    page = tmp_path / "page.md"
    page.write_text(
        "text\n```python\nx = 1\n```\n\n"
        f"{SKIP}\n```python\nraise SystemExit\n```\n```sh\nnot python\n```\n"
    )
    found = blocks(page)
    assert [(b.line, b.skipped, b.code) for b in found] == [
        (2, False, "x = 1\n"),
        (7, True, "raise SystemExit\n"),
    ]


def test_a_broken_example_fails(tmp_path: Path) -> None:
    page = tmp_path / "page.md"
    page.write_text("```python\nfrom mls import NoSuchName\n```\n")
    with pytest.raises(ImportError):
        run_page(page, {})
