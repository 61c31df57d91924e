"""``python -m mls demo``: a group chat and a group call, end to end, in one process.

An in-process :class:`~mls.app.delivery.DeliveryService` and four
:class:`~mls.app.client.ChatClient` s (SQLite storage in a temporary directory, or memory with
``--memory``) form a group, chat (a reply, a reaction, an edit), set a disappearing timer and
watch a message expire, add and remove a member, and hold a group call whose SFrame keys change
with the epoch. It prints what each member sees and what the delivery service sees, and finally
checks that the delivery service never saw a byte of any plaintext. Exit status 0 means every
check held.
"""

from __future__ import annotations

import argparse
import functools
import os
import sys
import tempfile
from collections.abc import Callable
from typing import TextIO

from mls.app.calls import GroupCall
from mls.app.client import ChatClient, ChatEvent, GroupUpdated, Joined, MessageReceived
from mls.app.content import Disposition
from mls.app.delivery import DeliveryService
from mls.app.storage import MemoryStorage, SQLiteStorage, Storage
from mls.app.view import describe
from mls.codec import decode
from mls.constants import ContentType, WireFormat
from mls.errors import MLSError
from mls.framing.message import MLSMessage
from mls.framing.private import PrivateMessage

__all__ = ["main"]

GROUP = b"team"
START = 1_700_000_000  # the demo's clock (seconds since the UNIX epoch), advanced by hand

_CONTENT_TYPES: dict[int, str] = {
    ContentType.application: "application",
    ContentType.proposal: "proposal",
    ContentType.commit: "commit",
}


class DemoFailed(Exception):
    """A check of the demo did not hold."""


