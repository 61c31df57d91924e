"""The package's layers import only downward (STYLE.md §1).

A dependency-free stand-in for import-linter's ``layers`` contract: every ``mls`` import in a
module (including those under ``if TYPE_CHECKING`` and inside functions) must name a module of
the same or a lower layer.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1] / "mls"

# Lowest first. Modules of one layer may import each other.
LAYERS: list[set[str]] = [
    {"mls.errors", "mls.constants", "mls.codec"},
    {"mls.crypto"},
    {"mls.credentials", "mls.extensions"},
    {"mls.tree"},
    {"mls.schedule"},
    {"mls.messages"},
    {"mls.framing"},
    {"mls.group"},
    {"mls.sframe", "mls.app"},
    {"mls.conformance", "mls.interop", "mls"},
    # The delivery service may import everything below; only the command line imports it.
    {"mls.ds", "mls.__main__"},
]


def layer_of(module: str) -> int:
    best = -1
    best_len = -1
    for i, names in enumerate(LAYERS):
        for name in names:
            if (module == name or module.startswith(name + ".")) and len(name) > best_len:
                best, best_len = i, len(name)
    assert best >= 0, f"module {module} is in no layer"
    return best


def _modules() -> list[tuple[str, Path]]:
    out = []
    for path in sorted(ROOT.rglob("*.py")):
        rel = path.relative_to(ROOT.parent).with_suffix("")
        parts = list(rel.parts)
        if parts[-1] == "__init__":
            parts.pop()
        out.append((".".join(parts), path))
    return out


@pytest.mark.parametrize(("module", "path"), _modules(), ids=[m for m, _ in _modules()])
def test_imports_go_downward(module: str, path: Path) -> None:
    mine = layer_of(module)
    tree = ast.parse(path.read_text())
    for node in ast.walk(tree):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module]
        for name in names:
            if name == "mls" or name.startswith("mls."):
                assert layer_of(name) <= mine, f"{module} (layer {mine}) imports {name}"


def test_sframe_does_not_import_group() -> None:
    # The SFrame layer declares its own Exporter protocol (STYLE.md §1) instead.
    for module, path in _modules():
        if not module.startswith("mls.sframe"):
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module:
                assert not node.module.startswith("mls.group"), module
            if isinstance(node, ast.Import):
                assert not any(a.name.startswith("mls.group") for a in node.names), module


def test_nothing_imports_the_delivery_service() -> None:
    # mls.ds needs the [server] extra; only the serve command loads it, inside the command.
    for module, path in _modules():
        if module.startswith("mls.ds") or module == "mls.__main__":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            names: list[str] = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            assert not any(n == "mls.ds" or n.startswith("mls.ds.") for n in names), module
