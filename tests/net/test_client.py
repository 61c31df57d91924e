"""NetClient against a real delivery-service process on loopback."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
import pytest

from mls.app.client import GroupUpdated, MessageReceived
from mls.app.network import DeliveryError, NetClient, NetConfig, NetStore
from tests.ds.helpers import Server
from tests.net.helpers import Hooked, drain, is_commit, texts, until


def body(ev: MessageReceived) -> str:
    return ev.content.nested_part.body.content.decode()  # type: ignore[union-attr]


def test_chat_invite_remove(server: Server, tmp_path: Path) -> None:
    async def main() -> None:
        a = await NetClient.open(server.url, b"alice", data=tmp_path / "a.db")
        b = await NetClient.open(server.url, b"bob", data=tmp_path / "b.db")
        c = await NetClient.open(server.url, b"carol")
        for x in (a, b, c):
            x.start()
        try:
            gid = await a.create_group(b"room")
            ev = await a.invite(gid, b"bob", b"carol")
            assert isinstance(ev, GroupUpdated) and set(ev.added) == {b"bob", b"carol"}
            await until(lambda: gid in b.chat.group_ids() and gid in c.chat.group_ids())
            p = await b.send_text(gid, "hello")
            assert p.group_seq is not None
            await until(lambda: len(a.chat.messages(gid, now=a.now())) == 1)
            await until(lambda: len(c.chat.messages(gid, now=c.now())) == 1)
            await a.remove(gid, b"carol")
            await until(lambda: gid not in c.chat.group_ids())
            await until(lambda: b.chat.group(gid).epoch == a.chat.group(gid).epoch)
            assert b.members(gid) == a.members(gid) == [b"alice", b"bob"]
            assert b.chat.group(gid).epoch_authenticator == a.chat.group(gid).epoch_authenticator
            # The pool: bob's fresh KeyPackage was claimed; the pool was refilled.
            j = await b._request("GET", "/v1/key_packages")
            assert j["available"] >= 3 and j["last_resort"] == 1
            got = [d.event for d in drain(a) if isinstance(d.event, MessageReceived)]
            assert [body(m) for m in got] == ["hello"]
        finally:
            for x in (a, b, c):
                await x.close()

    asyncio.run(main())


async def _group(
    server: Server, tmp_path: Path, *names: bytes, **kw: Hooked
) -> tuple[bytes, list[NetClient]]:
    """A group of ``names`` created by the first, everyone's push running."""
    clients = [
        await NetClient.open(
            server.url, n, data=tmp_path / f"{n.decode()}.db", transport=kw.get(n.decode())
        )
        for n in names
    ]
    for c in clients:
        c.start()
    gid = await clients[0].create_group(b"g")
    await clients[0].invite(gid, *names[1:])
    await until(lambda: all(gid in c.chat.group_ids() for c in clients))
    for c in clients:
        drain(c)
    return gid, clients


def _converged(gid: bytes, clients: list[NetClient]) -> bool:
    auths = {c.chat.group(gid).epoch_authenticator for c in clients if gid in c.chat.group_ids()}
    return len(auths) == 1


