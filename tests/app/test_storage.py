"""Storage: the two implementations, atomic changes, and keys that must be gone from disk."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path

import cbor2
import pytest

from mls.app import (
    ChatClient,
    GroupRecord,
    GroupWrite,
    MemoryStorage,
    SQLiteStorage,
    StateChange,
    Storage,
    StoredMessage,
)
from mls.constants import ContentType
from mls.crypto import CipherSuite
from mls.crypto.labels import derive_tree_secret, expand_with_label
from mls.errors import ReplayedMessage, UsageError
from mls.group import Group
from mls.group.snapshot import GroupDelta
from mls.schedule.key_schedule import EpochSecrets
from mls.schedule.secret_tree import SecretTree

from .world import GROUP, World


def msg(gid: bytes, mid: bytes, *, expires_at: int | None = None) -> StoredMessage:
    return StoredMessage(
        group_id=gid,
        message_id=mid,
        sender=b"alice",
        sender_leaf=0,
        epoch=1,
        received_at=100,
        expires_at=expires_at,
        outgoing=False,
        content=b"content of " + mid,
    )


@pytest.fixture(params=["memory", "sqlite"])
def storage(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Storage]:
    s: Storage = MemoryStorage() if request.param == "memory" else SQLiteStorage(tmp_path / "db")
    yield s
    s.close()


def put(
    gid: bytes,
    epoch: int,
    *,
    state: bytes | None = b"state",
    rest: bytes | None = b"rest",
    secrets: dict[tuple[int, int], bytes | None] | None = None,
    full: bool = True,
    drop: tuple[int, ...] = (),
    meta: bytes | None = None,
    previous: bytes | None = None,
    write_previous: bool = False,
) -> GroupWrite:
    delta = GroupDelta(
        group_id=gid,
        epoch=epoch,
        full=full,
        state=state,
        rest=rest,
        secrets=secrets or {},
        drop_epochs=drop,
    )
    return GroupWrite(delta=delta, meta=meta, previous=previous, write_previous=write_previous)


def test_empty_then_round_trip(storage: Storage) -> None:
    snap = storage.load()
    assert (snap.client, dict(snap.groups), snap.cursor) == (None, {}, 0)
    rows: dict[tuple[int, int], bytes | None] = {(3, 7): b"root", (2, 1): b"old"}
    storage.apply(
        StateChange(
            client=b"client",
            put_groups=(
                put(b"g", 3, secrets=rows, meta=b"meta", previous=b"prev", write_previous=True),
            ),
            add_messages=(msg(b"g", b"m1"), msg(b"g", b"m2", expires_at=150)),
            cursor=7,
        )
    )
    snap = storage.load()
    want = GroupRecord(
        group_id=b"g",
        epoch=3,
        state=b"state",
        rest=b"rest",
        secrets=rows,
        meta=b"meta",
        previous=b"prev",
    )
    assert (snap.client, dict(snap.groups), snap.cursor) == (b"client", {b"g": want}, 7)
    stored = storage.messages(b"g")
    assert [m.message_id for m in stored] == [b"m1", b"m2"]
    assert stored[0].seq < stored[1].seq
    assert stored[1].content == b"content of m2" and stored[1].expires_at == 150
    assert storage.has_message(b"g", b"m1") and not storage.has_message(b"g", b"m3")
    assert storage.messages(b"other") == []


def test_a_delta_writes_only_what_changed(storage: Storage) -> None:
    rows: dict[tuple[int, int], bytes | None] = {(1, 7): b"a", (1, 2): b"b", (0, 4): b"old"}
    storage.apply(
        StateChange(
            put_groups=(put(b"g", 1, secrets=rows, meta=b"m", previous=b"p", write_previous=True),)
        )
    )
    # One row changes, one is deleted (a consumed secret), the rest of the record stays.
    storage.apply(
        StateChange(
            put_groups=(
                put(
                    b"g", 1, state=None, rest=None, full=False, secrets={(1, 7): None, (1, 2): b"B"}
                ),
            )
        )
    )
    rec = storage.load().groups[b"g"]
    assert dict(rec.secrets) == {(1, 2): b"B", (0, 4): b"old"}
    assert (rec.state, rec.rest, rec.meta, rec.previous) == (b"state", b"rest", b"m", b"p")
    # A new epoch: epoch part and rest replaced, an old epoch's rows dropped, previous cleared.
    storage.apply(
        StateChange(
            put_groups=(
                put(
                    b"g",
                    2,
                    state=b"state2",
                    rest=b"rest2",
                    full=False,
                    drop=(0,),
                    secrets={(2, 7): b"root2"},
                    write_previous=True,
                ),
            )
        )
    )
    rec = storage.load().groups[b"g"]
    assert dict(rec.secrets) == {(1, 2): b"B", (2, 7): b"root2"}
    assert (rec.epoch, rec.state, rec.rest, rec.meta, rec.previous) == (
        2,
        b"state2",
        b"rest2",
        b"m",
        None,
    )
    # A full delta replaces every row.
    storage.apply(StateChange(put_groups=(put(b"g", 2, secrets={(2, 3): b"x"}),)))
    assert dict(storage.load().groups[b"g"].secrets) == {(2, 3): b"x"}


def test_a_partial_state_for_an_unknown_group_is_refused(storage: Storage) -> None:
    with pytest.raises(UsageError, match="not stored"):
        storage.apply(StateChange(put_groups=(put(b"g", 1, full=False),), cursor=3))
    with pytest.raises(UsageError, match="not stored"):
        storage.apply(StateChange(put_groups=(put(b"g", 1, state=None),)))
    assert storage.load().groups == {} and storage.load().cursor == 0


def test_a_failing_change_applies_nothing(storage: Storage) -> None:
    storage.apply(
        StateChange(
            client=b"c1", put_groups=(put(b"g", 1, state=b"old"),), add_messages=(msg(b"g", b"m"),)
        )
    )
    old = storage.load().groups[b"g"]
    with pytest.raises(UsageError):
        storage.apply(
            StateChange(
                client=b"c2",
                put_groups=(put(b"g", 2, state=b"new", secrets={(2, 1): b"s"}),),
                add_messages=(msg(b"g", b"x"), msg(b"g", b"m")),  # m exists: the change fails
                cursor=9,
            )
        )
    snap = storage.load()
    assert (snap.client, snap.groups[b"g"], snap.cursor) == (b"c1", old, 0)
    assert [m.message_id for m in storage.messages(b"g")] == [b"m"]


def test_delete_and_replace_in_one_change(storage: Storage) -> None:
    storage.apply(StateChange(add_messages=(msg(b"g", b"m"), msg(b"h", b"m"))))
    storage.apply(StateChange(delete_messages=((b"g", b"m"),), add_messages=(msg(b"g", b"m"),)))
    assert len(storage.messages(b"g")) == 1
    storage.apply(StateChange(put_groups=(put(b"h", 0, secrets={(0, 0): b"r"}),)))
    storage.apply(StateChange(drop_groups=(b"h",)))
    assert b"h" not in storage.load().groups and storage.messages(b"h") == []


def test_delete_expired_at_the_boundary(storage: Storage) -> None:
    storage.apply(
        StateChange(
            add_messages=(
                msg(b"g", b"a", expires_at=200),
                msg(b"g", b"b", expires_at=201),
                msg(b"g", b"c"),
            )
        )
    )
    assert storage.delete_expired(199) == 0
    assert storage.delete_expired(200) == 1
    assert [m.message_id for m in storage.messages(b"g")] == [b"b", b"c"]
    assert storage.delete_expired(10**12) == 1
    assert [m.message_id for m in storage.messages(b"g")] == [b"c"]


# -- SQLite specifics --------------------------------------------------------------------------


def test_sqlite_pragmas_and_no_leftover_journal(tmp_path: Path) -> None:
    s = SQLiteStorage(tmp_path / "db")
    db = s._db
    assert db.execute("PRAGMA secure_delete").fetchone()[0] == 1
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "delete"
    assert db.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
    s.apply(StateChange(client=b"x" * 5000, cursor=1))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["db"]
    s.close()


def test_sqlite_rolls_back_on_any_error(tmp_path: Path) -> None:
    s = SQLiteStorage(tmp_path / "db")
    s.apply(StateChange(client=b"c1", cursor=1))
    bad = msg(b"g", b"m")
    object.__setattr__(bad, "content", ["not", "bytes"])  # sqlite3 cannot bind a list
    with pytest.raises(sqlite3.Error):
        s.apply(StateChange(client=b"c2", add_messages=(bad,), cursor=2))
    snap = s.load()
    assert (snap.client, snap.cursor) == (b"c1", 1)
    s.apply(StateChange(cursor=3))  # the connection is usable again
    s.close()
    assert SQLiteStorage(tmp_path / "db").load().cursor == 3


def test_sqlite_refuses_an_unknown_schema(tmp_path: Path) -> None:
    SQLiteStorage(tmp_path / "db").close()
    raw = sqlite3.connect(tmp_path / "db")
    raw.execute("UPDATE kv SET value = ? WHERE key = 'schema'", ((99).to_bytes(4, "big"),))
    raw.commit()
    raw.close()
    with pytest.raises(UsageError):
        SQLiteStorage(tmp_path / "db")


def test_secure_delete_is_what_erases_overwritten_rows(tmp_path: Path) -> None:
    # Control for the tests below: the same overwrite without secure_delete leaves the old
    # bytes in the file; with it they are gone.
    marker = b"OLD-SECRET-" * 200
    for secure, survives in ((False, True), (True, False)):
        path = tmp_path / f"{secure}.db"
        db = sqlite3.connect(path, isolation_level=None)
        db.execute(f"PRAGMA secure_delete = {'ON' if secure else 'OFF'}")
        db.execute("CREATE TABLE t (k INTEGER PRIMARY KEY, v BLOB)")
        db.execute("INSERT INTO t VALUES (1, ?)", (marker,))
        db.execute("INSERT OR REPLACE INTO t VALUES (1, ?)", (b"new" * 500,))
        db.close()
        assert (marker[:64] in path.read_bytes()) is survives


# -- forward secrecy on disk -------------------------------------------------------------------


def files_bytes(directory: Path) -> bytes:
    return b"".join(p.read_bytes() for p in sorted(directory.iterdir()) if p.is_file())


def stored_blob(rec: GroupRecord) -> bytes:
    """Every byte a store holds for one group: its parts (epoch part, rest, secret-tree rows),
    its metadata and the previous epoch, if any."""
    return b"".join([rec.state, rec.rest, rec.meta, rec.previous or b"", *rec.secrets.values()])


def windows(blob: bytes, size: int) -> set[bytes]:
    return {blob[i : i + size] for i in range(len(blob) - size + 1)}


def ratchet_keys(cs: CipherSuite, secret: bytes, first: int, last: int) -> list[bytes]:
    """Message keys of generations first..last from the ratchet secret of generation first."""
    out = []
    for g in range(first, last + 1):
        out.append(derive_tree_secret(cs, secret, "key", g, cs.aead_key_len))
        secret = derive_tree_secret(cs, secret, "secret", g, cs.hash_len)
    return out


def recoverable_keys(
    cs: CipherSuite, stored: bytes, leaf: int, leaves: int, upto: int
) -> set[bytes]:
    """Every application key of generations 0..upto of ``leaf`` that an attacker derives by
    trying each Nh-byte window of ``stored`` as the secret-tree root, as the leaf's secret, and
    as its application ratchet secret at any generation."""
    found: set[bytes] = set()
    app = ContentType.application
    for cand in windows(stored, cs.hash_len):
        try:
            tree = SecretTree(cs, cand, leaves)
            found |= {tree.receive_key(leaf, app, g)[0] for g in range(upto + 1)}
        except ReplayedMessage:
            pass
        leaf_app = expand_with_label(cs, cand, "application", b"", cs.hash_len)
        found |= set(ratchet_keys(cs, leaf_app, 0, upto))
        for start in range(upto + 1):
            found |= set(ratchet_keys(cs, cand, start, upto))
    return found


# Epoch authenticator -> that epoch's encryption secret, captured as the library scrubs it
# (the ground truth of which keys exist; the group itself no longer holds the secret).
_CAPTURED: dict[bytes, bytes] = {}


@pytest.fixture(autouse=True)
def _capture_encryption_secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    import mls.group.epoch as epoch_module

    real = epoch_module.scrubbed

    def capture(secrets: EpochSecrets) -> EpochSecrets:
        _CAPTURED[secrets.epoch_authenticator] = secrets.encryption_secret
        return real(secrets)

    monkeypatch.setattr(epoch_module, "scrubbed", capture)


def used_keys(sender: Group, leaf: int, upto: int) -> set[bytes]:
    """The application keys generations 0..upto of ``leaf`` in the sender's current epoch,
    derived afresh from the epoch's encryption secret."""
    cs = sender.suite
    secret = _CAPTURED[sender.epoch_authenticator]
    tree = SecretTree(cs, secret, sender.tree.n_leaves)
    return {tree.receive_key(leaf, ContentType.application, g)[0] for g in range(upto + 1)}


