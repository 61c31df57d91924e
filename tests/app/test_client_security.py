"""ChatClient trust gaps (issue 11): who may resolve our unresolved commit, a rejected commit's
handshake key, a removed member's state, and messages that fail after MLS accepted them.

Each attack goes through the public API or the wire (a forged MLSMessage), asserts the exact
exception and that the stored state is unchanged, and then shows the group still works.
"""

from __future__ import annotations

import dataclasses
import sqlite3
from pathlib import Path
from typing import Any

import cbor2
import pytest

from mls.app import (
    ChatClient,
    ChatConfig,
    GroupUpdated,
    GroupWrite,
    Ignored,
    MemoryStorage,
    MessageReceived,
    ProposalQueued,
    SQLiteStorage,
    StateChange,
    Storage,
)
from mls.app.content import new_salt, text
from mls.codec import decode
from mls.constants import ContentType
from mls.errors import (
    BadSenderData,
    DecryptFailed,
    RejectedByApplication,
    ReplayedMessage,
    UsageError,
    WrongGroup,
)
from mls.framing.message import MLSMessage
from mls.framing.private import PrivateMessage, SenderData
from mls.framing.protection import decrypt_sender_data
from mls.group import CommitMerged, Group, GroupConfig

from .test_storage import files_bytes, secret_candidates, stored_blob, windows
from .world import GROUP, World


def three(tmp: Path | None = None, *, sqlite: tuple[str, ...] = ()) -> World:
    w = World(tmp)
    for name in ("alice", "bob", "carol"):
        w.add(name, sqlite=name in sqlite)
    w.create("alice", ["bob", "carol"])
    w.pump()
    return w


def agree(w: World, *names: str) -> None:
    groups = [w[n].group(GROUP) for n in names]
    assert len({g.epoch_authenticator for g in groups}) == 1
    assert len({g.epoch for g in groups}) == 1


def private(data: bytes) -> PrivateMessage:
    body = decode(MLSMessage, data).body
    assert isinstance(body, PrivateMessage)
    return body


def forge(data: bytes, **changes: Any) -> bytes:
    """``data`` (a PrivateMessage) with clear header or ciphertext fields replaced."""
    return MLSMessage(body=dataclasses.replace(private(data), **changes)).to_bytes()


def flip_last(blob: bytes) -> bytes:
    return blob[:-1] + bytes((blob[-1] ^ 1,))


# -- item 3: our unresolved commit is settled only by a message that processes --------------------


def test_junk_commit_for_the_old_epoch_does_not_undo_an_accepted_commit(tmp_path: Path) -> None:
    w = three(tmp_path, sqlite=("alice",))
    old = w["alice"].group(GROUP).epoch
    early = w.say("bob", "sent in the old epoch")
    # bob also builds a genuine commit for the old epoch, which the DS never sees.
    rival = w["bob"].commit(GROUP, now=w.now).commit
    w["bob"].reject_commit(GROUP)
    out = w["alice"].commit(GROUP, now=w.now)
    assert w.ds.submit_commit(GROUP, b"alice", out.commit)
    alice = w.reopen("alice")  # a crash before the DS's answer arrived: the commit is unresolved
    assert alice.has_unresolved_commit(GROUP) and alice.group(GROUP).epoch == old + 1
    # A late application message of the old epoch is read and settles nothing.
    (got,) = w.pump("alice")["alice"]
    assert isinstance(got, MessageReceived) and got.message.message_id == early.message_id
    assert alice.has_unresolved_commit(GROUP)

    # Junk whose clear header says "commit, old epoch" (the real commit, one bit flipped).
    junk = forge(rival, ciphertext=flip_last(private(rival).ciphertext))
    before = w.storages["alice"].load()
    with pytest.raises(DecryptFailed) as exc:
        alice.receive(junk, now=w.now)
    assert type(exc.value) is DecryptFailed
    assert w.storages["alice"].load() == before  # state, previous epoch, cursor: unchanged
    assert alice.has_unresolved_commit(GROUP) and alice.group(GROUP).epoch == old + 1

    # The real next message of the group (its new epoch) confirms the commit.
    w.pump("bob", "carol")
    w.say("bob", "sent in the new epoch")
    (got,) = w.pump("alice")["alice"]
    assert isinstance(got, MessageReceived) and got.message.epoch == old + 1
    assert not alice.has_unresolved_commit(GROUP)
    assert w.storages["alice"].load().groups[GROUP].previous is None
    agree(w, "alice", "bob", "carol")


