"""The two databases of the delivery service behind one small synchronous interface.

The server's logic (:mod:`mls.ds.store`) is written once, against :class:`Tx`, and runs in
worker threads so the event loop never blocks on the database:

- **SQLite** (default, one node): one connection in one thread, WAL journal, every transaction
  ``BEGIN IMMEDIATE`` (so several processes sharing the file also serialize their writes).
  ``synchronous=NORMAL`` loses nothing when the *process* dies (the write-ahead log is in the
  OS), which is what SIGKILL tests; set ``--sqlite-sync full`` against power loss.
- **PostgreSQL** (several nodes): a thread pool, one connection per thread. A group row is
  locked (``SELECT ... FOR UPDATE``) by every post to the group, which orders a group's
  messages and makes "first commit of an epoch wins" hold across nodes. Inbox rows are locked
  in identity order, so two fan-outs never deadlock. Notifications travel by ``NOTIFY`` inside
  the transaction (sent only if it commits) and are received by every node's ``LISTEN`` thread.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import sqlite3
import threading
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar
from urllib.parse import unquote, urlsplit

from mls.ds.errors import Refused, Unavailable

__all__ = ["Database", "Tx", "open_database"]

T = TypeVar("T")
log = logging.getLogger("mls.ds")

Row = tuple[Any, ...]
Notify = Callable[[Iterable[bytes]], None]

# One schema, written for both: BLOB becomes BYTEA and INTEGER becomes BIGINT on PostgreSQL.
SCHEMA = """
CREATE TABLE IF NOT EXISTS ds_clients (
  identity BLOB PRIMARY KEY,
  signature_key BLOB NOT NULL,
  cipher_suite INTEGER NOT NULL,
  last_seq INTEGER NOT NULL DEFAULT 0,
  acked INTEGER NOT NULL DEFAULT 0,
  created INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS ds_challenges (
  challenge BLOB PRIMARY KEY,
  identity BLOB NOT NULL,
  expires INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS ds_tokens (
  token_hash BLOB PRIMARY KEY,
  identity BLOB NOT NULL,
  expires INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS ds_key_packages (
  identity BLOB NOT NULL,
  ref BLOB NOT NULL,
  added INTEGER NOT NULL,
  last_resort INTEGER NOT NULL,
  data BLOB NOT NULL,
  PRIMARY KEY (identity, ref)
);
CREATE INDEX IF NOT EXISTS ds_key_packages_order ON ds_key_packages (identity, last_resort, added);
CREATE TABLE IF NOT EXISTS ds_groups (
  group_id BLOB PRIMARY KEY,
  epoch INTEGER NOT NULL,
  last_seq INTEGER NOT NULL DEFAULT 0,
  group_info BLOB,
  group_info_epoch INTEGER,
  created INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS ds_members (
  group_id BLOB NOT NULL,
  identity BLOB NOT NULL,
  PRIMARY KEY (group_id, identity)
);
CREATE TABLE IF NOT EXISTS ds_seen (
  group_id BLOB NOT NULL,
  digest BLOB NOT NULL,
  group_seq INTEGER NOT NULL,
  epoch INTEGER NOT NULL,
  PRIMARY KEY (group_id, digest)
);
CREATE INDEX IF NOT EXISTS ds_seen_epoch ON ds_seen (group_id, epoch);
CREATE TABLE IF NOT EXISTS ds_inbox (
  identity BLOB NOT NULL,
  seq INTEGER NOT NULL,
  kind TEXT NOT NULL,
  group_id BLOB NOT NULL,
  group_seq INTEGER NOT NULL,
  epoch INTEGER NOT NULL,
  data BLOB NOT NULL,
  PRIMARY KEY (identity, seq)
)
"""


_LOCKS = {"": "", "update": " FOR UPDATE", "skip": " FOR UPDATE SKIP LOCKED"}


class Tx:
    """One open transaction: ``execute`` with ``?`` placeholders, and the identities whose
    inboxes grew (woken once the transaction commits)."""

    def __init__(self, cursor: Any, *, postgres: bool) -> None:
        self._cur = cursor
        self.postgres = postgres
        self.woken: set[bytes] = set()

    def execute(self, sql: str, params: Sequence[Any] = (), *, lock: str = "") -> list[Row]:
        """``lock="update"`` row-locks what a SELECT reads (``"skip"``: and skips rows other
        transactions hold); SQLite's write transaction already excludes every other writer."""
        if self.postgres:
            sql = sql.replace("?", "%s") + _LOCKS[lock]
        self._cur.execute(sql, params)
        if self._cur.description is None:
            return []
        return [tuple(r) for r in self._cur.fetchall()]

    def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        if self.postgres:
            sql = sql.replace("?", "%s")
        self._cur.executemany(sql, rows)

    @property
    def rowcount(self) -> int:
        return int(self._cur.rowcount)


class Database:
    """Runs a function in a transaction on a worker thread (see the module docstring)."""

    kind: str

    def __init__(self) -> None:
        self._notify: Notify | None = None

    def set_notify(self, notify: Notify) -> None:
        """``notify(identities)`` is called (from any thread) when inboxes grew."""
        self._notify = notify

    async def run(self, fn: Callable[[Tx], T]) -> T:
        raise NotImplementedError

    def start_listener(self) -> None:
        """Start receiving other nodes' notifications (PostgreSQL only)."""

    def close(self) -> None:
        raise NotImplementedError


class SqliteDatabase(Database):
    kind = "sqlite"

    def __init__(self, path: str, *, synchronous: str = "NORMAL") -> None:
        super().__init__()
        self._path = path
        self._sync = synchronous
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="mls-ds-sqlite")
        self._conn: sqlite3.Connection | None = None
        self._pool.submit(self._init).result()

    def _init(self) -> None:
        conn = sqlite3.connect(self._path, isolation_level=None, check_same_thread=False)
        conn.execute("PRAGMA busy_timeout = 10000")
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute(f"PRAGMA synchronous = {self._sync}")
        conn.execute("BEGIN IMMEDIATE")
        for stmt in SCHEMA.split(";"):
            conn.execute(stmt)
        conn.execute("COMMIT")
        self._conn = conn

    def _call(self, fn: Callable[[Tx], T]) -> T:
        conn = self._conn
        assert conn is not None
        cur = conn.cursor()
        cur.execute("BEGIN IMMEDIATE")
        tx = Tx(cur, postgres=False)
        try:
            out = fn(tx)
        except BaseException:
            cur.execute("ROLLBACK")
            raise
        cur.execute("COMMIT")
        if tx.woken and self._notify is not None:
            self._notify(tx.woken)
        return out

    async def run(self, fn: Callable[[Tx], T]) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._pool, self._call, fn)

    def close(self) -> None:
        def shut() -> None:
            if self._conn is not None:
                self._conn.close()

        self._pool.submit(shut).result()
        self._pool.shutdown()


class PostgresDatabase(Database):
    kind = "postgresql"

    def __init__(self, url: str, *, pool_size: int = 8) -> None:
        super().__init__()
        import psycopg

        self._psycopg = psycopg
        self._url = url
        self._local = threading.local()
        self._conns: list[Any] = []
        self._lock = threading.Lock()
        self._pool = ThreadPoolExecutor(max_workers=pool_size, thread_name_prefix="mls-ds-pg")
        self._stop = threading.Event()
        self._listener: threading.Thread | None = None
        with psycopg.connect(url) as conn:
            # Two nodes starting at once must not both create the tables.
            conn.execute("SELECT pg_advisory_xact_lock(7238512)")
            for stmt in SCHEMA.split(";"):
                conn.execute(stmt.replace("BLOB", "BYTEA").replace("INTEGER", "BIGINT"))
            row = conn.execute("SELECT current_database(), current_schema()").fetchone()
            assert row is not None
        # Channels are per database; the schema keeps deployments that share one apart.
        self.channel = "mls_ds_" + hashlib.sha256(repr(row).encode()).hexdigest()[:16]

    def _conn(self) -> Any:
        conn = getattr(self._local, "conn", None)
        if conn is None or conn.closed or conn.broken:
            conn = self._psycopg.connect(self._url)
            self._local.conn = conn
            with self._lock:
                self._conns.append(conn)
        return conn

    def _call(self, fn: Callable[[Tx], T]) -> T:
        errors = self._psycopg.errors
        for attempt in range(5):
            conn = self._conn()
            try:
                with conn.transaction(), conn.cursor() as cur:
                    tx = Tx(cur, postgres=True)
                    out = fn(tx)
                    woken = sorted(tx.woken)
                    # NOTIFY payloads are at most 8000 bytes: hex identities, a few per payload.
                    for i in range(0, len(woken), 24):
                        payload = ",".join(w.hex() for w in woken[i : i + 24])
                        cur.execute("SELECT pg_notify(%s, %s)", (self.channel, payload))
                return out
            except (errors.DeadlockDetected, errors.SerializationFailure):
                log.warning('{"event": "db_retry", "attempt": %d}', attempt)
                continue
            except self._psycopg.OperationalError:
                raise Unavailable("the database is unavailable; retry") from None
        raise Refused(409, "busy", "the database kept refusing the transaction; retry")

    async def run(self, fn: Callable[[Tx], T]) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._pool, self._call, fn)

    def start_listener(self) -> None:
        self._listener = threading.Thread(target=self._listen, name="mls-ds-listen", daemon=True)
        self._listener.start()

    def _listen(self) -> None:
        while not self._stop.is_set():
            try:
                with self._psycopg.connect(self._url, autocommit=True) as conn:
                    conn.execute(f"LISTEN {self.channel}")
                    # Anything sent while we were not listening: wake every waiter once.
                    if self._notify is not None:
                        self._notify(())
                    while not self._stop.is_set():
                        for n in conn.notifies(timeout=0.5):
                            if self._notify is not None and n.payload:
                                self._notify(bytes.fromhex(p) for p in n.payload.split(","))
            except self._psycopg.OperationalError:
                self._stop.wait(0.5)

    def close(self) -> None:
        self._stop.set()
        if self._listener is not None:
            self._listener.join(timeout=2)
        self._pool.shutdown()
        with self._lock:
            for conn in self._conns:
                conn.close()


def open_database(url: str, *, pool_size: int = 8, sqlite_sync: str = "NORMAL") -> Database:
    """``sqlite:///relative.db``, ``sqlite:////absolute.db`` or ``postgresql://...``."""
    parts = urlsplit(url)
    if parts.scheme == "sqlite":
        path = unquote(parts.path[1:] if parts.path.startswith("/") else parts.path)
        if not path:
            raise ValueError("sqlite URL without a path")
        return SqliteDatabase(path, synchronous=sqlite_sync)
    if parts.scheme in ("postgresql", "postgres"):
        return PostgresDatabase(url, pool_size=pool_size)
    raise ValueError(f"unsupported database URL scheme {parts.scheme!r}")
