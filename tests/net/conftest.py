"""Fixtures of the networked-client tests: a real delivery-service process on loopback."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

pytest.importorskip("starlette", reason="the delivery service needs the [server] extra")
pytest.importorskip("httpx", reason="the networked client needs the [server] extra")
pytest.importorskip("websockets", reason="the networked client needs the [server] extra")

from tests.ds.helpers import Server, running


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    """A fresh SQLite node per test (generous rate limits: many clients share one address)."""
    with running(
        f"sqlite:///{tmp_path}/ds.sqlite3",
        tmp_path / "server.log",
        "--rate",
        "100000",
        "--burst",
        "100000",
        "--poll-interval",
        "0.5",
    ) as s:
        yield s
