"""Shared pytest configuration: vector discovery, slow marker, cipher-suite fixture."""

from __future__ import annotations

import os
from typing import Any

import pytest

from mls.conformance.core import default_vectors_root

ALL_SUITES = [1, 2, 3, 4, 5, 6, 7]
MANDATORY_SUITE = 1  # RFC 9420 §17.1: MLS_128_DHKEMX25519_AES128GCM_SHA256_Ed25519


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--runslow", action="store_true", help="run every case of the large vector files"
    )
    parser.addoption(
        "--all-suites", action="store_true", help="run unit tests in all seven cipher suites"
    )


def pytest_configure(config: pytest.Config) -> None:
    if os.environ.get("CI") == "true" and not os.environ.get("MLS_VECTORS"):
        root = default_vectors_root()
        if root is None or not (root / "mlswg").is_dir():
            raise pytest.UsageError(
                "CI=true but the official vectors are missing: the checkout's vectors/ folder "
                "(mlswg/, hpke/, sframe/, mimi/) or MLS_VECTORS must hold them"
            )


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "suite_id" in metafunc.fixturenames:
        suites = ALL_SUITES if metafunc.config.getoption("--all-suites") else [MANDATORY_SUITE]
        metafunc.parametrize("suite_id", suites, ids=[f"suite{s}" for s in suites])
    if "pq_suite_id" in metafunc.fixturenames:
        metafunc.parametrize(
            "pq_suite_id", pq_suite_params(all_suites=metafunc.config.getoption("--all-suites"))
        )


# Post-quantum suites (openmls profile ids, mls.crypto.registry): the default run takes one per
# KEM family (X-Wing, ML-KEM-768, ML-KEM-1024); --all-suites takes every supported one.
PQ_FAMILY_SUITES = [0x004F, 0x0051, 0x0907]


def pq_suite_params(*, all_suites: bool) -> list[Any]:
    """The PQ suite ids to test; skipped (with the reason) where ML-KEM/ML-DSA are missing,
    a failure under CI=true."""
    from mls.crypto import pq, pq_suite_ids

    why = pq.mlkem_unavailable() or pq.mldsa_unavailable()
    if why is not None:
        if os.environ.get("CI") == "true":
            raise pytest.UsageError(f"CI=true but post-quantum primitives are unavailable: {why}")
        skip = pytest.mark.skip(reason=f"post-quantum primitives unavailable: {why}")
        return [pytest.param(0, marks=skip, id="pq-unavailable")]
    suites = list(pq_suite_ids()) if all_suites else PQ_FAMILY_SUITES
    return [pytest.param(s, id=f"pq0x{s:04x}") for s in suites]


def vectors_root_or_skip() -> str:
    root = default_vectors_root()
    if root is None or not root.is_dir():
        if os.environ.get("CI") == "true":
            pytest.fail("official vectors missing under CI (set MLS_VECTORS)")
        pytest.skip(
            "official vectors not found: run from a source checkout (vectors/) or set "
            "MLS_VECTORS (https://github.com/mlswg/mls-implementations/tree/main/test-vectors)"
        )
    return str(root)
