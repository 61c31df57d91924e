"""Conformance runner for the official MLS (mlswg), HPKE and SFrame test vectors.

Each vector file is handled by a module ``mls.conformance.<name>`` (see :mod:`registry`) that
defines ``check(case) -> None`` and optionally ``case_ids(data) -> list[str]``. ``check`` raises
:class:`CaseFailed` on a mismatch and :class:`CaseUnsupported` when the case cannot be run; any
other exception is a failure too. A case is never counted as passed unless ``check`` returned.
"""

from __future__ import annotations

from mls.conformance.core import (
    CaseFailed,
    CaseResult,
    CaseUnsupported,
    FileResult,
    default_vectors_root,
    expect_eq,
    h,
    iter_cases,
    run_file,
)

__all__ = [
    "CaseFailed",
    "CaseResult",
    "CaseUnsupported",
    "FileResult",
    "default_vectors_root",
    "expect_eq",
    "h",
    "iter_cases",
    "run_file",
]
