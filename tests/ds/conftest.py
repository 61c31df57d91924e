"""Fixtures of the delivery-service tests: real server processes on loopback.

The whole directory needs the ``[server]`` extra; without it the tests skip (CI installs it).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

if os.environ.get("CI") == "true":
    import httpx  # noqa: F401  (CI installs [test,server]: a missing one is a failure)
    import starlette  # noqa: F401
else:
    pytest.importorskip("starlette", reason="the delivery service needs the [server] extra")
    pytest.importorskip("httpx", reason="the delivery-service tests need httpx ([test] extra)")

from tests.ds.helpers import Server, close_clients, running


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """One SQLite node for a module's tests (fast generous rate limits)."""
    d = tmp_path_factory.mktemp("ds")
    with running(
        f"sqlite:///{d}/ds.sqlite3", d / "server.log", "--rate", "5000", "--burst", "5000"
    ) as s:
        yield s


@pytest.fixture
def fresh_server(tmp_path: Path) -> Iterator[Server]:
    with running(f"sqlite:///{tmp_path}/ds.sqlite3", tmp_path / "server.log") as s:
        yield s


@pytest.fixture(autouse=True)
def _close_http_clients() -> Iterator[None]:
    yield
    close_clients()
