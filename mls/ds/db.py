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
import contextlib
import hashlib
import logging
import os
import queue
import sqlite3
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar
from urllib.parse import unquote, urlsplit

from mls.ds.errors import Refused, Unavailable

__all__ = ["Database", "Tx", "open_database"]

T = TypeVar("T")
log = logging.getLogger("mls.ds")

Row = tuple[Any, ...]
#: ``notify([(identity, new entries), ...])``: inboxes that grew, with the entries this node
#: wrote (a hint that spares a read; empty when another node wrote them). An empty list: any
#: inbox may have grown (the listener reconnected).
Notify = Callable[[list[tuple[bytes, list[Any]]]], None]

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
CREATE TABLE IF NOT EXISTS ds_self_removes (
  group_id BLOB NOT NULL,
  epoch INTEGER NOT NULL,
  digest BLOB NOT NULL,
  data BLOB NOT NULL,
  PRIMARY KEY (group_id, digest)
);
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
    """One open transaction: ``execute`` with ``?`` placeholders, and the entries added to
    inboxes (their owners are woken once the transaction commits)."""

    def __init__(self, cursor: Any, *, postgres: bool) -> None:
        self._cur = cursor
        self.postgres = postgres
        self.woken: dict[bytes, list[Any]] = {}

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


class _Job:
    __slots__ = ("error", "fn", "future", "loop", "out")

    def __init__(self, fn: Callable[[Tx], Any], loop: asyncio.AbstractEventLoop) -> None:
        self.fn = fn
        self.loop = loop
        self.future: asyncio.Future[Any] = loop.create_future()
        self.out: Any = None
        self.error: BaseException | None = None


def _settle(job: _Job) -> None:
    if job.future.done():
        return
    if job.error is not None:
        job.future.set_exception(job.error)
    else:
        job.future.set_result(job.out)


class SqliteDatabase(Database):
    """One writer thread that commits the requests waiting for it together (group commit):
    each request runs in its own SAVEPOINT, so a refused one rolls back alone, and every answer
    waits for the COMMIT that made it durable."""

    kind = "sqlite"
    MAX_BATCH = 64

    def __init__(self, path: str, *, synchronous: str = "NORMAL") -> None:
        super().__init__()
        self._path = path
        self._sync = synchronous
        self._jobs: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self._conn = self._connect()
        self._thread = threading.Thread(target=self._work, name="mls-ds-sqlite", daemon=True)
        self._thread.start()

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self._path, isolation_level=None, check_same_thread=False)
        conn.execute("PRAGMA busy_timeout = 10000")
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute(f"PRAGMA synchronous = {self._sync}")
        conn.execute("BEGIN IMMEDIATE")
        for stmt in SCHEMA.split(";"):
            conn.execute(stmt)
        conn.execute("COMMIT")
        return conn

    def _work(self) -> None:
        cur = self._conn.cursor()
        while True:
            job = self._jobs.get()
            if job is None:
                return
            batch = [job]
            while len(batch) < self.MAX_BATCH:
                try:
                    nxt = self._jobs.get_nowait()
                except queue.Empty:
                    break
                if nxt is None:
                    self._jobs.put(None)  # stop after this batch
                    break
                batch.append(nxt)
            woken: dict[bytes, list[Any]] = {}
            try:
                cur.execute("BEGIN IMMEDIATE")
                for j in batch:
                    tx = Tx(cur, postgres=False)
                    cur.execute("SAVEPOINT job")
                    try:
                        j.out = j.fn(tx)
                    except Exception as exc:
                        j.error = exc
                        cur.execute("ROLLBACK TO job")
                    cur.execute("RELEASE job")
                    if j.error is None:
                        for identity, entries in tx.woken.items():
                            woken.setdefault(identity, []).extend(entries)
                cur.execute("COMMIT")
            except sqlite3.Error as exc:
                with contextlib.suppress(sqlite3.Error):
                    cur.execute("ROLLBACK")
                for j in batch:
                    j.error = Unavailable(f"database error: {exc}")
                woken = {}
            if woken and self._notify is not None:
                self._notify(list(woken.items()))
            for j in batch:
                with contextlib.suppress(RuntimeError):  # the loop is closing
                    j.loop.call_soon_threadsafe(_settle, j)

    async def run(self, fn: Callable[[Tx], T]) -> T:
        job = _Job(fn, asyncio.get_running_loop())
        self._jobs.put(job)
        out: T = await job.future
        return out

    def close(self) -> None:
        self._jobs.put(None)
        self._thread.join(timeout=10)
        self._conn.close()


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
        self._tag = os.urandom(6).hex()
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
                    # NOTIFY payloads are at most 8000 bytes: this node's tag, then hex
                    # identities, a few per payload.
                    for i in range(0, len(woken), 24):
                        ids = ",".join(w.hex() for w in woken[i : i + 24])
                        cur.execute(
                            "SELECT pg_notify(%s, %s)", (self.channel, f"{self._tag}:{ids}")
                        )
                # Our own clients get the entries at once; the NOTIFY is for the other nodes.
                if tx.woken and self._notify is not None:
                    self._notify(list(tx.woken.items()))
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
                        self._notify([])
                    while not self._stop.is_set():
                        for n in conn.notifies(timeout=0.5):
                            tag, _, ids = n.payload.partition(":")
                            if self._notify is not None and ids and tag != self._tag:
                                self._notify([(bytes.fromhex(i), []) for i in ids.split(",")])
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
