"""An in-process delivery service (RFC 9420 §3, RFC 9750 §5) with an SFU for calls.

It does what an untrusted server does, and no more: stores KeyPackages for others to fetch,
orders commits (the first commit for an epoch wins, §14), fans messages out to per-member
inboxes with sequence numbers, hands Welcomes to the members they add, and forwards SFrame frames
to the other participants of a call. It sees only what crosses the wire: every byte it handles is
appended to :attr:`DeliveryService.observed`, so a test can check that it never saw plaintext.

Group rosters (who receives a group's messages) are what committers report with their commits,
as in deployments whose server cannot read handshake messages (here they are PrivateMessages).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field

from mls.codec import decode
from mls.constants import ContentType
from mls.errors import DecodeError, InvalidState, UsageError
from mls.framing.message import MLSMessage
from mls.framing.private import PrivateMessage
from mls.framing.public import PublicMessage

__all__ = ["DeliveryService", "InboxEntry"]


@dataclass(frozen=True, slots=True)
class InboxEntry:
    """One message in a member's inbox; ``seq`` increases by one per entry."""

    seq: int
    data: bytes = field(repr=False)


@dataclass(slots=True)
class _Group:
    epoch: int
    roster: set[bytes]
    accepted: set[bytes] = field(default_factory=set)  # SHA-256 of accepted commits
    call: set[bytes] = field(default_factory=set)


def _header(data: bytes) -> tuple[bytes, int, int]:
    """(group_id, epoch, content_type) from the clear header of a group message (§6)."""
    body = decode(MLSMessage, data).body
    if isinstance(body, PrivateMessage):
        return body.group_id, body.epoch, body.content_type
    if isinstance(body, PublicMessage):
        c = body.content
        return c.group_id, c.epoch, c.content_type
    raise DecodeError("not a group message")


class DeliveryService:
    """The in-process server of the demo and the tests (see the module docstring)."""

    def __init__(self) -> None:
        self._key_packages: dict[bytes, list[bytes]] = {}
        self._inboxes: dict[bytes, list[InboxEntry]] = {}
        self._groups: dict[bytes, _Group] = {}
        self._frames: dict[bytes, list[tuple[bytes, bytes]]] = {}
        #: Every byte string this service received, in order.
        self.observed: list[bytes] = []

    def _see(self, data: bytes) -> None:
        self.observed.append(data)

    # -- KeyPackages ---------------------------------------------------------------------------

    def publish_key_packages(self, identity: bytes, key_packages: Sequence[bytes]) -> None:
        for kp in key_packages:
            self._see(kp)
        self._key_packages.setdefault(identity, []).extend(key_packages)
        self._inboxes.setdefault(identity, [])

    def fetch_key_package(self, identity: bytes) -> bytes:
        """Hand out (and forget) one of ``identity``'s KeyPackages (§10: used once)."""
        pool = self._key_packages.get(identity)
        if not pool:
            raise UsageError(f"no KeyPackage left for {identity!r}")
        return pool.pop(0)

    # -- groups --------------------------------------------------------------------------------

    def create_group(self, group_id: bytes, creator: bytes, *, epoch: int = 0) -> None:
        if group_id in self._groups:
            raise UsageError("group exists")
        self._groups[group_id] = _Group(epoch=epoch, roster={creator})
        self._inboxes.setdefault(creator, [])

    def epoch(self, group_id: bytes) -> int:
        return self._groups[group_id].epoch

    def roster(self, group_id: bytes) -> set[bytes]:
        return set(self._groups[group_id].roster)

    def submit_commit(
        self,
        group_id: bytes,
        sender: bytes,
        commit: bytes,
        *,
        welcome: bytes | None = None,
        added: Sequence[bytes] = (),
        removed: Sequence[bytes] = (),
    ) -> bool:
        """Accept the first commit for the group's current epoch and fan it out (the removed
        members get it too, so they learn they were removed); refuse a later one. Submitting an
        accepted commit again returns ``True`` (a committer that restarted may ask twice)."""
        self._see(commit)
        if welcome is not None:
            self._see(welcome)
        g = self._groups[group_id]
        digest = hashlib.sha256(commit).digest()
        if digest in g.accepted:
            return True
        gid, epoch, ctype = _header(commit)
        if gid != group_id or ctype != ContentType.commit:
            raise UsageError("not a commit of this group")
        if epoch != g.epoch or sender not in g.roster:
            return False
        g.accepted.add(digest)
        g.epoch += 1
        for member in sorted(g.roster - {sender}):
            self._deliver(member, commit)
        g.roster -= set(removed)
        g.call -= set(removed)
        for member in added:
            g.roster.add(member)
            if welcome is not None:
                self._deliver(member, welcome)
        return True

    def send(self, group_id: bytes, sender: bytes, data: bytes) -> None:
        """Fan an application message or proposal out to the other members."""
        self._see(data)
        g = self._groups[group_id]
        gid, _, ctype = _header(data)
        if gid != group_id or ctype == ContentType.commit:
            raise UsageError("submit commits with submit_commit")
        if sender not in g.roster:
            raise InvalidState(f"{sender!r} is not in the group")
        for member in sorted(g.roster - {sender}):
            self._deliver(member, data)

    def _deliver(self, member: bytes, data: bytes) -> None:
        inbox = self._inboxes.setdefault(member, [])
        inbox.append(InboxEntry(len(inbox) + 1, data))

    def fetch(self, identity: bytes, *, after: int = 0) -> list[InboxEntry]:
        """Inbox entries with ``seq > after`` (the client's stored cursor)."""
        return self._inboxes.get(identity, [])[after:]

    # -- calls (SFU) ---------------------------------------------------------------------------

    def join_call(self, group_id: bytes, identity: bytes) -> None:
        g = self._groups[group_id]
        if identity not in g.roster:
            raise InvalidState(f"{identity!r} is not in the group")
        g.call.add(identity)

    def leave_call(self, group_id: bytes, identity: bytes) -> None:
        self._groups[group_id].call.discard(identity)

    def relay_frame(self, group_id: bytes, sender: bytes, frame: bytes) -> None:
        """Forward an SFrame ciphertext to the call's other participants."""
        self._see(frame)
        for member in sorted(self._groups[group_id].call - {sender}):
            self._frames.setdefault(member, []).append((sender, frame))

    def fetch_frames(self, identity: bytes) -> list[tuple[bytes, bytes]]:
        """``(sender, frame)`` pairs waiting for ``identity`` (and forget them)."""
        return self._frames.pop(identity, [])

    def inject_frame(self, identity: bytes, sender: bytes, frame: bytes) -> None:
        """Deliver a frame to one participant as the SFU would (a test or attacker hook: e.g.
        a removed member who kept listening)."""
        self._see(frame)
        self._frames.setdefault(identity, []).append((sender, frame))
