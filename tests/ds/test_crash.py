"""SIGKILL the server while clients send, at random points, many times: after each restart
nothing acknowledged is lost, nothing is delivered twice past the receiver's cursor, and the
group goes on (a commit of the next epoch is accepted)."""

from __future__ import annotations

import os
import random
import threading
import time
from pathlib import Path

import httpx
import pytest

from mls.constants import ContentType
from tests.ds.helpers import DsClient, Server, data_of, fake_message

# 50 restarts with --runslow (as CI runs), 5 in a quick developer run.
REPS_SLOW = int(os.environ.get("MLS_DS_CRASH_REPS", "50"))
REPS_QUICK = 5
SENDERS = 3


@pytest.mark.slow
def test_sigkill_loses_nothing(tmp_path: Path, request: pytest.FixtureRequest) -> None:
    reps = REPS_SLOW if request.config.getoption("--runslow") else REPS_QUICK
    rnd = random.Random(int.from_bytes(os.urandom(4), "big"))
    db = f"sqlite:///{tmp_path}/ds.sqlite3"
    server = Server(db, tmp_path / "server.log").start()
    try:
        senders = [DsClient.new(server.url) for _ in range(SENDERS)]
        receiver = DsClient.new(server.url)
        g = b"crash-group"
        senders[0].create_group(g)
        added = [s.identity for s in senders[1:]] + [receiver.identity]
        assert senders[0].commit(g, fake_message(g, 0, ContentType.commit), added=added)
        epoch = 1
        acknowledged: set[bytes] = set()  # messages the server answered 200 (or duplicate) for
        received: list[bytes] = []  # what the receiver processed, in order
        cursor = 0
        pending: dict[int, bytes] = {}  # per sender: a message whose answer was lost

        for rep in range(reps):
            stop = threading.Event()

            def send(i: int, stop: threading.Event = stop, epoch: int = epoch) -> None:
                s = senders[i]
                while not stop.is_set():
                    msg = pending.get(i) or fake_message(g, epoch, ContentType.application)
                    pending[i] = msg
                    try:
                        r = s.post(g, msg)
                    except httpx.HTTPError:
                        return  # the server died: the answer is unknown, retry after restart
                    assert r.status_code == 200 or r.json()["error"] == "duplicate", r.text
                    acknowledged.add(msg)
                    del pending[i]

            threads = [threading.Thread(target=send, args=(i,)) for i in range(SENDERS)]
            for t in threads:
                t.start()
            # Meanwhile the receiver reads and acknowledges, until the kill.
            deadline = time.monotonic() + rnd.uniform(0.02, 0.3)
            while time.monotonic() < deadline:
                try:
                    entries = receiver.fetch(after=cursor, limit=rnd.randint(1, 50))
                    for e in entries:
                        assert e["seq"] == cursor + 1, (rep, e["seq"], cursor)
                        if e["kind"] == "application":
                            received.append(data_of(e))
                        cursor = e["seq"]
                    if entries and rnd.random() < 0.5:
                        receiver.ack(cursor)
                except httpx.HTTPError:
                    break
            server.kill()
            stop.set()
            for t in threads:
                t.join()
            server = Server(db, tmp_path / "server.log", port=server.port).start()
            # The group goes on: the next epoch's commit is accepted, once.
            commit = fake_message(g, epoch, ContentType.commit)
            r = senders[rep % SENDERS].commit(g, commit)
            assert r.status_code == 200, r.text
            epoch += 1
            again = senders[(rep + 1) % SENDERS].commit(g, commit)  # a replay: refused
            assert again.status_code == 409 and again.json()["error"] == "duplicate"
        # Drain: re-send what was in flight, then read everything past the cursor.
        for i, msg in list(pending.items()):
            r = senders[i].post(g, msg)
            assert r.status_code == 200 or r.json()["error"] in ("duplicate", "stale_epoch")
            if r.status_code == 200 or r.json()["error"] == "duplicate":
                acknowledged.add(msg)
        for e in receiver.fetch_all(after=cursor):
            assert e["seq"] == cursor + 1
            cursor = e["seq"]
            if e["kind"] == "application":
                received.append(data_of(e))
        assert len(received) == len(set(received)), "a message was delivered twice"
        assert acknowledged <= set(received), "an acknowledged message was lost"
        assert len(acknowledged) > reps
    finally:
        server.stop()
