"""Vector discovery, per-case execution and result bookkeeping for the conformance runner."""

from __future__ import annotations

import importlib
import json
import os
import traceback
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

from mls.conformance.registry import GENERATED, HANDLERS, handler_name
from mls.crypto import CipherSuite, get_suite
from mls.errors import UnsupportedError


class CaseFailed(Exception):
    """A vector case did not match."""


class CaseUnsupported(Exception):
    """A vector case (or whole file) that this library cannot run yet."""


def suite_for(suite_id: int) -> CipherSuite:
    """The cipher suite of a vector case; a suite we do not implement makes it unsupported."""
    try:
        return get_suite(suite_id)
    except UnsupportedError as exc:
        raise CaseUnsupported(f"cipher suite {suite_id}: {exc}") from exc


def h(value: str) -> bytes:
    """Hex string from a vector file to bytes."""
    return bytes.fromhex(value)


def expect_eq(what: str, got: object, want: object) -> None:
    """Raise :class:`CaseFailed` naming ``what`` unless ``got == want``."""
    if got != want:
        g = got.hex() if isinstance(got, bytes) else repr(got)
        w = want.hex() if isinstance(want, bytes) else repr(want)
        raise CaseFailed(f"{what}: got {g[:80]}, want {w[:80]}")


def repo_vectors() -> Path:
    """The ``vectors/`` folder of a source checkout (absent from an installed wheel)."""
    return Path(__file__).resolve().parents[2] / "vectors"


def default_vectors_root() -> Path | None:
    """``$MLS_VECTORS``, else the checkout's ``vectors/`` folder, else None (installed wheel)."""
    env = os.environ.get("MLS_VECTORS")
    if env:
        return Path(env)
    own = repo_vectors()
    # A wheel installs mls/ into site-packages, whose parent folder may hold an unrelated
    # vectors/: only a folder with our own generated file is the checkout's.
    return own if (own / "sframe-mls.json").is_file() else None


def locate_vectors(root: Path | None = None) -> list[tuple[str, Path | None]]:
    """Every vector file the runner knows (:data:`registry.HANDLERS`) as ``(name, path)``.

    Files are looked up under ``root`` (default :func:`default_vectors_root`); the files this
    project generates (:data:`registry.GENERATED`) also in the checkout's ``vectors/``, so
    ``MLS_VECTORS`` pointing at a folder of official files alone still finds them. ``path`` is
    None for a file that is not there.
    """
    root = root if root is not None else default_vectors_root()
    out: list[tuple[str, Path | None]] = []
    for rel in HANDLERS:
        folders = [f for f in (root, repo_vectors() if rel in GENERATED else None) if f]
        found = next((f / rel for f in folders if (f / rel).is_file()), None)
        out.append((rel, found))
    return out


@dataclass
class CaseResult:
    case_id: str
    status: str  # "passed" | "failed" | "unsupported"
    detail: str = ""


@dataclass
class FileResult:
    file: str
    results: list[CaseResult] = field(default_factory=list)
    error: str = ""

    def count(self, status: str) -> int:
        return sum(1 for r in self.results if r.status == status)

    @property
    def cases(self) -> int:
        return len(self.results)

    def failures(self) -> list[str]:
        out = [f"{r.case_id}: {r.detail}" for r in self.results if r.status == "failed"]
        if self.error:
            out.insert(0, self.error)
        return out

    def to_json(self) -> dict[str, Any]:
        return {
            "file": self.file,
            "cases": self.cases,
            "passed": self.count("passed"),
            "failed": self.count("failed"),
            "unsupported": self.count("unsupported"),
            "failures": self.failures()[:20],
        }


def load_handler(path: str) -> ModuleType | None:
    name = handler_name(path)
    if name is None:
        return None
    try:
        return importlib.import_module(f"mls.conformance.{name}")
    except ModuleNotFoundError as exc:
        if exc.name == f"mls.conformance.{name}":
            return None
        raise


def iter_cases(path: Path) -> Iterator[tuple[str, Any, Callable[[Any], None] | None]]:
    """Yield ``(case_id, case, check)`` for every case of a vector file.

    ``check`` is None when no handler exists yet (every case is then unsupported).
    """
    data = json.loads(path.read_text())
    mod = load_handler(str(path))
    cases_fn = getattr(mod, "cases", None)
    cases: list[Any] = cases_fn(data) if cases_fn else (data if isinstance(data, list) else [data])
    ids_fn = getattr(mod, "case_ids", None)
    ids: list[str] = ids_fn(data) if ids_fn else [_default_id(c, i) for i, c in enumerate(cases)]
    check: Callable[[Any], None] | None = getattr(mod, "check", None) if mod else None
    yield from ((cid, case, check) for cid, case in zip(ids, cases, strict=True))


def _default_id(case: Any, i: int) -> str:
    if isinstance(case, dict) and "cipher_suite" in case:
        return f"suite{case['cipher_suite']}-{i}"
    return str(i)


def run_case(case: Any, check: Callable[[Any], None] | None) -> tuple[str, str]:
    if check is None:
        return "unsupported", "no handler for this file yet"
    try:
        check(case)
    except CaseUnsupported as exc:
        return "unsupported", str(exc)
    except CaseFailed as exc:
        return "failed", str(exc)
    except Exception as exc:  # any other exception is a failure, explained by where it came from
        tb = traceback.extract_tb(exc.__traceback__)[-1]
        where = f"{Path(tb.filename).name}:{tb.lineno}"
        return "failed", f"{type(exc).__name__}: {exc} (at {where})"
    return "passed", ""


def run_file(path: Path, display: str, progress: Callable[[int], None] | None = None) -> FileResult:
    result = FileResult(file=display)
    try:
        for i, (cid, case, check) in enumerate(iter_cases(path)):
            status, detail = run_case(case, check)
            result.results.append(CaseResult(cid, status, detail))
            if progress:
                progress(i)
    except Exception as exc:  # a broken file or handler is reported, never swallowed
        result.error = f"cannot run file: {type(exc).__name__}: {exc}"
    return result