def test_commit_conflict_recreated(server: Server, tmp_path: Path) -> None:
    """Bob wins the epoch while Alice's commit is on its way: Alice's is refused, she
    processes Bob's and commits her add again, with no user action; nobody forks."""
    hook = Hooked()

    async def main() -> None:
        gid, (a, b, c) = await _group(server, tmp_path, b"alice", b"bob", b"carol", alice=hook)
        d = await NetClient.open(server.url, b"dave")
        e = await NetClient.open(server.url, b"erin")
        d.start()
        e.start()
        try:
            epoch = a.chat.group(gid).epoch
            fired = False

            async def bob_first(request: httpx.Request) -> None:
                nonlocal fired
                if is_commit(request) and not fired:
                    fired = True
                    await b.invite(gid, b"erin")  # bob wins epoch `epoch`

            hook.before = bob_first
            hook.commits.clear()
            ev = await a.invite(gid, b"dave")
            assert hook.commits == [409, 200]
            assert ev is not None and ev.added == (b"dave",) and ev.epoch == epoch + 2
            everyone = [a, b, c, d, e]
            await until(lambda: all(gid in x.chat.group_ids() for x in everyone))
            await until(lambda: _converged(gid, everyone))
            assert {x.chat.group(gid).epoch for x in everyone} == {epoch + 2}
            assert a.members(gid) == e.members(gid)
            assert set(a.members(gid)) == {b"alice", b"bob", b"carol", b"dave", b"erin"}
            # The same conflict when the winner already did what we wanted: nothing to redo.
            fired = False

            async def carol_first(request: httpx.Request) -> None:
                nonlocal fired
                if is_commit(request) and not fired:
                    fired = True
                    await c.remove(gid, b"erin")

            hook.before = carol_first
            hook.commits.clear()
            assert await a.remove(gid, b"erin") is None
            assert hook.commits == [409]
            await until(lambda: _converged(gid, [a, b, c, d]))
            await a.send_text(gid, "after the race")
            await until(lambda: any("after the race" in t for t in texts(d, gid)))
        finally:
            for x in (a, b, c, d, e):
                await x.close()

    asyncio.run(main())


def test_future_epoch_buffered(server: Server, tmp_path: Path) -> None:
    """An entry of the next epoch handed over before its commit waits (persisted) for it,
    then is handled once, after the commit."""

    async def main() -> None:
        gid, (a, b) = await _group(server, tmp_path, b"alice", b"bob")
        c = await NetClient.open(server.url, b"carol", data=tmp_path / "carol.db")
        await a.invite(gid, b"carol")
        await c.sync()  # joins (no push running: this test hands entries over itself)
        drain(c)
        await a.update(gid)
        await a.send_text(gid, "in the new epoch")
        j = await c._request("GET", f"/v1/inbox?after={c.chat.cursor}")
        commit, message = j["entries"]
        assert commit["kind"] == "commit" and message["kind"] == "application"
        assert message["epoch"] == commit["epoch"] + 1
        try:
            async with c._lock:
                c._handle_entries([message])  # too early
            assert c.buffered() == 1 and drain(c) == []
            assert NetStore(tmp_path / "carol.db.net").buffer_size() == 1  # on disk
            async with c._lock:
                c._handle_entries([commit])
            got = drain(c)
            assert [type(d.event).__name__ for d in got] == ["GroupUpdated", "MessageReceived"]
            assert [d.seq for d in got] == [commit["seq"], message["seq"]]
            assert c.buffered() == 0
            async with c._lock:
                c._handle_entries([commit, message])  # redelivered: nothing twice
            assert drain(c) == []
            assert texts(c, gid) == ["in the new epoch"]
            assert c.chat.group(gid).epoch_authenticator == a.chat.group(gid).epoch_authenticator
            # Two commits and a message, all handed over in reverse: each waits for the one
            # before it, then all are handled once, in order.
            await a.update(gid)
            await a.update(gid)
            await a.send_text(gid, "two epochs later")
            j = await c._request("GET", f"/v1/inbox?after={c.chat.cursor}")
            entries = j["entries"]
            assert [e["kind"] for e in entries] == ["commit", "commit", "application"]
            async with c._lock:
                c._handle_entries(entries[:0:-1])
                assert c.buffered() == 2 and drain(c) == []
                c._handle_entries(entries[:1])
            got = drain(c)
            assert [d.seq for d in got] == [e["seq"] for e in entries]
            assert all(d.refused is None for d in got) and c.buffered() == 0
            assert texts(c, gid) == ["in the new epoch", "two epochs later"]
            assert c.chat.group(gid).epoch_authenticator == a.chat.group(gid).epoch_authenticator
        finally:
            for x in (a, b, c):
                await x.close()

    asyncio.run(main())


