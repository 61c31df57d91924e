"""Persistent client state: a :class:`Storage` Protocol, an in-memory store and SQLite.

What is stored (all of it written by :class:`~mls.app.client.ChatClient`):

- the client blob (``mls.group.Client.to_bytes()``: signature key, KeyPackage private keys);
- per group, its state in the parts form of ``Group.storage_delta`` (see
  :class:`~mls.group.snapshot.GroupDelta`): the epoch part (tree, epoch secrets, private
  keys; written once per epoch), the small rest (status, proposals, past epochs), one row per
  secret-tree node that holds a secret (a received message rewrites one), the application's
  metadata for the group, and the epoch before our unconfirmed commit;
- the received and sent application messages (MIMI content), each with its expiry;
- the delivery-service cursor: the sequence number of the last inbox message processed.

**Atomicity.** Every change goes through :meth:`Storage.apply` with one :class:`StateChange`
that holds *all* of it: e.g. for a received message, the sender's ratchet row (its key
consumed), the message row and the new cursor; for a merged commit, the new epoch's state, which
replaces the old epoch's keys. An implementation applies a change entirely or not at all, so a
crash at any instant leaves either the state before the change or the one after it. A key that
forward secrecy says is deleted (RFC 9420 §9.2: consumed ratchet secrets; §8: the old epoch's
secrets) is deleted by the same transaction that stores its successor.

**Deletion on disk (SQLite).** Overwriting a row does not erase the old bytes from the file by
itself, so :class:`SQLiteStorage` runs with

- ``secure_delete = ON``: SQLite overwrites freed cells and pages with zeros;
- ``journal_mode = DELETE``: the rollback journal, which holds the *old* pages while a
  transaction runs, is unlinked when it commits (``PERSIST`` would leave old pages in it, and a
  WAL keeps old frames until a checkpoint);
- ``synchronous = FULL`` and ``temp_store = MEMORY`` (no temporary files with state);
- one small write on every open (an open counter): a process killed before its journal was
  synced leaves a journal that is not "hot" and that SQLite would otherwise keep; it holds only
  pages of the current state, and the write makes SQLite reuse and unlink it.

After a crash the hot journal holds the old state, which then *is* the current state; SQLite
rolls back to it when the database is next opened. Copies outside the file's live bytes (disk
blocks of an unlinked journal, SSD remapping, backups) are out of reach of any file format: use
full-disk encryption. The blobs are stored unencrypted; at-rest encryption is left to the
platform (see the README).

**Schema versions.** 1: one ``Group.to_bytes()`` per group. 2 (current): the parts form, so
the bytes written for a received message do not grow with the group. Opening a schema-1 file
migrates it in one transaction (a failure leaves it at schema 1).
"""

from __future__ import annotations

import os
import sqlite3
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Protocol

from mls.errors import InternalError, UsageError
from mls.group.snapshot import GroupDelta, split_state

__all__ = [
    "GroupRecord",
    "GroupWrite",
    "MemoryStorage",
    "SQLiteStorage",
    "Snapshot",
    "StateChange",
    "Storage",
    "StoredMessage",
]

#: 1: one row per group with ``Group.to_bytes()``; 2: the parts form (``GroupDelta``), so a
#: received message writes one secret-tree row instead of the whole group.
SCHEMA_VERSION = 2


@dataclass(frozen=True, slots=True, kw_only=True)
class StoredMessage:
    """One application message of a group, as the user sees it (sent or received)."""

    group_id: bytes
    #: MIMI message ID (draft-ietf-mimi-content § Message ID).
    message_id: bytes
    #: The sender's identity (from its MLS credential, never from the content).
    sender: bytes
    sender_leaf: int
    #: The MLS epoch the message was sent in.
    epoch: int
    #: When it was received (for our own messages: sent), seconds since the UNIX epoch.
    received_at: int
    #: When it disappears (``None``: never); see :mod:`mls.app.disappearing`.
    expires_at: int | None
    outgoing: bool
    #: The MIMI content (deterministic CBOR).
    content: bytes = field(repr=False)
    #: Storage order, assigned by the store (0 before it is stored).
    seq: int = 0

    def expired(self, now: int) -> bool:
        return self.expires_at is not None and now >= self.expires_at


