"""Helpers of the networked-client tests."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from mls.app.client import MessageReceived
from mls.app.network import Delivered, NetClient


async def until(cond: Callable[[], bool], timeout: float = 20.0, what: str = "") -> None:
    async with asyncio.timeout(timeout):
        while not cond():
            await asyncio.sleep(0.02)


def drain(c: NetClient) -> list[Delivered]:
    out = []
    while not c.events.empty():
        out.append(c.events.get_nowait())
    return out


def texts(c: NetClient, gid: bytes) -> list[str]:
    return [
        line.message.content.decode("utf-8", "replace")
        for line in c.chat.messages(gid, now=c.now())
        if line
    ]


def received(events: list[Delivered]) -> list[MessageReceived]:
    return [d.event for d in events if isinstance(d.event, MessageReceived)]
