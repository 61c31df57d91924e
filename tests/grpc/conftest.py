"""Servers of ours on loopback ports for the gRPC tests, and the working group's configs.

grpcio is the optional extra ``[interop]``: without it these tests are not collected, except under
``CI=true`` (CI installs every extra), where its absence is a failure. The scenario configs are
read from ``../shared/interop/mlswg/configs`` beside the checkout (or ``$MLS_INTEROP_HARNESS``);
they are harness files, not copied into the repository.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

CI = os.environ.get("CI") == "true"

try:
    import grpc

    from mls.interop_grpc import mls_client_pb2_grpc as pb_grpc
    from mls.interop_grpc.server import build_server
    from mls.interop_grpc.service import MLSClientService
except ImportError as exc:  # pragma: no cover - depends on the installed extras
    if CI:
        raise
    # Not collected at all (the test modules import grpc); the header says why.
    collect_ignore_glob = ["test_*.py"]
    _MISSING = f"tests/grpc not run: grpcio/protobuf missing ({exc}); pip install -e '.[interop]'"

    def pytest_report_header() -> str:
        return _MISSING


HARNESS = Path(__file__).resolve().parents[3] / "shared" / "interop" / "mlswg"


def harness_dir() -> Path:
    """The working group's harness files (proto and configs), or skip (fail under CI)."""
    root = (
        Path(os.environ["MLS_INTEROP_HARNESS"]) if "MLS_INTEROP_HARNESS" in os.environ else HARNESS
    )
    if not (root / "configs").is_dir():
        if CI:
            pytest.fail(f"CI=true but the interop harness files are missing at {root}")
        pytest.skip(f"interop harness files not found at {root} (../shared/interop/mlswg)")
    return root


def load_config(name: str) -> dict[str, list[dict[str, Any]]]:
    path = harness_dir() / "configs" / f"{name}.json"
    scripts: dict[str, list[dict[str, Any]]] = json.loads(path.read_text())["scripts"]
    return scripts


class Server:
    """One server of ours: the service (to inspect its handles) and a stub connected to it."""

    def __init__(self, **options: Any) -> None:
        self.service = MLSClientService(**options)
        self.server, self.port = build_server(self.service, "127.0.0.1", 0)
        self.server.start()
        self.channel = grpc.insecure_channel(f"127.0.0.1:{self.port}")
        self.stub = pb_grpc.MLSClientStub(self.channel)

    def close(self) -> None:
        self.channel.close()
        self.server.stop(grace=None).wait()


@pytest.fixture(scope="session")
def servers() -> Iterator[tuple[Server, Server]]:
    a, b = Server(), Server()
    try:
        yield a, b
    finally:
        a.close()
        b.close()


@pytest.fixture
def server(servers: tuple[Server, Server]) -> Server:
    return servers[0]