@dataclass(frozen=True, slots=True, kw_only=True)
class GroupRecord:
    """The persisted state of one group, as loaded: the parts form of ``Group.storage_delta``
    (restore with ``Group.from_parts(state, rest, secrets, client)``)."""

    group_id: bytes
    epoch: int
    #: The epoch part (tree, epoch secrets, private keys): written once per epoch.
    state: bytes = field(repr=False)
    #: The small part (status, proposals, past epochs, options).
    rest: bytes = field(repr=False)
    #: The secret trees' rows: (epoch, node index) -> row.
    secrets: Mapping[tuple[int, int], bytes] = field(default_factory=dict, repr=False)
    #: Application metadata (timer history, call session counter), CBOR.
    meta: bytes = b""
    #: The state before our own commit while the delivery service has not confirmed it: the
    #: old epoch is still the group's official one until then (``None`` otherwise).
    previous: bytes | None = field(default=None, repr=False)


@dataclass(frozen=True, slots=True, kw_only=True)
class GroupWrite:
    """What one operation changed in one group: the protocol state's delta and, when they
    changed, the application metadata and the ``previous`` state."""

    delta: GroupDelta
    #: The new metadata (``None``: unchanged).
    meta: bytes | None = None
    #: Store ``previous`` (``None`` deletes it) when ``write_previous``; else it is unchanged.
    previous: bytes | None = field(default=None, repr=False)
    write_previous: bool = False

    @property
    def group_id(self) -> bytes:
        return self.delta.group_id


@dataclass(frozen=True, slots=True, kw_only=True)
class StateChange:
    """Everything one operation changes; applied atomically by :meth:`Storage.apply`."""

    #: The new client blob, if the client changed (e.g. a KeyPackage was used or created).
    client: bytes | None = field(default=None, repr=False)
    put_groups: tuple[GroupWrite, ...] = ()
    #: Groups deleted with all their stored messages.
    drop_groups: tuple[bytes, ...] = ()
    #: Groups whose record (state, metadata, previous epoch) is deleted while their stored
    #: messages stay (a member removed from a group keeps the conversation, RFC 9420 §12.4.2).
    forget_groups: tuple[bytes, ...] = ()
    add_messages: tuple[StoredMessage, ...] = ()
    #: ``(group_id, message_id)`` pairs to delete.
    delete_messages: tuple[tuple[bytes, bytes], ...] = ()
    #: The new delivery-service cursor, if it moved.
    cursor: int | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Snapshot:
    """The state a client restarts from."""

    client: bytes | None = field(repr=False)
    groups: Mapping[bytes, GroupRecord]
    cursor: int


class Storage(Protocol):
    """Where a :class:`~mls.app.client.ChatClient` keeps its state (see the module docstring)."""

    def load(self) -> Snapshot:
        """The last state applied."""
        ...

    def apply(self, change: StateChange) -> None:
        """Apply ``change`` atomically: all of it or, if this raises, none of it. A change the
        store refuses (a constraint, a size limit) raises :class:`~mls.errors.UsageError`; any
        other exception is a fault of the store itself (I/O)."""
        ...

    def messages(self, group_id: bytes) -> list[StoredMessage]:
        """A group's stored messages in storage order (expired ones included)."""
        ...

    def has_message(self, group_id: bytes, message_id: bytes) -> bool: ...

    def delete_expired(self, now: int) -> int:
        """Delete every message with ``expires_at <= now`` (atomically); return the count."""
        ...

    def close(self) -> None: ...


@dataclass(slots=True)
class _MemGroup:
    epoch: int
    state: bytes
    rest: bytes
    meta: bytes
    previous: bytes | None
    secrets: dict[tuple[int, int], bytes]

    def record(self, group_id: bytes) -> GroupRecord:
        return GroupRecord(
            group_id=group_id,
            epoch=self.epoch,
            state=self.state,
            rest=self.rest,
            secrets=dict(self.secrets),
            meta=self.meta,
            previous=self.previous,
        )


