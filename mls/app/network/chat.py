"""``python -m mls chat --server URL --name NAME [--data FILE]``: a terminal chat.

A line-oriented interface (works in any terminal, and a test drives it through a
pseudo-terminal): a plain line is a message to the current group; commands start with ``/``
(``/help`` lists them). Incoming messages print as they arrive, numbered so that ``/reply``,
``/react`` and ``/edit`` can name them, with their expiry countdown when the group has a
disappearing timer; an expired message prints a notice and is deleted.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import re
import sys
from dataclasses import dataclass, field

from mls.app.client import (
    GroupUpdated,
    Joined,
    MessageExpired,
    MessageReceived,
)
from mls.app.content import Disposition, SinglePart, decode_content
from mls.app.network.client import LEAVE_REQUEST, Delivered, NetCall, NetClient
from mls.app.storage import StoredMessage
from mls.errors import MLSError

__all__ = ["main", "parse_timer"]

HELP = """commands:
  /groups              list your groups (* marks the current one)
  /create NAME         create a group and switch to it
  /switch NAME         switch to a group
  /members             who is in the current group, and its disappearing timer
  /invite NAME         add someone (claims one of their KeyPackages)
  /remove NAME         remove someone
  /leave               ask the group to remove you; its state is deleted once it has
  /timer 30s|5m|1h|off set the disappearing-messages timer
  /reply N TEXT        reply to message #N
  /react N EMOJI       react to message #N
  /edit N TEXT         edit your message #N
  /history             the conversation so far (edits applied, reactions attached)
  /call                join the current group's call (SFrame through the server's relay)
  /frame TEXT          send TEXT as one media frame of the call
  /hangup              leave the call
  /quit                exit
