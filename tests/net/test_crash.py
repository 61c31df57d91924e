"""A client SIGKILLed at random points (while it catches up, receives, commits and sends),
100 times: each restart catches up and the group converges, nothing lost, nothing twice."""

from __future__ import annotations

import asyncio
import json
import os
import random
import signal
import sys
import time
from pathlib import Path

import pytest

from mls.app.network import NetClient
from tests.ds.helpers import Server
from tests.net.helpers import texts, until

KILLS = int(os.environ.get("MLS_NET_KILLS", "100"))
ROOT = Path(__file__).resolve().parents[2]


class Zygote:
    """tests/net/crash_worker.py: one process that forks a client per command."""

    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc

    @classmethod
    async def start(cls, url: str, data: Path, log: Path) -> Zygote:
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "tests.net.crash_worker",
            url,
            str(data),
            str(log),
            cwd=ROOT,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
        )
        return cls(proc)

    async def line(self, timeout: float = 60) -> str:
        assert self.proc.stdout is not None
        raw = await asyncio.wait_for(self.proc.stdout.readline(), timeout)
        assert raw, "the worker ended"
        return raw.decode().strip()

    async def command(self, mode: str) -> int:
        assert self.proc.stdin is not None
        self.proc.stdin.write(mode.encode() + b"\n")
        await self.proc.stdin.drain()
        return int(await self.line())

    async def settle(self) -> dict[str, object]:
        await self.command("settle")
        state: dict[str, object] = json.loads(await self.line())
        assert await self.line() == "exit 0"
        return state

    async def close(self) -> None:
        if self.proc.returncode is None:
            assert self.proc.stdin is not None
            self.proc.stdin.close()
            await asyncio.wait_for(self.proc.wait(), 30)


@pytest.mark.slow
def test_sigkill_restarts_converge(server: Server, tmp_path: Path) -> None:
    data, log = tmp_path / "victim.db", tmp_path / "victim.log"
    rng = random.Random(5)

    async def main() -> None:
        z = await Zygote.start(server.url, data, log)
        await z.settle()  # registers, publishes KeyPackages
        peer = await NetClient.open(server.url, b"peer", data=tmp_path / "peer.db")
        peer.start()
        gid = await peer.create_group(b"crash")
        await peer.invite(gid, b"victim")
        sent: list[str] = []
        stop = asyncio.Event()

        async def chatter() -> None:
            i = 0
            while not stop.is_set():
                i += 1
                if i % 5 == 0:
                    await peer.update(gid)
                else:
                    p = await peer.send_text(gid, f"p-{i}")
                    assert p.group_seq is not None
                    sent.append(f"p-{i}")
                await asyncio.sleep(rng.random() * 0.1)

        talk = asyncio.create_task(chatter())
        start = time.monotonic()
        during_open = 0
        for _ in range(KILLS):
            pid = await z.command("run")
            if rng.random() < 0.2:  # while it opens: catches up, resolves, re-posts
                during_open += 1
                await asyncio.sleep(rng.uniform(0.0, 0.5))
            else:
                assert await z.line() == "ready"
                await asyncio.sleep(rng.uniform(0.0, 0.8))
            os.kill(pid, signal.SIGKILL)
            status = await z.line()
            if status == "ready":
                status = await z.line()
            assert status == f"exit {signal.SIGKILL}", status  # killed, not dead by itself
        stop.set()
        await talk
        elapsed = time.monotonic() - start
        state = await z.settle()
        await z.close()
        await peer.sync()
        await until(lambda: peer.chat.group(gid).epoch == state["epoch"], 30)
        assert state["pending"] is False and state["buffered"] == state["outbox"] == 0
        assert state["auth"] == peer.chat.group(gid).epoch_authenticator.hex()
        mine = [m for m in state["messages"] if isinstance(m, str)]
        # The peer's messages: each once, in order; the victim's accepted ones likewise.
        assert [m for m in mine if m.startswith("p-")] == sent
        accepted = log.read_text().split()
        theirs = [m for m in texts(peer, gid) if m.startswith("v-")]
        assert len(set(theirs)) == len(theirs)
        assert set(accepted) <= set(theirs)
        own = [m for m in mine if m.startswith("v-")]
        print(
            "victim only:",
            sorted(set(own) - set(theirs)),
            "peer only:",
            sorted(set(theirs) - set(own)),
            state,
        )
        assert own == theirs  # shown once, same order
        print(
            f"{KILLS} SIGKILLs ({during_open} while opening) in {elapsed:.0f}s; victim ended at "
            f"epoch {state['epoch']} with {len(mine)} messages ({len(theirs)} its own), "
            f"peer sent {len(sent)}"
        )
        await peer.close()

    asyncio.run(main())
