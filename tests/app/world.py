"""A small world for application tests: an in-process delivery service and named ChatClients.

Every client fetches its inbox with its stored cursor, as a real client restarting would; the
clock (``now``) is the world's and advanced by hand.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from mls.app import (
    ChatClient,
    ChatEvent,
    DeliveryService,
    GroupUpdated,
    MemoryStorage,
    Sent,
    SQLiteStorage,
    Storage,
)
from mls.extensions import Extension

START = 1_700_000_000
GROUP = b"room"


class World:
    def __init__(self, tmp: Path | None = None, *, now: int = START) -> None:
        self.tmp = tmp
        self.now = now
        self.ds = DeliveryService()
        self.clients: dict[str, ChatClient] = {}
        self.storages: dict[str, Storage] = {}

    def storage(self, name: str, sqlite: bool) -> Storage:
        if sqlite:
            assert self.tmp is not None, "SQLite clients need a directory"
            return SQLiteStorage(self.tmp / f"{name}.sqlite3")
        return MemoryStorage()

    def add(self, name: str, *, sqlite: bool = False, key_packages: int = 3) -> ChatClient:
        storage = self.storage(name, sqlite)
        self.storages[name] = storage
        c = ChatClient.create(name.encode(), storage)
        self.clients[name] = c
        self.ds.publish_key_packages(c.identity, c.publish_key_packages(key_packages, now=self.now))
        return c

    def __getitem__(self, name: str) -> ChatClient:
        return self.clients[name]

    def reopen(self, name: str) -> ChatClient:
        """Drop the in-memory client and restore it from its storage (a restart)."""
        old = self.clients[name]
        storage = self.storages[name]
        if isinstance(storage, SQLiteStorage):
            old.close()
            storage = SQLiteStorage(storage.path)
            self.storages[name] = storage
        self.clients[name] = ChatClient.open(storage)
        return self.clients[name]

    def create(self, creator: str, members: Sequence[str], *, timer: int | None = None) -> None:
        self.clients[creator].create_group(GROUP, now=self.now, timer=timer)
        self.ds.create_group(GROUP, creator.encode())
        if members:
            self.commit(creator, add=members)
            self.pump(*members)

    def commit(
        self,
        name: str,
        *,
        add: Sequence[str] = (),
        remove: Sequence[str] = (),
        extensions: Sequence[Extension] | None = None,
        timer: int | str | None = "keep",
    ) -> GroupUpdated:
        c = self.clients[name]
        kps = [self.ds.fetch_key_package(n.encode()) for n in add]
        if timer != "keep":
            assert timer is None or isinstance(timer, int)
            out = c.set_timer(GROUP, timer, now=self.now)
        else:
            out = c.commit(
                GROUP,
                add=kps,
                remove=[n.encode() for n in remove],
                extensions=extensions,
                now=self.now,
            )
        accepted = self.ds.submit_commit(
            GROUP,
            name.encode(),
            out.commit,
            welcome=out.welcome,
            added=[n.encode() for n in add],
            removed=[n.encode() for n in remove],
        )
        assert accepted
        return c.confirm_commit(GROUP, now=self.now)

    def say(self, name: str, body: str, *, in_reply_to: bytes | None = None) -> Sent:
        sent = self.clients[name].send_text(GROUP, body, now=self.now, in_reply_to=in_reply_to)
        self.ds.send(GROUP, name.encode(), sent.data)
        return sent

    def pump(self, *names: str) -> dict[str, list[ChatEvent]]:
        out: dict[str, list[ChatEvent]] = {}
        for name in names or tuple(self.clients):
            c = self.clients[name]
            out[name] = [
                c.receive(e.data, now=self.now, seq=e.seq)
                for e in self.ds.fetch(c.identity, after=c.cursor)
            ]
        return out

    def texts(self, name: str) -> list[str]:
        return [line.text for line in self.clients[name].conversation(GROUP, now=self.now)]
