"""``python -m mls demo --network``: the demo's story across processes, through a real server.

It starts a delivery service (``python -m mls serve``, SQLite in a temporary directory) and
four ``python -m mls chat`` processes on loopback, types into them as a person would and reads
what they print: a group chat (a reply, a reaction, an edit), disappearing messages, an add and
a remove, and a call whose SFrame keys change with the epoch. It prints what each client shows
and what the server logged (sizes and epochs only), and finally checks that no plaintext of
the run occurs anywhere in the server's database files. Exit status 0 means every check held.
"""

from __future__ import annotations

import json
import os
import queue
import re
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path
from typing import IO, TextIO

__all__ = ["main"]


class DemoFailed(Exception):
    """A check of the demo did not hold."""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONIOENCODING"] = "utf-8"
    env["PYTHONUNBUFFERED"] = "1"
    return env


class Person:
    """One ``python -m mls chat`` process, typed into through a pipe."""

    def __init__(self, name: str, url: str, data: Path, out: TextIO) -> None:
        self.name = name
        self.out = out
        self.proc = subprocess.Popen(  # noqa: S603 (our own interpreter and module)
            [
                sys.executable,
                "-m",
                "mls",
                "chat",
                "--server",
                url,
                "--name",
                name,
                "--data",
                str(data),
            ],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            encoding="utf-8",
            env=_env(),
        )
        self.lines: queue.Queue[str | None] = queue.Queue()
        assert self.proc.stdout is not None
        threading.Thread(target=self._read, args=(self.proc.stdout,), daemon=True).start()

    def _read(self, stream: IO[str]) -> None:
        for line in stream:
            self.lines.put(line.rstrip("\n"))
        self.lines.put(None)

    def type(self, line: str) -> None:
        print(f"  {self.name:>5} > {line}", file=self.out)
        assert self.proc.stdin is not None
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()

    def expect(self, pattern: str, timeout: float = 30) -> re.Match[str]:
        """Read (and print) this person's screen until a line matches ``pattern``."""
        rx = re.compile(pattern)
        deadline = time.monotonic() + timeout
        while True:
            try:
                line = self.lines.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                raise DemoFailed(f"{self.name} never showed {pattern!r}") from None
            if line is None:
                raise DemoFailed(f"{self.name}'s chat exited before showing {pattern!r}")
            print(f"  {self.name:>5} | {line}", file=self.out)
            m = rx.search(line)
            if m is not None:
                return m

    def quit(self) -> int:
        if self.proc.poll() is None:
            self.type("/quit")
            try:
                return self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        return self.proc.wait()