@pytest.mark.parametrize("ctype", [ContentType.commit, ContentType.application])
def test_junk_of_the_new_epoch_does_not_confirm_a_refused_commit(ctype: ContentType) -> None:
    w = three()
    old = w["alice"].group(GROUP).epoch
    out = w["alice"].commit(GROUP, now=w.now)
    w.commit("bob")  # bob's commit wins the epoch
    assert not w.ds.submit_commit(GROUP, b"alice", out.commit)
    alice = w.reopen("alice")
    # Junk whose clear header says "our new epoch" (the refused commit, retargeted).
    junk = forge(out.commit, epoch=old + 1, content_type=ctype)
    before = w.storages["alice"].load()
    with pytest.raises(BadSenderData) as exc:
        alice.receive(junk, now=w.now)
    assert type(exc.value) is BadSenderData
    assert w.storages["alice"].load() == before
    assert alice.has_unresolved_commit(GROUP)

    # bob's commit (old epoch) processes with the old epoch's state: it is the one taken.
    (got,) = w.pump("alice")["alice"]
    assert isinstance(got, GroupUpdated) and got.committer == b"bob" and got.epoch == old + 1
    assert not alice.has_unresolved_commit(GROUP)
    assert w.storages["alice"].load().groups[GROUP].previous is None
    w.pump()
    agree(w, "alice", "bob", "carol")
    w.say("alice", "back in step")
    assert [len(x) for x in w.pump("bob", "carol").values()] == [1, 1]


def test_old_epoch_messages_during_our_commit_are_kept_for_a_rival() -> None:
    w = three()
    early = w.say("bob", "old epoch")
    proposal = w["carol"].group(GROUP).propose_update()
    w.ds.send(GROUP, b"carol", proposal)
    out = w["alice"].commit(GROUP, now=w.now)
    w.pump("bob")
    w.commit("bob")  # wins, and commits carol's Update by reference
    assert not w.ds.submit_commit(GROUP, b"alice", out.commit)
    alice = w.reopen("alice")
    got = w.pump("alice")["alice"]
    assert [type(e) for e in got] == [MessageReceived, ProposalQueued, GroupUpdated]
    assert not alice.has_unresolved_commit(GROUP)
    w.pump()
    agree(w, "alice", "bob", "carol")
    # The old epoch's key of the message read while our commit was pending is consumed in the
    # state we went back to (§9.2), not only in the one we left.
    with pytest.raises(ReplayedMessage):
        alice.receive(early.data, now=w.now)


def test_a_rival_commit_that_removes_us_deletes_the_group() -> None:
    w = three()
    w["alice"].commit(GROUP, now=w.now)  # never accepted
    w.commit("bob", remove=["alice"])
    (got,) = w.pump("alice")["alice"]
    assert isinstance(got, GroupUpdated) and got.self_removed and got.committer == b"bob"
    assert GROUP not in w["alice"].group_ids()
    assert GROUP not in w.storages["alice"].load().groups


# -- item 11: a rejected commit's handshake key is not used again ---------------------------------


def sender_data(w: World, reader: str, data: bytes) -> SenderData:
    """Decrypt a PrivateMessage's sender data (§6.3.2) with the sender_data_secret of a
    member's stored state."""
    stored = cbor2.loads(w.storages[reader].load().groups[GROUP].state)
    secret = stored["secrets"]["sender_data_secret"]
    return decrypt_sender_data(w[reader].group(GROUP).suite, private(data), secret)


@pytest.mark.parametrize("restart", [False, True], ids=["running", "restarted"])
def test_rejected_commit_does_not_hand_its_key_to_the_next_commit(restart: bool) -> None:
    w = three()
    alice = w["alice"]
    assert alice.config.group_config.private_handshake  # commits are PrivateMessages
    first = alice.commit(GROUP, now=w.now).commit
    if restart:
        alice = w.reopen("alice")
    alice.reject_commit(GROUP)
    second = alice.commit(GROUP, now=w.now).commit
    a, b = sender_data(w, "bob", first), sender_data(w, "bob", second)
    assert a.leaf_index == b.leaf_index == alice.group(GROUP).own_leaf_index
    assert b.generation > a.generation  # §9.1: a fresh key and nonce
    assert w.ds.submit_commit(GROUP, b"alice", second)
    alice.confirm_commit(GROUP, now=w.now)
    w.pump()
    agree(w, "alice", "bob", "carol")


# -- item 10: a removed member deletes its group state --------------------------------------------