def test_future_epoch_buffer_survives_restart(server: Server, tmp_path: Path) -> None:
    async def main() -> None:
        gid, (a,) = await _group(server, tmp_path, b"alice")
        c = await NetClient.open(server.url, b"carol", data=tmp_path / "carol.db")
        await a.invite(gid, b"carol")
        await c.sync()
        await a.update(gid)
        await a.send_text(gid, "early")
        j = await c._request("GET", f"/v1/inbox?after={c.chat.cursor}")
        _commit, message = j["entries"]
        async with c._lock:
            c._handle_entries([message])
        await c.close()  # "crash" with the entry buffered and nothing acknowledged
        c = await NetClient.open(server.url, b"carol", data=tmp_path / "carol.db")
        try:
            assert c.buffered() == 0
            got = [d for d in drain(c) if d.event is not None]
            assert [type(d.event).__name__ for d in got] == ["GroupUpdated", "MessageReceived"]
            assert texts(c, gid) == ["early"]
        finally:
            await a.close()
            await c.close()

    asyncio.run(main())


def test_own_commit_echo_after_lost_response(server: Server, tmp_path: Path) -> None:
    """The server took our commit but its answer was lost: the retry is answered
    ``duplicate`` (our own commit echoed back), which is merged once."""
    hook = Hooked()

    async def main() -> None:
        gid, (a, b) = await _group(server, tmp_path, b"alice", b"bob", alice=hook)
        try:
            epoch = a.chat.group(gid).epoch
            lost = False

            async def lose(request: httpx.Request, response: httpx.Response) -> None:
                nonlocal lost
                if is_commit(request) and not lost:
                    lost = True
                    raise httpx.ReadError("connection reset", request=request)

            hook.after = lose
            hook.commits.clear()
            ev = await a.update(gid)
            assert hook.commits == [200, 409]  # taken, then recognised as a duplicate
            assert ev is not None and ev.epoch == epoch + 1
            mine = [d for d in drain(a) if isinstance(d.event, GroupUpdated)]
            assert len(mine) == 1 and a.chat.group(gid).epoch == epoch + 1
            await until(lambda: b.chat.group(gid).epoch == epoch + 1)
            assert b.chat.group(gid).epoch_authenticator == a.chat.group(gid).epoch_authenticator
            await a.send_text(gid, "still in sync")
            await until(lambda: texts(b, gid) == ["still in sync"])
        finally:
            await a.close()
            await b.close()

    asyncio.run(main())


class Crash(Exception):
    pass


@pytest.mark.parametrize("when", ["before_post", "after_post"])
def test_own_commit_resolved_after_crash(server: Server, tmp_path: Path, when: str) -> None:
    """The process dies with our commit in flight, before or after the server took it: on
    restart it is posted again and merged once (or taken for the first time)."""
    hook = Hooked()

    async def main() -> None:
        gid, (a, b) = await _group(server, tmp_path, b"alice", b"bob", alice=hook)
        epoch = a.chat.group(gid).epoch

        async def before(request: httpx.Request) -> None:
            if is_commit(request) and when == "before_post":
                raise Crash

        async def after(request: httpx.Request, response: httpx.Response) -> None:
            if is_commit(request) and when == "after_post":
                raise Crash

        hook.before, hook.after = before, after
        with pytest.raises(Crash):
            await a.update(gid)
        assert a.chat.has_unresolved_commit(gid)
        await a.close()
        a = await NetClient.open(server.url, b"alice", data=tmp_path / "alice.db")
        try:
            assert not a.chat.has_unresolved_commit(gid)
            assert a.chat.group(gid).epoch == epoch + 1
            mine = [d for d in drain(a) if isinstance(d.event, GroupUpdated)]
            assert len(mine) == 1
            await until(lambda: b.chat.group(gid).epoch == epoch + 1)
            assert b.chat.group(gid).epoch_authenticator == a.chat.group(gid).epoch_authenticator
        finally:
            await a.close()
            await b.close()

    asyncio.run(main())


