"""An asyncio client of the delivery service (``python -m mls serve``) around ChatClient.

:class:`NetClient` connects a :class:`~mls.app.client.ChatClient` to a delivery service URL
(API in ``mls/ds/server.py``): it registers and authenticates (a signature over the server's
challenge), keeps a KeyPackage pool published (a refill when low, and one last-resort
KeyPackage, RFC 9420 §16.8), creates groups, invites and removes by identity, sends, and
receives through the WebSocket push with catch-up from its cursor after any disconnect.

What the network adds to the in-process story:

- **Commit conflicts** (RFC 9420 §14: the delivery service takes the first commit of an epoch).
  A refused commit is rejected locally (:meth:`ChatClient.reject_commit`, whose stored
  previous epoch already holds the ratchet past the key the commit used, so no key is used
  twice), the winner is fetched and processed, and what we still want (adds and removes the
  winner did not make, a timer it did not set) is committed again, up to
  :attr:`NetConfig.commit_attempts` times, with no user action. Application messages wait for
  the commit in flight (one lock orders every change of a client) and are sent after it.
- **Ordering.** An inbox entry for a future epoch is buffered (persisted, bounded) until the
  commit that starts that epoch has been processed, then handled in inbox order. Late messages
  of past epochs are handled by the group's ``past_epochs``/``past_epoch_grace``. The server
  does not send a committer its own commit: a commit posted again (after a lost answer, or
  after a crash) is answered ``duplicate``, which is our own commit echoed back, and is merged
  once.
- **Crash safety.** ChatClient stores each processed entry with its cursor in one transaction;
  the cursor is acknowledged to the server only after that, so a killed client catches up from
  its cursor. Our commit is written to :class:`~mls.app.network.store.NetStore` before it is
  posted and resolved on restart (see there).
- **Leaving.** RFC 9420 §12.2 forbids committing one's own removal, and this library has no
  SelfRemove proposal yet; :meth:`NetClient.leave` sends an MLS-authenticated leave request
  (a MIMI content of type :data:`LEAVE_REQUEST`) and the member with the lowest leaf index
  commits the Remove. The removal deletes the group's state (ChatClient, §12.4.2) and the
  client's buffered entries of it.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import logging
import os
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx
import websockets
from websockets.asyncio.client import ClientConnection, connect

from mls.app.calls import GroupCall
from mls.app.client import (
    ChatClient,
    ChatConfig,
    ChatEvent,
    GroupUpdated,
    Joined,
    MessageReceived,
    Sent,
)
from mls.app.content import (
    MimiContent,
    SinglePart,
    decode_content,
    edit,
    new_salt,
    reaction,
    reply,
    text,
)
from mls.app.disappearing import with_timer
from mls.app.network.store import BufferedEntry, NetStore, OutgoingCommit
from mls.app.storage import MemoryStorage, SQLiteStorage, StateChange, Storage
from mls.codec.buffer import Writer
from mls.crypto import sign_with_label
from mls.errors import InvalidState, MLSError, PeerError, UsageError
from mls.framing.message import MLSMessage
from mls.group import GroupConfig
from mls.sframe import DecryptedFrame

__all__ = [
    "LEAVE_REQUEST",
    "Delivered",
    "DeliveryError",
    "NetClient",
    "NetCall",
    "NetConfig",
    "Posted",
]

log = logging.getLogger("mls.net")

#: SignWithLabel labels of the delivery service's registration and authentication proofs
#: (``docs/ds.md``; they differ from every MLS label).
REGISTER_LABEL = "DS register"
AUTH_LABEL = "DS authenticate"

#: Content type of a leave request (see "Leaving" in the module docstring).
LEAVE_REQUEST = "application/vnd.mls-protocol.leave-request"


def b64e(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64d(text_: str) -> bytes:
    return base64.urlsafe_b64decode(text_ + "=" * (-len(text_) % 4))


def _opaque(data: bytes) -> bytes:
    w = Writer()
    w.push_opaque(data)
    return w.getvalue()


class DeliveryError(MLSError):
    """The delivery service refused a request (``status``, ``code`` from its JSON body) or
    could not be reached."""

    def __init__(self, status: int, code: str, message: str, body: dict[str, Any]) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status = status
        self.code = code
        self.body = body


@dataclass(frozen=True, slots=True, kw_only=True)
class NetConfig:
    #: Publish KeyPackages when fewer than ``key_package_low`` fresh ones are on the server,
    #: up to ``key_package_target``.
    key_package_low: int = 3
    key_package_target: int = 10
    #: Future-epoch entries kept at most (beyond that they are processed, and refused).
    buffer_limit: int = 1000
    #: Commits re-created after losing an epoch, before giving up.
    commit_attempts: int = 50
    #: HTTP attempts on a transport error, 429 or 503 (requests are idempotent or harmless).
    http_attempts: int = 8
    request_timeout: float = 30.0
    max_reconnect_delay: float = 5.0


def default_chat_config() -> ChatConfig:
    """The group policy of networked clients.

    - Past epochs are kept as long as the server accepts messages of them (its
      ``past_epochs``, 16), so a message that raced several commits still decrypts.
    - ``removed_sender_messages="flag"``: a member that commits a Remove has not seen the
      messages the server ordered *before* its commit while it was being posted (§14: the
      server sequences; the committer merges at once). With ``"refuse"`` that committer, and
      only it, would drop a removed member's last messages that everyone else shows. The
      delivery service refuses posts from identities no longer in the roster, so a message
      of a removed member reaches us only if it was ordered before the removal; this trusts
      the server's ordering for that case, which RFC 9420 §15.3 leaves to the application.
    """
    return ChatConfig(
        group_config=GroupConfig(
            ratchet_tree_extension=True, past_epochs=16, removed_sender_messages="flag"
        )
    )


@dataclass(frozen=True, slots=True, kw_only=True)
class Delivered:
    """A ChatClient event, with where the delivery service ordered it: ``seq`` in our inbox and
    ``group_seq`` in the group (``None`` for events of our own actions without one)."""

    event: ChatEvent | None
    seq: int | None = None
    group_seq: int | None = None
    #: A refused inbox entry (its PeerError text); ``event`` is then ``None``.
    refused: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Posted:
    """An application message the server accepted (``group_seq``), or queued for resending
    (``group_seq`` is ``None``: the server was unreachable)."""

    sent: Sent
    group_seq: int | None


_KEEP: Any = object()


@dataclass(eq=False)
class NetClient:
    """See the module docstring. Create with :meth:`open`; call :meth:`start` to receive pushes,
    :meth:`close` at the end. Every change of state holds one lock."""

    url: str
    chat: ChatClient
    #: The ChatClient's storage (for the outbox repair after a crash, see _reencrypt).
    storage: Storage
    net: NetStore
    config: NetConfig = field(default_factory=NetConfig)
    clock: Callable[[], float] = time.time
    transport: httpx.AsyncBaseTransport | None = None
    events: asyncio.Queue[Delivered] = field(default_factory=asyncio.Queue)
    _token: str = ""
    _acked: int = 0
    _lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    _http: httpx.AsyncClient | None = None
    _ws_task: asyncio.Task[None] | None = None
    _tasks: set[asyncio.Task[Any]] = field(default_factory=set)
    _draining: set[int] = field(default_factory=set)
    _kp_lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    connected: asyncio.Event = field(default_factory=asyncio.Event)
    #: Counters: ``lost_epochs`` (our commit refused, another won), ``echoes`` (our commit
    #: answered ``duplicate``: taken before), ``buffered`` (future-epoch entries held back).
    stats: dict[str, int] = field(
        default_factory=lambda: {"lost_epochs": 0, "echoes": 0, "buffered": 0}
    )

    # -- lifecycle ---------------------------------------------------------------------------

    @classmethod
    async def open(
        cls,
        url: str,
        name: bytes,
        *,
        data: str | os.PathLike[str] | None = None,
        config: NetConfig | None = None,
        chat_config: ChatConfig | None = None,
        clock: Callable[[], float] = time.time,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> NetClient:
        """Open (or create) the client stored at ``data`` (SQLite; memory if ``None``),
        register and authenticate, finish what a crash interrupted, catch up and refill the
        KeyPackage pool."""
        storage: Storage = SQLiteStorage(data) if data is not None else MemoryStorage()
        net = NetStore(None if data is None else os.fspath(data) + ".net")
        cc = chat_config or default_chat_config()
        try:
            if storage.load().client is None:
                chat = ChatClient.create(name, storage, config=cc)
            else:
                chat = ChatClient.open(storage, config=cc)
            if chat.identity != name:
                raise UsageError(f"{data} holds the client {chat.identity!r}, not {name!r}")
        except BaseException:
            storage.close()
            net.close()
            raise
        self = cls(url.rstrip("/"), chat, storage, net, config or NetConfig(), clock, transport)
        self._http = httpx.AsyncClient(timeout=self.config.request_timeout, transport=transport)
        try:
            await self._register()
            await self._authenticate()
            async with self._lock:
                await self._sync()
                await self._resume_commits()
                await self._flush_outbox()
            await self.refill_key_packages()
        except BaseException:
            await self.close()
            raise
        return self

    def start(self) -> None:
        """Receive pushes (and reconnect after any disconnect) in a background task."""
        if self._ws_task is None:
            self._ws_task = asyncio.create_task(self._ws_loop())

    async def close(self) -> None:
        tasks = [t for t in (self._ws_task, *self._tasks) if t is not None]
        for t in tasks:
            t.cancel()
        for t in tasks:
            with contextlib.suppress(BaseException):
                await t
        self._ws_task = None
        if self._http is not None:
            await self._http.aclose()
            self._http = None
        self.chat.close()
        self.net.close()

    @property
    def identity(self) -> bytes:
        return self.chat.identity

    def now(self) -> int:
        return int(self.clock())

    # -- HTTP --------------------------------------------------------------------------------

    async def _request(
        self, method: str, path: str, body: dict[str, Any] | None = None, *, auth: bool = True
    ) -> dict[str, Any]:
        """One API call; transport errors, 429 and 503 are retried (every request we make is
        idempotent on the server or harmless to repeat), a 401 re-authenticates once."""
        assert self._http is not None, "the client is closed"
        reauthed = False
        delay = 0.05
        for attempt in range(self.config.http_attempts):
            headers = {"authorization": f"Bearer {self._token}"} if auth else {}
            try:
                r = await self._http.request(method, self.url + path, json=body, headers=headers)
            except httpx.TransportError as exc:
                if attempt + 1 == self.config.http_attempts:
                    raise DeliveryError(
                        0, "unreachable", str(exc) or type(exc).__name__, {}
                    ) from exc
                await asyncio.sleep(delay)
                delay = min(delay * 2, 2.0)
                continue
            if r.status_code < 400:
                out: dict[str, Any] = r.json()
                return out
            try:
                j = r.json()
            except ValueError:
                j = {}
            code = str(j.get("error", "error"))
            if r.status_code == 401 and auth and not reauthed:
                reauthed = True
                await self._authenticate()
                continue
            if r.status_code in (429, 503) and attempt + 1 < self.config.http_attempts:
                await asyncio.sleep(min(float(j.get("retry_after", delay)), 2.0) + delay)
                delay = min(delay * 2, 2.0)
                continue
            raise DeliveryError(r.status_code, code, str(j.get("message", r.text)), j)
        raise AssertionError("unreachable")  # pragma: no cover

    async def _register(self) -> None:
        if self.net.get("registered") is not None:
            return
        c = self.chat.mls_client
        pk = c.signature_public_key
        proof = sign_with_label(
            c.suite,
            c.signature_private_key,
            REGISTER_LABEL,
            _opaque(self.identity) + _opaque(pk),
        )
        body = {
            "identity": b64e(self.identity),
            "signature_key": b64e(pk),
            "cipher_suite": c.suite.suite_id,
            "proof": b64e(proof),
        }
        try:
            await self._request("POST", "/v1/clients", body, auth=False)
        except DeliveryError as exc:
            # A crash after the server registered us and before we noted it: the token
            # request below proves (or disproves) that the key registered is ours.
            if exc.code != "identity_taken":
                raise
        self.net.put("registered", b"1")

    async def _authenticate(self) -> None:
        c = self.chat.mls_client
        j = await self._request(
            "POST", "/v1/auth/challenge", {"identity": b64e(self.identity)}, auth=False
        )
        challenge = b64d(j["challenge"])
        sig = sign_with_label(
            c.suite,
            c.signature_private_key,
            AUTH_LABEL,
            _opaque(self.identity) + _opaque(challenge),
        )
        j = await self._request(
            "POST",
            "/v1/auth/token",
            {
                "identity": b64e(self.identity),
                "challenge": b64e(challenge),
                "signature": b64e(sig),
            },
            auth=False,
        )
        self._token = str(j["token"])

    # -- KeyPackages -------------------------------------------------------------------------

    async def refill_key_packages(self) -> int:
        """Publish KeyPackages up to the target when the pool is low, and a last-resort one
        when none is on the server. Their private keys are stored before they are sent."""
        async with self._kp_lock:  # one refill at a time: no double top-up
            return await self._refill()

    async def _refill(self) -> int:
        j = await self._request("GET", "/v1/key_packages")
        fresh, last_resort = int(j["available"]), int(j["last_resort"])
        async with self._lock:
            now = self.now()
            kps: list[bytes] = []
            if fresh < self.config.key_package_low:
                kps += self.chat.publish_key_packages(
                    self.config.key_package_target - fresh, now=now
                )
            if last_resort == 0:
                kp = self.chat.mls_client.key_package(now, last_resort=True)
                self.chat.publish_key_packages(0, now=now)  # stores the client with its key
                kps.append(MLSMessage(body=kp).to_bytes())
        if kps:
            await self._request(
                "POST", "/v1/key_packages", {"key_packages": [b64e(k) for k in kps]}
            )
        return len(kps)

    async def _claim(self, identities: Sequence[bytes]) -> dict[bytes, bytes]:
        j = await self._request(
            "POST",
            "/v1/key_packages/claim",
            {"identities": [b64e(i) for i in identities]},
        )
        return {b64d(x["identity"]): b64d(x["key_package"]) for x in j["key_packages"]}

    # -- receiving ---------------------------------------------------------------------------

    def _emit(self, d: Delivered) -> None:
        self.events.put_nowait(d)

    def _handle_entries(self, entries: Iterable[dict[str, Any]]) -> None:
        """Process inbox entries (JSON from the server) in order; the caller holds the lock."""
        for raw in entries:
            e = BufferedEntry(
                int(raw["seq"]),
                str(raw["kind"]),
                b64d(raw["group_id"]),
                int(raw["group_seq"]),
                int(raw["epoch"]),
                b64d(raw["data"]),
            )
            self._handle(e)

    def _handle(self, e: BufferedEntry) -> None:
        chat = self.chat
        if e.seq <= chat.cursor:
            return  # redelivered: its effects are stored
        if (
            e.kind != "welcome"
            and e.group_id in chat.group_ids()
            and e.epoch > chat.group(e.group_id).epoch
            and self.net.buffer_size() < self.config.buffer_limit
        ):
            # Stored before the cursor can move past it (a later entry's receive).
            self.net.buffer(e)
            self.stats["buffered"] += 1
            log.debug("buffered seq %d (epoch %d)", e.seq, e.epoch)
            return
        self._receive(e.data, e.seq, e.group_seq)

    def _receive(self, data: bytes, seq: int | None, group_seq: int | None) -> None:
        try:
            ev = self.chat.receive(data, now=self.now(), seq=seq)
        except PeerError as exc:  # refused for good (ChatClient stored the cursor past it)
            self._emit(Delivered(event=None, seq=seq, group_seq=group_seq, refused=str(exc)))
            return
        self._emit(Delivered(event=ev, seq=seq, group_seq=group_seq))
        self._after(ev)

    def _after(self, ev: ChatEvent) -> None:
        if isinstance(ev, GroupUpdated):
            if ev.self_removed:
                self.net.drop_group(ev.group_id)
                self.net.put("leave:" + ev.group_id.hex(), None)
                return
            self._drain(ev.group_id)
            if self.net.get("leave:" + ev.group_id.hex()) is not None:
                self._spawn(self._request_leave(ev.group_id))
        elif isinstance(ev, Joined):
            self._drain(ev.group_id)
            self._spawn(self.refill_key_packages())
        elif isinstance(ev, MessageReceived):
            body = ev.content.nested_part.body
            if isinstance(body, SinglePart) and body.content_type == LEAVE_REQUEST:
                self._on_leave_request(ev.group_id, ev.message.sender)

    def _drain(self, gid: bytes) -> None:
        """Handle the buffered entries of ``gid`` that its epoch has reached, in inbox order
        (repeatedly: a buffered commit may unlock later entries)."""
        progress = True
        while progress and gid in self.chat.group_ids():
            progress = False
            epoch = self.chat.group(gid).epoch
            for b in self.net.buffered(gid):
                if b.epoch > epoch or b.seq in self._draining:
                    continue
                # Past the cursor: processed with its seq; behind it (buffered while later
                # entries moved on): without, and a second copy after a crash fails to decrypt.
                seq = b.seq if b.seq > self.chat.cursor else None
                self._draining.add(b.seq)  # a commit drains again from inside _receive
                try:
                    self._receive(b.data, seq, b.group_seq)
                    self.net.unbuffer(b.seq)
                finally:
                    self._draining.discard(b.seq)
                progress = True
                break

    def buffered(self) -> int:
        """How many future-epoch entries wait for their commit."""
        return self.net.buffer_size()

    async def _sync(self) -> None:
        """Fetch and process everything past our cursor over HTTP (the lock is held)."""
        after = self.chat.cursor
        while True:
            j = await self._request("GET", f"/v1/inbox?after={after}")
            entries = j["entries"]
            if not entries:
                break
            self._handle_entries(entries)
            after = max(after, int(entries[-1]["seq"]))
        await self._ack_http()

    async def sync(self) -> None:
        """Catch up now (normally the WebSocket push does it)."""
        async with self._lock:
            await self._sync()

    def _ack_target(self) -> int:
        return self.chat.cursor

    async def _ack_http(self) -> None:
        target = self._ack_target()
        if target > self._acked:
            j = await self._request("POST", "/v1/inbox/ack", {"seq": target})
            self._acked = int(j["acked"])

    async def _ws_loop(self) -> None:
        delay = 0.05
        ws_url = "ws" + self.url.removeprefix("http") + "/v1/ws"
        while True:
            try:
                async with connect(ws_url, open_timeout=10, max_size=4 << 20) as ws:
                    await ws.send(
                        json.dumps(
                            {"type": "auth", "token": self._token, "after": self.chat.cursor}
                        )
                    )
                    self.connected.set()
                    delay = 0.05
                    # Claims of KeyPackages for commits that lost their epoch never reach us
                    # as a Welcome: look at the pool whenever we (re)connect.
                    self._spawn(self.refill_key_packages())
                    self._spawn(self._recover())
                    await self._ws_read(ws)
            except asyncio.CancelledError:
                raise
            except (OSError, TimeoutError, websockets.exceptions.WebSocketException) as exc:
                log.debug("websocket: %s", exc)
            except DeliveryError as exc:
                log.info("websocket: %s", exc)
            self.connected.clear()
            await asyncio.sleep(delay)
            delay = min(delay * 2, self.config.max_reconnect_delay)

    async def _ws_read(self, ws: ClientConnection) -> None:
        async for raw in ws:
            msg = json.loads(raw)
            kind = msg.get("type")
            if kind == "entries":
                async with self._lock:
                    self._handle_entries(msg["entries"])
                    target = self._ack_target()
                if target > self._acked:
                    await ws.send(json.dumps({"type": "ack", "seq": target}))
                    self._acked = target
            elif kind == "error":
                if msg.get("error") in ("unauthenticated", "bad_request"):
                    await self._authenticate()
                    return
                log.info("websocket error: %s", msg)

    def _spawn(self, coro: Any) -> None:
        t = asyncio.create_task(coro)
        self._tasks.add(t)
        t.add_done_callback(self._done)

    def _done(self, t: asyncio.Task[Any]) -> None:
        self._tasks.discard(t)
        if not t.cancelled() and t.exception() is not None:
            log.warning("background task failed: %r", t.exception())

    # -- groups ------------------------------------------------------------------------------

    async def create_group(
        self, group_id: bytes | None = None, *, timer: int | None = None
    ) -> bytes:
        """A new group with us as its only member, known to the server first (so a refused
        id leaves no local group)."""
        gid = group_id if group_id is not None else os.urandom(16)
        async with self._lock:
            await self._request("POST", "/v1/groups", {"group_id": b64e(gid), "epoch": 0})
            self.chat.create_group(gid, now=self.now(), timer=timer)
        return gid

    async def invite(self, group_id: bytes, *identities: bytes) -> GroupUpdated | None:
        """Add ``identities`` (claiming one KeyPackage each); ``None`` if all are members."""
        return await self._commit(group_id, add=identities)

    async def remove(self, group_id: bytes, *identities: bytes) -> GroupUpdated | None:
        return await self._commit(group_id, remove=identities)

    async def set_timer(self, group_id: bytes, seconds: int | None) -> GroupUpdated | None:
        return await self._commit(group_id, timer=seconds)

    async def update(self, group_id: bytes) -> GroupUpdated | None:
        """A commit with only a path: fresh keys for us (post-compromise security, §12.4)."""
        return await self._commit(group_id, update=True)

    def members(self, group_id: bytes) -> list[bytes]:
        return self.chat.members(group_id)

    async def _commit(
        self,
        gid: bytes,
        *,
        add: Sequence[bytes] = (),
        remove: Sequence[bytes] = (),
        timer: Any = _KEEP,
        update: bool = False,
    ) -> GroupUpdated | None:
        async with self._lock:
            claimed: dict[bytes, bytes] = {}
            for _ in range(self.config.commit_attempts):
                await self._sync()  # the winner of a lost epoch, and anything before it
                if self.chat.has_unresolved_commit(gid):  # an earlier answer never came
                    await self._resume_commits()
                chat = self.chat
                if gid not in chat.group_ids():
                    raise InvalidState(f"not a member of group {gid.hex()}")
                members = set(chat.members(gid))
                adds = [i for i in dict.fromkeys(add) if i not in members]
                removes = [i for i in dict.fromkeys(remove) if i in members]
                if self.identity in removes:
                    raise UsageError("a member cannot remove itself (§12.2): use leave()")
                exts = None
                if timer is not _KEEP and chat.timer(gid) != timer:
                    exts = with_timer(chat.group(gid).extensions, timer)
                if not (adds or removes or exts is not None or update):
                    return None  # the winners did it all
                missing = [i for i in adds if i not in claimed]
                if missing:
                    claimed.update(await self._claim(missing))
                out = chat.commit(
                    gid,
                    now=self.now(),
                    add=[claimed[i] for i in adds],
                    remove=removes,
                    extensions=exts,
                )
                oc = OutgoingCommit(
                    gid, out.epoch, out.commit, out.welcome, tuple(adds), tuple(removes)
                )
                self.net.put_commit(oc)
                ev = await self._post_commit(oc)
                if ev is not None:
                    return ev
            raise DeliveryError(
                409, "epoch_conflict", f"lost {self.config.commit_attempts} epochs in a row", {}
            )

    async def _post_commit(self, oc: OutgoingCommit) -> GroupUpdated | None:
        """Post our commit; merge it if taken (``duplicate``: it was taken before, our own
        commit echoed back), go back to the old epoch if another won. The lock is held."""
        gid = oc.group_id
        body: dict[str, Any] = {
            "commit": b64e(oc.commit),
            "added": [b64e(a) for a in oc.added],
            "removed": [b64e(r) for r in oc.removed],
        }
        if oc.welcome is not None:
            body["welcome"] = b64e(oc.welcome)
        group_seq: int | None = None
        try:
            j = await self._request("POST", f"/v1/groups/{b64e(gid)}/commit", body)
            group_seq = int(j["group_seq"])
        except DeliveryError as exc:
            if exc.code == "duplicate":
                group_seq = int(exc.body.get("group_seq", 0)) or None
                self.stats["echoes"] += 1
            elif exc.status == 0:
                raise  # unreachable: the commit stays unresolved; resolved on the next open
            else:
                self.chat.reject_commit(gid)
                self.net.clear_commit(gid)
                if exc.code == "epoch_conflict":
                    self.stats["lost_epochs"] += 1
                    log.debug("lost epoch %d of %s", oc.epoch - 1, gid.hex())
                    return None
                raise
        ev = self.chat.confirm_commit(gid, now=self.now())
        self.net.clear_commit(gid)
        self._emit(Delivered(event=ev, group_seq=group_seq))
        self._drain(gid)
        return ev

    async def _recover(self) -> None:
        """After a reconnect: what an unreachable server left behind (a commit whose answer
        never came, messages not accepted) is posted again."""
        async with self._lock:
            with contextlib.suppress(DeliveryError):
                await self._resume_commits()
                await self._flush_outbox()

    async def _resume_commits(self) -> None:
        """After a restart: post again the commits that were in flight (the lock is held)."""
        chat = self.chat
        for gid in chat.group_ids():
            if not chat.has_unresolved_commit(gid):
                continue
            oc = self.net.commit(gid)
            if oc is None or oc.epoch != chat.group(gid).epoch:
                chat.reject_commit(gid)  # never posted: the commit was not written down
                self.net.clear_commit(gid)
                continue
            await self._post_commit(oc)
        for gid in self.net.commit_groups():
            if gid not in chat.group_ids() or not chat.has_unresolved_commit(gid):
                self.net.clear_commit(gid)  # resolved by a received message, or gone

    # -- sending -----------------------------------------------------------------------------

    async def send_text(
        self, group_id: bytes, body: str, *, in_reply_to: bytes | None = None
    ) -> Posted:
        salt = new_salt()
        if in_reply_to is not None:
            return await self.send(group_id, reply(body, in_reply_to=in_reply_to, salt=salt))
        return await self.send(group_id, text(body, salt=salt))

    async def react(self, group_id: bytes, emoji: str, *, to: bytes) -> Posted:
        return await self.send(group_id, reaction(emoji, in_reply_to=to, salt=new_salt()))

    async def edit(self, group_id: bytes, body: str, *, replaces: bytes) -> Posted:
        return await self.send(group_id, edit(body, replaces=replaces, salt=new_salt()))

    async def send(self, group_id: bytes, content: MimiContent) -> Posted:
        """Encrypt, store and post ``content``. The content is written to the outbox before
        it is encrypted, so a crash at any point leaves it to be sent on the next open."""
        async with self._lock:
            if self.chat.has_unresolved_commit(group_id):  # InvalidState if not a member
                await self._resume_commits()
            row = self.net.reserve(group_id, content.to_cbor())
            try:
                sent = self.chat.send(group_id, content, now=self.now())
            except BaseException:
                self.net.dequeue(row)
                raise
            self.net.fill(row, sent.message_id, sent.data)
            return Posted(sent=sent, group_seq=await self._post_message(row, group_id, sent.data))

    async def _post_message(self, row: int, gid: bytes, data: bytes) -> int | None:
        try:
            j = await self._request(
                "POST", f"/v1/groups/{b64e(gid)}/messages", {"message": b64e(data)}
            )
        except DeliveryError as exc:
            if exc.status == 0:
                return None  # stays queued: sent again by the next open
            self.net.dequeue(row)
            if exc.code == "duplicate":
                return int(exc.body.get("group_seq", 0)) or None
            log.info("message refused: %s", exc)  # e.g. we were removed meanwhile
            raise
        self.net.dequeue(row)
        return int(j["group_seq"])

    async def _flush_outbox(self) -> None:
        """After a restart: post what was not accepted; encrypt again what a crash left
        without its ciphertext (the lock is held)."""
        for row, gid, content, data in self.net.queued():
            if gid not in self.chat.group_ids():
                self.net.dequeue(row)
                continue
            if data is None:
                data = self._reencrypt(row, gid, content)
                if data is None:
                    continue
            with contextlib.suppress(DeliveryError):
                await self._post_message(row, gid, data)

    def _reencrypt(self, row: int, gid: bytes, raw: bytes) -> bytes | None:
        """The process died between writing ``raw`` to the outbox and writing its ciphertext:
        ChatClient may have stored it (its key is then spent, and the ciphertext lost). That
        copy, which nobody received, is deleted and the content encrypted again under a fresh
        key, so the user sees it once and the group gets it."""
        content = decode_content(raw)
        for m in self.storage.messages(gid):
            if m.outgoing and decode_content(m.content).salt == content.salt:
                self.storage.apply(StateChange(delete_messages=((gid, m.message_id),)))
        try:
            sent = self.chat.send(gid, content, now=self.now())
        except MLSError as exc:
            log.info("queued message dropped: %s", exc)
            self.net.dequeue(row)
            return None
        self.net.fill(row, sent.message_id, sent.data)
        return sent.data

    # -- leaving -----------------------------------------------------------------------------

    async def leave(self, group_id: bytes) -> None:
        """Ask the group to remove us (see "Leaving" in the module docstring); the request is
        sent again after each commit that does not remove us. The group's state is deleted
        when the removal arrives (:meth:`wait_removed`)."""
        self.net.put("leave:" + group_id.hex(), b"1")
        await self._request_leave(group_id)

    async def _request_leave(self, gid: bytes) -> None:
        async with self._lock:
            if gid not in self.chat.group_ids() or self.chat.has_unresolved_commit(gid):
                return
            content = text("leave", salt=new_salt(), content_type=LEAVE_REQUEST)
            row = self.net.reserve(gid, content.to_cbor())
            sent = self.chat.send(gid, content, now=self.now())
            self.net.fill(row, sent.message_id, sent.data)
            with contextlib.suppress(DeliveryError):
                await self._post_message(row, gid, sent.data)

    def _on_leave_request(self, gid: bytes, who: bytes) -> None:
        members = self.chat.members(gid)
        if who not in members:
            return
        others = [m for m in members if m != who]
        if others and others[0] == self.identity:  # the lowest leaf commits the removal
            self._spawn(self.remove(gid, who))

    # -- calls -------------------------------------------------------------------------------

    async def start_call(self, group_id: bytes) -> NetCall:
        """Join the group's call through the server's SFrame relay (``/v1/groups/{id}/call``).
        The SFrame keys are ChatClient's :class:`~mls.app.calls.GroupCall`: they switch at
        every merged commit, and a replaced epoch's receive keys stay for the configured grace
        period (frames in flight)."""
        async with self._lock:
            call = self.chat.start_call(group_id, now=self.now())
        ws_url = "ws" + self.url.removeprefix("http") + f"/v1/groups/{b64e(group_id)}/call"
        ws = await connect(ws_url, open_timeout=10, max_size=1 << 20)
        try:
            await ws.send(json.dumps({"type": "auth", "token": self._token}))
            joined = json.loads(await ws.recv())
            if joined.get("type") != "joined":
                raise DeliveryError(403, str(joined.get("error")), str(joined), joined)
        except BaseException:
            await ws.close()
            raise
        net_call = NetCall(self, group_id, call, ws, [b64d(p) for p in joined["participants"]])
        net_call.start()
        return net_call

    join_call = start_call

    async def wait_removed(self, group_id: bytes, timeout: float = 30.0) -> None:
        async with asyncio.timeout(timeout):
            while group_id in self.chat.group_ids():
                await asyncio.sleep(0.05)


@dataclass(eq=False)
class NetCall:
    """One member's side of a group call over the relay: :meth:`send` encrypts media with
    SFrame and sends the frame; frames of the others arrive decrypted in :attr:`frames` as
    ``(sender identity as the relay names it, DecryptedFrame)``. The relay reads only the SFrame
    header; what cannot be decrypted (a removed member, a replay, a forgery, an epoch past its
    grace) is counted in :attr:`rejected` and dropped."""

    client: NetClient
    group_id: bytes
    call: GroupCall
    ws: ClientConnection
    participants: list[bytes]
    frames: asyncio.Queue[tuple[bytes, DecryptedFrame]] = field(default_factory=asyncio.Queue)
    rejected: int = 0
    _task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._read())

    async def _read(self) -> None:
        with contextlib.suppress(websockets.exceptions.ConnectionClosed):
            async for raw in self.ws:
                if not isinstance(raw, bytes) or not raw:
                    continue
                n = raw[0]
                who, frame = raw[1 : 1 + n], raw[1 + n :]
                try:
                    got = self.call.decrypt(frame, now=self.client.now())
                except MLSError:
                    self.rejected += 1
                    continue
                self.frames.put_nowait((who, got))

    def encrypt(self, media: bytes) -> bytes:
        return self.call.encrypt(media)

    async def send(self, media: bytes) -> None:
        await self.send_frame(self.call.encrypt(media))

    async def send_frame(self, frame: bytes) -> None:
        """Send an already encrypted frame (e.g. one encrypted before an epoch change)."""
        await self.ws.send(frame)

    async def leave(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(BaseException):
                await self._task
        await self.ws.close()
        if self.group_id in self.client.chat.group_ids():
            self.client.chat.end_call(self.group_id)