anything else is a message to the current group"""

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_timer(text: str) -> int | None:
    """``30s``, ``5m``, ``2h``, ``1d`` or a number of seconds; ``off`` is ``None``."""
    if text == "off":
        return None
    m = re.fullmatch(r"(\d+)([smhd]?)", text)
    if m is None or int(m.group(1)) == 0:
        raise ValueError("the timer is a positive number with s, m, h or d, or off")
    return int(m.group(1)) * _UNITS[m.group(2) or "s"]


def _name(gid: bytes) -> str:
    return gid.decode("utf-8", "replace") if gid.isascii() else gid.hex()


def _body(m: StoredMessage) -> tuple[str, str]:
    part = decode_content(m.content).nested_part.body
    if isinstance(part, SinglePart):
        return part.content_type, part.content.decode("utf-8", "replace")
    return "", "(attachment)"


@dataclass
class Chat:
    client: NetClient
    current: bytes | None = None
    #: number shown -> (group, message id, expires_at)
    shown: dict[int, tuple[bytes, bytes, int | None]] = field(default_factory=dict)
    by_id: dict[bytes, int] = field(default_factory=dict)
    call: NetCall | None = None
    call_task: asyncio.Task[None] | None = None

    def say(self, line: str) -> None:
        print(line, flush=True)

    def number(self, m: StoredMessage) -> int:
        n = self.by_id.get(m.message_id)
        if n is None:
            n = len(self.shown) + 1
            self.shown[n] = (m.group_id, m.message_id, m.expires_at)
            self.by_id[m.message_id] = n
        return n

    def line_of(self, m: StoredMessage) -> str:
        ctype, body = _body(m)
        who = m.sender.decode("utf-8", "replace")
        content = decode_content(m.content)
        n = self.number(m)
        extra = ""
        if content.in_reply_to is not None and content.in_reply_to in self.by_id:
            ref = self.by_id[content.in_reply_to]
            is_reaction = content.nested_part.disposition == Disposition.reaction
            extra = f" (reaction to #{ref})" if is_reaction else f" (reply to #{ref})"
        if content.replaces is not None and content.replaces in self.by_id:
            extra = f" (edits #{self.by_id[content.replaces]})"
        if m.expires_at is not None:
            extra += f" [expires in {max(0, m.expires_at - self.client.now())}s]"
        if ctype == LEAVE_REQUEST:
            return f"[{_name(m.group_id)}] #{n} * {who} asked to leave"
        return f"[{_name(m.group_id)}] #{n} {who}: {body}{extra}"

    def on_event(self, d: Delivered) -> None:
        ev = d.event
        if d.refused is not None:
            self.say(f"! refused a message: {d.refused}")
        elif isinstance(ev, MessageReceived):
            self.say(self.line_of(ev.message))
        elif isinstance(ev, MessageExpired):
            self.say(f"[{_name(ev.group_id)}] * a message arrived already expired")
        elif isinstance(ev, Joined):
            who = ", ".join(m.decode("utf-8", "replace") for m in ev.members)
            self.say(f"* joined {_name(ev.group_id)} (members: {who})")
            if self.current is None:
                self.current = ev.group_id
        elif isinstance(ev, GroupUpdated):
            g = _name(ev.group_id)
            if ev.self_removed:
                self.say(f"* you are no longer in {g}; its state is deleted")
                if self.current == ev.group_id:
                    self.current = None
                return
            for a in ev.added:
                self.say(f"* {a.decode('utf-8', 'replace')} joined {g}")
            for r in ev.removed:
                self.say(f"* {r.decode('utf-8', 'replace')} left {g}")
            if ev.timer_changed:
                t = "off" if ev.timer is None else f"{ev.timer}s"
                self.say(f"* disappearing timer of {g}: {t}")

    async def pump(self) -> None:
        while True:
            self.on_event(await self.client.events.get())

    async def tick(self) -> None:
        """Once a second: announce and delete messages whose time is up."""
        while True:
            await asyncio.sleep(0.5)
            now = self.client.now()
            for n, (gid, mid, exp) in list(self.shown.items()):
                if exp is not None and exp <= now:
                    self.say(f"[{_name(gid)}] * message #{n} disappeared")
                    self.shown[n] = (gid, mid, None)
            self.client.chat.purge_expired(now=now)

    def need_group(self) -> bytes:
        if self.current is None or self.current not in self.client.chat.group_ids():
            raise ValueError("no current group: /create NAME or /switch NAME")
        return self.current

    def ref(self, arg: str) -> bytes:
        n = int(arg.lstrip("#"))
        if n not in self.shown:
            raise ValueError(f"no message #{n}")
        return self.shown[n][1]

    async def command(self, line: str) -> bool:
        """Run one input line; ``False`` to quit."""
        c = self.client
        if not line.startswith("/"):
            gid = self.need_group()
            p = await c.send_text(gid, line)
            self.say(self.line_of(self._stored(gid, p.sent.message_id)))
            return True
        cmd, _, rest = line[1:].partition(" ")
        rest = rest.strip()
        if cmd in ("quit", "exit"):
            return False
        if cmd == "help":
            self.say(HELP)
        elif cmd == "groups":
            for gid in c.chat.group_ids():
                mark = "*" if gid == self.current else " "
                self.say(f"{mark} {_name(gid)} ({len(c.members(gid))} members)")
        elif cmd == "create":
            gid = await c.create_group(rest.encode() if rest else None)
            self.current = gid
            self.say(f"* created {_name(gid)}")
        elif cmd == "switch":
            gid = rest.encode()
            if gid not in c.chat.group_ids():
                raise ValueError(f"not in a group named {rest}")
            self.current = gid
            self.say(f"* now in {rest}")
        elif cmd == "members":
            gid = self.need_group()
            who = ", ".join(m.decode("utf-8", "replace") for m in c.members(gid))
            t = c.chat.timer(gid)
            timer = "off" if t is None else f"{t}s"
            self.say(f"* {_name(gid)}: {who}; disappearing timer {timer}")
        elif cmd == "invite":
            ev = await c.invite(self.need_group(), rest.encode())
            self.say(f"* invited {rest}" if ev else f"* {rest} is already a member")
        elif cmd == "remove":
            ev = await c.remove(self.need_group(), rest.encode())
            self.say(f"* removed {rest}" if ev else f"* {rest} is not a member")
        elif cmd == "leave":
            gid = self.need_group()
            await c.leave(gid)
            self.say(f"* asked {_name(gid)} to remove you")
        elif cmd == "timer":
            seconds = parse_timer(rest)
            await c.set_timer(self.need_group(), seconds)
            self.say(f"* disappearing timer set to {rest}")
        elif cmd in ("reply", "react", "edit"):
            n, _, body = rest.partition(" ")
            gid, target = self.need_group(), self.ref(n)
            if cmd == "reply":
                p = await c.send_text(gid, body, in_reply_to=target)
            elif cmd == "react":
                p = await c.react(gid, body, to=target)
            else:
                p = await c.edit(gid, body, replaces=target)
            self.say(self.line_of(self._stored(gid, p.sent.message_id)))
        elif cmd == "call":
            gid = self.need_group()
            if self.call is None:
                self.call = await c.start_call(gid)
                self.call_task = asyncio.create_task(self.listen(self.call))
            who = ", ".join(p.decode("utf-8", "replace") for p in self.call.participants)
            self.say(f"* in the call of {_name(gid)} (there: {who})")
        elif cmd == "frame":
            if self.call is None:
                raise ValueError("not in a call: /call first")
            await self.call.send(rest.encode())
            self.say(f"* sent a frame (epoch {self.call.call.epoch})")
        elif cmd == "hangup":
            await self.hangup()
            self.say("* left the call")
        elif cmd == "history":
            gid = self.need_group()
            for chat_line in c.chat.conversation(gid, now=c.now()):
                who = chat_line.sender.decode("utf-8", "replace")
                reacts = " ".join(r for _, r in chat_line.reactions)
                edited = " (edited)" if chat_line.edited else ""
                left = ""
                if chat_line.expires_at is not None:
                    left = f" [expires in {max(0, chat_line.expires_at - c.now())}s]"
                self.say(f"  {who}: {chat_line.text}{edited} {reacts}".rstrip() + left)
        else:
            raise ValueError(f"unknown command /{cmd} (/help lists them)")
        return True

    async def listen(self, call: NetCall) -> None:
        while True:
            who, frame = await call.frames.get()
            media = frame.plaintext.decode("utf-8", "replace")
            name = who.decode("utf-8", "replace")
            self.say(f"[call {_name(call.group_id)}] {name}: {media} (epoch {frame.epoch})")

    async def hangup(self) -> None:
        if self.call_task is not None:
            self.call_task.cancel()
            self.call_task = None
        if self.call is not None:
            await self.call.leave()
            self.call = None

    def _stored(self, gid: bytes, mid: bytes) -> StoredMessage:
        for m in self.client.chat.messages(gid, now=self.client.now()):
            if m.message_id == mid:
                return m
        raise ValueError("the message expired")


async def _lines() -> asyncio.Queue[str | None]:
    """stdin lines, read without blocking the loop."""
    q: asyncio.Queue[str | None] = asyncio.Queue()
    loop = asyncio.get_running_loop()

    def readable() -> None:
        line = sys.stdin.readline()
        if not line:
            loop.remove_reader(sys.stdin)
            q.put_nowait(None)
        else:
            q.put_nowait(line.rstrip("\n"))

    loop.add_reader(sys.stdin, readable)
    return q


async def run(server: str, name: str, data: str | None) -> int:
    client = await NetClient.open(server, name.encode(), data=data)
    chat = Chat(client)
    gids = client.chat.group_ids()
    chat.current = gids[0] if gids else None
    client.start()
    tasks = [asyncio.create_task(chat.pump()), asyncio.create_task(chat.tick())]
    chat.say(f"* {name} connected to {server} (/help for commands)")
    lines = await _lines()
    try:
        while True:
            line = await lines.get()
            if line is None:
                break
            line = line.strip()
            if not line:
                continue
            try:
                if not await chat.command(line):
                    break
            except (MLSError, ValueError) as exc:  # DeliveryError is an MLSError
                chat.say(f"! {exc}")
    finally:
        with contextlib.suppress(Exception):
            asyncio.get_running_loop().remove_reader(sys.stdin)
        for t in tasks:
            t.cancel()
        with contextlib.suppress(Exception):
            await chat.hangup()
        await client.close()
    chat.say("* bye")
    return 0


def main(args: argparse.Namespace) -> int:
    return asyncio.run(run(args.server, args.name, args.data))
