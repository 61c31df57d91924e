"""Real delivery-service processes on loopback, and a small synchronous client for tests."""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pytest

from mls.crypto import get_suite, sign_with_label
from mls.ds.wire import AUTH_LABEL, REGISTER_LABEL, auth_content, b64d, b64e, register_content
from mls.framing.message import MLSMessage
from mls.framing.private import PrivateMessage

SUITE = 1
PG_DEFAULT = "postgresql://postgres@127.0.0.1:5432/test"


OPEN_CLIENTS: list[httpx.Client] = []


def _client() -> httpx.Client:
    c = httpx.Client(timeout=30)
    OPEN_CLIENTS.append(c)
    return c


def close_clients() -> None:
    while OPEN_CLIENTS:
        OPEN_CLIENTS.pop().close()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Server:
    """``python -m mls serve`` in a subprocess on a free loopback port."""

    def __init__(self, database: str, log: Path, *args: str, port: int | None = None) -> None:
        self.database = database
        self.log_path = log
        self.args = args
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 20.0) -> Server:
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "mls",
                "serve",
                "--port",
                str(self.port),
                "--database",
                self.database,
                *self.args,
            ],
            stdout=log,
            stderr=log,
            stdin=subprocess.DEVNULL,
        )
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited: {self.log_path.read_text()[-2000:]}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(self.url + "/health", timeout=1).status_code == 200:
                    return self
            time.sleep(0.05)
        self.stop()
        raise RuntimeError("server did not start")

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait()

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.kill()


@contextlib.contextmanager
def running(database: str, log: Path, *args: str) -> Iterator[Server]:
    server = Server(database, log, *args).start()
    try:
        yield server
    finally:
        server.stop()


def pg_base_url() -> str:
    """The test database, or skip (fail under CI=true) when it cannot be reached."""
    url = os.environ.get("MLS_TEST_POSTGRES", PG_DEFAULT)
    try:
        import psycopg

        psycopg.connect(url, connect_timeout=3).close()
    except Exception as exc:
        if os.environ.get("CI") == "true":
            pytest.fail(f"PostgreSQL at {url} unreachable under CI=true: {exc}")
        pytest.skip(f"PostgreSQL at {url} unreachable (set MLS_TEST_POSTGRES): {exc}")
    return url


@contextlib.contextmanager
def pg_schema() -> Iterator[str]:
    """A fresh schema for one test; the URL selects it; dropped afterwards."""
    import psycopg

    base = pg_base_url()
    name = "mls_ds_test_" + uuid.uuid4().hex[:12]
    with psycopg.connect(base, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {name}")
    sep = "&" if "?" in base else "?"
    try:
        yield f"{base}{sep}options={quote('-csearch_path=' + name)}"
    finally:
        with psycopg.connect(base, autocommit=True) as conn:
            conn.execute(f"DROP SCHEMA {name} CASCADE")


def fake_message(group_id: bytes, epoch: int, content_type: int, payload: bytes = b"") -> bytes:
    """An MLSMessage(PrivateMessage) with the given clear header and opaque ciphertext: all the
    server reads (tests of ordering and crashes need no real group)."""
    body = PrivateMessage(
        group_id=group_id,
        epoch=epoch,
        content_type=content_type,
        encrypted_sender_data=secrets.token_bytes(16),
        ciphertext=payload or secrets.token_bytes(32),
    )
    return MLSMessage(body=body).to_bytes()


@dataclass
class DsClient:
    """A registered, authenticated client (signature key of suite 1) over HTTP."""

    url: str
    identity: bytes
    sk: bytes = field(repr=False)
    pk: bytes
    token: str = ""
    http: httpx.Client = field(default_factory=lambda: _client())

    @classmethod
    def new(cls, url: str, identity: bytes | None = None, *, register: bool = True) -> DsClient:
        cs = get_suite(SUITE)
        sk, pk = cs.signature_scheme.generate(os.urandom)
        c = cls(url, identity or secrets.token_bytes(8), sk, pk)
        if register:
            c.register()
            c.authenticate()
        return c

    def register(self) -> httpx.Response:
        cs = get_suite(SUITE)
        proof = sign_with_label(
            cs, self.sk, REGISTER_LABEL, register_content(self.identity, self.pk)
        )
        r = self.http.post(
            self.url + "/v1/clients",
            json={
                "identity": b64e(self.identity),
                "signature_key": b64e(self.pk),
                "cipher_suite": SUITE,
                "proof": b64e(proof),
            },
        )
        assert r.status_code == 201, r.text
        return r

    def authenticate(self) -> None:
        r = self.http.post(self.url + "/v1/auth/challenge", json={"identity": b64e(self.identity)})
        assert r.status_code == 200, r.text
        challenge = b64d(r.json()["challenge"], "challenge", max_len=64)
        sig = sign_with_label(
            get_suite(SUITE), self.sk, AUTH_LABEL, auth_content(self.identity, challenge)
        )
        r = self.http.post(
            self.url + "/v1/auth/token",
            json={
                "identity": b64e(self.identity),
                "challenge": b64e(challenge),
                "signature": b64e(sig),
            },
        )
        assert r.status_code == 200, r.text
        self.token = r.json()["token"]

    @property
    def headers(self) -> dict[str, str]:
        return {"authorization": f"Bearer {self.token}"}

    def req(self, method: str, path: str, body: Any = None, **kw: Any) -> httpx.Response:
        return self.http.request(method, self.url + path, json=body, headers=self.headers, **kw)

    def create_group(self, gid: bytes, epoch: int = 0) -> None:
        r = self.req("POST", "/v1/groups", {"group_id": b64e(gid), "epoch": epoch})
        assert r.status_code == 201, r.text

    def commit(
        self,
        gid: bytes,
        data: bytes,
        *,
        added: Sequence[bytes] = (),
        removed: Sequence[bytes] = (),
        welcome: bytes | None = None,
    ) -> httpx.Response:
        body: dict[str, Any] = {
            "commit": b64e(data),
            "added": [b64e(a) for a in added],
            "removed": [b64e(r) for r in removed],
        }
        if welcome is not None:
            body["welcome"] = b64e(welcome)
        return self.req("POST", f"/v1/groups/{b64e(gid)}/commit", body)

    def post(self, gid: bytes, data: bytes) -> httpx.Response:
        return self.req("POST", f"/v1/groups/{b64e(gid)}/messages", {"message": b64e(data)})

    def fetch(self, after: int = 0, limit: int = 500) -> list[dict[str, Any]]:
        r = self.req("GET", f"/v1/inbox?after={after}&limit={limit}")
        assert r.status_code == 200, r.text
        return list(r.json()["entries"])

    def fetch_all(self, after: int = 0) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        while True:
            page = self.fetch(after)
            if not page:
                return out
            out += page
            after = page[-1]["seq"]

    def ack(self, seq: int) -> httpx.Response:
        return self.req("POST", "/v1/inbox/ack", {"seq": seq})

    def close(self) -> None:
        self.http.close()


def data_of(entry: dict[str, Any]) -> bytes:
    return b64d(entry["data"], "data", max_len=1 << 20)


def dumps(obj: Any) -> str:
    return json.dumps(obj)
