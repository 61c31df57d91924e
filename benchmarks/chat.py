"""Chat client benchmark: a ``ChatClient`` on ``SQLiteStorage`` receiving application messages.

Usage: ``python benchmarks/chat.py [--sizes 16,1024,10000,50000] [--messages N]
[--restarts R] [--suite 1] [--dir DIR] [--json FILE] [--md FILE]``

Issue 14 ("Application-layer benchmark"). For each group size n it measures, on one machine in
one run:

- **receive**: ``ChatClient.receive(wire, now=, seq=)`` of a MIMI text message (decrypt, check
  the content, store the message, the group and the inbox cursor in one SQLite transaction),
  timed call by call; median, mean and messages per second (messages / total time);
- **bytes written per message**: the growth of ``wchar`` in ``/proc/self/io`` across the call.
  ``wchar`` counts the bytes this process hands to ``write``/``pwrite``; during ``receive``
  the only writer is SQLite, so it is exactly what SQLite writes to the database file *and* to
  its rollback journal (the old pages it saves before overwriting, plus the journal header).
  Page counts (``PRAGMA page_count``) would miss pages that are rewritten in place and the
  journal, and the file size stays flat once freed pages are reused. ``syscw`` (write calls)
  and ``write_bytes`` (bytes the kernel queued for the disk on our behalf, counted per 4 KiB
  page dirtied) are reported next to it;
- **restart**: close the client and its storage, then time ``SQLiteStorage(path)`` +
  ``ChatClient.open`` ("open") and the ``receive`` of the next message ("first"). The file
  is in the OS page cache (a warm restart: what an app that is relaunched sees);
- **the floor** of a received message, measured in the same run: ``Group.process`` of the
  same messages by another member of the same group and epoch (the builder's second
  instantiated member, at leaf n - 2, a plain ``Group``: the unprotect cost of an equivalent
  group), plus one SQLite transaction (``BEGIN IMMEDIATE``, one ``INSERT`` of a row holding
  a message's MIMI content, ``COMMIT``) in a second database file in the same directory with
  the pragmas of ``SQLiteStorage`` (``secure_delete = ON``, ``journal_mode = DELETE``,
  ``synchronous = FULL``, ``temp_store = MEMORY``). The floor is priced in blocks, not message
  by message between the client's calls: half of the transactions before the receive loop and
  half after it, the unprotects right after it. Interleaved, the floor would pay for the
  client's own work: at 50,000 members each receive writes tens of MiB and churns the CPU
  caches, which measurably slowed the next fsync and the next unprotect. Every measured value
  is also given as a ratio to the floor (bytes against the floor transaction's bytes).

Times are wall time (``perf_counter``) and CPU time of the process (``process_time``: user +
system, so the kernel's work for our writes counts but waiting for the disk does not). The
disk is shared with other jobs: an fsync here takes from 0.1 ms to over 10 ms depending on
their load, which moves wall times (and the wall ratios) from run to run; CPU times depend far
less on it.

The group (see ``_builders.py``): a synthetic *full* tree of n - 1 members (``build_full``:
every leaf a real client, every reachable parent node set), then its member at leaf 0 commits
(with a path) the addition of the ``ChatClient``'s KeyPackage, and the client joins from the
Welcome with the tree out of band (``ChatClient.publish_key_packages`` and
``ChatClient.join``: public API). The client is the member at leaf n - 1 of an n-member group.
The sender is the builder's member at leaf 0; its messages are made with ``Group.protect`` of
``mls.app.content.text(body, salt=new_salt()).to_cbor()``, as ``ChatClient.send_text``
makes them (no timer is set, so no expiry is added). All messages are protected before timing
starts, in order, so the receiver takes each one as the next generation of the sender's
ratchet. A few warm-up messages (not counted) come first, so the sender's leaf in the
receiver's secret tree is already derived (steady state).

Only public API is used here (``build_full`` reaches below it, see its docstring). The
garbage collector is paused during each timed call (as in ``rekey.py``). The issue's
targets are reported (met / missed, on wall and on CPU time), never asserted.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import shutil
import sqlite3
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from _builders import NOW, build_full

from mls.app.client import ChatClient, ChatConfig, MessageReceived
from mls.app.content import new_salt, text
from mls.app.storage import SQLiteStorage
from mls.crypto import CipherSuite, get_suite
from mls.group import ApplicationMessage, CommitMerged, Group

DEFAULT_SIZES = (16, 1024, 10_000, 50_000)
WARMUP = 3


def default_messages(n: int) -> int:
    """Timed messages per size: 200 (a message costs the same at every size since the parts
    form; before it, the whole state was stored per message and 50,000 members took 10)."""
    return 200


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


# -- measuring ---------------------------------------------------------------------------------


IO_FIELDS = ("wchar", "syscw", "write_bytes")


def read_io() -> dict[str, int] | None:
    """This process's I/O counters (Linux ``/proc/self/io``), or ``None`` elsewhere."""
    try:
        with open("/proc/self/io", encoding="ascii") as f:
            text_ = f.read()
    except OSError:
        return None
    out = {}
    for line in text_.splitlines():
        key, _, value = line.partition(":")
        if key in IO_FIELDS:
            out[key] = int(value)
    return out