@pytest.mark.parametrize("sqlite", [False, True], ids=["memory", "sqlite"])
def test_removed_member_deletes_its_group_state_and_keeps_the_conversation(
    tmp_path: Path, sqlite: bool
) -> None:
    w = three(tmp_path, sqlite=("carol",) if sqlite else ())
    w.say("alice", "hello carol")
    w.pump()
    record = w.storages["carol"].load().groups[GROUP]
    tree = w["carol"].group(GROUP).export_tree()
    w.commit("alice", remove=["carol"])
    (got,) = w.pump("carol")["carol"]
    assert isinstance(got, GroupUpdated) and got.self_removed and got.removed == (b"carol",)
    carol = w["carol"]
    assert GROUP not in carol.group_ids() and carol.call(GROUP) is None
    snap = w.storages["carol"].load()
    assert GROUP not in snap.groups and snap.cursor == carol.cursor
    assert w.texts("carol") == ["hello carol"]  # the conversation stays readable
    if sqlite:
        # RFC 9420 §12.4.2: no byte of the group's state is left in the database directory.
        disk = files_bytes(tmp_path)
        client = snap.client or b""
        gone = secret_candidates(stored_blob(record)) - windows(client, 16) - windows(client, 32)
        assert len(gone) > 15  # the tree's keys, the epoch and secret-tree secrets
        assert [c.hex() for c in gone if c in disk] == []
        assert cbor2.loads(record.state)["secrets"]["exporter_secret"] not in disk
        assert tree[:64] not in disk and record.state[-64:] not in disk

    # Later messages for the group: a typed refusal, acknowledged.
    w.pump("bob")
    sent = w["bob"].send_text(GROUP, "carol cannot read this", now=w.now)
    seq = carol.cursor + 1
    with pytest.raises(WrongGroup) as exc:
        carol.receive(sent.data, now=w.now, seq=seq)
    assert type(exc.value) is WrongGroup and carol.cursor == seq
    carol = w.reopen("carol")
    assert carol.group_ids() == [] and carol.cursor == seq
    assert w.texts("carol") == ["hello carol"]
    assert carol.delete_conversation(GROUP) == 1 and w.texts("carol") == []


def test_open_deletes_a_removed_group_that_an_older_client_kept() -> None:
    w = three()
    storage = w.storages["carol"]
    record = storage.load().groups[GROUP]
    copy = Group.from_parts(record.state, record.rest, record.secrets, w["carol"].mls_client)
    w.commit("alice", remove=["carol"])
    (entry,) = w.ds.fetch(b"carol", after=w["carol"].cursor)
    ev = copy.process(entry.data, now=w.now)
    assert isinstance(ev, CommitMerged) and ev.self_removed
    storage.apply(StateChange(put_groups=(GroupWrite(delta=copy.storage_delta()),)))
    carol = ChatClient.open(storage)
    assert carol.group_ids() == [] and GROUP not in storage.load().groups


# -- item 14: a failure after MLS accepted a message is a PeerError, once -------------------------


BIG_IDENTITY = b"\xff" * (22 * 1024)  # "%FF" each: a MIMI URI over 65535 bytes


def roomy_config() -> ChatConfig:
    """The chat default with the group layer's identity bound raised above 22 KB (a group may
    allow long identities), so what is tested is the application layer's own handling."""
    return ChatConfig(
        group_config=GroupConfig(ratchet_tree_extension=True, max_identity_length=64 * 1024)
    )


def test_a_22kb_identity_is_refused_once_not_forever(tmp_path: Path) -> None:
    cfg = roomy_config()
    w = World(tmp_path)
    path = tmp_path / "bob.sqlite3"
    alice = ChatClient.create(b"alice", MemoryStorage(), config=cfg)
    bob = ChatClient.create(b"bob", SQLiteStorage(path), config=cfg)
    mallory = ChatClient.create(BIG_IDENTITY, MemoryStorage(), config=cfg)
    for c in (alice, bob, mallory):
        w.ds.publish_key_packages(c.identity, c.publish_key_packages(1, now=w.now))
    alice.create_group(GROUP, now=w.now)
    w.ds.create_group(GROUP, b"alice")
    kps = [w.ds.fetch_key_package(b"bob"), w.ds.fetch_key_package(BIG_IDENTITY)]
    out = alice.commit(GROUP, add=kps, now=w.now)
    added = [b"bob", BIG_IDENTITY]
    assert w.ds.submit_commit(GROUP, b"alice", out.commit, welcome=out.welcome, added=added)
    alice.confirm_commit(GROUP, now=w.now)
    for c in (bob, mallory):
        for e in w.ds.fetch(c.identity, after=c.cursor):
            c.receive(e.data, now=w.now, seq=e.seq)
    assert bob.members(GROUP) == [b"alice", b"bob", BIG_IDENTITY]
    with pytest.raises(UsageError):  # mallory's own client refuses to send (and spends no key)
        mallory.send_text(GROUP, "hi", now=w.now)
    # A modified client sends anyway, through the MLS layer.
    wire = mallory.group(GROUP).protect(text("hi", salt=new_salt()).to_cbor())
    w.ds.send(GROUP, BIG_IDENTITY, wire)
    (entry,) = w.ds.fetch(b"bob", after=bob.cursor)
    with pytest.raises(RejectedByApplication) as exc:
        bob.receive(entry.data, now=w.now, seq=entry.seq)
    assert type(exc.value) is RejectedByApplication
    assert bob.cursor == entry.seq
    got = bob.receive(entry.data, now=w.now, seq=entry.seq)  # redelivered: not a poison message
    assert isinstance(got, Ignored)
    bob.close()
    bob = ChatClient.open(SQLiteStorage(path), config=cfg)
    assert bob.cursor == entry.seq and bob.messages(GROUP, now=w.now) == []
    with pytest.raises(ReplayedMessage):  # the consumed key was stored as consumed
        bob.receive(entry.data, now=w.now)
    # The group goes on.
    sent = alice.send_text(GROUP, "still here", now=w.now)
    w.ds.send(GROUP, b"alice", sent.data)
    (entry,) = w.ds.fetch(b"bob", after=bob.cursor)
    got = bob.receive(entry.data, now=w.now, seq=entry.seq)
    assert isinstance(got, MessageReceived) and got.message.message_id == sent.message_id
    bob.close()