class NetworkDemo:
    def __init__(self, tmp: Path, out: TextIO) -> None:
        self.tmp = tmp
        self.out = out
        self.db = tmp / "ds.sqlite3"
        self.log = tmp / "server.log"
        self.log_pos = 0
        self.url = f"http://127.0.0.1:{_free_port()}"
        self.server: subprocess.Popen[bytes] | None = None
        self.people: dict[str, Person] = {}
        #: Every plaintext of the run: the server's files must hold none of them.
        self.plaintexts: list[str] = []

    def say(self, line: str = "") -> None:
        print(line, file=self.out, flush=True)

    def section(self, title: str) -> None:
        self.server_saw()
        self.say()
        self.say(f"== {title} " + "=" * max(0, 70 - len(title)))

    def check(self, cond: bool, what: str) -> None:
        if not cond:
            raise DemoFailed(what)
        self.say(f"  ok: {what}")

    def ok(self, what: str) -> None:
        """A check made by the ``expect`` calls before it (each raises if its line is not
        shown in time)."""
        self.say(f"  ok: {what}")

    def server_saw(self) -> None:
        """Print the server's log lines since the last call (it logs sizes, never bytes)."""
        if not self.log.exists():
            return
        with self.log.open("rb") as f:
            f.seek(self.log_pos)
            data = f.read()
            self.log_pos = f.tell()
        for raw in data.decode("utf-8", "replace").splitlines():
            try:
                rec = json.loads(raw)
            except ValueError:
                continue
            event = rec.get("event")
            if event in ("commit", "message", "publish_key_packages", "claim_key_packages"):
                fields = " ".join(
                    f"{k}={v}" for k, v in rec.items() if k not in ("ts", "event", "client")
                )
                self.say(f"  [server] {event} from {rec.get('client')}: {fields}")
            elif event in ("call_join", "call_leave", "create_group", "register"):
                self.say(f"  [server] {event} {rec.get('client')}")

    def start_server(self) -> None:
        log = self.log.open("ab")
        self.server = subprocess.Popen(  # noqa: S603 (our own interpreter and module)
            [
                sys.executable,
                "-m",
                "mls",
                "serve",
                "--port",
                self.url.rsplit(":", 1)[1],
                "--database",
                f"sqlite:///{self.db}",
                "--poll-interval",
                "0.5",
            ],
            stdout=log,
            stderr=log,
            stdin=subprocess.DEVNULL,
            env=_env(),
        )
        log.close()
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.server.poll() is not None:
                raise DemoFailed(f"the server exited: {self.log.read_text()[-2000:]}")
            try:
                with urllib.request.urlopen(self.url + "/health", timeout=1) as r:  # noqa: S310
                    if r.status == 200:
                        return
            except OSError:
                time.sleep(0.1)
        raise DemoFailed("the server did not start")

    def person(self, name: str) -> Person:
        p = self.people[name] = Person(name, self.url, self.tmp / f"{name}.sqlite3", self.out)
        p.expect(rf"\* {name} connected")
        return p

    def send(self, who: str, text: str) -> None:
        self.plaintexts.append(text)
        self.people[who].type(text)

    def run(self) -> None:
        self.section("1. A delivery service and four client processes on loopback")
        self.start_server()
        self.say(f"  server {self.url}, database {self.db.name}")
        alice, bob, carol, dave = (self.person(n) for n in ("alice", "bob", "carol", "dave"))
        alice.type("/create team")
        alice.expect(r"\* created team")
        alice.type("/invite bob")
        alice.expect(r"\* invited bob")
        alice.type("/invite carol")
        alice.expect(r"\* invited carol")
        bob.expect(r"\* joined team")
        carol.expect(r"\* joined team \(members: alice, bob, carol\)")

        self.section("2. Chat: a message, a reply, a reaction, an edit")
        self.send("alice", "Hello team, lunch at noon?")
        mine = alice.expect(r"#(\d+) alice: Hello team").group(1)
        n = bob.expect(r"#(\d+) alice: Hello team, lunch at noon\?").group(1)
        carol.expect(r"alice: Hello team, lunch at noon\?")
        self.plaintexts.append("Yes! The usual place.")
        bob.type(f"/reply {n} Yes! The usual place.")
        bob.expect(r"bob: Yes! The usual place\. \(reply to")
        c = carol.expect(r"#\d+ bob: Yes! The usual place\.")
        del c
        carol.type(f"/react {n} \N{THUMBS UP SIGN}")
        carol.expect(r"carol: \N{THUMBS UP SIGN} \(reaction to")
        self.plaintexts.append("Hello team, lunch at 12:30?")
        alice.type(f"/edit {mine} Hello team, lunch at 12:30?")
        alice.expect(r"alice: Hello team, lunch at 12:30\? \(edits")
        bob.expect(r"alice: Hello team, lunch at 12:30\? \(edits #\d+\)")
        carol.expect(r"alice: Hello team, lunch at 12:30\? \(edits #\d+\)")
        for p in (alice, bob, carol):
            p.type("/history")
            p.expect(r"alice: Hello team, lunch at 12:30\? \(edited\) \N{THUMBS UP SIGN}")
            p.expect(r"bob: Yes! The usual place\.")
        self.ok("alice, bob and carol see the same conversation (edited, with reaction)")

        self.section("3. Disappearing messages: bob sets a 5 s timer")
        bob.type("/timer 5s")
        bob.expect(r"timer set to 5s")
        alice.expect(r"disappearing timer of team: 5s")
        carol.expect(r"disappearing timer of team: 5s")
        self.send("carol", "The door code is 4711.")
        carol.expect(r"carol: The door code is 4711\. \[expires in \d+s\]")
        m_a = alice.expect(r"#(\d+) carol: The door code is 4711\. \[expires in \d+s\]").group(1)
        m_b = bob.expect(r"#(\d+) carol: The door code is 4711\. \[expires in \d+s\]").group(1)
        alice.expect(rf"\* message #{m_a} disappeared", timeout=20)
        bob.expect(rf"\* message #{m_b} disappeared", timeout=20)
        carol.expect(r"\* message #\d+ disappeared", timeout=20)
        for p in (alice, bob):
            p.type("/history")
            p.expect(r"bob: Yes! The usual place\.")
        self.ok("the message disappeared for everyone once its 5 s were up")
        alice.type("/timer off")
        alice.expect(r"timer set to off")

        self.section("4. A group call through the server's SFrame relay")
        alice.type("/call")
        alice.expect(r"\* in the call of team")
        bob.type("/call")
        bob.expect(r"\* in the call of team \(there: alice, bob\)")
        self.plaintexts.append("alice's audio frame 1")
        alice.type("/frame alice's audio frame 1")
        e0 = int(alice.expect(r"sent a frame \(epoch (\d+)\)").group(1))
        bob.expect(rf"\[call team\] alice: alice's audio frame 1 \(epoch {e0}\)")

        self.section("5. alice adds dave and removes carol: new epochs, new call keys")
        alice.type("/invite dave")
        alice.expect(r"\* invited dave")
        dave.expect(r"\* joined team")
        alice.type("/remove carol")
        alice.expect(r"\* removed carol")
        carol.expect(r"you are no longer in team; its state is deleted")
        bob.expect(r"\* carol left team")
        dave.expect(r"\* carol left team")
        self.plaintexts.append("alice's audio frame 2")
        alice.type("/frame alice's audio frame 2")
        e1 = int(alice.expect(r"sent a frame \(epoch (\d+)\)").group(1))
        bob.expect(rf"\[call team\] alice: alice's audio frame 2 \(epoch {e1}\)")
        self.check(e1 == e0 + 2, f"the call moved from epoch {e0} to epoch {e1} with the group")
        dave.type("/call")
        dave.expect(r"\* in the call of team")
        self.plaintexts.append("bob's audio frame")
        bob.type("/frame bob's audio frame")
        dave.expect(rf"\[call team\] bob: bob's audio frame \(epoch {e1}\)")
        alice.expect(rf"\[call team\] bob: bob's audio frame \(epoch {e1}\)")
        self.ok("dave, who joined after the change, hears the new epoch's frames")

        self.section("6. The conversation now")
        self.send("dave", "Hi all, dave here.")
        alice.expect(r"dave: Hi all, dave here\.")
        bob.expect(r"dave: Hi all, dave here\.")
        for p in (alice, bob, dave):
            p.type("/members")
            p.expect(r"team: alice, bob, dave; disappearing timer off")
        self.ok("alice, bob and dave agree on who is in the group")
        for p in self.people.values():
            self.check(p.quit() == 0, f"{p.name}'s chat exited cleanly")

        self.section("7. What the server stored")
        self.stop_server()
        files = [f for f in self.tmp.iterdir() if f.name.startswith("ds.sqlite3")]
        blob = b"".join(f.read_bytes() for f in files)
        self.say(f"  {', '.join(f.name for f in files)}: {len(blob)} bytes")
        leaks = [p for p in self.plaintexts if p.encode() in blob]
        self.check(
            not leaks,
            f"none of the {len(self.plaintexts)} plaintexts occurs anywhere in the server's "
            "database files (live rows, deleted rows, journal)",
        )

    def stop_server(self) -> None:
        if self.server is not None and self.server.poll() is None:
            self.server.terminate()
            try:
                self.server.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.server.kill()
                self.server.wait()
        self.server_saw()

    def close(self) -> None:
        for p in self.people.values():
            if p.proc.poll() is None:
                p.proc.kill()
                p.proc.wait()
        self.stop_server()


def main(out: TextIO | None = None) -> int:
    stream = out or sys.stdout
    with tempfile.TemporaryDirectory(prefix="mls-net-demo-") as tmp:
        demo = NetworkDemo(Path(tmp), stream)
        try:
            demo.run()
        except DemoFailed as exc:
            print(f"DEMO FAILED: {exc}", file=stream)
            return 1
        finally:
            demo.close()
    print("\nAll checks passed.", file=stream)
    return 0
