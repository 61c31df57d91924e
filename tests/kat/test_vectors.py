"""Every case of every vector file, one pytest id per case, through the conformance handlers.

The large files run their first cases by default and every case with ``--runslow`` (as CI does).
"""

from __future__ import annotations

import os
from typing import Any

import pytest

from mls.conformance.core import iter_cases, locate_vectors, run_case
from mls.conformance.registry import SLOW_FILES

SAMPLE = 3  # cases of each slow file that the default (fast) run still covers


def _params() -> list[Any]:
    params: list[Any] = []
    for rel, path in locate_vectors():
        if path is None:
            params.append(pytest.param(rel, None, None, None, id=f"{rel}:missing"))
            continue
        for i, (cid, case, check) in enumerate(iter_cases(path)):
            marks = [pytest.mark.slow] if rel in SLOW_FILES and i >= SAMPLE else []
            params.append(pytest.param(rel, cid, case, check, id=f"{rel}:{cid}", marks=marks))
    return params


@pytest.mark.parametrize(("rel", "case_id", "case", "check"), _params())
def test_vector(rel: str, case_id: str | None, case: Any, check: Any, request: Any) -> None:
    if case_id is None:
        if os.environ.get("CI") == "true":
            pytest.fail(f"vector file {rel} missing under CI")
        pytest.skip(f"vector file {rel} not found (the checkout's vectors/ or MLS_VECTORS)")
    if request.node.get_closest_marker("slow") and not request.config.getoption("--runslow"):
        pytest.skip("slow vector case: run with --runslow")
    status, detail = run_case(case, check)
    if status == "unsupported":
        pytest.xfail(f"unsupported: {detail}")
    assert status == "passed", detail