class Demo:
    def __init__(self, out: TextIO, make_storage: Callable[[str], Storage]) -> None:
        self.out = out
        self.now = START
        self.ds = DeliveryService()
        self.clients: dict[str, ChatClient] = {}
        self.make_storage = make_storage
        #: Every plaintext of the run: the service must never have seen any of them.
        self.plaintexts: list[bytes] = []

    # -- output --------------------------------------------------------------------------------

    def say(self, line: str = "") -> None:
        print(line, file=self.out)

    def section(self, title: str) -> None:
        self.say()
        self.say(f"== {title} " + "=" * max(0, 70 - len(title)))

    def check(self, cond: bool, what: str) -> None:
        if not cond:
            raise DemoFailed(what)
        self.say(f"  ok: {what}")

    def ds_saw(self, who: str, data: bytes, what: str | None = None) -> None:
        if what is None:
            what = _describe_wire(data)
        self.say(f"  [DS] from {who}: {what}, {len(data)} bytes {data[:12].hex()}...")

    # -- plumbing ------------------------------------------------------------------------------

    def client(self, name: str) -> ChatClient:
        c = ChatClient.create(name.encode(), self.make_storage(name))
        self.clients[name] = c
        kps = c.publish_key_packages(2, now=self.now)
        self.ds.publish_key_packages(c.identity, kps)
        for kp in kps:
            self.ds_saw(name, kp, "KeyPackage")
        return c

    def deliver(self, *names: str) -> None:
        """Each named member fetches its inbox and processes it."""
        for name in names:
            c = self.clients[name]
            for entry in self.ds.fetch(c.identity, after=c.cursor):
                ev = c.receive(entry.data, now=self.now, seq=entry.seq)
                self.say(f"  {name:>5} <- {self.event_text(ev)}")

    def event_text(self, ev: ChatEvent) -> str:
        if isinstance(ev, MessageReceived):
            self.plaintexts.append(ev.message.content)
            exp = ev.message.expires_at
            tail = f" (disappears at t+{exp - START}s)" if exp is not None else ""
            kind = ""
            if ev.content.nested_part.disposition == Disposition.reaction:
                kind = "reaction "
            elif ev.content.replaces is not None:
                kind = "edit "
            elif ev.content.in_reply_to is not None:
                kind = "reply "
            return f"{ev.message.sender.decode()}: {kind}{describe(ev.content)!r}{tail}"
        if isinstance(ev, GroupUpdated):
            parts = [f"epoch {ev.epoch} by {(ev.committer or b'?').decode()}"]
            if ev.added:
                parts.append("added " + ", ".join(x.decode() for x in ev.added))
            if ev.removed:
                parts.append("removed " + ", ".join(x.decode() for x in ev.removed))
            if ev.timer_changed:
                parts.append(f"timer {ev.timer} s" if ev.timer else "timer off")
            if ev.self_removed:
                parts.append("WE WERE REMOVED")
            return "commit: " + "; ".join(parts)
        if isinstance(ev, Joined):
            members = ", ".join(m.decode() for m in ev.members)
            return f"joined {ev.group_id.decode()} at epoch {ev.epoch} with {members}"
        return type(ev).__name__

    def send(self, name: str, sent_data: bytes, body: str) -> None:
        self.plaintexts.append(body.encode())
        self.ds_saw(name, sent_data)
        self.ds.send(GROUP, name.encode(), sent_data)

    def commit(
        self, name: str, *, add: tuple[str, ...] = (), remove: tuple[str, ...] = (), **kw: int
    ) -> None:
        c = self.clients[name]
        kps = [self.ds.fetch_key_package(n.encode()) for n in add]
        if "timer" in kw:
            timer = kw["timer"] or None
            out = c.set_timer(GROUP, timer, now=self.now)
        else:
            out = c.commit(GROUP, add=kps, remove=[n.encode() for n in remove], now=self.now)
        self.ds_saw(name, out.commit)
        if out.welcome is not None:
            self.ds_saw(name, out.welcome)
        accepted = self.ds.submit_commit(
            GROUP,
            name.encode(),
            out.commit,
            welcome=out.welcome,
            added=[n.encode() for n in add],
            removed=[n.encode() for n in remove],
        )
        self.check(accepted, f"the delivery service ordered {name}'s commit")
        ev = c.confirm_commit(GROUP, now=self.now)
        self.say(f"  {name:>5} :: {self.event_text(ev)}")

    def expect_failure(self, action: Callable[[], object], what: str) -> None:
        try:
            action()
        except MLSError as exc:
            self.check(True, f"{what} ({type(exc).__name__})")
        else:
            raise DemoFailed(f"not true: {what}")

    def show(self, *names: str) -> None:
        for name in names:
            c = self.clients[name]
            self.say(f"  what {name} sees:")
            lines = c.conversation(GROUP, now=self.now)
            if not lines:
                self.say("      (nothing)")
            by_id = {line.message_id: line for line in lines}
            for line in lines:
                prefix = ""
                if line.in_reply_to is not None:
                    target = by_id.get(line.in_reply_to)
                    quoted = target.text if target is not None else "a message"
                    prefix = f"(reply to {quoted!r}) "
                flags = " (edited)" if line.edited else ""
                if line.reactions:
                    flags += " [" + " ".join(f"{s.decode()} {r}" for s, r in line.reactions) + "]"
                if line.expires_at is not None:
                    flags += f" (disappears in {line.expires_at - self.now}s)"
                self.say(f"      {line.sender.decode()}: {prefix}{line.text}{flags}")

    # -- the story -----------------------------------------------------------------------------

    def run(self) -> None:
        self.section("1. Four clients publish KeyPackages; alice creates a group")
        for name in ("alice", "bob", "carol", "dave"):
            self.client(name)
        alice, bob, carol, dave = (self.clients[n] for n in ("alice", "bob", "carol", "dave"))
        alice.create_group(GROUP, now=self.now)
        self.ds.create_group(GROUP, b"alice")
        self.commit("alice", add=("bob", "carol"))
        self.deliver("bob", "carol")
        self.check(
            bob.group(GROUP).epoch_authenticator
            == alice.group(GROUP).epoch_authenticator
            == carol.group(GROUP).epoch_authenticator,
            "alice, bob and carol agree on the epoch authenticator",
        )

        self.section("2. Chat: a message, a reply, a reaction, an edit")
        self.now += 5
        hello = alice.send_text(GROUP, "Hello team, lunch at noon?", now=self.now)
        self.send("alice", hello.data, "Hello team, lunch at noon?")
        self.deliver("bob", "carol")
        answer = bob.send_text(
            GROUP, "Yes! The usual place.", now=self.now, in_reply_to=hello.message_id
        )
        self.send("bob", answer.data, "Yes! The usual place.")
        like = carol.react(GROUP, "\N{THUMBS UP SIGN}", to=hello.message_id, now=self.now)
        self.send("carol", like.data, "\N{THUMBS UP SIGN}")
        fixed = alice.edit(
            GROUP, "Hello team, lunch at 12:30?", replaces=hello.message_id, now=self.now
        )
        self.send("alice", fixed.data, "Hello team, lunch at 12:30?")
        self.deliver("alice", "bob", "carol")
        self.show("alice", "bob", "carol")
        views = {
            n: self.clients[n].conversation(GROUP, now=self.now) for n in ("alice", "bob", "carol")
        }
        self.check(
            views["alice"] == views["bob"] == views["carol"] and len(views["alice"]) == 2,
            "alice, bob and carol see the same conversation",
        )

        self.section("3. Disappearing messages: bob sets a 30 s timer")
        self.now += 5
        self.commit("bob", timer=30)
        self.deliver("alice", "carol")
        self.check(
            {c.timer(GROUP) for n, c in self.clients.items() if n != "dave"} == {30},
            "every member holds the 30 s timer from the same epoch",
        )
        sent_at = self.now
        secret = carol.send_text(GROUP, "The door code is 4711.", now=self.now)
        self.send("carol", secret.data, "The door code is 4711.")
        self.deliver("alice", "bob")
        self.now = sent_at + 29
        self.say("  at t+29 s after sending:")
        self.show("bob")
        self.check(
            any("4711" in line.text for line in bob.conversation(GROUP, now=self.now)),
            "one second before expiry bob still sees the message",
        )
        self.now = sent_at + 30
        self.say("  at t+30 s:")
        self.show("alice", "bob", "carol")
        self.check(
            all(
                not any(
                    "4711" in line.text
                    for line in self.clients[n].conversation(GROUP, now=self.now)
                )
                for n in ("alice", "bob", "carol")
            ),
            "at exactly sent+30 s the message is gone for everyone (and deleted from storage)",
        )
        self.commit("alice", timer=0)
        self.deliver("bob", "carol")

        self.section("4. A group call (SFrame keyed from the MLS exporter)")
        calls = {
            n: self.clients[n].start_call(GROUP, now=self.now) for n in ("alice", "bob", "carol")
        }
        for n in calls:
            self.ds.join_call(GROUP, n.encode())
        epoch0 = alice.group(GROUP).epoch
        frames = {n: f"{n}'s audio frame 1 @ epoch {epoch0}".encode() for n in calls}
        for n, media in frames.items():
            self.plaintexts.append(media)
            frame = calls[n].encrypt(media)
            self.ds_saw(n, frame, "SFrame frame")
            self.ds.relay_frame(GROUP, n.encode(), frame)
        for n in calls:
            got = [calls[n].decrypt(f, now=self.now) for _, f in self.ds.fetch_frames(n.encode())]
            self.say(f"  {n:>5} hears: " + ", ".join(repr(g.plaintext.decode()) for g in got))
            self.check(len(got) == 2, f"{n} decrypts both other participants' frames")
        in_flight = [
            calls["alice"].encrypt(f"alice's audio frame {i}, still in flight".encode())
            for i in (2, 3)
        ]
        self.plaintexts += [f"alice's audio frame {i}, still in flight".encode() for i in (2, 3)]
        # A modified client of carol's that ignores her removal and keeps the epoch's keys.
        rogue = GroupCall(carol.group(GROUP), now=self.now, session=1000)

        self.section("5. alice adds dave and removes carol: a new epoch, new call keys")
        self.now += 1
        self.commit("alice", add=("dave",), remove=("carol",))
        self.deliver("bob", "carol", "dave")
        self.check(
            GROUP not in carol.group_ids() and not calls["carol"].active,
            "carol deleted her group state and her call forgot its keys when she was removed",
        )
        calls["dave"] = dave.start_call(GROUP, now=self.now)
        self.ds.join_call(GROUP, b"dave")
        epoch1 = alice.group(GROUP).epoch
        self.say(f"  the call moved from epoch {epoch0} to epoch {epoch1}")
        self.ds_saw("alice", in_flight[0], "SFrame frame (sent before the epoch change)")
        old = calls["bob"].decrypt(in_flight[0], now=self.now)
        self.check(
            old.epoch == epoch0,
            f"bob still decrypts alice's in-flight epoch-{epoch0} frame in the grace period",
        )
        media = b"alice's audio frame 4 @ the new epoch"
        self.plaintexts.append(media)
        fresh = calls["alice"].encrypt(media)
        self.ds_saw("alice", fresh, "SFrame frame")
        self.ds.relay_frame(GROUP, b"alice", fresh)
        for n in ("bob", "dave"):
            got = [calls[n].decrypt(f, now=self.now) for _, f in self.ds.fetch_frames(n.encode())]
            self.check(
                [g.plaintext for g in got] == [media] and got[0].epoch == epoch1,
                f"{n} decrypts alice's epoch-{epoch1} frame",
            )
        # carol keeps listening (say, through a compromised SFU).
        self.ds.inject_frame(b"carol", b"alice", fresh)
        for _, f in self.ds.fetch_frames(b"carol"):
            for who, call in (("carol", calls["carol"]), ("carol's rogue client", rogue)):
                self.expect_failure(
                    functools.partial(call.decrypt, f, now=self.now),
                    f"{who} cannot decrypt the epoch-{epoch1} frame",
                )
        self.expect_failure(
            lambda: calls["bob"].decrypt(fresh, now=self.now), "a replayed frame is rejected"
        )
        media = b"alice's audio frame 5 @ the new epoch"
        self.plaintexts.append(media)
        frame5 = calls["alice"].encrypt(media)
        tampered = bytearray(frame5)
        tampered[-1] ^= 1
        self.expect_failure(
            lambda: calls["dave"].decrypt(bytes(tampered), now=self.now),
            "a tampered frame is rejected",
        )
        self.check(
            calls["dave"].decrypt(frame5, now=self.now).plaintext == media,
            "the genuine frame still decrypts after the forgery was rejected",
        )
        self.now += self.clients["alice"].config.call_grace_period
        self.expect_failure(
            lambda: calls["bob"].decrypt(in_flight[1], now=self.now),
            f"after the grace period epoch-{epoch0} frames no longer decrypt",
        )

        self.section("6. The conversation now")
        bye = dave.send_text(GROUP, "Hi all, dave here.", now=self.now)
        self.send("dave", bye.data, "Hi all, dave here.")
        self.deliver("alice", "bob", "carol")
        self.show("alice", "bob", "dave", "carol")

        self.section("7. What the delivery service saw")
        seen = self.ds.observed
        total = sum(len(x) for x in seen)
        self.say(f"  {len(seen)} messages and frames, {total} bytes, all of them ciphertext:")
        leaks = [p for p in self.plaintexts if len(p) >= 4 and any(p in blob for blob in seen)]
        self.check(
            not leaks,
            f"none of the {len(self.plaintexts)} plaintexts (texts, MIMI contents, media) "
            "occurs in anything the delivery service saw",
        )


