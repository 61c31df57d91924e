"""The client that tests/net/test_crash.py SIGKILLs.

``python -m tests.net.crash_worker URL DATA LOG`` imports everything once, then serves
commands on stdin, one a line, each run in a forked child (a real process, killed with
SIGKILL by the test; forking skips a second of imports per restart):

- ``run``: open (catching up), print ``ready``, then commit and send in a loop, appending a
  line to LOG once the server accepted each message;
- ``settle``: open, catch up, print the state as JSON and exit.

For each command it prints the child's pid, then ``exit STATUS`` once the child ended.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys

from mls.app.content import SinglePart, decode_content
from mls.app.network import NetClient

GROUP = b"crash"


def _bodies(c: NetClient) -> list[str]:
    out = []
    for m in c.chat.messages(GROUP, now=c.now()):
        part = decode_content(m.content).nested_part.body
        assert isinstance(part, SinglePart)
        out.append(part.content.decode())
    return out


async def main(url: str, data: str, log: str, mode: str) -> None:
    c = await NetClient.open(url, b"victim", data=data)
    try:
        if mode == "settle":
            await c.sync()
            g = c.chat.group(GROUP) if GROUP in c.chat.group_ids() else None
            state = {
                "epoch": None if g is None else g.epoch,
                "auth": None if g is None else g.epoch_authenticator.hex(),
                "messages": _bodies(c),
                "pending": g is not None and c.chat.has_unresolved_commit(GROUP),
                "buffered": c.buffered(),
                "outbox": len(c.net.queued()),
            }
            print(json.dumps(state), flush=True)
            return
        c.start()
        print("ready", flush=True)
        i = 0
        with open(log, "a") as out:
            while True:
                i += 1
                if GROUP in c.chat.group_ids():
                    if i % 3 == 0:
                        await c.update(GROUP)
                    else:
                        body = f"v-{os.urandom(6).hex()}-{i}"
                        p = await c.send_text(GROUP, body)
                        if p.group_seq is not None:
                            out.write(body + "\n")
                            out.flush()
                await asyncio.sleep(0.01)
    finally:
        await c.close()


def zygote(url: str, data: str, log: str) -> None:
    for line in sys.stdin:
        mode = line.strip()
        pid = os.fork()
        if pid == 0:
            try:
                asyncio.run(main(url, data, log, mode))
            except BaseException as exc:
                print(f"error {exc!r}", file=sys.stderr, flush=True)
                os._exit(1)
            os._exit(0)
        print(pid, flush=True)
        _, status = os.waitpid(pid, 0)
        print(f"exit {status}", flush=True)


if __name__ == "__main__":
    zygote(*sys.argv[1:4])
