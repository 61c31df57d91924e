"""The delivery-service API end to end: identities, KeyPackages, groups, inboxes, push, calls."""

from __future__ import annotations

import json
import secrets
import threading
import time

import httpx
from websockets.sync.client import connect

from mls.constants import ContentType
from mls.ds.openapi import openapi_spec
from mls.ds.wire import b64d, b64e
from mls.framing.message import MLSMessage
from mls.group import Client
from mls.sframe.header import encode_header
from tests.ds.helpers import DsClient, Server, data_of, fake_message

NOW = int(time.time())
COMMIT, APP, PROPOSAL = ContentType.commit, ContentType.application, ContentType.proposal


def gid() -> bytes:
    return secrets.token_bytes(12)


def member(server: Server) -> tuple[DsClient, Client]:
    """A DS client whose signature key is that of an MLS client (for its KeyPackages)."""
    mls = Client.create(secrets.token_bytes(8))
    c = DsClient(server.url, mls.identity, mls.signature_private_key, mls.signature_public_key)
    c.register()
    c.authenticate()
    return c, mls


def kp_bytes(mls: Client, *, last_resort: bool = False) -> bytes:
    return MLSMessage(body=mls.key_package(NOW, last_resort=last_resort)).to_bytes()


def test_health_metrics_openapi(server: Server) -> None:
    h = httpx.get(server.url + "/health").json()
    assert h["status"] == "ok" and h["database"] == "sqlite"
    assert set(httpx.get(server.url + "/metrics").json()) >= {"accepted", "refused"}
    assert httpx.get(server.url + "/openapi.json").json() == openapi_spec()


def test_openapi_lists_every_route() -> None:
    from starlette.routing import Route

    from mls.ds.server import DsConfig, create_app

    app = create_app(DsConfig())
    routes = {
        (r.path, m.lower())
        for r in app.routes
        if isinstance(r, Route) and r.path != "/openapi.json"
        for m in (r.methods or ()) - {"HEAD"}
    }
    spec = {(p, m) for p, ops in openapi_spec()["paths"].items() for m in ops}
    assert routes == spec


def test_register_and_authenticate(server: Server) -> None:
    c = DsClient.new(server.url)
    # The same identity again: refused, whoever asks.
    other = DsClient.new(server.url, c.identity, register=False)
    r = other.http.post(
        server.url + "/v1/clients",
        json={
            "identity": b64e(c.identity),
            "signature_key": b64e(other.pk),
            "cipher_suite": 1,
            "proof": b64e(b"x" * 64),
        },
    )
    assert r.status_code in (409, 422)
    # A token for c cannot be had with other's key.
    ch = other.http.post(
        server.url + "/v1/auth/challenge", json={"identity": b64e(c.identity)}
    ).json()["challenge"]
    from mls.crypto import get_suite, sign_with_label
    from mls.ds.wire import AUTH_LABEL, auth_content

    sig = sign_with_label(
        get_suite(1), other.sk, AUTH_LABEL, auth_content(c.identity, b64d(ch, "c", max_len=64))
    )
    r = other.http.post(
        server.url + "/v1/auth/token",
        json={"identity": b64e(c.identity), "challenge": ch, "signature": b64e(sig)},
    )
    assert r.status_code == 401
    # A proof is good once: replaying the token request is refused.
    sig = sign_with_label(
        get_suite(1), c.sk, AUTH_LABEL, auth_content(c.identity, b64d(ch, "c", max_len=64))
    )
    body = {"identity": b64e(c.identity), "challenge": ch, "signature": b64e(sig)}
    assert c.http.post(server.url + "/v1/auth/token", json=body).status_code == 200
    r = c.http.post(server.url + "/v1/auth/token", json=body)
    assert r.status_code == 401 and r.json()["error"] == "bad_challenge"
    # Unknown identities get no challenge.
    r = c.http.post(server.url + "/v1/auth/challenge", json={"identity": b64e(b"nobody-here")})
    assert r.status_code == 404


