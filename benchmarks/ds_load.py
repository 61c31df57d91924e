"""Load on the delivery service: N clients in G groups send M messages through real servers.

Starts ``python -m mls serve`` nodes (SQLite, one node; PostgreSQL, one and two nodes), registers
N clients, puts them in G groups (one commit each), connects every client's WebSocket (client i
to node i mod nodes), then each client posts its share of M application messages (the server
reads only their framing; their bodies are random) and every member receives them by push.
Then each group's creator commits E epochs in a row (all groups at once).

Reports messages accepted per second (the send phase until every delivery arrived), the p50
and p99 delivery latency (POST start to arrival at each recipient's WebSocket) and commits per
second. Run it from the repository root::

    pip install -e ".[server]"
    python benchmarks/ds_load.py                       # all three setups, default sizes
    python benchmarks/ds_load.py --setups sqlite --clients 50 --groups 5 --messages 2000
    MLS_TEST_POSTGRES=postgresql://... python benchmarks/ds_load.py --md ds.md

The PostgreSQL setups use a fresh schema of ``$MLS_TEST_POSTGRES`` (default
postgresql://postgres@127.0.0.1:5432/test), dropped afterwards.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import secrets
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import psycopg
import websockets

from mls.constants import ContentType
from mls.crypto import get_suite, sign_with_label
from mls.ds.wire import AUTH_LABEL, REGISTER_LABEL, auth_content, b64d, b64e, register_content
from mls.framing.message import MLSMessage
from mls.framing.private import PrivateMessage

PG = os.environ.get("MLS_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test")


def message(group_id: bytes, epoch: int, ctype: int, size: int) -> bytes:
    body = PrivateMessage(
        group_id=group_id,
        epoch=epoch,
        content_type=ctype,
        encrypted_sender_data=secrets.token_bytes(32),
        ciphertext=secrets.token_bytes(size),
    )
    return MLSMessage(body=body).to_bytes()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def servers(database: str, nodes: int, log_dir: Path) -> Iterator[tuple[list[str], list[int]]]:
    procs, urls = [], []
    try:
        for i in range(nodes):
            port = free_port()
            log = (log_dir / f"node{i}.log").open("ab")
            procs.append(
                subprocess.Popen(
                    [
                        sys.executable,
                        "-m",
                        "mls",
                        "serve",
                        "--port",
                        str(port),
                        "--database",
                        database,
                        "--rate",
                        "1e9",
                        "--burst",
                        "1e9",
                        "--log-level",
                        "warning",
                    ],
                    stdout=log,
                    stderr=log,
                    stdin=subprocess.DEVNULL,
                )
            )
            log.close()
            urls.append(f"http://127.0.0.1:{port}")
        for url in urls:
            for _ in range(400):
                with contextlib.suppress(httpx.HTTPError):
                    if httpx.get(url + "/health", timeout=1).status_code == 200:
                        break
                time.sleep(0.05)
            else:
                raise RuntimeError(f"{url} did not start")
        yield urls, [p.pid for p in procs]
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                p.kill()


@contextlib.contextmanager
def pg_schema() -> Iterator[str]:
    name = "mls_ds_bench_" + uuid.uuid4().hex[:10]
    with psycopg.connect(PG, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {name}")
    try:
        sep = "&" if "?" in PG else "?"
        yield f"{PG}{sep}options={quote('-csearch_path=' + name)}"
    finally:
        with psycopg.connect(PG, autocommit=True) as conn:
            conn.execute(f"DROP SCHEMA {name} CASCADE")


def cpu_seconds(pids: list[int]) -> float:
    """User + system CPU time of the server processes (Linux ``/proc``): unlike wall time,
    it does not depend on what else the machine runs."""
    total = 0
    for pid in pids:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        total += int(fields[11]) + int(fields[12])  # utime, stime (fields 14 and 15)
    return total / os.sysconf("SC_CLK_TCK")


class Bench:
    def __init__(self, urls: list[str], pids: list[int], args: argparse.Namespace) -> None:
        self.urls = urls
        self.pids = pids
        self.args = args
        # Several small pools: httpx's pool bookkeeping grows with its connection count, and
        # one large pool made the load generator, not the server, the bottleneck.
        self.pools = [
            httpx.AsyncClient(timeout=60, limits=httpx.Limits(max_connections=4))
            for _ in range(max(1, args.concurrency // 4))
        ]
        self._next = 0
        self.sent_at: dict[bytes, float] = {}
        self.latencies: list[float] = []
        self.expected = 0
        self.received = 0
        self.done = asyncio.Event()

    async def post(self, url: str, path: str, body: Any, token: str = "") -> Any:
        headers = {"authorization": f"Bearer {token}"} if token else {}
        self._next += 1
        pool = self.pools[self._next % len(self.pools)]
        for attempt in range(5):
            try:
                r = await pool.post(url + path, json=body, headers=headers)
                break
            except httpx.TransportError:  # a keep-alive connection closed under us: retry
                if attempt == 4:
                    raise
        if r.status_code == 409 and r.json().get("error") == "duplicate":
            return r.json()  # a retry of a request that was answered before
        if r.status_code >= 300:
            raise RuntimeError(f"{path}: {r.status_code} {r.text}")
        return r.json()

    async def client(self, i: int) -> dict[str, Any]:
        cs = get_suite(1)
        sk, pk = cs.signature_scheme.generate(os.urandom)
        ident = f"client-{i}-{secrets.token_hex(3)}".encode()
        url = self.urls[i % len(self.urls)]
        proof = sign_with_label(cs, sk, REGISTER_LABEL, register_content(ident, pk))
        await self.post(
            url,
            "/v1/clients",
            {
                "identity": b64e(ident),
                "signature_key": b64e(pk),
                "cipher_suite": 1,
                "proof": b64e(proof),
            },
        )
        ch = (await self.post(url, "/v1/auth/challenge", {"identity": b64e(ident)}))["challenge"]
        sig = sign_with_label(cs, sk, AUTH_LABEL, auth_content(ident, b64d(ch, "c", max_len=64)))
        tok = await self.post(
            url,
            "/v1/auth/token",
            {"identity": b64e(ident), "challenge": ch, "signature": b64e(sig)},
        )
        return {"identity": ident, "token": tok["token"], "url": url}

    async def listen(self, c: dict[str, Any], ready: asyncio.Event) -> None:
        ws_url = c["url"].replace("http", "ws") + "/v1/ws"
        async with websockets.connect(ws_url, max_size=None) as ws:
            await ws.send(json.dumps({"type": "auth", "token": c["token"], "after": 0}))
            ready.set()
            async for raw in ws:
                now = time.perf_counter()
                msg = json.loads(raw)
                entries = msg.get("entries", [])
                for e in entries:
                    if e["kind"] != "application":
                        continue
                    t0 = self.sent_at.get(b64d(e["data"], "d", max_len=1 << 20)[-16:])
                    if t0 is not None:
                        self.latencies.append(now - t0)
                        self.received += 1
                if entries:
                    await ws.send(json.dumps({"type": "ack", "seq": entries[-1]["seq"]}))
                if self.received >= self.expected:
                    self.done.set()

    async def run(self) -> dict[str, float]:
        a = self.args
        sem = asyncio.Semaphore(a.concurrency)

        async def limited(coro: Any) -> Any:
            async with sem:
                return await coro

        clients = await asyncio.gather(*(limited(self.client(i)) for i in range(a.clients)))
        groups: list[tuple[bytes, list[dict[str, Any]]]] = []
        for gi in range(a.groups):
            members = clients[gi :: a.groups]
            gid = f"group-{gi}-{secrets.token_hex(3)}".encode()
            groups.append((gid, members))

        async def setup(gid: bytes, members: list[dict[str, Any]]) -> None:
            head = members[0]
            await self.post(head["url"], "/v1/groups", {"group_id": b64e(gid)}, head["token"])
            await self.post(
                head["url"],
                f"/v1/groups/{b64e(gid)}/commit",
                {
                    "commit": b64e(message(gid, 0, ContentType.commit, 64)),
                    "added": [b64e(m["identity"]) for m in members[1:]],
                },
                head["token"],
            )

        await asyncio.gather(*(setup(g, m) for g, m in groups))
        per_client = a.messages // a.clients
        self.expected = sum(per_client * len(m) * (len(m) - 1) for _, m in groups)
        readies = [asyncio.Event() for _ in clients]
        listeners = [
            asyncio.create_task(self.listen(c, r)) for c, r in zip(clients, readies, strict=True)
        ]
        await asyncio.gather(*(r.wait() for r in readies))

        async def sender(gid: bytes, c: dict[str, Any]) -> None:
            path = f"/v1/groups/{b64e(gid)}/messages"
            for _ in range(per_client):
                data = message(gid, 1, ContentType.application, a.size)
                async with sem:
                    self.sent_at[data[-16:]] = time.perf_counter()
                    await self.post(c["url"], path, {"message": b64e(data)}, c["token"])

        cpu0, load0 = cpu_seconds(self.pids), os.getloadavg()[0]
        t0 = time.perf_counter()
        await asyncio.gather(*(sender(g, c) for g, ms in groups for c in ms))
        sent_time = time.perf_counter() - t0
        await asyncio.wait_for(self.done.wait(), timeout=600)
        total_time = time.perf_counter() - t0
        cpu = cpu_seconds(self.pids) - cpu0
        load = (load0 + os.getloadavg()[0]) / 2

        async def committer(gid: bytes, head: dict[str, Any]) -> None:
            for epoch in range(1, 1 + a.commits):
                await self.post(
                    head["url"],
                    f"/v1/groups/{b64e(gid)}/commit",
                    {"commit": b64e(message(gid, epoch, ContentType.commit, 256))},
                    head["token"],
                )

        t1 = time.perf_counter()
        await asyncio.gather(*(committer(g, m[0]) for g, m in groups))
        commit_time = time.perf_counter() - t1
        for t in listeners:
            t.cancel()
        await asyncio.gather(*listeners, return_exceptions=True)
        for pool in self.pools:
            await pool.aclose()
        lat = sorted(self.latencies)
        sent = per_client * a.clients
        return {
            "messages": sent,
            "deliveries": self.received,
            "msgs_per_s": sent / total_time,
            "posts_per_s": sent / sent_time,
            "p50_ms": 1000 * statistics.median(lat),
            "p99_ms": 1000 * lat[min(len(lat) - 1, int(0.99 * len(lat)))],
            "commits_per_s": a.commits * a.groups / commit_time,
            "server_cpu_ms_per_msg": 1000 * cpu / sent,
            "load_average": load,
        }


async def bench(urls: list[str], pids: list[int], args: argparse.Namespace) -> dict[str, float]:
    return await Bench(urls, pids, args).run()


SETUPS = {"sqlite": ("sqlite", 1), "pg1": ("postgresql", 1), "pg2": ("postgresql", 2)}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--clients", type=int, default=300)
    p.add_argument("--groups", type=int, default=30)
    p.add_argument("--messages", type=int, default=20_000)
    p.add_argument("--commits", type=int, default=20, help="epochs committed per group")
    p.add_argument("--size", type=int, default=200, help="ciphertext bytes per message")
    p.add_argument("--concurrency", type=int, default=64, help="requests in flight")
    p.add_argument("--setups", default="sqlite,pg1,pg2")
    p.add_argument("--json", type=Path)
    p.add_argument("--md", type=Path)
    args = p.parse_args(argv)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.setups.split(","):
            kind, nodes = SETUPS[name]
            with contextlib.ExitStack() as stack:
                if kind == "sqlite":
                    db = f"sqlite:///{tmp}/{name}.sqlite3"
                else:
                    db = stack.enter_context(pg_schema())
                urls, pids = stack.enter_context(servers(db, nodes, Path(tmp)))
                print(
                    f"{name}: {args.clients} clients, {args.groups} groups, "
                    f"{args.messages} messages ...",
                    file=sys.stderr,
                )
                row = {"setup": name, "nodes": nodes, **asyncio.run(bench(urls, pids, args))}
                print(json.dumps(row), file=sys.stderr)
                rows.append(row)
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))
    table = [
        "| setup | nodes | messages | deliveries | msgs/s | p50 delivery ms | p99 delivery ms "
        "| commits/s | server CPU ms/msg | load avg |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        table.append(
            f"| {r['setup']} | {r['nodes']} | {r['messages']:,} | {r['deliveries']:,} | "
            f"{r['msgs_per_s']:,.0f} | {r['p50_ms']:.1f} | {r['p99_ms']:.1f} | "
            f"{r['commits_per_s']:,.0f} | {r['server_cpu_ms_per_msg']:.2f} | "
            f"{r['load_average']:.1f} |"
        )
    text = "\n".join(table)
    print(text)
    if args.md:
        args.md.write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