class CappedStorage(MemoryStorage):
    """A store with size limits (as a real one may have): it refuses, with ``UsageError``, a
    message content or a group state larger than its limits."""

    def __init__(self, *, max_content: int = 1 << 30, max_state: int = 1 << 30) -> None:
        super().__init__()
        self.max_content = max_content
        self.max_state = max_state

    def apply(self, change: StateChange) -> None:
        if any(len(m.content) > self.max_content for m in change.add_messages) or any(
            len(g.delta.state or b"") > self.max_state for g in change.put_groups
        ):
            raise UsageError("too large for this store")
        super().apply(change)


@pytest.mark.parametrize("kind", ["capped-memory", "sqlite-length-limit"])
def test_a_message_the_storage_refuses_is_refused_once(tmp_path: Path, kind: str) -> None:
    w = World(tmp_path)
    w.add("alice")
    if kind == "capped-memory":
        storage: Storage = CappedStorage(max_content=50_000)
    else:
        sqlite_storage = SQLiteStorage(tmp_path / "bob.sqlite3")
        sqlite_storage._db.setlimit(sqlite3.SQLITE_LIMIT_LENGTH, 50_000)
        storage = sqlite_storage
    bob = ChatClient.create(b"bob", storage)
    w.clients["bob"], w.storages["bob"] = bob, storage
    w.ds.publish_key_packages(b"bob", bob.publish_key_packages(1, now=w.now))
    w.create("alice", ["bob"])
    w.say("alice", "x" * 60_000)
    (entry,) = w.ds.fetch(b"bob", after=bob.cursor)
    with pytest.raises(RejectedByApplication) as exc:
        bob.receive(entry.data, now=w.now, seq=entry.seq)
    assert type(exc.value) is RejectedByApplication
    assert bob.cursor == entry.seq == storage.load().cursor
    assert isinstance(bob.receive(entry.data, now=w.now, seq=entry.seq), Ignored)
    bob = w.reopen("bob")
    with pytest.raises(ReplayedMessage):  # its key is stored as consumed
        bob.receive(entry.data, now=w.now)
    w.say("alice", "short")
    (got,) = w.pump("bob")["bob"]
    assert isinstance(got, MessageReceived) and w.texts("bob") == ["short"]


def test_a_welcome_the_storage_refuses_is_refused_once() -> None:
    w = World()
    w.add("alice")
    storage = CappedStorage(max_state=100)  # no group fits
    dave = ChatClient.create(b"dave", storage)
    w.clients["dave"], w.storages["dave"] = dave, storage
    w.ds.publish_key_packages(b"dave", dave.publish_key_packages(1, now=w.now))
    refs = dave.mls_client.key_package_refs()
    w.create("alice", [])
    w.commit("alice", add=["dave"])
    (entry,) = w.ds.fetch(b"dave", after=dave.cursor)
    with pytest.raises(RejectedByApplication) as exc:
        dave.receive(entry.data, now=w.now, seq=entry.seq)
    assert type(exc.value) is RejectedByApplication
    assert dave.cursor == entry.seq == storage.load().cursor
    assert dave.group_ids() == [] and dave.mls_client.key_package_refs() == refs