def _describe_wire(data: bytes) -> str:
    try:
        msg = decode(MLSMessage, data)
    except MLSError:
        return "opaque bytes"
    body = msg.body
    if isinstance(body, PrivateMessage):
        ctype = _CONTENT_TYPES.get(body.content_type, str(body.content_type))
        return f"PrivateMessage ({ctype}, epoch {body.epoch})"
    names: dict[int, str] = {
        WireFormat.mls_public_message: "PublicMessage",
        WireFormat.mls_welcome: "Welcome",
        WireFormat.mls_group_info: "GroupInfo",
        WireFormat.mls_key_package: "KeyPackage",
    }
    return names.get(msg.wire_format, "MLSMessage")


def main(argv: list[str] | None = None, out: TextIO | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m mls demo", description=__doc__)
    parser.add_argument(
        "--memory", action="store_true", help="keep client state in memory instead of SQLite"
    )
    args = parser.parse_args(argv)
    stream = out or sys.stdout
    with tempfile.TemporaryDirectory(prefix="mls-demo-") as tmp:

        def make_storage(name: str) -> Storage:
            if args.memory:
                return MemoryStorage()
            return SQLiteStorage(os.path.join(tmp, f"{name}.sqlite3"))

        demo = Demo(stream, make_storage)
        try:
            demo.run()
        except (DemoFailed, MLSError) as exc:
            print(f"DEMO FAILED: {type(exc).__name__}: {exc}", file=stream)
            return 1
        finally:
            for c in demo.clients.values():
                c.close()
    print("\nAll checks passed.", file=stream)
    return 0
