"""Helpers of the networked-client tests."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import httpx

from mls.app.client import MessageReceived
from mls.app.content import SinglePart, decode_content
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
    """The bodies of the group's stored messages, in storage order."""
    out = []
    for m in c.chat.messages(gid, now=c.now()):
        part = decode_content(m.content).nested_part.body
        assert isinstance(part, SinglePart)
        out.append(part.content.decode())
    return out


def received(events: list[Delivered]) -> list[MessageReceived]:
    return [d.event for d in events if isinstance(d.event, MessageReceived)]


class Hooked(httpx.AsyncBaseTransport):
    """An HTTP transport that runs ``before(request)`` and ``after(request, response)`` hooks
    around the real one: a test makes another client win an epoch first, or loses a response
    that the server did send."""

    def __init__(self) -> None:
        self.inner = httpx.AsyncHTTPTransport()
        self.before: Callable[[httpx.Request], Awaitable[None]] | None = None
        self.after: Callable[[httpx.Request, httpx.Response], Awaitable[None]] | None = None
        self.commits: list[int] = []  # status of each commit POST

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if self.before is not None:
            await self.before(request)
        response = await self.inner.handle_async_request(request)
        if request.url.path.endswith("/commit"):
            await response.aread()
            self.commits.append(response.status_code)
        if self.after is not None:
            await self.after(request, response)
        return response

    async def aclose(self) -> None:
        await self.inner.aclose()


def is_commit(request: httpx.Request) -> bool:
    return request.method == "POST" and request.url.path.endswith("/commit")