def io_delta(before: dict[str, int] | None, after: dict[str, int] | None) -> dict[str, int]:
    if before is None or after is None:
        return {}
    return {k: after[k] - before[k] for k in IO_FIELDS}


@dataclass
class Sample:
    """One timed call: wall time, CPU time (user + system) and the I/O it caused."""

    ns: int
    cpu_ns: int
    io: dict[str, int]


def timed(call: Any) -> tuple[Any, Sample]:
    """Run ``call()`` with the collector paused; its result, time and I/O counters."""
    gc.disable()
    try:
        io0 = read_io()
        c0 = time.process_time_ns()
        t0 = time.perf_counter_ns()
        result = call()
        t1 = time.perf_counter_ns()
        c1 = time.process_time_ns()
        io1 = read_io()
    finally:
        gc.enable()
    return result, Sample(t1 - t0, c1 - c0, io_delta(io0, io1))


class FloorStore:
    """The floor's storage half: one small row per transaction, ``SQLiteStorage``'s pragmas."""

    def __init__(self, path: Path) -> None:
        self._db = sqlite3.connect(path, isolation_level=None)
        db = self._db
        db.execute("PRAGMA secure_delete = ON")
        db.execute("PRAGMA journal_mode = DELETE")
        db.execute("PRAGMA synchronous = FULL")
        db.execute("PRAGMA temp_store = MEMORY")
        db.execute("CREATE TABLE IF NOT EXISTS rows (seq INTEGER PRIMARY KEY, body BLOB NOT NULL)")

    def write(self, body: bytes) -> None:
        db = self._db
        db.execute("BEGIN IMMEDIATE")
        db.execute("INSERT INTO rows (body) VALUES (?)", (body,))
        db.execute("COMMIT")

    def close(self) -> None:
        self._db.close()


# -- one size ----------------------------------------------------------------------------------


@dataclass
class Setup:
    n: int
    chat: ChatClient
    chat_config: ChatConfig
    group_id: bytes
    sender: Group
    twin: Group
    """Another member of the same group and epoch (leaf n - 2): the unprotect floor."""
    path: Path
    build_s: float


def setup(cs: CipherSuite, n: int, workdir: Path) -> Setup:
    """An n-member full group whose member at leaf n - 1 is a ``ChatClient`` on SQLite."""
    t0 = time.perf_counter()
    chat_config = ChatConfig()
    # The client's own group policy for every member, so the twin processes as it does.
    config = chat_config.group_config
    built = build_full(cs, n - 1, config, lambda m: log(f"  {m.strip()}"))
    sender, twin = built.committer, built.processor
    path = workdir / f"chat-{n}.sqlite"
    chat = ChatClient.create(b"chat-receiver", SQLiteStorage(path), suite=cs.suite_id)
    (kp,) = chat.publish_key_packages(1, now=NOW)
    out = sender.commit(add=[kp], now=NOW)
    sender.merge_pending_commit()
    assert isinstance(twin.process(out.commit, now=NOW), CommitMerged)
    assert out.welcome is not None
    joined = chat.join(out.welcome, ratchet_tree=sender.export_tree(), now=NOW)
    assert len(joined.members) == n and joined.epoch == sender.epoch
    assert chat.group(joined.group_id).own_leaf_index == n - 1
    build_s = time.perf_counter() - t0
    return Setup(n, chat, chat_config, joined.group_id, sender, twin, path, build_s)


def make_messages(s: Setup, count: int) -> list[bytes]:
    """``count`` MIMI text messages from the sender, as ``ChatClient.send_text`` builds them."""
    out = []
    for j in range(count):
        body = f"message {j} of the benchmark, about as long as a chat line"
        content = text(body, salt=new_salt())
        out.append(s.sender.protect(content.to_cbor()))
    return out


