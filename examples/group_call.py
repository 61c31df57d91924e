"""A group call: SFrame media frames keyed from the MLS group, across an add and a remove.

Alice and Bob talk in a call (RFC 9605 frames through an SFU that cannot read them); Alice adds
Carol, who joins the call with the new epoch's keys; then Alice removes Bob, whose call can no
longer decrypt anything sent after the removal. Frames sent just before an epoch change still
decrypt during the short grace period.

Run it from a checkout: ``python examples/group_call.py``. Exit status 0 means every check held.
"""

from __future__ import annotations

import sys

from mls.app import ChatClient, DeliveryService, GroupCall, MemoryStorage
from mls.errors import MLSError

GROUP = b"standup"


def check(condition: bool, what: str) -> None:
    if not condition:
        raise SystemExit(f"check failed: {what}")


class Call:
    """The members' ChatClients, their calls and the delivery service with its SFU."""

    def __init__(self, now: int) -> None:
        self.now = now
        self.ds = DeliveryService()
        self.clients: dict[bytes, ChatClient] = {}
        self.calls: dict[bytes, GroupCall] = {}
        self.last_frame = b""

    def member(self, name: bytes) -> ChatClient:
        client = ChatClient.create(name, MemoryStorage())
        self.ds.publish_key_packages(name, client.publish_key_packages(1, now=self.now))
        self.clients[name] = client
        return client

    def commit(
        self, by: bytes, *, add: tuple[bytes, ...] = (), remove: tuple[bytes, ...] = ()
    ) -> None:
        kps = [self.ds.fetch_key_package(n) for n in add]
        out = self.clients[by].commit(GROUP, add=kps, remove=list(remove), now=self.now)
        accepted = self.ds.submit_commit(
            GROUP, by, out.commit, welcome=out.welcome, added=list(add), removed=list(remove)
        )
        check(accepted, "the delivery service accepted the commit")
        self.clients[by].confirm_commit(GROUP, now=self.now)
        for name, client in self.clients.items():
            if name != by:
                for entry in self.ds.fetch(name, after=client.cursor):
                    client.receive(entry.data, now=self.now, seq=entry.seq)

    def join_call(self, name: bytes) -> None:
        self.ds.join_call(GROUP, name)
        self.calls[name] = self.clients[name].start_call(GROUP, now=self.now)

    def say(self, name: bytes, media: bytes) -> dict[bytes, str]:
        """``name`` sends one frame; what each other participant of the SFU got from it."""
        self.last_frame = self.calls[name].encrypt(media, b"rtp")
        self.ds.relay_frame(GROUP, name, self.last_frame)
        heard: dict[bytes, str] = {}
        for listener in self.calls:
            for _sender, frame in self.ds.fetch_frames(listener):
                try:
                    got = self.calls[listener].decrypt(frame, b"rtp", now=self.now)
                    heard[listener] = got.plaintext.decode()
                except MLSError as exc:
                    heard[listener] = f"cannot decrypt ({type(exc).__name__})"
        return heard


def main() -> int:
    call = Call(now=1_750_000_000)
    alice, bob, _ = (call.member(n) for n in (b"alice", b"bob", b"carol"))
    alice.create_group(GROUP, now=call.now)
    call.ds.create_group(GROUP, b"alice")
    call.commit(b"alice", add=(b"bob",))
    call.join_call(b"alice")
    call.join_call(b"bob")

    heard = call.say(b"alice", b"good morning")
    print(f"epoch {alice.group(GROUP).epoch}: alice says 'good morning' -> {heard}")
    check(heard == {b"bob": "good morning"}, "bob heard alice")

    call.commit(b"alice", add=(b"carol",))
    call.join_call(b"carol")
    heard = call.say(b"bob", b"hi carol")
    print(f"epoch {alice.group(GROUP).epoch}: carol added; bob says 'hi carol' -> {heard}")
    check(heard == {b"alice": "hi carol", b"carol": "hi carol"}, "carol joined the call")

    call.now += 10  # past the grace period of every earlier epoch
    call.commit(b"alice", remove=(b"bob",))
    check(bob.call(GROUP) is None, "the removed member's call dropped its keys")
    heard = call.say(b"alice", b"bob has left")
    print(f"epoch {alice.group(GROUP).epoch}: bob removed; alice says 'bob has left' -> {heard}")
    check(heard == {b"carol": "bob has left"}, "the SFU stopped forwarding to bob")
    try:  # and a copy of the frame is useless to him: he never learnt the epoch's keys
        call.calls[b"bob"].decrypt(call.last_frame, b"rtp", now=call.now)
    except MLSError as exc:
        print(f"bob cannot decrypt a copy of the frame: {type(exc).__name__}")
    else:
        raise AssertionError("a removed member decrypted a frame of a later epoch")
    print("All checks passed.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