def test_key_packages_claim_once_and_last_resort(server: Server) -> None:
    bob, bob_mls = member(server)
    alice = DsClient.new(server.url)
    fresh = [kp_bytes(bob_mls) for _ in range(3)]
    last = kp_bytes(bob_mls, last_resort=True)
    r = bob.req("POST", "/v1/key_packages", {"key_packages": [b64e(k) for k in [*fresh, last]]})
    assert r.status_code == 201 and r.json() == {"stored": 4}
    assert bob.req("GET", "/v1/key_packages").json() == {"available": 3, "last_resort": 1}
    # Another client's KeyPackage cannot be published as bob's.
    carol_mls = Client.create(b"carol-kp")
    r = bob.req("POST", "/v1/key_packages", {"key_packages": [b64e(kp_bytes(carol_mls))]})
    assert r.status_code == 422 and r.json()["error"] == "wrong_key_package"

    # Claims from many threads at once: each fresh KeyPackage is handed out once.
    got: list[bytes] = []
    lock = threading.Lock()

    def claim() -> None:
        c = DsClient(server.url, alice.identity, alice.sk, alice.pk, alice.token)
        r = c.req("POST", "/v1/key_packages/claim", {"identities": [b64e(bob.identity)]})
        assert r.status_code == 200, r.text
        with lock:
            got.append(b64d(r.json()["key_packages"][0]["key_package"], "kp", max_len=1 << 16))

    threads = [threading.Thread(target=claim) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(k for k in got if k != last) == sorted(fresh)
    assert got.count(last) == 3  # handed out when no fresh one is left, and kept
    assert bob.req("GET", "/v1/key_packages").json() == {"available": 0, "last_resort": 1}


def test_claim_is_all_or_nothing(server: Server) -> None:
    bob, bob_mls = member(server)
    empty = DsClient.new(server.url)
    bob.req("POST", "/v1/key_packages", {"key_packages": [b64e(kp_bytes(bob_mls))]})
    r = bob.req(
        "POST", "/v1/key_packages/claim", {"identities": [b64e(bob.identity), b64e(empty.identity)]}
    )
    assert r.status_code == 404 and r.json()["error"] == "no_key_package"
    assert bob.req("GET", "/v1/key_packages").json()["available"] == 1


def test_commits_welcomes_and_order(server: Server) -> None:
    a, b, c = (DsClient.new(server.url) for _ in range(3))
    g = gid()
    a.create_group(g)
    from mls.messages.welcome import Welcome

    w = MLSMessage(body=Welcome(cipher_suite=1, secrets=(), encrypted_group_info=b"gi")).to_bytes()
    r = a.commit(g, fake_message(g, 0, COMMIT), added=[b.identity], welcome=w)
    assert r.status_code == 200 and r.json() == {"epoch": 1, "group_seq": 1}
    # A commit for the old epoch loses and learns the epoch; one of the new epoch wins.
    r = b.commit(g, fake_message(g, 0, COMMIT))
    assert r.status_code == 409 and r.json()["error"] == "epoch_conflict"
    assert r.json()["epoch"] == 1
    assert b.commit(g, fake_message(g, 1, COMMIT), added=[c.identity]).status_code == 200
    msgs = [fake_message(g, 2, APP) for _ in range(3)]
    for m in msgs:
        assert c.post(g, m).status_code == 200
    # c is not allowed to post future-epoch messages; nobody outside the roster posts.
    assert c.post(g, fake_message(g, 3, APP)).json()["error"] == "future_epoch"
    out = DsClient.new(server.url)
    r = out.post(g, fake_message(g, 2, APP))
    assert r.status_code == 403 and r.json()["error"] == "not_in_roster"

    ea = a.fetch_all()
    assert [e["kind"] for e in ea] == ["commit", "application", "application", "application"]
    assert [data_of(e) for e in ea[1:]] == msgs
    eb = b.fetch_all()
    assert [e["kind"] for e in eb] == ["welcome", "application", "application", "application"]
    assert data_of(eb[0]) == w and eb[0]["epoch"] == 1
    assert [e["seq"] for e in eb] == [1, 2, 3, 4]
    assert [e["group_seq"] for e in eb] == [1, 3, 4, 5]
    st = a.req("GET", f"/v1/groups/{b64e(g)}").json()
    assert st["epoch"] == 2 and sorted(st["members"]) == sorted(b64e(x.identity) for x in (a, b, c))
    # Removal: the removed member receives the commit, then nothing more.
    r = a.commit(g, fake_message(g, 2, COMMIT), removed=[c.identity])
    assert r.status_code == 200
    assert c.fetch_all()[-1]["kind"] == "commit"
    assert c.post(g, fake_message(g, 3, APP)).status_code == 403


def test_inbox_cursor_and_ack(server: Server) -> None:
    a, b = DsClient.new(server.url), DsClient.new(server.url)
    g = gid()
    a.create_group(g)
    a.commit(g, fake_message(g, 0, COMMIT), added=[b.identity])
    for _ in range(5):
        a.post(g, fake_message(g, 1, APP))
    entries = b.fetch(after=0, limit=2)
    assert [e["seq"] for e in entries] == [1, 2]
    assert [e["seq"] for e in b.fetch(after=2)] == [3, 4, 5]
    assert b.ack(3).json() == {"acked": 3}
    assert [e["seq"] for e in b.fetch(after=0)] == [4, 5]
    r = b.ack(99)
    assert r.status_code == 422 and r.json()["error"] == "ack_ahead"
    assert b.ack(2).json() == {"acked": 3}  # acks never go back


def test_group_info_and_external_commit(server: Server) -> None:
    """A member publishes the GroupInfo; an outsider fetches it, joins by external commit
    (which the server accepts from a non-member, §12.4.3.2) and is in the roster."""
    from mls.group import Group, GroupConfig

    alice, alice_mls = member(server)
    g = gid()
    group = Group.create(alice_mls, g, config=GroupConfig(ratchet_tree_extension=True), now=NOW)
    alice.create_group(g)
    info = group.group_info()
    r = alice.req("PUT", f"/v1/groups/{b64e(g)}/group_info", {"group_info": b64e(info)})
    assert r.status_code == 200 and r.json() == {"epoch": 0}
    joiner, joiner_mls = member(server)
    got = joiner.req("GET", f"/v1/groups/{b64e(g)}/group_info").json()
    assert b64d(got["group_info"], "gi", max_len=1 << 20) == info and got["epoch"] == 0
    # A non-member cannot replace it; a non-member's ordinary commit is refused.
    r = joiner.req("PUT", f"/v1/groups/{b64e(g)}/group_info", {"group_info": b64e(info)})
    assert r.status_code == 403
    assert joiner.commit(g, fake_message(g, 0, COMMIT)).status_code == 403
    joined, commit = Group.external_join(joiner_mls, info, now=NOW)
    r = joiner.commit(g, commit)
    assert r.status_code == 200, r.text
    event = group.process(alice.fetch_all()[-1] and data_of(alice.fetch_all()[-1]), now=NOW)
    assert type(event).__name__ == "CommitMerged"
    assert group.epoch_authenticator == joined.epoch_authenticator
    st = alice.req("GET", f"/v1/groups/{b64e(g)}").json()
    assert sorted(st["members"]) == sorted([b64e(alice.identity), b64e(joiner.identity)])


def test_pending_self_removes_come_with_the_group_info(server: Server) -> None:
    """draft-ietf-mls-extensions: the DS attaches the SelfRemove proposals of the current epoch
    to the GroupInfo it hands out; an external joiner includes them, which removes the leaver."""
    from mls.constants import WireFormat
    from mls.framing.content import (
        AuthenticatedContent,
        FramedContent,
        FramedContentAuthData,
        Sender,
    )
    from mls.framing.protection import public_message_from
    from mls.group import CommitMerged, Group, GroupConfig
    from mls.messages.proposals import SelfRemove

    config = GroupConfig(ratchet_tree_extension=True)
    alice, alice_mls = member(server)
    bob, bob_mls = member(server)
    g = gid()
    a = Group.create(alice_mls, g, config=config, now=NOW)
    alice.create_group(g)
    out = a.commit(add=[bob_mls.key_package(NOW)], now=NOW)
    assert out.welcome is not None
    assert alice.commit(g, out.commit, added=[bob.identity], welcome=out.welcome).status_code == 200
    a.merge_pending_commit()
    b = Group.join(bob_mls, out.welcome, config=config, now=NOW)
    r = alice.req("PUT", f"/v1/groups/{b64e(g)}/group_info", {"group_info": b64e(a.group_info())})
    assert r.status_code == 200
    leave = b.propose_self_remove()
    assert bob.post(g, leave).status_code == 200
    # Another message of the epoch is not attached; a SelfRemove from a non-member sender is
    # refused (the draft: never an external proposal) and changes nothing.
    assert bob.post(g, fake_message(g, 1, APP)).status_code == 200
    forged_content = FramedContent(
        group_id=g, epoch=1, sender=Sender.external(0), content=SelfRemove()
    )
    forged_auth = AuthenticatedContent(
        wire_format=WireFormat.mls_public_message,
        content=forged_content,
        auth=FramedContentAuthData(signature=bytes(64)),
    )
    forged = MLSMessage(body=public_message_from(a.suite, forged_auth, None, a.context))
    r = bob.post(g, forged.to_bytes())
    assert r.status_code == 422 and r.json()["error"] == "invalid_self_remove"
    joiner, joiner_mls = member(server)
    got = joiner.req("GET", f"/v1/groups/{b64e(g)}/group_info").json()
    pending = [b64d(p, "p", max_len=1 << 20) for p in got["self_removes"]]
    assert pending == [leave]
    info = b64d(got["group_info"], "gi", max_len=1 << 20)
    joined, commit = Group.external_join(joiner_mls, info, self_removes=pending, now=NOW)
    assert joiner.commit(g, commit, removed=[bob.identity]).status_code == 200
    entries = [e for e in alice.fetch_all() if e["epoch"] == 1 and e["kind"] != "application"]
    events = [a.process(data_of(e), now=NOW) for e in entries]
    merged = [e for e in events if isinstance(e, CommitMerged)]
    assert len(merged) == 1 and merged[0].removed == (b.own_leaf_index,)
    assert a.epoch_authenticator == joined.epoch_authenticator
    # The new epoch has no pending SelfRemove any more.
    got = joiner.req("GET", f"/v1/groups/{b64e(g)}/group_info").json()
    assert got["self_removes"] == []


def test_websocket_push_and_ack(server: Server) -> None:
    a, b = DsClient.new(server.url), DsClient.new(server.url)
    g = gid()
    a.create_group(g)
    a.commit(g, fake_message(g, 0, COMMIT), added=[b.identity])
    first = fake_message(g, 1, APP)
    a.post(g, first)
    ws_url = server.url.replace("http", "ws") + "/v1/ws"
    with connect(ws_url) as ws:
        ws.send(json.dumps({"type": "auth", "token": b.token, "after": 0}))
        msg = json.loads(ws.recv(timeout=5))
        assert msg["type"] == "entries" and data_of(msg["entries"][0]) == first
        later = fake_message(g, 1, APP)
        t0 = time.monotonic()
        a.post(g, later)
        msg = json.loads(ws.recv(timeout=5))
        assert data_of(msg["entries"][0]) == later and msg["entries"][0]["seq"] == 2
        assert time.monotonic() - t0 < 1.0  # pushed, not polled
        ws.send(json.dumps({"type": "ack", "seq": 2}))
        assert json.loads(ws.recv(timeout=5)) == {"type": "acked", "acked": 2}
    with connect(ws_url) as ws:  # a bad token is refused with a close code
        ws.send(json.dumps({"type": "auth", "token": b64e(b"x" * 32)}))
        assert json.loads(ws.recv(timeout=5))["error"] == "unauthenticated"


def test_call_relay(server: Server) -> None:
    a, b, c = (DsClient.new(server.url) for _ in range(3))
    g = gid()
    a.create_group(g)
    a.commit(g, fake_message(g, 0, COMMIT), added=[b.identity])
    url = server.url.replace("http", "ws") + f"/v1/groups/{b64e(g)}/call"
    with connect(url) as wa, connect(url) as wb, connect(url) as wc:
        wa.send(json.dumps({"type": "auth", "token": a.token}))
        assert json.loads(wa.recv(timeout=5))["type"] == "joined"
        wb.send(json.dumps({"type": "auth", "token": b.token}))
        assert json.loads(wb.recv(timeout=5))["type"] == "joined"
        wc.send(json.dumps({"type": "auth", "token": c.token}))  # not in the roster
        assert json.loads(wc.recv(timeout=5))["error"] == "not_in_roster"
        frame = encode_header(3, 7) + secrets.token_bytes(40)
        wa.send(frame)
        got = wb.recv(timeout=5)
        assert isinstance(got, bytes)
        assert got == bytes([len(a.identity)]) + a.identity + frame
        wa.send(b"")  # not an SFrame frame: refused, the socket closes
        assert "malformed_frame" in str(wa.recv(timeout=5))