def test_attack_finds_keys_when_the_root_is_stored() -> None:
    # Control: the search below does find keys when the encryption secret is in the blob.
    w = World()
    w.add("alice")
    w.add("bob")
    w.create("alice", ["bob"])
    alice = w["alice"].group(GROUP)
    keys = used_keys(alice, alice.own_leaf_index, 2)
    blob = b"\x00" * 40 + _CAPTURED[alice.epoch_authenticator] + b"\x01" * 40
    assert keys <= recoverable_keys(alice.suite, blob, alice.own_leaf_index, 2, 2)


def test_used_message_keys_cannot_be_rederived_from_storage(tmp_path: Path) -> None:
    w = World(tmp_path)
    w.add("alice")
    w.add("bob", sqlite=True)
    w.create("alice", ["bob"])
    alice = w["alice"].group(GROUP)
    keys = used_keys(alice, alice.own_leaf_index, 2)
    for i in range(3):
        w.say("alice", f"message {i}")
    w.pump()
    assert len(w.texts("bob")) == 3
    snap = w.storages["bob"].load()
    (rec,) = snap.groups.values()
    cs = w["bob"].group(GROUP).suite
    # Not stored as such, anywhere in the directory...
    disk = files_bytes(tmp_path)
    assert not any(k in disk for k in keys)
    # ...nor derivable from any secret the stored state holds.
    leaves = w["bob"].group(GROUP).tree.n_leaves
    for blob in (stored_blob(rec), snap.client or b""):
        assert not keys & recoverable_keys(cs, blob, alice.own_leaf_index, leaves, 2)
    # The restored group itself refuses: the keys are consumed.
    restored = Group.from_parts(rec.state, rec.rest, rec.secrets, w["bob"].mls_client)
    with pytest.raises(ReplayedMessage):
        restored._secret_tree.receive_key(alice.own_leaf_index, ContentType.application, 1)