def test_leave(server: Server, tmp_path: Path) -> None:
    async def main() -> None:
        gid, (a, b, c) = await _group(server, tmp_path, b"alice", b"bob", b"carol")
        try:
            await c.leave(gid)
            await c.wait_removed(gid)
            await until(lambda: a.members(gid) == b.members(gid) == [b"alice", b"bob"])
            assert _converged(gid, [a, b])
            assert c.net.get("leave:" + gid.hex()) is None
            await a.send_text(gid, "bye carol")
            await until(lambda: "bye carol" in texts(b, gid))
        finally:
            for x in (a, b, c):
                await x.close()

    asyncio.run(main())


def test_catch_up_after_server_restart(server: Server, tmp_path: Path) -> None:
    """The connection drops (the server restarts): pushes resume from the cursor, nothing is
    lost or shown twice."""

    async def main() -> None:
        gid, (a, b) = await _group(server, tmp_path, b"alice", b"bob")
        try:
            await a.send_text(gid, "one")
            await until(lambda: texts(b, gid) == ["one"])
            server.stop()
            await until(lambda: not b.connected.is_set())
            server.start()
            await a.send_text(gid, "two")
            await a.update(gid)
            await a.send_text(gid, "three")
            await until(lambda: texts(b, gid) == ["one", "two", "three"])
            assert _converged(gid, [a, b])
        finally:
            await a.close()
            await b.close()

    asyncio.run(main())


def test_past_epoch_message_within_grace(server: Server, tmp_path: Path) -> None:
    """A message encrypted in epoch e and ordered after the commit to e+1 still decrypts
    (the group keeps past epochs as long as the server accepts messages of them)."""

    async def main() -> None:
        gid, (a, b, c) = await _group(server, tmp_path, b"alice", b"bob", b"carol")
        try:
            epoch = b.chat.group(gid).epoch
            late = b.chat.send_text(gid, "written before the commit", now=b.now())
            await a.update(gid)
            await until(lambda: b.chat.group(gid).epoch == c.chat.group(gid).epoch == epoch + 1)
            async with b._lock:
                row = b.net.reserve(gid, b"-")
                seq = await b._post_message(row, gid, late.data)
            assert seq is not None
            await until(lambda: texts(c, gid) == ["written before the commit"])
            await until(lambda: texts(a, gid) == ["written before the commit"])
        finally:
            for x in (a, b, c):
                await x.close()

    asyncio.run(main())


def test_commit_during_outage_resolved_on_next_send(server: Server, tmp_path: Path) -> None:
    """The server cannot be reached when our commit is posted: the commit stays unresolved
    (neither lost nor merged for good); the next send posts it first, then the message."""
    hook = Hooked()

    async def main() -> None:
        gid, (a, b) = await _group(server, tmp_path, b"alice", b"bob", alice=hook)
        a.config = NetConfig(http_attempts=2)
        down = True

        async def outage(request: httpx.Request) -> None:
            if is_commit(request) and down:
                raise httpx.ConnectError("connection refused", request=request)

        hook.before = outage
        try:
            epoch = a.chat.group(gid).epoch
            with pytest.raises(DeliveryError) as info:
                await a.update(gid)
            assert info.value.code == "unreachable"
            assert a.chat.has_unresolved_commit(gid)
            down = False
            hook.commits.clear()
            await a.send_text(gid, "after the outage")
            assert hook.commits == [200]
            assert not a.chat.has_unresolved_commit(gid)
            assert a.chat.group(gid).epoch == epoch + 1
            await until(lambda: texts(b, gid) == ["after the outage"])
            assert b.chat.group(gid).epoch_authenticator == a.chat.group(gid).epoch_authenticator
        finally:
            await a.close()
            await b.close()

    asyncio.run(main())
