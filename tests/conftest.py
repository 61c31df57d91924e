"""Shared pytest configuration: vector discovery, slow marker, cipher-suite fixture."""

from __future__ import annotations

import os

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
