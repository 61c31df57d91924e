"""Every case of every vector file, one pytest id per case, through the conformance handlers.

The large files run their first cases by default and every case with ``--runslow`` (as CI does).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from mls.conformance.core import default_vectors_root, iter_cases, run_case
from mls.conformance.registry import HANDLERS, SLOW_FILES

SAMPLE = 3  # cases of each slow file that the default (fast) run still covers


def _params() -> list[Any]:
    root = default_vectors_root()
    repo_vectors = Path(__file__).resolve().parents[2] / "vectors"
    params: list[Any] = []
    for rel in HANDLERS:
        path = (root / rel) if root else None
        if path is None or not path.is_file():
            path = repo_vectors / rel
        if not path.is_file():
            params.append(pytest.param(rel, None, None, None, id=f"{rel}:missing"))
            continue
        for i, (cid, case, check) in enumerate(iter_cases(path)):
            marks = [pytest.mark.slow] if rel in SLOW_FILES and i >= SAMPLE else []
            params.append(pytest.param(rel, cid, case, check, id=f"{rel}:{cid}", marks=marks))
    return params


@pytest.mark.parametrize(("rel", "case_id", "case", "check"), _params())
def test_vector(rel: str, case_id: str | None, case: Any, check: Any, request: Any) -> None:
    if case_id is None:
        if os.environ.get("CI") == "true" and not rel.startswith("sframe-mls"):
            pytest.fail(f"vector file {rel} missing under CI")
        pytest.skip(f"vector file {rel} not found (set MLS_VECTORS or provide ../shared/vectors)")
    if request.node.get_closest_marker("slow") and not request.config.getoption("--runslow"):
        pytest.skip("slow vector case: run with --runslow")
    status, detail = run_case(case, check)
    if status == "unsupported":
        pytest.xfail(f"unsupported: {detail}")
    assert status == "passed", detail
