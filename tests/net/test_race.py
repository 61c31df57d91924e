"""Convergence under races (20 clients, 5 committing adds, removes, updates and timer changes
while all send; about 300 steps), against real server processes on loopback."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from tests.ds.helpers import Server, pg_schema, running
from tests.net.race import Outcome, check, run_race


def _report(name: str, out: Outcome, start: float) -> None:
    print(
        f"{name}: {len(out.members)} clients, {out.commits} commits ({out.conflicts} lost to a "
        f"rival and re-created), {len(out.sent)} messages, final epoch {out.epoch}, "
        f"{time.monotonic() - start:.1f}s"
    )


def test_race_sqlite(server: Server) -> None:
    start = time.monotonic()
    out = asyncio.run(run_race([server.url], seed=7))
    check(out)
    _report("race (SQLite)", out, start)
    assert out.commits >= 30 and len(out.sent) >= 200 and out.conflicts > 0


def test_race_postgres_two_nodes(tmp_path: Path) -> None:
    """The same on two server nodes sharing one PostgreSQL database, clients spread over both
    (commits race across nodes; pushes cross them by LISTEN/NOTIFY)."""
    args = ("--rate", "100000", "--burst", "100000", "--poll-interval", "0.5")
    with (
        pg_schema() as url,
        running(url, tmp_path / "a.log", "--node", "a", *args) as a,
        running(url, tmp_path / "b.log", "--node", "b", *args) as b,
    ):
        start = time.monotonic()
        out = asyncio.run(run_race([a.url, b.url], seed=11))
        check(out)
        _report("race (PostgreSQL, 2 nodes)", out, start)
        assert out.commits >= 30 and len(out.sent) >= 200 and out.conflicts > 0
