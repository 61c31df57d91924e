"""The convergence-under-races scenario, shared by the SQLite and the two-node PostgreSQL
tests: many NetClients (one event loop, real HTTP and WebSockets to real server processes) in
one group; some commit (adds, removes, updates, timer changes) while all send."""

from __future__ import annotations

import asyncio
import random
from dataclasses import dataclass, field

from mls.app.client import GroupUpdated, Joined, MessageReceived
from mls.app.content import SinglePart
from mls.app.network import DeliveryError, NetClient, NetConfig
from mls.app.network.client import b64e
from mls.codec import decode
from mls.errors import InvalidState
from mls.framing.message import MLSMessage
from mls.framing.private import PrivateMessage
from tests.net.helpers import until


@dataclass
class Member:
    client: NetClient
    #: (group_seq of the commit that let us in, epoch we joined at, group_seq that removed us)
    spans: list[list[int]] = field(default_factory=list)
    received: list[tuple[int, str]] = field(default_factory=list)  # (group_seq, body)
    refused: int = 0
    reasons: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class SentMessage:
    group_seq: int
    epoch: int
    sender: bytes
    body: str


@dataclass
class Outcome:
    members: list[Member]
    sent: list[SentMessage]
    commits: int
    conflicts: int
    epoch: int


def _collect(m: Member, gid: bytes) -> None:
    while not m.client.events.empty():
        d = m.client.events.get_nowait()
        ev = d.event
        if d.refused is not None:
            m.refused += 1
            m.reasons.append(f"{d.group_seq}: {d.refused}")
        elif isinstance(ev, Joined) and ev.group_id == gid:
            assert d.group_seq is not None
            m.spans.append([d.group_seq, ev.epoch, 1 << 62])
        elif isinstance(ev, GroupUpdated) and ev.self_removed:
            assert d.group_seq is not None
            m.spans[-1][2] = d.group_seq
        elif isinstance(ev, MessageReceived) and ev.group_id == gid:
            part = ev.content.nested_part.body
            assert isinstance(part, SinglePart) and d.group_seq is not None
            m.received.append((d.group_seq, part.content.decode()))


async def run_race(
    urls: list[str],
    *,
    clients: int = 20,
    committers: int = 5,
    commits_each: int = 12,
    messages_each: int = 12,
    seed: int = 1,
) -> Outcome:
    rng = random.Random(seed)
    cfg = NetConfig(commit_attempts=200)
    names = [f"m{i:02d}".encode() for i in range(clients)]
    members = [
        Member(await NetClient.open(urls[i % len(urls)], n, config=cfg))
        for i, n in enumerate(names)
    ]
    for m in members:
        m.client.start()
    try:
        creator = members[0].client
        gid = await creator.create_group(b"race")
        members[0].spans.append([0, 0, 1 << 62])
        await creator.invite(gid, *names[1:])
        await until(lambda: all(gid in m.client.chat.group_ids() for m in members), 60)
        sent: list[SentMessage] = []
        stats = {"commits": 0, "conflicts": 0}
        removable = names[committers:]

        async def commit_loop(m: Member, r: random.Random) -> None:
            c = m.client
            for _ in range(commits_each):
                await asyncio.sleep(r.random() * 0.05)
                op = r.choice(["update", "timer", "remove", "add"])
                if op == "update":
                    ev = await c.update(gid)
                elif op == "timer":
                    ev = await c.set_timer(gid, r.choice([None, 3600, 7200]))
                elif op == "remove":
                    inside = [n for n in removable if n in c.members(gid)]
                    ev = await c.remove(gid, r.choice(inside)) if inside else None
                else:
                    outside = [n for n in removable if n not in c.members(gid)]
                    ev = await c.invite(gid, r.choice(outside)) if outside else None
                if ev is not None:
                    stats["commits"] += 1

        async def send_loop(m: Member, r: random.Random) -> None:
            c = m.client
            for i in range(messages_each):
                await asyncio.sleep(r.random() * 0.05)
                if gid not in c.chat.group_ids():
                    continue
                body = f"{c.identity.decode()}#{i}"
                try:
                    p = await c.send_text(gid, body)
                except (InvalidState, DeliveryError):
                    continue  # removed meanwhile (the server refused: not sent to anyone)
                if p.group_seq is not None:
                    wire = decode(MLSMessage, p.sent.data).body
                    assert isinstance(wire, PrivateMessage)
                    sent.append(SentMessage(p.group_seq, wire.epoch, c.identity, body))

        tasks = [send_loop(m, random.Random(rng.random())) for m in members]
        tasks += [commit_loop(m, random.Random(rng.random())) for m in members[:committers]]
        await asyncio.gather(*tasks)
        # Quiescence: everyone has processed its whole inbox, twice over.
        for _ in range(2):
            for m in members:
                await m.client.sync()
        state = await creator._request("GET", f"/v1/groups/{b64e(gid)}")
        for m in members:
            _collect(m, gid)
        stats["conflicts"] = sum(m.client.stats["lost_epochs"] for m in members)
        return Outcome(members, sent, stats["commits"], stats["conflicts"], int(state["epoch"]))
    finally:
        for m in members:
            await m.client.close()


def check(outcome: Outcome, gid: bytes = b"race") -> None:
    """Every current member is in the server's epoch with one epoch authenticator; every
    member has every message sent to it while it could read it, exactly once, in the group's
    order."""
    current = [m for m in outcome.members if m.spans and m.spans[-1][2] == 1 << 62]
    assert current
    auths = set()
    for m in current:
        g = m.client.chat.group(gid)
        assert g.epoch == outcome.epoch, (m.client.identity, g.epoch, outcome.epoch)
        auths.add(g.epoch_authenticator)
    assert len(auths) == 1
    for m in outcome.members:
        me = m.client.identity
        expected = sorted(
            (s.group_seq, s.body)
            for s in outcome.sent
            if s.sender != me
            and any(start < s.group_seq < end and s.epoch >= epoch for start, epoch, end in m.spans)
        )
        missing = sorted(set(expected) - set(m.received))
        extra = sorted(set(m.received) - set(expected))
        assert m.received == expected, (me, missing, extra, m.spans, m.reasons[:5])
