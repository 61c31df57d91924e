"""A bot that joins a group chat and answers.

Alice creates a group on an in-process delivery service and adds the bot and Bob. The bot
joins from the Welcome like any member, then answers every message that starts with ``!``:
``!help``, ``!members``, ``!echo TEXT`` and ``!roll`` (a die). It replies with MIMI replies
(``in_reply_to``), so clients show the answer under the question. Everything is end-to-end
encrypted: the delivery service only relays ciphertext.

Run it from a checkout: ``python examples/chat_bot.py`` (state in SQLite files in a temporary
folder, or ``--memory``). Exit status 0 means every answer arrived.
"""

from __future__ import annotations

import argparse
import os
import secrets
import sys
import tempfile
from collections.abc import Callable

from mls.app import ChatClient, DeliveryService, MemoryStorage, MessageReceived, SQLiteStorage
from mls.app.storage import Storage
from mls.app.view import describe

GROUP = b"bot-room"


class Bot:
    """Answers commands in every group it is in; ``handle`` takes one inbox message."""

    def __init__(self, client: ChatClient, ds: DeliveryService) -> None:
        self.client = client
        self.ds = ds

    def poll(self, now: int) -> int:
        """Process the inbox; answer each command. Returns the number of answers sent."""
        answered = 0
        for entry in self.ds.fetch(self.client.identity, after=self.client.cursor):
            event = self.client.receive(entry.data, now=now, seq=entry.seq)
            if isinstance(event, MessageReceived) and event.message.sender != self.client.identity:
                answer = self.answer(event.group_id, describe(event.content))
                if answer is not None:
                    sent = self.client.send_text(
                        event.group_id, answer, now=now, in_reply_to=event.message.message_id
                    )
                    self.ds.send(event.group_id, self.client.identity, sent.data)
                    answered += 1
        return answered

    def answer(self, group_id: bytes, text: str) -> str | None:
        command, _, rest = text.partition(" ")
        if command == "!help":
            return "commands: !help, !members, !echo TEXT, !roll"
        if command == "!members":
            return ", ".join(m.decode() for m in self.client.members(group_id))
        if command == "!echo":
            return rest
        if command == "!roll":
            return f"rolled a {secrets.randbelow(6) + 1}"
        return None


def deliver(client: ChatClient, ds: DeliveryService, now: int) -> list[object]:
    return [
        client.receive(entry.data, now=now, seq=entry.seq)
        for entry in ds.fetch(client.identity, after=client.cursor)
    ]


def run(make_storage: Callable[[bytes], Storage], now: int = 1_750_000_000) -> list[str]:
    """The scripted conversation; returns the lines Alice sees."""
    ds = DeliveryService()
    clients = {n: ChatClient.create(n, make_storage(n)) for n in (b"alice", b"bob", b"bot")}
    alice, bob = clients[b"alice"], clients[b"bob"]
    bot = Bot(clients[b"bot"], ds)
    for name in (b"bob", b"bot"):
        ds.publish_key_packages(name, clients[name].publish_key_packages(1, now=now))

    alice.create_group(GROUP, now=now)
    ds.create_group(GROUP, b"alice")
    kps = [ds.fetch_key_package(b"bot"), ds.fetch_key_package(b"bob")]
    out = alice.commit(GROUP, add=kps, now=now)
    if not ds.submit_commit(
        GROUP, b"alice", out.commit, welcome=out.welcome, added=[b"bot", b"bob"], removed=[]
    ):
        raise RuntimeError("the delivery service refused the commit")
    alice.confirm_commit(GROUP, now=now)
    bot.poll(now)  # the Welcome: the bot joins
    deliver(bob, ds, now)

    answered = 0
    script = [(alice, "!members"), (bob, "hello bot"), (bob, "!echo ping"), (alice, "!roll")]
    for sender, text in script:
        now += 1
        sent = sender.send_text(GROUP, text, now=now)
        ds.send(GROUP, sender.identity, sent.data)
        answered += bot.poll(now + 1)
        deliver(alice, ds, now + 2)
        deliver(bob, ds, now + 2)
        now += 2
    if answered != 3:
        raise RuntimeError(f"the bot answered {answered} commands, expected 3")

    lines = alice.conversation(GROUP, now=now)
    by_id = {line.message_id: line for line in lines}
    shown = []
    for line in lines:
        quoted = by_id[line.in_reply_to].text if line.in_reply_to in by_id else None
        tail = f"  (re: {quoted})" if quoted else ""
        shown.append(f"{line.sender.decode()}: {line.text}{tail}")
    for c in clients.values():
        c.close()
    return shown


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--memory", action="store_true", help="state in memory, not SQLite")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="mls-bot-") as folder:

        def make_storage(name: bytes) -> Storage:
            if args.memory:
                return MemoryStorage()
            return SQLiteStorage(os.path.join(folder, f"{name.decode()}.sqlite3"))

        for line in run(make_storage):
            print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
