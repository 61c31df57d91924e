"""A group call over the server's SFrame relay, across an epoch change."""

from __future__ import annotations

import asyncio
from pathlib import Path

from tests.ds.helpers import Server
from tests.net.helpers import until
from tests.net.test_client import _group


def test_call_across_epoch_change(server: Server, tmp_path: Path) -> None:
    async def main() -> None:
        gid, (a, b, c) = await _group(server, tmp_path, b"alice", b"bob", b"carol")
        try:
            calls = {x.identity: await x.start_call(gid) for x in (a, b, c)}
            epoch0 = a.chat.group(gid).epoch
            await calls[b"alice"].send(b"frame 1")
            for who in (b"bob", b"carol"):
                sender, got = await asyncio.wait_for(calls[who].frames.get(), 10)
                assert (sender, got.plaintext, got.epoch) == (b"alice", b"frame 1", epoch0)
            in_flight = calls[b"alice"].encrypt(b"frame 2, sent before the commit")
            await a.remove(gid, b"carol")
            epoch1 = a.chat.group(gid).epoch
            await until(lambda: b.chat.group(gid).epoch == epoch1)
            await until(lambda: gid not in c.chat.group_ids())
            assert c.chat.call(gid) is None  # carol's keys are gone
            await calls[b"alice"].send_frame(in_flight)  # arrives after the epoch change
            _, got = await asyncio.wait_for(calls[b"bob"].frames.get(), 10)
            assert (got.plaintext, got.epoch) == (b"frame 2, sent before the commit", epoch0)
            await calls[b"alice"].send(b"frame 3")
            _, got = await asyncio.wait_for(calls[b"bob"].frames.get(), 10)
            assert (got.plaintext, got.epoch) == (b"frame 3", epoch1)
            await calls[b"bob"].send(b"bob's frame")
            sender, got = await asyncio.wait_for(calls[b"alice"].frames.get(), 10)
            assert (sender, got.plaintext, got.epoch) == (b"bob", b"bob's frame", epoch1)
            assert calls[b"carol"].frames.empty()  # the relay dropped her from the call
            for call in calls.values():
                await call.leave()
        finally:
            for x in (a, b, c):
                await x.close()

    asyncio.run(main())
