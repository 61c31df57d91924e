"""``python -m mls chat`` driven through pseudo-terminals: two people create a group, invite,
chat (reply, react, edit), set the disappearing timer and see a message disappear, leave."""

from __future__ import annotations

import os
import pty
import re
import select
import subprocess
import sys
import time
from pathlib import Path

from mls.app.network.chat import parse_timer
from tests.ds.helpers import Server

ROOT = Path(__file__).resolve().parents[2]


class Term:
    """A process on a pseudo-terminal: type lines, wait for output."""

    def __init__(self, *args: str) -> None:
        self.master, slave = pty.openpty()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "mls", *args],
            stdin=slave,
            stdout=slave,
            stderr=slave,
            cwd=ROOT,
            close_fds=True,
        )
        os.close(slave)
        self.buf = ""
        self.last = ""

    def type(self, line: str) -> None:
        os.write(self.master, line.encode() + b"\n")

    def expect(self, pattern: str, timeout: float = 30) -> re.Match[str]:
        rx = re.compile(pattern)
        deadline = time.monotonic() + timeout
        while True:
            m = rx.search(self.buf)
            if m is not None:
                self.last = self.buf[: m.end()]  # what was shown up to the match
                self.buf = self.buf[m.end() :]
                return m
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"no {pattern!r} in:\n{self.buf[-3000:]}")
            ready, _, _ = select.select([self.master], [], [], left)
            if ready:
                try:
                    chunk = os.read(self.master, 65536)
                except OSError:
                    chunk = b""
                if not chunk:
                    raise AssertionError(f"exited before {pattern!r}:\n{self.buf[-3000:]}")
                self.buf += chunk.decode("utf-8", "replace").replace("\r\n", "\n")

    def close(self, timeout: float = 20) -> int | None:
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return None
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait()
            os.close(self.master)


def test_parse_timer() -> None:
    assert parse_timer("30s") == 30 and parse_timer("5m") == 300 and parse_timer("2") == 2
    assert parse_timer("off") is None


def test_two_people_chat(server: Server, tmp_path: Path) -> None:
    ann = Term("chat", "--server", server.url, "--name", "ann", "--data", str(tmp_path / "a"))
    ben = Term("chat", "--server", server.url, "--name", "ben", "--data", str(tmp_path / "b"))
    try:
        ann.expect(r"ann connected")
        ben.expect(r"ben connected")
        ann.type("/create lounge")
        ann.expect(r"\* created lounge")
        ann.type("/invite ben")
        ann.expect(r"\* invited ben")
        ben.expect(r"\* joined lounge \(members: ann, ben\)")
        ann.type("hello ben")
        n = ben.expect(r"\[lounge\] #(\d+) ann: hello ben").group(1)
        ben.type(f"/reply {n} hi ann")
        r = ann.expect(r"\[lounge\] #(\d+) ben: hi ann \(reply to #\d+\)").group(1)
        ann.type(f"/react {r} 👍")
        ben.expect(r"ann: 👍 \(reaction to #\d+\)")
        ben.type(f"/edit {r} hi ann!")
        ann.expect(r"ben: hi ann! \(edits #\d+\)")
        ann.type("/history")
        ann.expect(r"ben: hi ann! \(edited\) 👍")
        ann.type("/members")
        ann.expect(r"lounge: ann, ben; disappearing timer off")
        ann.type("/call")
        ann.expect(r"\* in the call of lounge \(there: ann\)")
        ben.type("/call")
        ben.expect(r"\* in the call of lounge \(there: ann, ben\)")
        ben.type("/frame hello from ben's microphone")
        ann.expect(r"\[call lounge\] ben: hello from ben's microphone \(epoch \d+\)")
        for t in (ann, ben):
            t.type("/hangup")
            t.expect(r"\* left the call")
        ann.type("/timer 5s")
        ann.expect(r"timer set to 5s")
        ben.expect(r"disappearing timer of lounge: 5s")
        ann.type("this will vanish")
        m = ben.expect(r"#(\d+) ann: this will vanish \[expires in \d+s\]").group(1)
        ben.type("/history")
        ben.expect(r"ann: this will vanish \[expires in \d+s\]")
        ben.expect(rf"\* message #{m} disappeared", timeout=15)
        ann.expect(r"\* message #\d+ disappeared", timeout=15)
        ben.type("/history")
        ben.type("/members")
        ben.expect(r"lounge: ann, ben; disappearing timer 5s")
        assert "ann: hello ben" in ben.last  # the history was shown ...
        assert "this will vanish" not in ben.last  # ... without the expired message
        ben.type("/leave")
        ben.expect(r"asked lounge to remove you")
        ann.expect(r"ben asked to leave")
        ann.expect(r"\* ben left lounge")
        ben.expect(r"you are no longer in lounge; its state is deleted")
        ann.type("/members")
        ann.expect(r"lounge: ann; disappearing timer 5s")
        for t in (ann, ben):
            t.type("/quit")
            t.expect(r"\* bye")
    except BaseException:
        ann.close(0)
        ben.close(0)
        raise
    assert ann.close() == 0
    assert ben.close() == 0