def _check_new(w: GroupWrite, exists: bool) -> None:
    d = w.delta
    if not exists and not (d.full and d.state is not None and d.rest is not None):
        raise UsageError(f"a partial state for group {d.group_id.hex()}, which is not stored")


class MemoryStorage:
    """A :class:`Storage` in process memory (tests, demos, ephemeral clients).

    ``apply`` checks the whole change first and then installs it under a lock, so it is atomic
    with respect to exceptions and threads.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._client: bytes | None = None
        self._groups: dict[bytes, _MemGroup] = {}
        self._messages: dict[tuple[bytes, bytes], StoredMessage] = {}
        self._cursor = 0
        self._seq = 0

    def load(self) -> Snapshot:
        with self._lock:
            groups = {gid: g.record(gid) for gid, g in self._groups.items()}
            return Snapshot(client=self._client, groups=groups, cursor=self._cursor)

    def apply(self, change: StateChange) -> None:
        with self._lock:
            deleting = set(change.delete_messages)
            new_keys = [(m.group_id, m.message_id) for m in change.add_messages]
            if len(set(new_keys)) != len(new_keys) or any(
                k in self._messages and k not in deleting for k in new_keys
            ):
                raise UsageError("duplicate message ID in a group")
            gone = set(change.drop_groups) | set(change.forget_groups)
            for w in change.put_groups:
                _check_new(w, w.group_id in self._groups and w.group_id not in gone)
            if change.client is not None:
                self._client = change.client
            for gid in change.drop_groups:
                self._groups.pop(gid, None)
                for key in [k for k in self._messages if k[0] == gid]:
                    del self._messages[key]
            for gid in change.forget_groups:
                self._groups.pop(gid, None)
            for w in change.put_groups:
                self._put(w)
            for key in change.delete_messages:
                self._messages.pop(key, None)
            for m in change.add_messages:
                self._seq += 1
                self._messages[(m.group_id, m.message_id)] = replace(m, seq=self._seq)
            if change.cursor is not None:
                self._cursor = change.cursor

    def _put(self, w: GroupWrite) -> None:
        d = w.delta
        g = self._groups.get(d.group_id)
        if g is None:
            g = self._groups[d.group_id] = _MemGroup(d.epoch, b"", b"", b"", None, {})
        if d.full:
            g.secrets.clear()
        g.epoch = d.epoch
        if d.state is not None:
            g.state = d.state
        if d.rest is not None:
            g.rest = d.rest
        if w.meta is not None:
            g.meta = w.meta
        if w.write_previous:
            g.previous = w.previous
        for ep in d.drop_epochs:
            for key in [k for k in g.secrets if k[0] == ep]:
                del g.secrets[key]
        for key, row in d.secrets.items():
            if row is None:
                g.secrets.pop(key, None)
            else:
                g.secrets[key] = row

    def messages(self, group_id: bytes) -> list[StoredMessage]:
        with self._lock:
            out = [m for (gid, _), m in self._messages.items() if gid == group_id]
        return sorted(out, key=lambda m: m.seq)

    def has_message(self, group_id: bytes, message_id: bytes) -> bool:
        with self._lock:
            return (group_id, message_id) in self._messages

    def delete_expired(self, now: int) -> int:
        with self._lock:
            gone = [
                k
                for k, m in self._messages.items()
                if m.expires_at is not None and m.expires_at <= now
            ]
            for k in gone:
                del self._messages[k]
            return len(gone)

    def close(self) -> None:
        pass


_SCHEMA = """
CREATE TABLE IF NOT EXISTS kv (
    key TEXT PRIMARY KEY,
    value BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS groups (
    group_id BLOB PRIMARY KEY,
    epoch INTEGER NOT NULL,
    rest BLOB NOT NULL,
    meta BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS group_epochs (
    group_id BLOB PRIMARY KEY,
    state BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS group_previous (
    group_id BLOB PRIMARY KEY,
    previous BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS group_secrets (
    group_id BLOB NOT NULL,
    epoch INTEGER NOT NULL,
    node INTEGER NOT NULL,
    row BLOB NOT NULL,
    PRIMARY KEY (group_id, epoch, node)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS messages (
    seq INTEGER PRIMARY KEY,
    group_id BLOB NOT NULL,
    message_id BLOB NOT NULL,
    sender BLOB NOT NULL,
    sender_leaf INTEGER NOT NULL,
    epoch INTEGER NOT NULL,
    received_at INTEGER NOT NULL,
    expires_at INTEGER,
    outgoing INTEGER NOT NULL,
    content BLOB NOT NULL,
    UNIQUE (group_id, message_id)
);
CREATE INDEX IF NOT EXISTS messages_expiry ON messages (expires_at)
    WHERE expires_at IS NOT NULL;
"""

#: Tables holding one group's record (everything but its messages).
_GROUP_TABLES = ("groups", "group_epochs", "group_previous", "group_secrets")

_MESSAGE_COLUMNS = (
    "seq, group_id, message_id, sender, sender_leaf, epoch, received_at, expires_at, outgoing, "
    "content"
)


class SQLiteStorage:
    """A :class:`Storage` in one SQLite database file (standard library ``sqlite3``).

    Each :meth:`apply` is one ``BEGIN IMMEDIATE ... COMMIT`` transaction; see the module
    docstring for the pragmas that make deleted keys unrecoverable from the file. One instance
    belongs to one thread; open one database per client.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self._path = os.fspath(path)
        # isolation_level=None: no implicit transactions; apply() opens and ends its own.
        self._db = sqlite3.connect(self._path, isolation_level=None)
        try:
            self._configure()
        except BaseException:
            self._db.close()
            raise

    @property
    def path(self) -> str:
        return self._path

    def _configure(self) -> None:
        db = self._db
        db.execute("PRAGMA secure_delete = ON")
        if db.execute("PRAGMA secure_delete").fetchone()[0] != 1:
            raise InternalError("this SQLite cannot turn secure_delete on")
        mode = db.execute("PRAGMA journal_mode = DELETE").fetchone()[0]
        if mode not in ("delete", "memory"):  # "memory" for ":memory:" databases
            raise InternalError(f"SQLite refused journal_mode DELETE (got {mode})")
        db.execute("PRAGMA synchronous = FULL")
        db.execute("PRAGMA temp_store = MEMORY")
        db.execute("BEGIN IMMEDIATE")
        try:
            db.execute("CREATE TABLE IF NOT EXISTS kv (key TEXT PRIMARY KEY, value BLOB NOT NULL)")
            row = db.execute("SELECT value FROM kv WHERE key = 'schema'").fetchone()
            version = int.from_bytes(row[0], "big") if row is not None else SCHEMA_VERSION
            if version == 1:
                db.execute("ALTER TABLE groups RENAME TO groups_v1")
            elif version != SCHEMA_VERSION:
                raise UsageError(f"database schema {version} is unknown")
            for stmt in _SCHEMA.split(";"):
                if stmt.strip():
                    db.execute(stmt)
            if version == 1:
                _migrate_v1(db)
            db.execute(
                "INSERT OR REPLACE INTO kv (key, value) VALUES ('schema', ?)",
                (SCHEMA_VERSION.to_bytes(4, "big"),),
            )
            # A process killed before its journal was synced leaves a journal with a zeroed
            # header: not hot (SQLite ignores it) but not deleted either. It holds pages of the
            # current state only; one real write (an open counter) reuses and unlinks it.
            row = db.execute("SELECT value FROM kv WHERE key = 'opens'").fetchone()
            opens = int.from_bytes(row[0], "big") + 1 if row is not None else 1
            db.execute(
                "INSERT OR REPLACE INTO kv (key, value) VALUES ('opens', ?)",
                (opens.to_bytes(8, "big"),),
            )
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise

    def load(self) -> Snapshot:
        db = self._db
        row = db.execute("SELECT value FROM kv WHERE key = 'client'").fetchone()
        client = bytes(row[0]) if row is not None else None
        row = db.execute("SELECT value FROM kv WHERE key = 'cursor'").fetchone()
        cursor = int.from_bytes(row[0], "big") if row is not None else 0
        secrets: dict[bytes, dict[tuple[int, int], bytes]] = {}
        for gid, epoch, node, value in db.execute(
            "SELECT group_id, epoch, node, row FROM group_secrets"
        ):
            secrets.setdefault(bytes(gid), {})[(epoch, node)] = bytes(value)
        groups = {
            bytes(gid): GroupRecord(
                group_id=bytes(gid),
                epoch=epoch,
                state=bytes(state),
                rest=bytes(rest),
                secrets=secrets.get(bytes(gid), {}),
                meta=bytes(meta),
                previous=bytes(previous) if previous is not None else None,
            )
            for gid, epoch, state, rest, meta, previous in db.execute(
                "SELECT g.group_id, g.epoch, e.state, g.rest, g.meta, p.previous FROM groups g "
                "JOIN group_epochs e ON e.group_id = g.group_id "
                "LEFT JOIN group_previous p ON p.group_id = g.group_id"
            )
        }
        return Snapshot(client=client, groups=groups, cursor=cursor)

    def apply(self, change: StateChange) -> None:
        db = self._db
        db.execute("BEGIN IMMEDIATE")
        try:
            if change.client is not None:
                db.execute(
                    "INSERT OR REPLACE INTO kv (key, value) VALUES ('client', ?)", (change.client,)
                )
            for gid in change.drop_groups:
                _delete_group(db, gid)
                db.execute("DELETE FROM messages WHERE group_id = ?", (gid,))
            for gid in change.forget_groups:  # secure_delete zeroes the freed cells and pages
                _delete_group(db, gid)
            for w in change.put_groups:
                _put_group(db, w)
            if change.delete_messages:
                db.executemany(
                    "DELETE FROM messages WHERE group_id = ? AND message_id = ?",
                    change.delete_messages,
                )
            db.executemany(
                "INSERT INTO messages (group_id, message_id, sender, sender_leaf, epoch, "
                "received_at, expires_at, outgoing, content) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [
                    (
                        m.group_id,
                        m.message_id,
                        m.sender,
                        m.sender_leaf,
                        m.epoch,
                        m.received_at,
                        m.expires_at,
                        int(m.outgoing),
                        m.content,
                    )
                    for m in change.add_messages
                ],
            )
            if change.cursor is not None:
                db.execute(
                    "INSERT OR REPLACE INTO kv (key, value) VALUES ('cursor', ?)",
                    (change.cursor.to_bytes(8, "big"),),
                )
            db.execute("COMMIT")
        except (sqlite3.IntegrityError, sqlite3.DataError) as exc:
            # A constraint or a size limit (SQLITE_TOOBIG): the change is refused, not a fault.
            if db.in_transaction:
                db.execute("ROLLBACK")
            raise UsageError(f"storage refused the change: {exc}") from exc
        except BaseException:
            if db.in_transaction:
                db.execute("ROLLBACK")
            raise

    def messages(self, group_id: bytes) -> list[StoredMessage]:
        rows = self._db.execute(
            f"SELECT {_MESSAGE_COLUMNS} FROM messages WHERE group_id = ? ORDER BY seq",  # noqa: S608
            (group_id,),
        )
        return [
            StoredMessage(
                seq=seq,
                group_id=bytes(gid),
                message_id=bytes(mid),
                sender=bytes(sender),
                sender_leaf=leaf,
                epoch=epoch,
                received_at=received_at,
                expires_at=expires_at,
                outgoing=bool(outgoing),
                content=bytes(content),
            )
            for (
                seq,
                gid,
                mid,
                sender,
                leaf,
                epoch,
                received_at,
                expires_at,
                outgoing,
                content,
            ) in rows
        ]

    def has_message(self, group_id: bytes, message_id: bytes) -> bool:
        row = self._db.execute(
            "SELECT 1 FROM messages WHERE group_id = ? AND message_id = ?", (group_id, message_id)
        ).fetchone()
        return row is not None

    def delete_expired(self, now: int) -> int:
        db = self._db
        db.execute("BEGIN IMMEDIATE")
        try:
            cur = db.execute(
                "DELETE FROM messages WHERE expires_at IS NOT NULL AND expires_at <= ?", (now,)
            )
            count = cur.rowcount
            db.execute("COMMIT")
        except BaseException:
            if db.in_transaction:
                db.execute("ROLLBACK")
            raise
        return count

    def close(self) -> None:
        self._db.close()


def _delete_group(db: sqlite3.Connection, gid: bytes) -> None:
    for table in _GROUP_TABLES:
        db.execute(f"DELETE FROM {table} WHERE group_id = ?", (gid,))  # noqa: S608


def _put_group(db: sqlite3.Connection, w: GroupWrite) -> None:
    """One group's changes, inside the caller's transaction (see :class:`GroupDelta`)."""
    d = w.delta
    gid = d.group_id
    exists = db.execute("SELECT 1 FROM groups WHERE group_id = ?", (gid,)).fetchone() is not None
    _check_new(w, exists)
    if not exists:
        db.execute(
            "INSERT INTO groups (group_id, epoch, rest, meta) VALUES (?, ?, ?, ?)",
            (gid, d.epoch, d.rest, w.meta if w.meta is not None else b""),
        )
    elif d.rest is not None or w.meta is not None or d.state is not None:
        # (A received message changes none of these: its write stays one secret row.)
        sets: list[str] = ["epoch = ?"]
        args: list[int | bytes] = [d.epoch]
        if d.rest is not None:
            sets.append("rest = ?")
            args.append(d.rest)
        if w.meta is not None:
            sets.append("meta = ?")
            args.append(w.meta)
        db.execute(f"UPDATE groups SET {', '.join(sets)} WHERE group_id = ?", (*args, gid))  # noqa: S608
    if d.state is not None:
        db.execute(
            "INSERT OR REPLACE INTO group_epochs (group_id, state) VALUES (?, ?)", (gid, d.state)
        )
    if w.write_previous:
        if w.previous is None:
            db.execute("DELETE FROM group_previous WHERE group_id = ?", (gid,))
        else:
            db.execute(
                "INSERT OR REPLACE INTO group_previous (group_id, previous) VALUES (?, ?)",
                (gid, w.previous),
            )
    if d.full:
        db.execute("DELETE FROM group_secrets WHERE group_id = ?", (gid,))
    for ep in d.drop_epochs:
        db.execute("DELETE FROM group_secrets WHERE group_id = ? AND epoch = ?", (gid, ep))
    gone = [(gid, ep, node) for (ep, node), row in d.secrets.items() if row is None]
    if gone:
        db.executemany(
            "DELETE FROM group_secrets WHERE group_id = ? AND epoch = ? AND node = ?", gone
        )
    put = [(gid, ep, node, row) for (ep, node), row in d.secrets.items() if row is not None]
    if put:
        db.executemany(
            "INSERT OR REPLACE INTO group_secrets (group_id, epoch, node, row) VALUES (?, ?, ?, ?)",
            put,
        )


def _migrate_v1(db: sqlite3.Connection) -> None:
    """Schema 1 -> 2, inside the caller's transaction: split each stored ``Group.to_bytes()``
    into the parts form. The old table is dropped (secure_delete zeroes its pages)."""
    for gid, epoch, state, meta, previous in db.execute(
        "SELECT group_id, epoch, state, meta, previous FROM groups_v1"
    ).fetchall():
        state_part, rest, rows = split_state(bytes(state))
        db.execute(
            "INSERT INTO groups (group_id, epoch, rest, meta) VALUES (?, ?, ?, ?)",
            (gid, epoch, rest, meta),
        )
        db.execute("INSERT INTO group_epochs (group_id, state) VALUES (?, ?)", (gid, state_part))
        if previous is not None:
            db.execute(
                "INSERT INTO group_previous (group_id, previous) VALUES (?, ?)", (gid, previous)
            )
        db.executemany(
            "INSERT INTO group_secrets (group_id, epoch, node, row) VALUES (?, ?, ?, ?)",
            [(gid, ep, node, row) for (ep, node), row in rows.items()],
        )
    db.execute("DROP TABLE groups_v1")