def median_ms(samples: list[Sample]) -> float:
    return statistics.median(x.ns for x in samples) / 1e6


def median_cpu_ms(samples: list[Sample]) -> float:
    return statistics.median(x.cpu_ns for x in samples) / 1e6


def mean_io(samples: list[Sample], key: str) -> float | None:
    vals = [x.io[key] for x in samples if key in x.io]
    return statistics.fmean(vals) if vals else None


def run_size(
    cs: CipherSuite, n: int, messages: int, restarts: int, workdir: Path
) -> dict[str, Any]:
    log(f"n={n}: building")
    s = setup(cs, n, workdir)
    log(f"  built and joined in {s.build_s:.1f} s")
    wires = make_messages(s, WARMUP + messages + restarts)
    floor_db = FloorStore(workdir / f"floor-{n}.sqlite")
    chat = s.chat
    row_body = b""
    txn: list[Sample] = []

    def floor_txns(count: int) -> None:
        # One discarded warm-up transaction, then ``count`` timed ones.
        for k in range(count + 1):
            _, t = timed(lambda: floor_db.write(row_body))
            if k:
                txn.append(t)

    # The plaintext of the first message: the size of the row a received message adds.
    app = s.twin.process(wires[0], now=NOW)
    assert isinstance(app, ApplicationMessage)
    row_body = app.data
    floor_txns((messages + 1) // 2)
    txn_before = len(txn)
    seq = 0
    for wire in wires[:WARMUP]:
        seq += 1
        assert isinstance(chat.receive(wire, now=NOW, seq=seq), MessageReceived)
    for wire in wires[1:WARMUP]:
        assert isinstance(s.twin.process(wire, now=NOW), ApplicationMessage)
    timed_wires = wires[WARMUP : WARMUP + messages]
    recv: list[Sample] = []
    contents = []
    gc.collect()
    for wire in timed_wires:
        seq += 1
        ev, r = timed(lambda w=wire, q=seq: chat.receive(w, now=NOW, seq=q))
        assert isinstance(ev, MessageReceived), ev
        recv.append(r)
        contents.append(ev.message.content)
        if messages >= 8 and len(recv) % (messages // 4) == 0:
            log(f"  {len(recv)}/{messages} messages")
    unprotect: list[Sample] = []
    gc.collect()
    for wire, content in zip(timed_wires, contents, strict=True):
        app, u = timed(lambda w=wire: s.twin.process(w, now=NOW))
        assert isinstance(app, ApplicationMessage) and app.data == content
        unprotect.append(u)
    floor_txns(messages // 2)
    floor_db.close()
    state_bytes = len(chat.group(s.group_id).to_bytes())
    opens: list[float] = []
    firsts: list[float] = []
    for wire in wires[WARMUP + messages :]:
        seq += 1
        chat.close()
        gc.collect()
        t0 = time.perf_counter_ns()
        chat = ChatClient.open(SQLiteStorage(s.path), config=s.chat_config)
        t1 = time.perf_counter_ns()
        ev, r = timed(lambda w=wire, q=seq, c=chat: c.receive(w, now=NOW, seq=q))
        assert isinstance(ev, MessageReceived) and chat.cursor == seq
        opens.append((t1 - t0) / 1e6)
        firsts.append(r.ns / 1e6)
    chat.close()
    db_bytes = s.path.stat().st_size

    med = median_ms(recv)
    total_s = sum(x.ns for x in recv) / 1e9
    unprotect_ms, txn_ms = median_ms(unprotect), median_ms(txn)
    floor_ms = unprotect_ms + txn_ms
    cpu_ms = median_cpu_ms(recv)
    floor_cpu_ms = median_cpu_ms(unprotect) + median_cpu_ms(txn)
    bytes_msg = mean_io(recv, "wchar")
    floor_bytes = mean_io(txn, "wchar")
    open_ms = statistics.median(opens) if opens else None
    first_ms = statistics.median(firsts) if firsts else None
    restart_ms = open_ms + first_ms if open_ms is not None and first_ms is not None else None
    row: dict[str, Any] = {
        "n": n,
        "messages": messages,
        "median_ms": med,
        "mean_ms": total_s * 1000 / messages,
        "min_ms": min(x.ns for x in recv) / 1e6,
        "max_ms": max(x.ns for x in recv) / 1e6,
        "msgs_per_s": messages / total_s,
        "cpu_ms": cpu_ms,
        "bytes_per_msg": bytes_msg,
        "writes_per_msg": mean_io(recv, "syscw"),
        "disk_bytes_per_msg": mean_io(recv, "write_bytes"),
        "unprotect_ms": unprotect_ms,
        "txn_ms": txn_ms,
        # The floor transaction's median before and after the receive loop (disk drift).
        "txn_blocks_ms": [median_ms(b) for b in (txn[:txn_before], txn[txn_before:]) if b],
        "floor_ms": floor_ms,
        "floor_bytes": floor_bytes,
        "ratio": med / floor_ms,
        "floor_cpu_ms": floor_cpu_ms,
        "cpu_ratio": cpu_ms / floor_cpu_ms,
        "bytes_ratio": bytes_msg / floor_bytes if bytes_msg and floor_bytes else None,
        "restarts": len(opens),
        "open_ms": open_ms,
        "first_ms": first_ms,
        "restart_ms": restart_ms,
        "restart_ratio": restart_ms / floor_ms if restart_ms is not None else None,
        "state_bytes": state_bytes,
        "db_bytes": db_bytes,
        "build_s": s.build_s,
    }
    log(
        f"  receive {med:.3f} ms/msg ({row['msgs_per_s']:.0f} msg/s), "
        f"{fmt_bytes(bytes_msg)} written/msg; floor {floor_ms:.3f} ms "
        f"(unprotect {unprotect_ms:.3f} + txn {txn_ms:.3f}, blocks "
        f"{' / '.join(f'{x:.3f}' for x in row['txn_blocks_ms'])}), ratio {row['ratio']:.2f} "
        f"(CPU {cpu_ms:.3f} / {floor_cpu_ms:.3f} ms: {row['cpu_ratio']:.2f}); "
        f"restart {fmt(open_ms)} + {fmt(first_ms)} ms"
    )
    return row


# -- report ------------------------------------------------------------------------------------


def fmt(v: float | None, digits: int = 3) -> str:
    if v is None:
        return "-"
    if v >= 100:
        return f"{v:,.0f}"
    if v >= 10:
        return f"{v:.1f}"
    return f"{v:.{digits}f}"


def fmt_bytes(v: float | None) -> str:
    if v is None:
        return "-"
    if v >= 1 << 20:
        return f"{v / (1 << 20):.1f} MiB"
    if v >= 1 << 10:
        return f"{v / (1 << 10):.1f} KiB"
    return f"{v:.0f} B"


def targets(rows: list[dict[str, Any]]) -> list[tuple[str, str, str]]:
    """(target, measured, verdict) for the issue's three receive targets. Time targets are
    judged on wall time (what the issue names) and, separately, on CPU time, which the load of
    a shared disk does not move."""
    by_n = {r["n"]: r for r in rows}
    out = []
    name = "time/msg at 10,000 <= 1.2x at 16"
    if 16 in by_n and 10_000 in by_n:
        a, b = by_n[16], by_n[10_000]
        x, y = b["median_ms"] / a["median_ms"], b["cpu_ms"] / a["cpu_ms"]
        out.append((name, f"wall {x:.2f}x, CPU {y:.2f}x", f"{met(x <= 1.2)} / {met(y <= 1.2)}"))
    else:
        out.append((name, "needs sizes 16 and 10000", "not measured"))
    bs = [r["bytes_per_msg"] for r in rows if r["bytes_per_msg"]]
    name = "bytes/msg independent of n (largest <= 1.25x smallest)"
    if len(bs) >= 2:
        # "Independent of group size" is taken here as: within 1.25x across the sizes run.
        x = max(bs) / min(bs)
        out.append(
            (name, f"{fmt_bytes(min(bs))} to {fmt_bytes(max(bs))} ({x:.1f}x)", met(x <= 1.25))
        )
    else:
        out.append((name, "needs two sizes (and /proc/self/io)", "not measured"))
    wall = max(rows, key=lambda r: r["ratio"])
    cpu = max(rows, key=lambda r: r["cpu_ratio"])
    out.append(
        (
            "receive <= 2x floor at every n",
            f"worst wall {wall['ratio']:.2f}x (n = {wall['n']:,}), "
            f"CPU {cpu['cpu_ratio']:.2f}x (n = {cpu['n']:,})",
            f"{met(wall['ratio'] <= 2)} / {met(cpu['cpu_ratio'] <= 2)}",
        )
    )
    return out


def met(ok: bool) -> str:
    return "met" if ok else "missed"


def markdown(rows: list[dict[str, Any]], meta: dict[str, Any]) -> str:
    lines = [
        f"Suite {meta['suite']}, Python {meta['python']}, SQLite {meta['sqlite']}, "
        f"{meta['machine']}, {meta['cpus']} CPUs; files on {meta['dir']}; "
        f"{meta['wall_s']:.0f} s wall.",
        "",
        "| n | msgs | wall ms/msg median (mean) | msg/s | CPU ms/msg | written/msg "
        "| writes/msg | state | open ms | first msg ms |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r['n']:,} | {r['messages']} | {fmt(r['median_ms'])} ({fmt(r['mean_ms'])}) "
            f"| {r['msgs_per_s']:,.0f} | {fmt(r['cpu_ms'])} | {fmt_bytes(r['bytes_per_msg'])} "
            f"| {fmt(r['writes_per_msg'], 1)} | {fmt_bytes(r['state_bytes'])} "
            f"| {fmt(r['open_ms'])} | {fmt(r['first_ms'])} |"
        )
    lines += [
        "",
        "Floor (unprotect by an equivalent `Group` + one small-row SQLite transaction) and the "
        "ratios to it:",
        "",
        "| n | floor wall ms (unprotect + txn) | wall ratio | floor CPU ms | CPU ratio "
        "| floor written | bytes ratio | restart (open + first) ratio |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r['n']:,} | {fmt(r['floor_ms'])} ({fmt(r['unprotect_ms'])} + {fmt(r['txn_ms'])}) "
            f"| {r['ratio']:.2f} | {fmt(r['floor_cpu_ms'])} | {r['cpu_ratio']:.2f} "
            f"| {fmt_bytes(r['floor_bytes'])} | {fmt(r['bytes_ratio'], 1)} "
            f"| {fmt(r['restart_ratio'], 1)} |"
        )
    lines += ["", "| target | measured | met (wall / CPU) |", "|---|---|---|"]
    for name, value, verdict in targets(rows):
        lines.append(f"| {name} | {value} | {verdict} |")
    return "\n".join(lines) + "\n"


# -- main --------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--sizes", help="comma-separated member counts (default 16,1024,10000,50000)")
    ap.add_argument(
        "--messages", type=int, help="timed messages per size (default 200 to 1,024, then 40, 10)"
    )
    ap.add_argument("--restarts", type=int, default=3, help="restarts timed per size (median)")
    ap.add_argument("--suite", type=lambda v: int(v, 0), default=1, help="cipher suite id")
    ap.add_argument("--dir", help="directory for the database files (default: a temporary one)")
    ap.add_argument("--json", metavar="FILE")
    ap.add_argument("--md", metavar="FILE")
    args = ap.parse_args(argv)
    sizes = [int(x) for x in args.sizes.split(",")] if args.sizes else list(DEFAULT_SIZES)
    if min(sizes) < 3:
        ap.error("sizes must be at least 3 (a full tree of n - 1 >= 2 members plus the client)")
    if args.messages is not None and args.messages < 1:
        ap.error("--messages must be at least 1")
    if args.restarts < 0:
        ap.error("--restarts must be >= 0")
    if read_io() is None:
        log("no /proc/self/io: bytes written are not measured")
    cs = get_suite(args.suite)
    t0 = time.perf_counter()
    workdir = Path(args.dir) if args.dir else Path(tempfile.mkdtemp(prefix="mls-chat-bench-"))
    workdir.mkdir(parents=True, exist_ok=True)
    rows = []
    try:
        for n in sorted(sizes):
            m = args.messages or default_messages(n)
            rows.append(run_size(cs, n, m, args.restarts, workdir))
    finally:
        if not args.dir:
            shutil.rmtree(workdir, ignore_errors=True)
    meta = {
        "suite": cs.suite_id,
        "python": platform.python_version(),
        "sqlite": sqlite3.sqlite_version,
        "machine": platform.machine(),
        "cpus": os.cpu_count(),
        "dir": str(workdir) if args.dir else "a temporary directory under " + tempfile.gettempdir(),
        "wall_s": time.perf_counter() - t0,
    }
    md = markdown(rows, meta)
    if args.json:
        Path(args.json).write_text(json.dumps({"meta": meta, "rows": rows}, indent=1) + "\n")
    if args.md:
        Path(args.md).write_text(md)
    print(md, end="")
    return 0


if __name__ == "__main__":
    sys.exit(main())
