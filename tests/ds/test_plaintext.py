"""Real chat clients (``ChatClient``) talk through a real server; afterwards neither the
server's database nor its logs contain any plaintext the clients sent (checked by search)."""

from __future__ import annotations

import json
import secrets
import time
from pathlib import Path

from websockets.sync.client import connect

from mls.app import ChatClient, MessageReceived
from mls.app.storage import MemoryStorage
from mls.app.view import describe
from mls.ds.wire import b64d, b64e
from tests.ds.helpers import DsClient, Server, data_of

NOW = int(time.time())


def test_server_never_holds_plaintext(tmp_path: Path) -> None:
    server = Server(
        f"sqlite:///{tmp_path}/ds.sqlite3", tmp_path / "server.log", "--log-level", "debug"
    ).start()
    try:
        tag = secrets.token_hex(4)
        names = ["alice", "bob", "carol"]
        chats = {n: ChatClient.create(f"{n}-{tag}".encode(), MemoryStorage()) for n in names}
        ds = {
            n: DsClient(
                server.url,
                c.identity,
                c.mls_client.signature_private_key,
                c.mls_client.signature_public_key,
            )
            for n, c in chats.items()
        }
        for n in names:
            ds[n].register()
            ds[n].authenticate()
            kps = chats[n].publish_key_packages(2, now=NOW)
            r = ds[n].req("POST", "/v1/key_packages", {"key_packages": [b64e(k) for k in kps]})
            assert r.status_code == 201, r.text
        g = b"plaintext-" + tag.encode()
        chats["alice"].create_group(g, now=NOW)
        ds["alice"].create_group(g)
        claimed = (
            ds["alice"]
            .req(
                "POST",
                "/v1/key_packages/claim",
                {"identities": [b64e(chats[n].identity) for n in ("bob", "carol")]},
            )
            .json()
        )
        kps = [b64d(k["key_package"], "kp", max_len=1 << 16) for k in claimed["key_packages"]]
        out = chats["alice"].commit(g, add=kps, now=NOW)
        r = ds["alice"].commit(
            g, out.commit, welcome=out.welcome, added=[chats[n].identity for n in ("bob", "carol")]
        )
        assert r.status_code == 200, r.text
        chats["alice"].confirm_commit(g, now=NOW)

        secrets_sent: list[str] = []
        wire: list[bytes] = []  # the ciphertexts: stored in the database, never logged

        def deliver(n: str) -> list[str]:
            texts = []
            for e in ds[n].fetch_all(after=chats[n].cursor):
                ev = chats[n].receive(data_of(e), now=NOW, seq=e["seq"])
                if isinstance(ev, MessageReceived):
                    texts.append(describe(ev.content))
            ds[n].ack(chats[n].cursor)
            return texts

        for n in ("bob", "carol"):
            deliver(n)
        for i, n in enumerate(names * 2):
            body = f"confidential-{tag}-{i}: the vault code is {secrets.token_hex(6)}"
            secrets_sent.append(body)
            sent = chats[n].send_text(g, body, now=NOW)
            assert ds[n].post(g, sent.data).status_code == 200
            wire.append(sent.data)
            for other in names:
                if other != n:
                    assert deliver(other) == [body]
        # A call frame through the relay: its media is secret too.
        media = f"voice-sample-{tag}".encode()
        url = server.url.replace("http", "ws") + f"/v1/groups/{b64e(g)}/call"
        calls = {n: chats[n].start_call(g, now=NOW) for n in ("alice", "bob")}
        with connect(url) as wa, connect(url) as wb:
            for w, n in ((wa, "alice"), (wb, "bob")):
                w.send(json.dumps({"type": "auth", "token": ds[n].token}))
                assert json.loads(w.recv(timeout=5))["type"] == "joined"
            wa.send(calls["alice"].encrypt(media))
            got = wb.recv(timeout=5)
            assert isinstance(got, bytes)
            frame = got[1 + got[0] :]
            assert calls["bob"].decrypt(frame, now=NOW).plaintext == media
    finally:
        server.stop()
    stored = b"".join(p.read_bytes() for p in tmp_path.iterdir() if p.is_file())
    assert chats["alice"].identity in stored  # the search does see what the server stores
    for body in secrets_sent:
        assert body.encode() not in stored
        assert body.split(":")[1].encode() not in stored
    assert media not in stored
    assert b"confidential" not in stored and b"vault" not in stored
    log = (tmp_path / "server.log").read_text()
    assert '"event":"message"' in log  # one line per message, at debug level
    for data in wire:
        assert b64e(data) not in log and b64e(data)[-40:] not in log and data.hex()[-40:] not in log
