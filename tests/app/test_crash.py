"""Crash safety of the SQLite-backed client: SIGKILL at random points, then restart.

A victim client process works through its inbox (application messages, commits that add and
remove members, change the disappearing timer and rekey), storing every step in SQLite. The
test forks it, kills it with SIGKILL at a random instant (half the runs: after a random number
of SQL statements, i.e. inside a transaction; the other half: after a random delay, which can land
inside SQLite's commit), and restarts it. After every kill the restarted state must be exactly
the state after some prefix of the inbox (same epoch and epoch authenticator as the group had
then, the same stored messages), the cursor never goes back, the next child goes on from there,
and no secret that the previous restart's state held and the current one no longer holds is
left anywhere in the database directory.

A second scenario kills the victim while it *sends*: every message it handed out must decrypt
at the receiver, so no message key was ever used twice across restarts.
"""

from __future__ import annotations

import os
import random
import signal
import time
import traceback
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import NoReturn

import pytest

from mls.app import ChatClient, MessageReceived, SQLiteStorage
from mls.app.delivery import InboxEntry

from .test_storage import secret_candidates, stored_blob, windows
from .world import GROUP, World

pytestmark = pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")

SEED = 20_240_901


@dataclass(frozen=True)
class Expect:
    epoch: int
    authenticator: bytes
    message_ids: tuple[bytes, ...]


@dataclass
class Script:
    db: Path
    initial: bytes  # the database file right after the victim joined
    inbox: list[InboxEntry]
    expect: dict[int, Expect]  # inbox cursor -> state after processing entries 1..cursor
    now: int


