"""Two nodes on one PostgreSQL database: clients spread over both, pushed to by WebSocket
(notifications cross nodes by LISTEN/NOTIFY; the idle poll is set far beyond the test), one
node SIGKILLed mid-run, its clients reconnect to the other with their cursor: nothing lost,
nothing twice, every client sees the group's order."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import httpx
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from mls.constants import ContentType
from tests.ds.helpers import DsClient, data_of, fake_message, pg_schema, running

CLIENTS = 6
MESSAGES = 30


class Member:
    def __init__(self, urls: list[str], home: int) -> None:
        self.urls = urls
        self.node = home
        self.client = DsClient.new(urls[home])
        self.cursor = 0
        self.received: list[tuple[int, bytes]] = []  # (group_seq, data)
        self.sent: list[bytes] = []
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.reconnects = 0

    def failover(self) -> None:
        self.node = 1 - self.node
        self.client.url = self.urls[self.node]

    def listen(self) -> None:
        while not self.stop.is_set():
            url = self.urls[self.node].replace("http", "ws") + "/v1/ws"
            try:
                with connect(url, open_timeout=5) as ws:
                    ws.send(
                        json.dumps(
                            {"type": "auth", "token": self.client.token, "after": self.cursor}
                        )
                    )
                    while not self.stop.is_set():
                        try:
                            msg = json.loads(ws.recv(timeout=0.2))
                        except TimeoutError:
                            continue
                        for e in msg.get("entries", []):
                            assert e["seq"] == self.cursor + 1, (e["seq"], self.cursor)
                            with self.lock:
                                self.received.append((e["group_seq"], data_of(e)))
                                self.cursor = e["seq"]
                        if msg.get("entries"):
                            ws.send(json.dumps({"type": "ack", "seq": self.cursor}))
            except (ConnectionClosed, OSError):
                self.reconnects += 1
                self.failover()
                time.sleep(0.1)


def test_two_nodes_one_killed(tmp_path: Path) -> None:
    with pg_schema() as url:
        args = ("--poll-interval", "60")
        with (
            running(url, tmp_path / "a.log", "--node", "a", *args) as a,
            running(url, tmp_path / "b.log", "--node", "b", *args) as b,
        ):
            urls = [a.url, b.url]
            members = [Member(urls, i % 2) for i in range(CLIENTS)]
            g = b"two-nodes"
            members[0].client.create_group(g)
            assert (
                members[0]
                .client.commit(
                    g,
                    fake_message(g, 0, ContentType.commit),
                    added=[m.client.identity for m in members[1:]],
                )
                .status_code
                == 200
            )
            listeners = [threading.Thread(target=m.listen) for m in members]
            for t in listeners:
                t.start()

            def send(m: Member) -> None:
                for _ in range(MESSAGES):
                    msg = fake_message(g, 1, ContentType.application)
                    while True:
                        try:
                            r = m.client.post(g, msg)
                            assert r.status_code == 200 or r.json()["error"] == "duplicate"
                            break
                        except httpx.HTTPError:
                            m.failover()  # the node died: the same message on the other one
                    m.sent.append(msg)
                    time.sleep(0.01)

            senders = [threading.Thread(target=send, args=(m,)) for m in members]
            for t in senders:
                t.start()
            time.sleep(0.4)
            a.kill()
            for t in senders:
                t.join()
            everything = {msg for m in members for msg in m.sent}
            deadline = time.monotonic() + 30
            for m in members:
                want = everything - set(m.sent)
                while time.monotonic() < deadline:
                    with m.lock:
                        if {d for _, d in m.received} >= want:
                            break
                    time.sleep(0.05)
            for m in members:
                m.stop.set()
            for t in listeners:
                t.join()
            for m in members:
                got = [d for _, d in m.received]
                assert len(got) == len(set(got)), "delivered twice"
                assert set(got) == everything - set(m.sent), "lost or foreign messages"
                seqs = [s for s, _ in m.received]
                assert seqs == sorted(seqs), "out of the group's order"
            assert sum(m.reconnects for m in members) >= CLIENTS // 2
