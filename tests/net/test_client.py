"""NetClient against a real delivery-service process on loopback."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from mls.app.client import GroupUpdated, MessageReceived
from mls.app.network import NetClient
from tests.ds.helpers import Server
from tests.net.helpers import drain, until


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