def test_group_state_holds_no_spent_epoch_secret() -> None:
    # RFC 9420 §9.2: the group keeps (and stores) neither the encryption secret nor the joiner
    # and welcome secrets that lead to it once the epoch's secret tree exists.
    w = World()
    w.add("alice")
    w.create("alice", [])
    obj = cbor2.loads(w["alice"].group(GROUP).to_bytes())
    for name in ("joiner_secret", "welcome_secret", "encryption_secret"):
        assert obj["secrets"][name] == b""


def secret_candidates(blob: bytes) -> set[bytes]:
    """16- and 32-byte strings that follow their own length byte (TLS ``opaque<V>`` and CBOR
    byte-string heads both end with it): where keys and secrets sit in the state encodings."""
    out = set()
    for size in (16, 32):
        for i in range(1, len(blob) - size + 1):
            if blob[i - 1] == size:
                out.add(blob[i : i + size])
    return out


def test_old_epoch_state_is_erased_from_the_file(tmp_path: Path) -> None:
    w = World(tmp_path)
    w.add("alice")
    w.add("bob", sqlite=True)
    w.create("alice", ["bob"])
    w.say("alice", "in the first epoch")
    w.pump()
    first_rec = w.storages["bob"].load().groups[GROUP]
    first = stored_blob(first_rec)
    old_secrets = cbor2.loads(first_rec.state)["secrets"]
    for _ in range(3):  # past_epochs = 1: after three commits nothing of the first is kept
        w.commit("alice")
        w.pump()
        w.say("alice", "more")
        w.pump()
    snap = w.storages["bob"].load()
    current = stored_blob(snap.groups[GROUP]) + (snap.client or b"")
    gone = secret_candidates(first) - windows(current, 16) - windows(current, 32)
    assert len(gone) > 15  # the tree, epoch and ratchet secrets of the first epoch
    disk = files_bytes(tmp_path)
    assert [c.hex() for c in gone if c in disk] == []
    for name in ("init_secret", "exporter_secret", "sender_data_secret", "membership_key"):
        assert old_secrets[name] not in disk
    # Resumption PSKs of past epochs are kept on purpose (GroupConfig.resumption_psks, §8.6).
    assert old_secrets["resumption_psk"] in stored_blob(snap.groups[GROUP])


def test_used_key_package_private_key_is_erased_on_join(tmp_path: Path) -> None:
    w = World(tmp_path)
    w.add("alice")
    bob = w.add("bob", sqlite=True, key_packages=2)
    pool = {ref: bob.mls_client.find_key_package(ref) for ref in bob.mls_client.key_package_refs()}
    w.create("alice", ["bob"])
    (used,) = set(pool) - set(bob.mls_client.key_package_refs())
    disk = files_bytes(tmp_path)
    entry = pool[used]
    assert entry is not None and entry.init_private_key not in disk
    (kept,) = set(bob.mls_client.key_package_refs())
    kept_entry = pool[kept]
    assert kept_entry is not None and kept_entry.init_private_key in disk  # control


def test_open_refuses_empty_storage_and_create_refuses_a_used_one() -> None:
    s = MemoryStorage()
    with pytest.raises(UsageError):
        ChatClient.open(s)
    ChatClient.create(b"x", s)
    with pytest.raises(UsageError):
        ChatClient.create(b"y", s)
    assert ChatClient.open(s).identity == b"x"
