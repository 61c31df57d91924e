"""A messaging client: one identity, its KeyPackage pool, many groups, persisted atomically.

:class:`ChatClient` wraps the sans-I/O :class:`mls.group.Client` and :class:`mls.group.Group`
with what an application needs around them:

- **Storage** (:mod:`mls.app.storage`). Every state change is saved by one atomic
  :meth:`~mls.app.storage.Storage.apply` *before* its result leaves the client: a protected
  message is returned only once the advanced send ratchet is stored (a crash cannot make us
  reuse a message key), and a received message is acknowledged (the delivery-service cursor
  moves) in the same transaction that stores the group without the consumed ratchet key and the
  decrypted message. If storing fails, the in-memory state is reloaded from storage, so the
  client never runs ahead of its disk.
- **Our own commits.** A commit is merged locally at once and stored *with* the previous epoch's
  state (``GroupRecord.previous``); the old epoch remains the official one until the delivery
  service confirms (:meth:`ChatClient.confirm_commit`) or refuses
  (:meth:`ChatClient.reject_commit`) the commit. A crash in between therefore never strands the
  member in an epoch the group did not take: on restart the unresolved commit is resolved by the
  next message of the group or by the application asking the delivery service. Only a message
  that *processes* decides (RFC 9420 §14: a conflict is never settled by unauthenticated
  bytes): one that the new epoch's keys authenticate confirms our commit; a commit for the old
  epoch that a copy of the old epoch's state processes is the one the group took, and becomes
  our state. Anything that fails to process raises a :class:`~mls.errors.PeerError` and leaves
  the commit unresolved. The stored previous state is taken *after* the commit was created, so
  it holds the handshake ratchet past the key the commit used: after a rejection the next
  commit uses a fresh generation (§9.1: each key and nonce is used once).
- **Poison messages.** Once ``Group.process`` accepted a message its effects (the consumed
  ratchet key, a merged commit) are final. Whatever fails after that in the application layer
  (the content, a sender identity too long for a MIMI URI, a storage limit, ...) stores those
  effects and the inbox cursor, and raises a :class:`~mls.errors.PeerError`
  (:class:`~mls.errors.InvalidContent` or :class:`~mls.errors.RejectedByApplication`), so the
  message is refused once and never fetched again.
- **Removal** (RFC 9420 §12.4.2: a removed member "SHOULD promptly delete its group state and
  secret tree"). The commit that removes us is acknowledged in the same transaction that
  deletes the group's record (state, metadata, previous epoch) from storage; the client forgets
  the group and later messages for it raise :class:`~mls.errors.WrongGroup`. The
  *conversation* (stored application messages) is kept, as a user expects of a chat they were
  removed from: :meth:`ChatClient.messages` and :meth:`ChatClient.conversation` still read it,
  and :meth:`ChatClient.delete_conversation` deletes it. It holds plaintext, never key material.
- **MIMI content** (:mod:`mls.app.content`): sent and received application messages are MIMI
  content; message IDs are computed from the *authenticated* MLS sender (its credential
  identity), never from what the content claims; a content that names another sender or room is
  rejected.
- **Disappearing messages** (:mod:`mls.app.disappearing`): the timer of the epoch a message was
  sent in bounds its life; an expired message is never surfaced and stored ones are deleted once
  expired. ``now`` (seconds since the UNIX epoch) always comes from the caller.
- **Calls** (:mod:`mls.app.calls`): SFrame keys follow the group's epochs; a removed member's
  call forgets its keys.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any
from urllib.parse import quote_from_bytes

import cbor2

from mls.app.calls import DEFAULT_SFRAME_SUITE, GroupCall
from mls.app.content import (
    Expiration,
    MimiContent,
    compute_message_id,
    decode_content,
    edit,
    new_salt,
    reaction,
    reply,
    text,
)
from mls.app.disappearing import (
    DISAPPEARING_MESSAGES_EXTENSION,
    message_expiry,
    timer_of,
    with_required_support,
    with_timer,
)
from mls.app.storage import GroupWrite, Snapshot, StateChange, Storage, StoredMessage
from mls.app.view import ChatLine, conversation
from mls.codec import decode
from mls.constants import ContentType
from mls.errors import (
    DecodeError,
    InvalidContent,
    InvalidContentType,
    InvalidState,
    InvalidWelcome,
    MLSError,
    PeerError,
    RejectedByApplication,
    UsageError,
    WrongGroup,
)
from mls.extensions import Extension
from mls.framing.message import MLSMessage
from mls.framing.private import PrivateMessage
from mls.framing.public import PublicMessage
from mls.group import (
    ApplicationMessage,
    Client,
    CommitMerged,
    CommitOutput,
    Group,
    GroupConfig,
    GroupEvent,
    GroupStatus,
    ProposalReceived,
    default_capabilities,
)
from mls.messages.welcome import Welcome

__all__ = [
    "ChatClient",
    "ChatConfig",
    "ChatEvent",
    "GroupUpdated",
    "Ignored",
    "Joined",
    "MessageExpired",
    "MessageReceived",
    "ProposalQueued",
    "Sent",
    "room_uri",
    "user_uri",
]

_META_VERSION = 1


@dataclass(frozen=True, slots=True, kw_only=True)
class ChatConfig:
    """Options of a :class:`ChatClient`; every member of a group must use the same ``domain``."""

    #: Policy of the groups this client creates or joins.
    group_config: GroupConfig = field(
        default_factory=lambda: GroupConfig(ratchet_tree_extension=True)
    )
    #: Domain of the MIMI user and room URIs that message IDs are computed over.
    domain: str = "mls.example"
    #: Seconds a replaced epoch's SFrame receive keys stay usable (frames in flight).
    call_grace_period: int = 2
    sframe_suite: int = DEFAULT_SFRAME_SUITE
    sframe_epoch_bits: int = 8


def user_uri(domain: str, identity: bytes) -> str:
    """The MIMI URI of a user (its credential identity, percent-encoded)."""
    return f"mimi://{domain}/u/{quote_from_bytes(identity, safe='')}"


def room_uri(domain: str, group_id: bytes) -> str:
    """The MIMI URI of the room that an MLS group carries."""
    return f"mimi://{domain}/r/{group_id.hex()}"


# -- events -------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class Sent:
    """An application message ready for the delivery service (already stored locally)."""

    group_id: bytes
    #: The MLSMessage (PrivateMessage) to hand to the delivery service.
    data: bytes
    message_id: bytes
    expires_at: int | None


@dataclass(frozen=True, slots=True, kw_only=True)
class MessageReceived:
    group_id: bytes
    message: StoredMessage
    content: MimiContent
    #: The sender was removed since and this message may postdate its removal (only with
    #: ``GroupConfig(removed_sender_messages="flag")``; see ``ApplicationMessage``): show it
    #: only if the delivery service ordered it before the removing commit.
    sender_removed: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class MessageExpired:
    """A message arrived already expired: it was decrypted (its key is spent) but not shown."""

    group_id: bytes
    sender: bytes
    epoch: int
    expires_at: int


@dataclass(frozen=True, slots=True, kw_only=True)
class GroupUpdated:
    """A commit was merged (received, or our own one confirmed)."""

    group_id: bytes
    epoch: int
    committer: bytes | None
    added: tuple[bytes, ...] = ()
    removed: tuple[bytes, ...] = ()
    #: The disappearing timer from this epoch on (``None``: off).
    timer: int | None = None
    timer_changed: bool = False
    #: We were removed: the group's state (and its call keys) are deleted, its stored messages
    #: are kept (see "Removal" in the module docstring).
    self_removed: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class ProposalQueued:
    group_id: bytes
    proposal: ProposalReceived


@dataclass(frozen=True, slots=True, kw_only=True)
class Joined:
    group_id: bytes
    epoch: int
    members: tuple[bytes, ...]
    timer: int | None


@dataclass(frozen=True, slots=True, kw_only=True)
class Ignored:
    """Input that changed nothing visible (a redelivered inbox entry, a duplicate message ID)."""

    group_id: bytes | None
    reason: str


ChatEvent = MessageReceived | MessageExpired | GroupUpdated | ProposalQueued | Joined | Ignored


# -- per-group application state ------------------------------------------------------------------


#: ``_Entry.stored_previous`` before anything was stored.
_UNSTORED = object()


@dataclass(eq=False, slots=True)
class _Entry:
    group: Group
    #: epoch -> disappearing timer in force in that epoch (recent epochs only).
    timers: dict[int, int | None]
    #: Call sessions started so far (KID context of the next one; see mls.app.calls).
    sessions: int = 0
    #: Our unresolved commit: the epoch it moves to, and who it adds and removes.
    pending: dict[str, Any] | None = None
    #: ``[state, meta]`` of the epoch before our unresolved commit.
    previous: bytes | None = None
    #: leaf -> identity of the current members (not stored: rebuilt from the tree on load).
    roster: dict[int, bytes] = field(default_factory=dict)
    #: (epoch after a commit, {leaf: identity before it}) for attributing late messages.
    history: list[tuple[int, dict[int, bytes | None]]] = field(default_factory=list)
    call: GroupCall | None = None
    #: What the store holds of ``meta()`` and ``previous`` (written only when they change).
    stored_meta: bytes | None = None
    stored_previous: object = _UNSTORED

    def timer_at(self, epoch: int) -> int | None:
        if epoch in self.timers:
            return self.timers[epoch]
        return timer_of(self.group.extensions)

    def identity_at(self, leaf: int, epoch: int) -> bytes | None:
        ident = self.roster.get(leaf)
        for ep, diff in reversed(self.history):
            if ep <= epoch:
                break
            if leaf in diff:
                ident = diff[leaf]
        return ident

    def meta(self) -> bytes:
        return bytes(
            cbor2.dumps(
                {
                    "v": _META_VERSION,
                    "timers": [[e, t] for e, t in sorted(self.timers.items())],
                    "sessions": self.sessions,
                    "pending": self.pending,
                    "history": [
                        [e, [[leaf, ident] for leaf, ident in sorted(d.items())]]
                        for e, d in self.history
                    ],
                },
                canonical=True,
            )
        )

    def load_meta(self, data: bytes) -> None:
        try:
            obj = cbor2.loads(data)
            if not isinstance(obj, dict) or obj.get("v") != _META_VERSION:
                raise DecodeError("unknown group metadata version")
            self.timers = {int(e): (None if t is None else int(t)) for e, t in obj["timers"]}
            self.sessions = int(obj["sessions"])
            pending = obj["pending"]
            self.pending = dict(pending) if pending is not None else None
            self.history = [
                (int(e), {int(leaf): (None if i is None else bytes(i)) for leaf, i in d})
                for e, d in obj["history"]
            ]
        except DecodeError:
            raise
        except Exception as exc:  # cbor2 raises many types on garbage
            raise DecodeError(f"malformed group metadata: {type(exc).__name__}") from exc

    def rebuild_roster(self) -> None:
        self.roster = {i: cred.identity for i, cred in self.group.members()}


class ChatClient:
    """One identity's messaging state over many groups (see the module docstring).

    Create with :meth:`create` (a new identity) or :meth:`open` (restore from storage).
    """

    def __init__(self, client: Client, storage: Storage, config: ChatConfig) -> None:
        self._client = client
        self._storage = storage
        self._config = config
        self._groups: dict[bytes, _Entry] = {}
        self._cursor = 0

    # -- lifecycle ---------------------------------------------------------------------------

    @classmethod
    def create(
        cls,
        identity: bytes,
        storage: Storage,
        *,
        suite: int = 1,
        config: ChatConfig | None = None,
    ) -> ChatClient:
        """A new identity, stored at once. Its leaves advertise the disappearing-messages
        extension, which the groups it creates require of every member."""
        if storage.load().client is not None:
            raise UsageError("this storage already holds a client: use ChatClient.open")
        caps = default_capabilities(extensions=(DISAPPEARING_MESSAGES_EXTENSION,))
        client = Client.create(identity, suite, capabilities=caps)
        storage.apply(StateChange(client=client.to_bytes()))
        return cls(client, storage, config or ChatConfig())

    @classmethod
    def open(cls, storage: Storage, *, config: ChatConfig | None = None) -> ChatClient:
        """Restore a client and all its groups from ``storage``."""
        snap = storage.load()
        if snap.client is None:
            raise UsageError("this storage holds no client: use ChatClient.create")
        restored = cls(Client.from_bytes(snap.client), storage, config or ChatConfig())
        restored._load(snap)
        # A group we were removed from but whose state an older version kept (§12.4.2).
        gone = [g for g, e in restored._groups.items() if e.group.status is GroupStatus.REMOVED]
        if gone:
            restored._persist(forget=gone)
        return restored

    def _load(self, snap: Snapshot) -> None:
        if snap.client is None:
            raise UsageError("this storage holds no client")
        calls = {gid: e.call for gid, e in self._groups.items() if e.call is not None}
        self._client = Client.from_bytes(snap.client)
        self._groups = {}
        for gid, rec in snap.groups.items():
            # The options are the client's (the external-proposal policy is code, not state).
            group = Group.from_parts(
                rec.state, rec.rest, rec.secrets, self._client, config=self._config.group_config
            )
            entry = _Entry(group=group, timers={})
            entry.load_meta(rec.meta)
            entry.previous = entry.stored_previous = rec.previous
            entry.stored_meta = rec.meta
            entry.rebuild_roster()
            entry.call = calls.get(gid)
            self._groups[gid] = entry
        self._cursor = snap.cursor

    def close(self) -> None:
        for entry in self._groups.values():
            if entry.call is not None:
                entry.call.leave()
        self._storage.close()

    # -- properties ----------------------------------------------------------------------------

    @property
    def identity(self) -> bytes:
        return self._client.identity

    @property
    def mls_client(self) -> Client:
        return self._client

    @property
    def config(self) -> ChatConfig:
        return self._config

    @property
    def cursor(self) -> int:
        """Sequence number of the last delivery-service message processed (stored atomically
        with its effects); fetch from ``cursor + 1`` after a restart."""
        return self._cursor

    @property
    def uri(self) -> str:
        return user_uri(self._config.domain, self.identity)

    def group_ids(self) -> list[bytes]:
        return list(self._groups)

    def group(self, group_id: bytes) -> Group:
        return self._entry(group_id).group

    def members(self, group_id: bytes) -> list[bytes]:
        return [ident for _, ident in sorted(self._entry(group_id).roster.items())]

    def timer(self, group_id: bytes) -> int | None:
        """The group's disappearing timer in seconds (``None``: off)."""
        return timer_of(self._entry(group_id).group.extensions)

    def has_unresolved_commit(self, group_id: bytes) -> bool:
        return self._entry(group_id).pending is not None

    def _entry(self, group_id: bytes) -> _Entry:
        entry = self._groups.get(group_id)
        if entry is None:
            raise InvalidState(f"not a member of group {group_id.hex()}")
        return entry

    # -- persistence -------------------------------------------------------------------------

    @staticmethod
    def _write(entry: _Entry) -> tuple[GroupWrite, bytes]:
        """The group's changes since it was last stored (see ``Group.storage_delta``): one
        secret-tree row for a received message, the epoch once per epoch; the metadata and
        the previous epoch only when they changed. Also returns the metadata."""
        meta = entry.meta()
        write = GroupWrite(
            delta=entry.group.storage_delta(),
            meta=meta if meta != entry.stored_meta else None,
            previous=entry.previous,
            write_previous=entry.previous is not entry.stored_previous,
        )
        return write, meta

    def _persist(
        self,
        *entries: _Entry,
        client: bool = False,
        add: Sequence[StoredMessage] = (),
        cursor: int | None = None,
        forget: Sequence[bytes] = (),
    ) -> None:
        """Store the given groups (and the client, messages, cursor) and delete the records of
        the ``forget`` groups, in one transaction; on failure reload everything from storage,
        so memory never runs ahead of the disk."""
        metas: list[bytes] = []
        try:
            writes = []
            for e in entries:
                w, meta = self._write(e)
                writes.append(w)
                metas.append(meta)
            change = StateChange(
                client=self._client.to_bytes() if client else None,
                put_groups=tuple(writes),
                forget_groups=tuple(forget),
                add_messages=tuple(add),
                cursor=cursor,
            )
            self._storage.apply(change)
        except BaseException:
            # The deltas were handed out but not stored: an entry kept after this (a processed
            # message, see _keep_processed) must write its whole state next time.
            for e in entries:
                e.group.mark_unstored()
                e.stored_meta, e.stored_previous = None, _UNSTORED
            self._load(self._storage.load())
            raise
        for e, meta in zip(entries, metas, strict=True):
            e.stored_meta, e.stored_previous = meta, e.previous
        for gid in forget:
            self._groups.pop(gid, None)
        if cursor is not None:
            self._cursor = cursor

    def _ack(self, seq: int | None) -> None:
        if seq is not None and seq > self._cursor:
            self._storage.apply(StateChange(cursor=seq))
            self._cursor = seq

    # -- KeyPackages and groups ----------------------------------------------------------------

    def publish_key_packages(self, count: int, *, now: int) -> list[bytes]:
        """``count`` fresh KeyPackages (MLSMessage bytes) for the delivery service; their
        private keys are stored before they are returned."""
        kps = [MLSMessage(body=self._client.key_package(now)).to_bytes() for _ in range(count)]
        self._persist(client=True)
        return kps

    def create_group(self, group_id: bytes, *, now: int, timer: int | None = None) -> None:
        """A new group with this client as its only member. Its ``required_capabilities``
        lists the disappearing-messages extension, so only members that support it can join."""
        if group_id in self._groups:
            raise UsageError(f"group {group_id.hex()} exists")
        exts = with_timer((), timer)
        group = Group.create(
            self._client, group_id, config=self._config.group_config, extensions=exts, now=now
        )
        entry = _Entry(group=group, timers={group.epoch: timer})
        entry.rebuild_roster()
        self._groups[group_id] = entry
        try:
            self._persist(entry, client=True)
        except BaseException:
            self._groups.pop(group_id, None)
            raise

    def join(
        self,
        welcome: bytes,
        *,
        now: int,
        ratchet_tree: bytes | None = None,
        seq: int | None = None,
    ) -> Joined:
        """Join a group from a Welcome; the used KeyPackage's private keys are deleted in the
        same transaction that stores the group."""

        def unique(joined: Group) -> None:
            # RFC 9420 §12.4.3.1: the group_id is unique among the groups we take part in.
            current = self._groups.get(joined.group_id)
            if current is not None and current.group.status is GroupStatus.OPERATIONAL:
                raise InvalidWelcome("we are already a member of a group with this group_id")

        group = Group.join(
            self._client,
            welcome,
            ratchet_tree=ratchet_tree,
            config=self._config.group_config,
            now=now,
            check=unique,
        )
        gid = group.group_id
        old = self._groups.get(gid)
        if old is not None and old.call is not None:
            old.call.leave()
        entry = _Entry(group=group, timers={group.epoch: timer_of(group.extensions)})
        entry.rebuild_roster()
        self._groups[gid] = entry
        try:
            self._persist(entry, client=True, cursor=self._next_cursor(seq))
        except UsageError as exc:
            # The storage refused the group (e.g. a size limit): the Welcome cannot be taken,
            # and its KeyPackage stays unused (memory was reloaded from storage).
            raise RejectedByApplication(f"storage refused the joined group: {exc}") from exc
        return Joined(
            group_id=gid,
            epoch=group.epoch,
            members=tuple(self.members(gid)),
            timer=entry.timers[group.epoch],
        )

    def _next_cursor(self, seq: int | None) -> int | None:
        return seq if seq is not None and seq > self._cursor else None

    # -- our own commits -----------------------------------------------------------------------

    def commit(
        self,
        group_id: bytes,
        *,
        now: int,
        add: Sequence[bytes] = (),
        remove: Sequence[bytes] = (),
        extensions: Sequence[Extension] | None = None,
    ) -> CommitOutput:
        """Commit pending proposals plus adds (KeyPackage MLSMessages), removes (identities)
        and a new GroupContext extension list, with a path (fresh keys for us).

        The new epoch is stored next to the old one until :meth:`confirm_commit` or
        :meth:`reject_commit`; until then the group cannot send. Hand ``commit`` (and
        ``welcome``) to the delivery service.
        """
        entry = self._entry(group_id)
        self._require_resolved(entry)
        group = entry.group
        leaves: list[int] = []
        for ident in remove:
            found = [i for i, x in entry.roster.items() if x == ident]
            if not found:
                raise UsageError(f"{ident!r} is not a member")
            leaves.extend(found)
        if extensions is not None:
            extensions = with_required_support(extensions)
        meta = entry.meta()
        old_timer = timer_of(group.extensions)
        out = group.commit(add=add, remove=leaves, extensions=extensions, now=now)
        # RFC 9420 §9.1, §9.2: the old epoch's state is taken after the commit consumed its
        # handshake key (a pending commit is not serialised, the advanced ratchet is), so a
        # rejected commit never hands that key and nonce to the next one.
        previous = bytes(cbor2.dumps([group.to_bytes(), meta]))
        merged = group.merge_pending_commit()
        added, removed = self._after_commit(entry, merged)
        new_timer = timer_of(group.extensions)
        entry.pending = {
            "epoch": merged.epoch,
            "added": list(added),
            "removed": list(removed),
            "timer_changed": new_timer != old_timer,
        }
        entry.previous = previous
        self._persist(entry)
        return out

    def leave(self, group_id: bytes) -> bytes:
        """Ask to leave the group: a SelfRemove proposal where every member supports it
        (draft-ietf-mls-extensions; the next commit by anyone, an external joiner's included,
        removes us), else a Remove proposal of our own leaf (RFC 9420 §12.2: another member
        commits it). Returns the proposal to hand to the delivery service. When the commit
        that removes us arrives, the group's state is deleted (see "Removal" above); until
        then the group sends nothing, and a commit that leaves us in clears the proposal (call
        again)."""
        entry = self._entry(group_id)
        self._require_resolved(entry)
        group = entry.group
        if group.self_remove_capable:
            data = group.propose_self_remove()
        else:
            data = group.propose_remove(group.own_leaf_index)
        self._persist(entry)
        return data

    def confirm_commit(self, group_id: bytes, *, now: int) -> GroupUpdated:
        """The delivery service accepted our commit: its epoch is now the group's. The old
        epoch's state is deleted and a running call switches keys."""
        entry = self._entry(group_id)
        pending = entry.pending
        if pending is None:
            raise InvalidState("no unresolved commit in this group")
        entry.pending = None
        entry.previous = None
        self._persist(entry)
        self._rekey_call(entry, now)
        return GroupUpdated(
            group_id=group_id,
            epoch=int(pending["epoch"]),
            committer=self.identity,
            added=tuple(bytes(x) for x in pending["added"]),
            removed=tuple(bytes(x) for x in pending["removed"]),
            timer=timer_of(entry.group.extensions),
            timer_changed=bool(pending["timer_changed"]),
        )

    def reject_commit(self, group_id: bytes) -> None:
        """The delivery service refused our commit (another one won the epoch): go back to the
        stored previous epoch."""
        entry = self._entry(group_id)
        if entry.previous is None:
            raise InvalidState("no unresolved commit in this group")
        restored = self._previous_entry(entry)
        self._groups[group_id] = restored
        self._persist(restored)

    @staticmethod
    def _snapshot(entry: _Entry) -> bytes:
        """``entry`` as a ``previous`` blob: ``[state, meta]``."""
        return bytes(cbor2.dumps([entry.group.to_bytes(), entry.meta()]))

    def _previous_entry(self, entry: _Entry) -> _Entry:
        """A fresh copy of the epoch before our unresolved commit (from ``entry.previous``)."""
        assert entry.previous is not None
        state, meta = cbor2.loads(entry.previous)
        restored = _Entry(
            group=Group.from_bytes(bytes(state), self._client, config=self._config.group_config),
            timers={},
        )
        restored.load_meta(bytes(meta))
        restored.rebuild_roster()
        restored.call = entry.call
        return restored

    def set_timer(self, group_id: bytes, seconds: int | None, *, now: int) -> CommitOutput:
        """Commit a GroupContextExtensions proposal that sets the disappearing timer (``None``:
        off). Every member moves to it at the commit's epoch."""
        group = self._entry(group_id).group
        return self.commit(group_id, now=now, extensions=with_timer(group.extensions, seconds))

    def _require_resolved(self, entry: _Entry) -> None:
        if entry.pending is not None:
            raise InvalidState("our last commit awaits the delivery service's confirmation")
        if entry.group.status is not GroupStatus.OPERATIONAL:
            raise InvalidState(f"group is {entry.group.status.value}")

    def _after_commit(
        self, entry: _Entry, ev: CommitMerged
    ) -> tuple[tuple[bytes, ...], tuple[bytes, ...]]:
        """Update the roster, its history and the timer history after a merged commit."""
        group = entry.group
        diff: dict[int, bytes | None] = {}
        removed: list[bytes] = []
        for i in ev.removed:
            ident = entry.roster.pop(i, None)
            diff[i] = ident
            if ident is not None:
                removed.append(ident)
        added: list[bytes] = []
        changed = [*ev.added, *ev.updated]
        if ev.committer is not None:
            changed.append(ev.committer)
        for i in changed:
            leaf = group.tree.leaf(i) if i < group.tree.n_leaves else None
            diff.setdefault(i, entry.roster.get(i))
            if leaf is None:
                entry.roster.pop(i, None)
                continue
            entry.roster[i] = leaf.credential.identity
            if i in ev.added:
                added.append(leaf.credential.identity)
        keep = self._config.group_config.past_epochs + 1
        entry.history.append((ev.epoch, diff))
        del entry.history[:-keep]
        entry.timers[ev.epoch] = timer_of(group.extensions)
        for e in sorted(entry.timers)[:-keep]:
            del entry.timers[e]
        return tuple(added), tuple(removed)

    # -- sending -------------------------------------------------------------------------------

    def send(self, group_id: bytes, content: MimiContent, *, now: int) -> Sent:
        """Encrypt ``content`` for the group. With a disappearing timer on, its ``expires`` is
        set to ``now + timer`` (or kept if the sender asked for earlier). The message and the
        advanced send ratchet are stored before the ciphertext is returned."""
        entry = self._entry(group_id)
        self._require_resolved(entry)
        group = entry.group
        timer = timer_of(group.extensions)
        if timer is not None:
            limit = now + timer
            exp = content.expires
            if exp is None or (not exp.relative and exp.time > limit):
                content = replace(content, expires=Expiration.at(limit))
        data = content.to_cbor()
        exp = content.expires
        expires_at = message_expiry(
            timer=timer,
            received_at=now,
            expires=exp.time if exp is not None else None,
            relative=exp.relative if exp is not None else False,
        )
        message_id = compute_message_id(
            data, content.salt, self.uri, room_uri(self._config.domain, group_id)
        )
        wire = group.protect(data)
        stored = StoredMessage(
            group_id=group_id,
            message_id=message_id,
            sender=self.identity,
            sender_leaf=group.own_leaf_index,
            epoch=group.epoch,
            received_at=now,
            expires_at=expires_at,
            outgoing=True,
            content=data,
        )
        self._persist(entry, add=[stored])
        return Sent(group_id=group_id, data=wire, message_id=message_id, expires_at=expires_at)

    def send_text(
        self, group_id: bytes, body: str, *, now: int, in_reply_to: bytes | None = None
    ) -> Sent:
        salt = new_salt(self._client.suite.random)
        if in_reply_to is not None:
            return self.send(group_id, reply(body, in_reply_to=in_reply_to, salt=salt), now=now)
        return self.send(group_id, text(body, salt=salt), now=now)

    def react(self, group_id: bytes, emoji: str, *, to: bytes, now: int) -> Sent:
        salt = new_salt(self._client.suite.random)
        return self.send(group_id, reaction(emoji, in_reply_to=to, salt=salt), now=now)

    def edit(self, group_id: bytes, body: str, *, replaces: bytes, now: int) -> Sent:
        salt = new_salt(self._client.suite.random)
        return self.send(group_id, edit(body, replaces=replaces, salt=salt), now=now)

    # -- receiving -----------------------------------------------------------------------------

    def receive(self, data: bytes, *, now: int, seq: int | None = None) -> ChatEvent:
        """Process one message from the delivery service.

        ``seq`` is its inbox sequence number: stored in the same transaction as the message's
        effects, so after a crash the client resumes right after the last processed message; a
        ``seq`` at or below :attr:`cursor` is ignored (redelivery). An invalid message raises a
        :class:`~mls.errors.PeerError` and changes nothing but the cursor. A message that MLS
        accepted but the application cannot take raises a ``PeerError`` too, after storing
        what processing it changed (see "Poison messages" in the module docstring).
        """
        if seq is not None and seq <= self._cursor:
            return Ignored(group_id=None, reason=f"inbox entry {seq} was already processed")
        try:
            body = decode(MLSMessage, data).body
            if isinstance(body, Welcome):
                return self.join(data, now=now, seq=seq)
            if isinstance(body, PrivateMessage):
                gid, epoch, ctype = body.group_id, body.epoch, body.content_type
            elif isinstance(body, PublicMessage):
                c = body.content
                gid, epoch, ctype = c.group_id, c.epoch, c.content_type
            else:
                raise InvalidContentType("a KeyPackage or GroupInfo is not a message to process")
            entry = self._groups.get(gid)
            if entry is None:
                raise WrongGroup(
                    f"message for group {gid.hex()}, which this client is not (or no longer) in"
                )
            entry, ev, confirmed = self._process(entry, data, epoch, ctype, now)
        except PeerError:
            self._ack(seq)  # refused for good: do not fetch it again after a restart
            raise
        return self._take(entry, ev, now=now, seq=seq, confirmed=confirmed)

    def _process(
        self, entry: _Entry, data: bytes, epoch: int, ctype: int, now: int
    ) -> tuple[_Entry, GroupEvent, bool]:
        """Process ``data`` with the state it is for; raise a PeerError and change nothing if it
        does not process. Returns the entry that processed it, the event and whether it
        confirmed our unresolved commit.

        The clear header (``epoch``, ``ctype``) only picks the state to try; what settles our
        unresolved commit is that state authenticating the message (RFC 9420 §14).
        """
        pending = entry.pending
        if pending is not None:
            new_epoch = int(pending["epoch"])
            if epoch >= new_epoch:
                ev = entry.group.process(data, now=now)
                # The new epoch's keys authenticated it: the group took our commit.
                entry.pending = None
                entry.previous = None
                return entry, ev, True
            if epoch == new_epoch - 1 and ctype == ContentType.commit:
                # A commit for the epoch we left: if the old epoch's state accepts it, another
                # commit won that epoch and ours was refused. A copy is tried, so a failure
                # leaves our stored state as it was.
                rival = self._previous_entry(entry)
                return rival, rival.group.process(data, now=now), False
            if epoch == new_epoch - 1 and ctype == ContentType.proposal:
                # Only the old epoch can hold it: kept there, for a rival commit that may
                # refer to it (§12.4) should ours lose.
                old = self._previous_entry(entry)
                ev = old.group.process(data, now=now)
                entry.previous = self._snapshot(old)
                return entry, ev, False
            if epoch == new_epoch - 1:
                # An application message of the old epoch: read with the kept past-epoch keys,
                # and its key is consumed in the stored old epoch too (§9.2), which becomes
                # our state again if our commit loses.
                ev = entry.group.process(data, now=now)
                try:
                    old = self._previous_entry(entry)
                    old.group.process(data, now=now)
                    entry.previous = self._snapshot(old)
                except Exception:  # noqa: S110
                    # The copy refuses what the merged group read: nothing to consume there.
                    # (The merged group's key is spent: nothing may escape before _take.)
                    pass
                return entry, ev, False
        # Late application messages of earlier epochs decrypt with the kept past-epoch keys.
        return entry, entry.group.process(data, now=now), False

    def _take(
        self, entry: _Entry, ev: GroupEvent, *, now: int, seq: int | None, confirmed: bool
    ) -> ChatEvent:
        """Store everything a processed message changed, in one transaction, and return its
        event. From here on the group's change (a consumed key, a merged commit) is final: any
        failure stores it with the cursor and raises a PeerError (no poison message)."""
        gid = entry.group.group_id
        self._groups[gid] = entry  # a rival commit's state replaces ours (see _process)
        cursor = self._next_cursor(seq)
        try:
            result, add = self._outcome(entry, ev, now)
        except Exception as exc:
            self._keep_processed(entry, cursor, seq)
            if isinstance(exc, PeerError):
                raise
            why = str(exc) if isinstance(exc, MLSError) else type(exc).__name__
            raise RejectedByApplication(f"message refused by the application: {why}") from exc
        removed = isinstance(ev, CommitMerged) and ev.self_removed
        try:
            if removed:
                # RFC 9420 §12.4.2: delete the group's state with the removal's acknowledgement.
                self._persist(forget=(gid,), cursor=cursor)
            else:
                self._persist(entry, add=add, cursor=cursor)
        except UsageError as exc:  # the storage refused the change (e.g. a size limit)
            self._keep_processed(entry, cursor, seq)
            raise RejectedByApplication(f"storage refused the message: {exc}") from exc
        if removed:
            if entry.call is not None:
                entry.call.leave()
                entry.call = None
        elif confirmed or isinstance(ev, CommitMerged):
            self._rekey_call(entry, now)
        return result

    def _keep_processed(self, entry: _Entry, cursor: int | None, seq: int | None) -> None:
        """Store a processed group (its consumed key, merged commit or removal) and the cursor
        without the rest of the message; if the storage refuses even that, move the cursor."""
        gid = entry.group.group_id
        self._groups[gid] = entry  # a failed _persist reloaded the disk's state
        try:
            if entry.group.status is GroupStatus.REMOVED:
                self._persist(forget=(gid,), cursor=cursor)
            else:
                self._persist(entry, cursor=cursor)
        except UsageError:
            self._ack(seq)

    def _rekey_call(self, entry: _Entry, now: int) -> None:
        """Move a running call to the group's epoch; a call that cannot follow it ends (its keys
        are forgotten) rather than keep sending under a replaced epoch."""
        if entry.call is None:
            return
        try:
            entry.call.epoch_changed(entry.group, now=now)
        except MLSError:
            entry.call.leave()
            entry.call = None

    def _outcome(
        self, entry: _Entry, ev: GroupEvent, now: int
    ) -> tuple[ChatEvent, list[StoredMessage]]:
        if isinstance(ev, ApplicationMessage):
            return self._on_application(entry, ev, now)
        if isinstance(ev, ProposalReceived):
            return ProposalQueued(group_id=entry.group.group_id, proposal=ev), []
        return self._on_commit(entry, ev), []

    def _on_application(
        self, entry: _Entry, ev: ApplicationMessage, now: int
    ) -> tuple[ChatEvent, list[StoredMessage]]:
        group = entry.group
        gid = group.group_id
        sender = entry.identity_at(ev.sender, ev.epoch) or b""
        content = decode_content(ev.data)
        sender_uri = user_uri(self._config.domain, sender)
        room = room_uri(self._config.domain, gid)
        if content.sender_uri is not None and content.sender_uri != sender_uri:
            raise InvalidContent("senderUri differs from the authenticated MLS sender")
        if content.room_uri is not None and content.room_uri != room:
            raise InvalidContent("roomUri names another room")
        exp = content.expires
        expires_at = message_expiry(
            timer=entry.timer_at(ev.epoch),
            received_at=now,
            expires=exp.time if exp is not None else None,
            relative=exp.relative if exp is not None else False,
        )
        if expires_at is not None and now >= expires_at:
            expired = MessageExpired(
                group_id=gid, sender=sender, epoch=ev.epoch, expires_at=expires_at
            )
            return expired, []
        # UsageError for a URI over 65535 bytes (a long identity): refused by _take.
        message_id = compute_message_id(ev.data, content.salt, sender_uri, room)
        if self._storage.has_message(gid, message_id):
            return Ignored(group_id=gid, reason="duplicate message ID"), []
        stored = StoredMessage(
            group_id=gid,
            message_id=message_id,
            sender=sender,
            sender_leaf=ev.sender,
            epoch=ev.epoch,
            received_at=now,
            expires_at=expires_at,
            outgoing=False,
            content=ev.data,
        )
        return (
            MessageReceived(
                group_id=gid, message=stored, content=content, sender_removed=ev.sender_removed
            ),
            [stored],
        )

    def _on_commit(self, entry: _Entry, ev: CommitMerged) -> GroupUpdated:
        group = entry.group
        gid = group.group_id
        old_timer = entry.timer_at(group.epoch - 1) if not ev.self_removed else None
        committer = (
            entry.roster.get(ev.committer) if ev.committer is not None else None
        )  # before the roster changes (an external joiner is not in it yet)
        if ev.self_removed:
            return GroupUpdated(
                group_id=gid,
                epoch=ev.epoch,
                committer=committer,
                removed=(self.identity,),
                timer=timer_of(group.extensions),
                self_removed=True,
            )
        added, removed = self._after_commit(entry, ev)
        if committer is None and ev.committer is not None:
            committer = entry.roster.get(ev.committer)
        timer = timer_of(group.extensions)
        return GroupUpdated(
            group_id=gid,
            epoch=ev.epoch,
            committer=committer,
            added=added,
            removed=removed,
            timer=timer,
            timer_changed=timer != old_timer,
        )

    # -- stored messages -----------------------------------------------------------------------

    def purge_expired(self, *, now: int) -> int:
        """Delete every stored message that expired at ``now``; return how many."""
        return self._storage.delete_expired(now)

    def messages(self, group_id: bytes, *, now: int) -> list[StoredMessage]:
        """The group's stored messages that have not expired at ``now`` (expired ones are
        deleted first). A group we were removed from keeps its messages until
        :meth:`delete_conversation`."""
        self._storage.delete_expired(now)
        return [m for m in self._storage.messages(group_id) if not m.expired(now)]

    def delete_conversation(self, group_id: bytes) -> int:
        """Delete every stored message of the group (e.g. one we were removed from); the group
        itself, if we are still in it, is kept. Returns how many were deleted."""
        keys = tuple((group_id, m.message_id) for m in self._storage.messages(group_id))
        self._storage.apply(StateChange(delete_messages=keys))
        return len(keys)

    def conversation(self, group_id: bytes, *, now: int) -> list[ChatLine]:
        """The visible conversation (edits applied, reactions attached)."""
        return conversation(self.messages(group_id, now=now))

    # -- calls ---------------------------------------------------------------------------------

    def start_call(self, group_id: bytes, *, now: int) -> GroupCall:
        """Join the group's call (or return the running one). A fresh KID context is stored
        before any frame is sent, so (key, CTR) pairs never repeat across restarts."""
        entry = self._entry(group_id)
        if entry.call is not None and entry.call.active:
            return entry.call
        if entry.group.status is not GroupStatus.OPERATIONAL:
            raise InvalidState("not an active member of this group")
        entry.sessions += 1
        self._persist(entry)
        cfg = self._config
        entry.call = GroupCall(
            entry.group,
            now=now,
            session=entry.sessions,
            suite=cfg.sframe_suite,
            epoch_bits=cfg.sframe_epoch_bits,
            grace_period=cfg.call_grace_period,
        )
        return entry.call

    def call(self, group_id: bytes) -> GroupCall | None:
        """The group's running call; ``None`` if there is none (also once we were removed)."""
        entry = self._groups.get(group_id)
        return entry.call if entry is not None else None

    def end_call(self, group_id: bytes) -> None:
        entry = self._entry(group_id)
        if entry.call is not None:
            entry.call.leave()
            entry.call = None
