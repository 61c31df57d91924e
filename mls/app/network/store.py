"""What the networked client keeps beside :class:`~mls.app.client.ChatClient`'s storage.

One SQLite file (or memory) with:

- ``buffer``: inbox entries of a future epoch, kept until the commit that starts that epoch is
  processed (bounded). An entry is written here *before* the ChatClient cursor moves past it,
  so a crash never loses it; a copy processed twice fails to decrypt the second time (its key
  was consumed), so it is never shown twice.
- ``commits``: our commit on its way to the delivery service (its bytes, Welcome, roster
  change), written *before* it is posted. After a crash it is posted again (the server answers
  ``duplicate`` if it had taken it: our own commit echoed back); a commit the ChatClient still
  holds unresolved with no row here was never posted, and is dropped.
- ``outbox``: application messages not yet accepted by the server. The content is written
  *before* ChatClient encrypts and stores it, the ciphertext after; a row without ciphertext
  after a crash is encrypted again (see ``NetClient._resume_outbox``).
- ``kv``: small flags (registered, groups we asked to leave).
"""

from __future__ import annotations

import os
import sqlite3
import threading
from dataclasses import dataclass

import cbor2

__all__ = ["BufferedEntry", "NetStore", "OutgoingCommit"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS kv (key TEXT PRIMARY KEY, value BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS buffer (
    seq INTEGER PRIMARY KEY, kind TEXT NOT NULL, group_id BLOB NOT NULL,
    group_seq INTEGER NOT NULL, epoch INTEGER NOT NULL, data BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS commits (
    group_id BLOB PRIMARY KEY, epoch INTEGER NOT NULL, commit_data BLOB NOT NULL,
    welcome BLOB, added BLOB NOT NULL, removed BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS outbox (
    id INTEGER PRIMARY KEY AUTOINCREMENT, group_id BLOB NOT NULL, content BLOB NOT NULL,
    message_id BLOB, data BLOB)
"""


@dataclass(frozen=True, slots=True)
class BufferedEntry:
    seq: int
    kind: str
    group_id: bytes
    group_seq: int
    epoch: int
    data: bytes


@dataclass(frozen=True, slots=True)
class OutgoingCommit:
    group_id: bytes
    epoch: int
    commit: bytes
    welcome: bytes | None
    added: tuple[bytes, ...]
    removed: tuple[bytes, ...]


class NetStore:
    """SQLite (``path``) or in-memory (``None``) storage of the networked client's own state.
    Every method is one transaction."""

    def __init__(self, path: str | os.PathLike[str] | None) -> None:
        self._db = sqlite3.connect(":memory:" if path is None else os.fspath(path))
        self._lock = threading.Lock()
        self._db.execute("PRAGMA synchronous = FULL")
        with self._db:
            self._db.executescript(_SCHEMA)

    def close(self) -> None:
        self._db.close()

    # -- flags -----------------------------------------------------------------------------

    def get(self, key: str) -> bytes | None:
        row = self._db.execute("SELECT value FROM kv WHERE key = ?", (key,)).fetchone()
        return None if row is None else bytes(row[0])

    def put(self, key: str, value: bytes | None) -> None:
        with self._lock, self._db:
            if value is None:
                self._db.execute("DELETE FROM kv WHERE key = ?", (key,))
            else:
                self._db.execute(
                    "INSERT INTO kv (key, value) VALUES (?, ?) "
                    "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                    (key, value),
                )

    # -- future-epoch buffer ---------------------------------------------------------------

    def buffer(self, e: BufferedEntry) -> None:
        with self._lock, self._db:
            self._db.execute(
                "INSERT OR IGNORE INTO buffer (seq, kind, group_id, group_seq, epoch, data) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                (e.seq, e.kind, e.group_id, e.group_seq, e.epoch, e.data),
            )

    def buffered(self, group_id: bytes | None = None) -> list[BufferedEntry]:
        sql = "SELECT seq, kind, group_id, group_seq, epoch, data FROM buffer"
        args: tuple[bytes, ...] = ()
        if group_id is not None:
            sql += " WHERE group_id = ?"
            args = (group_id,)
        rows = self._db.execute(sql + " ORDER BY seq", args).fetchall()
        return [
            BufferedEntry(int(r[0]), str(r[1]), bytes(r[2]), int(r[3]), int(r[4]), bytes(r[5]))
            for r in rows
        ]

    def buffer_size(self) -> int:
        return int(self._db.execute("SELECT COUNT(*) FROM buffer").fetchone()[0])

    def unbuffer(self, seq: int) -> None:
        with self._lock, self._db:
            self._db.execute("DELETE FROM buffer WHERE seq = ?", (seq,))

    def drop_group(self, group_id: bytes) -> None:
        with self._lock, self._db:
            self._db.execute("DELETE FROM buffer WHERE group_id = ?", (group_id,))
            self._db.execute("DELETE FROM outbox WHERE group_id = ?", (group_id,))
            self._db.execute("DELETE FROM commits WHERE group_id = ?", (group_id,))

    # -- our commit in flight --------------------------------------------------------------

    def put_commit(self, c: OutgoingCommit) -> None:
        with self._lock, self._db:
            self._db.execute(
                "INSERT OR REPLACE INTO commits "
                "(group_id, epoch, commit_data, welcome, added, removed) VALUES (?, ?, ?, ?, ?, ?)",
                (
                    c.group_id,
                    c.epoch,
                    c.commit,
                    c.welcome,
                    cbor2.dumps(list(c.added)),
                    cbor2.dumps(list(c.removed)),
                ),
            )

    def commit(self, group_id: bytes) -> OutgoingCommit | None:
        row = self._db.execute(
            "SELECT epoch, commit_data, welcome, added, removed FROM commits WHERE group_id = ?",
            (group_id,),
        ).fetchone()
        if row is None:
            return None
        return OutgoingCommit(
            group_id,
            int(row[0]),
            bytes(row[1]),
            None if row[2] is None else bytes(row[2]),
            tuple(bytes(x) for x in cbor2.loads(row[3])),
            tuple(bytes(x) for x in cbor2.loads(row[4])),
        )

    def commit_groups(self) -> list[bytes]:
        return [bytes(r[0]) for r in self._db.execute("SELECT group_id FROM commits")]

    def clear_commit(self, group_id: bytes) -> None:
        with self._lock, self._db:
            self._db.execute("DELETE FROM commits WHERE group_id = ?", (group_id,))

    # -- application messages not yet accepted ---------------------------------------------

    def reserve(self, group_id: bytes, content: bytes) -> int:
        with self._lock, self._db:
            cur = self._db.execute(
                "INSERT INTO outbox (group_id, content) VALUES (?, ?)", (group_id, content)
            )
            return int(cur.lastrowid or 0)

    def fill(self, row_id: int, message_id: bytes, data: bytes) -> None:
        with self._lock, self._db:
            self._db.execute(
                "UPDATE outbox SET message_id = ?, data = ? WHERE id = ?",
                (message_id, data, row_id),
            )

    def queued(self) -> list[tuple[int, bytes, bytes, bytes | None]]:
        """``(row, group_id, content, ciphertext or None)`` in the order they were written."""
        rows = self._db.execute(
            "SELECT id, group_id, content, data FROM outbox ORDER BY id"
        ).fetchall()
        return [
            (int(r[0]), bytes(r[1]), bytes(r[2]), None if r[3] is None else bytes(r[3]))
            for r in rows
        ]

    def dequeue(self, row_id: int) -> None:
        with self._lock, self._db:
            self._db.execute("DELETE FROM outbox WHERE id = ?", (row_id,))