def build_script(tmp: Path, steps: int, seed: int) -> Script:
    rng = random.Random(seed)
    w = World(tmp)
    for name in ("alice", "bob", "carol"):
        w.add(name, key_packages=1)
    w.add("eve", key_packages=steps // 4 + 2)
    w.add("vic", sqlite=True)
    w.create("alice", ["bob", "carol", "vic"], timer=3600)
    db = victim_db(w)
    initial = db.read_bytes()
    members = ["alice", "bob", "carol"]
    others = [n for n in w.clients if n != "vic"]
    message_ids: list[bytes] = []
    expect: dict[int, Expect] = {}

    def record() -> None:
        g = w["alice"].group(GROUP)
        cursor = len(w.ds.fetch(b"vic"))
        expect[cursor] = Expect(g.epoch, g.epoch_authenticator, tuple(message_ids))

    record()
    for step in range(steps):
        roll = rng.random()
        actor = rng.choice(members)
        if roll < 0.8:
            sent = w.say(actor, f"step {step} from {actor}")
            message_ids.append(sent.message_id)
        elif roll < 0.87:
            if "eve" in members and actor != "eve":
                w.commit(actor, remove=["eve"])
                members.remove("eve")
            elif "eve" not in members:
                w.commit(actor, add=["eve"])
                members.append("eve")
            else:
                w.commit(actor)
        elif roll < 0.93:
            w.commit(actor, timer=rng.choice([60, 3600, None]))
        else:
            w.commit(actor)
        w.pump(*others)
        record()
    inbox = w.ds.fetch(b"vic")
    assert [e.seq for e in inbox] == list(range(1, len(inbox) + 1))
    return Script(db=db, initial=initial, inbox=inbox, expect=expect, now=w.now)


def victim_db(w: World) -> Path:
    storage = w.storages["vic"]
    assert isinstance(storage, SQLiteStorage)
    w["vic"].close()
    return Path(storage.path)


def fork_child(body: Callable[[], None]) -> int:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # fork in a threaded process (3.12)
        pid = os.fork()
    if pid == 0:
        _child(body)
    return pid


def _child(body: Callable[[], None]) -> NoReturn:
    code = 0
    try:
        body()
    except BaseException:
        traceback.print_exc()
        code = 3
    os._exit(code)


def kill_on_statement(storage: SQLiteStorage, n: int) -> None:
    """SIGKILL this process when SQLite is about to run its ``n``-th statement."""
    count = 0

    def trace(_stmt: str) -> None:
        nonlocal count
        count += 1
        if count == n:
            os.kill(os.getpid(), signal.SIGKILL)

    storage._db.set_trace_callback(trace)


def run_and_kill(rng: random.Random, body: Callable[[int | None], None], delay: float) -> str:
    """Run ``body`` in a child and kill it; returns "killed" or "finished"."""
    on_statement = rng.randrange(1, 80) if rng.random() < 0.5 else None
    pid = fork_child(lambda: body(on_statement))
    if on_statement is None:
        time.sleep(rng.uniform(0, delay))
        os.kill(pid, signal.SIGKILL)
    _, status = os.waitpid(pid, 0)
    if os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL:
        return "killed"
    assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0, f"child failed: {status}"
    return "finished"


def reset_db(script: Script) -> None:
    for p in script.db.parent.iterdir():
        p.unlink()
    script.db.write_bytes(script.initial)


def crash_loop(tmp: Path, *, kills: int, steps: int) -> dict[str, int]:
    script = build_script(tmp, steps, SEED)
    rng = random.Random(SEED + 1)
    stats = {"kills": 0, "restarts": 0, "cycles": 0, "max_cursor": 0}
    reset_db(script)
    last_cursor = 0
    last_state: bytes | None = None

    def victim(on_statement: int | None) -> None:
        storage = SQLiteStorage(script.db)
        if on_statement is not None:
            kill_on_statement(storage, on_statement)
        client = ChatClient.open(storage)
        for entry in script.inbox[client.cursor :]:
            client.receive(entry.data, now=script.now, seq=entry.seq)
        storage.close()

    while stats["kills"] < kills:
        outcome = run_and_kill(rng, victim, delay=0.03)
        stats["restarts"] += 1
        if outcome == "killed":
            stats["kills"] += 1
        # The restart: open what the crash left (SQLite rolls back an unfinished transaction).
        storage = SQLiteStorage(script.db)
        client = ChatClient.open(storage)
        cursor = client.cursor
        assert cursor >= last_cursor, "the cursor went back: an acknowledged change was lost"
        want = script.expect[cursor]
        group = client.group(GROUP)
        assert (group.epoch, group.epoch_authenticator) == (want.epoch, want.authenticator)
        assert tuple(m.message_id for m in storage.messages(GROUP)) == want.message_ids
        snap = storage.load()
        state = stored_blob(snap.groups[GROUP])
        if last_state is not None and cursor > last_cursor:
            kept = state + (snap.client or b"")
            current = windows(kept, 16) | windows(kept, 32)
            gone = secret_candidates(last_state) - current
            disk = b"".join(p.read_bytes() for p in script.db.parent.iterdir())
            leaked = [c.hex() for c in gone if c in disk]
            assert not leaked, f"spent secrets still on disk after restart at {cursor}"
        storage.close()
        assert [p.name for p in script.db.parent.iterdir()] == [script.db.name]
        stats["max_cursor"] = max(stats["max_cursor"], cursor)
        last_cursor, last_state = cursor, state
        if outcome == "finished":
            assert cursor == len(script.inbox)
            stats["cycles"] += 1
            reset_db(script)
            last_cursor, last_state = 0, None
    return stats


def test_sigkill_while_processing_commits_and_messages(tmp_path: Path) -> None:
    stats = crash_loop(tmp_path, kills=200, steps=150)
    assert stats["kills"] >= 200
    assert stats["cycles"] >= 1, "the victim never got to the end of its inbox"


@pytest.mark.slow
def test_sigkill_while_processing_long(tmp_path: Path, request: pytest.FixtureRequest) -> None:
    if not request.config.getoption("--runslow"):
        pytest.skip("long crash test: run with --runslow")
    stats = crash_loop(tmp_path, kills=2000, steps=400)
    assert stats["kills"] >= 2000 and stats["cycles"] >= 3


def _read_outbox(path: Path) -> list[bytes]:
    data = path.read_bytes() if path.exists() else b""
    out, pos = [], 0
    while pos + 4 <= len(data):
        n = int.from_bytes(data[pos : pos + 4], "big")
        if pos + 4 + n > len(data):
            break  # a record torn by the kill: never handed out
        out.append(data[pos + 4 : pos + 4 + n])
        pos += 4 + n
    return out


def test_sigkill_while_sending_never_reuses_a_message_key(tmp_path: Path) -> None:
    w = World(tmp_path)
    w.add("bob")
    w.add("vic", sqlite=True)
    w.create("bob", ["vic"])
    db = victim_db(w)
    outbox = tmp_path.parent / f"{tmp_path.name}-outbox"
    rng = random.Random(SEED + 2)
    total = 60

    def victim(on_statement: int | None) -> None:
        storage = SQLiteStorage(db)
        if on_statement is not None:
            kill_on_statement(storage, on_statement)
        client = ChatClient.open(storage)
        with outbox.open("ab", buffering=0) as out:
            for i in range(total):
                sent = client.send_text(GROUP, f"vic {i} {os.getpid()}", now=w.now)
                # Handed out (to the "network") only after send() returned, i.e. was stored.
                out.write(len(sent.data).to_bytes(4, "big") + sent.data)

    kills = 0
    while kills < 50:
        if run_and_kill(rng, victim, delay=0.02) == "killed":
            kills += 1
    handed_out = _read_outbox(outbox)
    assert len(handed_out) > 50
    received = []
    for data in handed_out:
        ev = w["bob"].receive(data, now=w.now)  # a reused key would fail here
        assert isinstance(ev, MessageReceived)
        received.append(ev.message.content)
    assert len(set(received)) == len(received)
    # Every message handed out is in the victim's own stored history.
    storage = SQLiteStorage(db)
    mine = {m.content for m in storage.messages(GROUP) if m.outgoing}
    storage.close()
    assert set(received) <= mine
