"""The package's layers import only downward (STYLE.md §1).

A dependency-free stand-in for import-linter's ``layers`` contract: every ``mls`` import in a
module (including those under ``if TYPE_CHECKING`` and inside functions) must name a module of
the same or a lower layer. Inside ``mls.group`` the order is strict, one module per rank, so no
cycle can form there; and no ``mls`` import sits inside a function, where a cycle could hide
from import time (issue 12: ``client``/``state``/``group`` imported each other that way).
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


# Inside mls.group, lowest first: a module imports only modules strictly before it.
GROUP_ORDER: list[str] = [
    "mls.group.config",
    "mls.group.events",
    "mls.group.identity",
    "mls.group.validation",
    "mls.group.epoch",
    "mls.group.proposal_list",
    "mls.group.snapshot",
    "mls.group.client",
    "mls.group.receive",
    "mls.group.staged_commit",
    "mls.group.lifecycle",
    "mls.group.incoming",
    "mls.group.outgoing",
    "mls.group.external",
    "mls.group.commit_builder",
    "mls.group.join",
    "mls.group.creation",
    "mls.group.member_state",
    "mls.group.group",
    "mls.group",
]

# Function-level mls imports that are allowed, with the reason.
LOCAL_IMPORTS_ALLOWED = {
    # The command line loads each command's modules (and optional extras) only when run.
    "mls.__main__": "commands",
    # The post-quantum KEMs need optional primitives (SHAKE, ML-KEM) and are loaded on first
    # use; the suite registry is looked up lazily (owned by the mls.crypto area).
    "mls.crypto.hpke": "optional PQ module",
    "mls.crypto.suites": "optional PQ module, registry",
}


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


def _mls_imports(tree: ast.AST) -> list[tuple[ast.AST, str]]:
    out: list[tuple[ast.AST, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [(node, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out.append((node, node.module))
    return [(n, name) for n, name in out if name == "mls" or name.startswith("mls.")]


def test_group_modules_import_in_order() -> None:
    modules = dict(_modules())
    assert set(GROUP_ORDER) == {m for m in modules if m.startswith("mls.group")}, (
        "every module of mls.group has a place in GROUP_ORDER"
    )
    for rank, module in enumerate(GROUP_ORDER):
        for _, name in _mls_imports(ast.parse(modules[module].read_text())):
            target = next(
                (g for g in GROUP_ORDER[:-1] if name == g or name.startswith(g + ".")), None
            )
            if target is None and name == "mls.group":
                target = "mls.group"
            if target is not None:
                assert GROUP_ORDER.index(target) < rank, f"{module} imports {name} (not below it)"


def test_no_function_level_imports() -> None:
    found = []
    for module, path in _modules():
        if module in LOCAL_IMPORTS_ALLOWED:
            continue
        tree = ast.parse(path.read_text())
        for fn in ast.walk(tree):
            if isinstance(fn, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef | ast.Lambda):
                found += [f"{module}:{n.lineno} {name}" for n, name in _mls_imports(fn)]
    assert not found, f"mls imports inside functions or classes: {found}"


def test_the_checks_see_a_local_import() -> None:
    # The walkers above find an import inside a function, and order violations.
    tree = ast.parse("def f():\n    from mls.group.group import Group\n")
    fn = tree.body[0]
    assert [name for _, name in _mls_imports(fn)] == ["mls.group.group"]


def test_group_modules_do_not_use_any() -> None:
    # Domain types are named in mls.group's signatures; persistence converts to plain values.
    for module, path in _modules():
        if not module.startswith("mls.group"):
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module == "typing":
                assert "Any" not in {a.name for a in node.names}, module
            if isinstance(node, ast.Attribute) and node.attr == "Any":
                raise AssertionError(f"{module} uses typing.Any")


# Import cycles that remain, with the reason. mls.crypto's package and its modules import each
# other (the suite registry and the lazily loaded post-quantum KEMs); owned by that area.
CYCLES_ALLOWED = {"mls.crypto"}


def test_no_import_cycles() -> None:
    modules = dict(_modules())

    def resolve(name: str) -> str | None:
        while name not in modules:
            if "." not in name:
                return None
            name = name.rsplit(".", 1)[0]
        return name

    graph: dict[str, set[str]] = {m: set() for m in modules}
    for module, path in modules.items():
        for node, name in _mls_imports(ast.parse(path.read_text())):
            names = [name]
            if isinstance(node, ast.ImportFrom):
                names += [f"{name}.{a.name}" for a in node.names]
            for n in names:
                target = resolve(n)
                if target is not None and target != module:
                    graph[module].add(target)
    # A module is on a cycle iff it reaches itself.
    on_cycle = []
    for start in graph:
        seen: set[str] = set()
        todo = list(graph[start])
        while todo:
            m = todo.pop()
            if m == start:
                on_cycle.append(start)
                break
            if m not in seen:
                seen.add(m)
                todo.extend(graph[m])
    bad = [m for m in on_cycle if not any(m == a or m.startswith(a + ".") for a in CYCLES_ALLOWED)]
    assert not bad, f"modules on an import cycle: {sorted(bad)}"


def test_group_modules_stay_readable() -> None:
    # Issue 12: no module of mls.group over 800 lines (group.py was 2,050, then 1,159).
    sizes = {m: len(p.read_text().splitlines()) for m, p in _modules() if m.startswith("mls.group")}
    assert max(sizes.values()) <= 800, {m: n for m, n in sizes.items() if n > 800}
