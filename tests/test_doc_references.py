"""Every code and test reference in docs/validation.md and SPEC_NOTES.md names something real.

A reference is ``path.py:Name`` or ``path.py::Name`` (path under ``mls/``, optionally spelt
``mls/...``), a bare ``Class.attribute`` of a class below, or ``XX::test_name`` with an
abbreviation the catalogue defines. Names after a ``path.py:`` reference in the same
comma-separated run (``group/group.py:Group._a, Group._b``) belong to that file.
"""

from __future__ import annotations

import ast
import importlib
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "docs" / "validation.md", ROOT / "SPEC_NOTES.md"]

TESTS = {
    "TV": "tests/test_validation.py",
    "FZ": "tests/test_process_fuzz.py",
    "PO": "tests/test_policy.py",
    "SF": "tests/unit/test_sframe.py",
    "CA": "tests/app/test_calls.py",
    "IO": "tests/test_interop.py",
}
# Classes that the documents name without a path.
CLASSES = {
    "Group": "mls.group.group",
    "Client": "mls.group.client",
    "GroupConfig": "mls.group.config",
    "RatchetTree": "mls.tree.ratchet_tree",
    "SecretTree": "mls.schedule.secret_tree",
}

_PATH_REF = re.compile(r"\b((?:mls/)?[a-z_]+(?:/[a-z_]+)*\.py)::?([A-Za-z_][\w.]*)")
_FOLLOW = re.compile(r"^\s*(?:,|and)\s*`?([A-Za-z_][\w.]*)`?")
_CLASS_REF = re.compile(r"(?<![\w./:])(" + "|".join(CLASSES) + r")\.([A-Za-z_]\w*)")
_TEST_REF = re.compile(r"\b(" + "|".join(TESTS) + r")::(test_\w+)")


def _module(path: str) -> str:
    rel = path.removeprefix("mls/")
    return "mls." + rel.removesuffix(".py").replace("/", ".").removesuffix(".__init__")


def _resolve(module: str, dotted: str) -> bool:
    try:
        obj: object = importlib.import_module(module)
    except ImportError:
        return False
    for part in dotted.split("."):
        if not hasattr(obj, part):
            return False
        obj = getattr(obj, part)
    return True


def _code_refs() -> list[tuple[str, str, str]]:
    out: list[tuple[str, str, str]] = []
    for doc in DOCS:
        text = doc.read_text()
        for m in _PATH_REF.finditer(text):
            if Path(m.group(1)).name.startswith("test_"):
                continue  # a test, see _test_refs
            module = _module(m.group(1))
            out.append((doc.name, module, m.group(2)))
            rest = text[m.end() :]
            while (f := _FOLLOW.match(rest)) is not None:
                name = f.group(1)
                # "Group._b" after "group/group.py:Group._a"; a lone word ("defence") is prose.
                if "." in name or name.startswith("_"):
                    out.append((doc.name, module, name))
                rest = rest[f.end() :]
        for m in _CLASS_REF.finditer(text):
            # "RatchetTree.decode/encode_tree" names two methods.
            for attr in [m.group(2), *re.findall(r"^/(\w+)", text[m.end() :])]:
                out.append((doc.name, CLASSES[m.group(1)], f"{m.group(1)}.{attr}"))
    return sorted(set(out))


def _test_refs() -> list[tuple[str, str]]:
    out = set()
    for doc in DOCS:
        text = doc.read_text()
        out.update((TESTS[a], t) for a, t in _TEST_REF.findall(text))
        for m in _PATH_REF.finditer(text):
            path = m.group(1) if m.group(1).startswith("tests/") else "tests/" + m.group(1)
            if Path(path).name.startswith("test_"):
                out.add((path, m.group(2)))
    return sorted(out)


@pytest.mark.parametrize(("doc", "module", "name"), _code_refs())
def test_code_reference_resolves(doc: str, module: str, name: str) -> None:
    assert _resolve(module, name), f"{doc}: {module}:{name} does not exist"


def test_test_references_resolve() -> None:
    defined: dict[str, set[str]] = {}
    for path, _ in _test_refs():
        if path not in defined and (ROOT / path).exists():
            tree = ast.parse((ROOT / path).read_text())
            defined[path] = {
                n.name
                for n in ast.walk(tree)
                if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef)
            }
    missing = [f"{p}::{t}" for p, t in _test_refs() if t not in defined.get(p, set())]
    assert not missing, f"tests named in the docs that do not exist: {missing}"


def test_references_were_found() -> None:
    # The patterns above still match the documents' style.
    assert len(_code_refs()) > 100 and len(_test_refs()) > 100
