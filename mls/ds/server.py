"""The delivery service's HTTP and WebSocket API (Starlette; served by uvicorn).

Routes, request checks and limits live here; the rules and the state live in
:mod:`mls.ds.store`. ``docs/ds.md`` describes the API, ``GET /openapi.json`` serves it.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import HTTPConnection, Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route, WebSocketRoute
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from starlette.websockets import WebSocket, WebSocketDisconnect

from mls.crypto import verify_with_label
from mls.ds.db import open_database
from mls.ds.errors import Refused, Unavailable
from mls.ds.observe import Metrics, log_event
from mls.ds.openapi import openapi_spec
from mls.ds.store import Client, Entry, Limits, Store
from mls.ds.wire import (
    AUTH_LABEL,
    REGISTER_LABEL,
    auth_content,
    b64d,
    b64e,
    check_group_info,
    check_key_package,
    check_welcome,
    parse_group_message,
    register_content,
    self_remove_of,
    suite_or_refuse,
)
from mls.errors import DecodeError, MLSError
from mls.sframe.header import parse_header

__all__ = ["DsConfig", "create_app"]

MAX_ID = 255  # identities and group ids: opaque<1..255>
MAX_INT = (1 << 63) - 1
# A group registered at a later epoch could not count its commits in a signed 64-bit column.
MAX_EPOCH = 1 << 62


@dataclass(frozen=True, slots=True, kw_only=True)
class DsConfig:
    """Everything ``python -m mls serve`` can set."""

    database: str = "sqlite:///mls-ds.sqlite3"
    node: str = "node"
    #: Largest HTTP request body, and largest MLS message in it (bytes).
    max_body: int = 1 << 20
    max_message: int = 256 * 1024
    #: Largest SFrame frame relayed in a call (bytes).
    max_frame: int = 64 * 1024
    max_batch: int = 100
    #: Requests per second per client (token bucket), and the burst it may spend at once.
    rate: float = 200.0
    burst: float = 400.0
    frame_rate: float = 2000.0
    inbox_page: int = 500
    #: Seconds between inbox checks of a WebSocket with no notification (a safety net).
    poll_interval: float = 2.0
    pool_size: int = 8
    sqlite_sync: str = "NORMAL"
    limits: Limits = field(default_factory=Limits)


class _Bucket:
    __slots__ = ("stamp", "tokens")

    def __init__(self, tokens: float) -> None:
        self.tokens = tokens
        self.stamp = time.monotonic()


class RateLimiter:
    """A token bucket per key (client identity, or peer address before authentication); the
    buckets are per node."""

    def __init__(self, rate: float, burst: float) -> None:
        self.rate, self.burst = rate, burst
        self._buckets: dict[object, _Bucket] = {}

    def take(self, key: object) -> None:
        b = self._buckets.get(key)
        now = time.monotonic()
        if b is None:
            if len(self._buckets) > 100_000:
                self._buckets.clear()
            b = self._buckets[key] = _Bucket(self.burst)
        b.tokens = min(self.burst, b.tokens + (now - b.stamp) * self.rate)
        b.stamp = now
        if b.tokens < 1:
            raise Refused(
                429,
                "rate_limited",
                "too many requests; slow down",
                retry_after=round((1 - b.tokens) / self.rate, 3),
            )
        b.tokens -= 1


class Subscription:
    """One WebSocket's wake-up: an event, and the entries this node wrote for it since."""

    __slots__ = ("event", "hints")

    def __init__(self) -> None:
        self.event = asyncio.Event()
        self.hints: list[Entry] = []

    def take(self, after: int) -> list[Entry] | None:
        """The hinted entries right after ``after``, if they are complete (else ``None``: read
        the inbox). Hints only spare a read; the database stays the source of truth."""
        hints = [e for e in self.hints if e.seq > after]
        self.hints = []
        if any(e.seq != after + 1 + i for i, e in enumerate(hints)):
            return None
        return hints


class Hub:
    """Wakes the WebSockets of clients whose inboxes grew (notifications from any thread)."""

    MAX_HINTS = 1000

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._subs: dict[bytes, set[Subscription]] = {}

    def wake_threadsafe(self, items: list[tuple[bytes, list[Any]]]) -> None:
        with contextlib.suppress(RuntimeError):  # the loop is closing
            self._loop.call_soon_threadsafe(self._wake, items)

    def _wake(self, items: list[tuple[bytes, list[Any]]]) -> None:
        if not items:  # the listener reconnected: anything may have been missed
            for subs in self._subs.values():
                for sub in subs:
                    sub.event.set()
            return
        for identity, entries in items:
            for sub in self._subs.get(identity, ()):
                if entries and len(sub.hints) < self.MAX_HINTS:
                    sub.hints.extend(entries)
                else:
                    sub.hints.append(_GAP)  # from another node, or too many: read the inbox
                sub.event.set()

    def subscribe(self, identity: bytes) -> Subscription:
        sub = Subscription()
        self._subs.setdefault(identity, set()).add(sub)
        return sub

    def unsubscribe(self, identity: bytes, sub: Subscription) -> None:
        subs = self._subs.get(identity)
        if subs is not None:
            subs.discard(sub)
            if not subs:
                del self._subs[identity]


# An impossible entry: its presence makes Subscription.take fall back to reading the inbox.
_GAP = Entry(MAX_INT, "", b"", 0, 0, b"")


@dataclass(slots=True)
class _Participant:
    ws: WebSocket
    queue: asyncio.Queue[bytes]


# -- request parsing ----------------------------------------------------------------------------


async def _read_json(request: Request, limit: int) -> dict[str, Any]:
    length = request.headers.get("content-length")
    if length is not None and (not length.isdigit() or int(length) > limit):
        raise Refused(413, "too_large", f"request bodies are at most {limit} bytes")
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise Refused(413, "too_large", f"request bodies are at most {limit} bytes")
    try:
        obj = json.loads(body)
    except (ValueError, UnicodeDecodeError, RecursionError):
        raise Refused(400, "bad_request", "the body is not JSON") from None
    if not isinstance(obj, dict):
        raise Refused(400, "bad_request", "the body must be a JSON object")
    return obj


def _int(obj: dict[str, Any], name: str, *, default: int | None = None, hi: int = MAX_INT) -> int:
    value = obj.get(name, default)
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= hi:
        raise Refused(400, "bad_request", f"{name} must be an integer in [0, {hi}]")
    return value


def _bytes(obj: dict[str, Any], name: str, max_len: int, *, min_len: int = 1) -> bytes:
    if name not in obj:
        raise Refused(400, "bad_request", f"{name} is missing")
    data = b64d(obj[name], name, max_len=max_len)
    if len(data) < min_len:
        raise Refused(400, "bad_request", f"{name} must be at least {min_len} bytes")
    return data


def _opt_bytes(obj: dict[str, Any], name: str, max_len: int) -> bytes | None:
    if obj.get(name) is None:
        return None
    return _bytes(obj, name, max_len)


def _list(
    obj: dict[str, Any],
    name: str,
    max_len: int,
    item_len: int,
    *,
    min_items: int = 0,
    default: list[Any] | None = None,
) -> list[bytes]:
    value = obj.get(name, default)
    if not isinstance(value, list) or not min_items <= len(value) <= max_len:
        raise Refused(400, "bad_request", f"{name} must be a list of {min_items}..{max_len}")
    out = [b64d(v, name, max_len=item_len) for v in value]
    if any(not v for v in out):
        raise Refused(400, "bad_request", f"{name} has an empty item")
    if len(set(out)) != len(out):
        raise Refused(400, "bad_request", f"{name} has duplicates")
    return out


def _group_id(request: HTTPConnection) -> bytes:
    gid = b64d(request.path_params["group_id"], "group id", max_len=MAX_ID)
    if not gid:
        raise Refused(400, "bad_request", "empty group id")
    return gid


def _entry(e: Entry) -> dict[str, Any]:
    return {
        "seq": e.seq,
        "kind": e.kind,
        "group_id": b64e(e.group_id),
        "group_seq": e.group_seq,
        "epoch": e.epoch,
        "data": b64e(e.data),
    }


# -- the application ----------------------------------------------------------------------------


class DeliveryService:
    """State shared by the handlers of one node."""

    def __init__(self, config: DsConfig) -> None:
        self.config = config
        self.metrics = Metrics()
        self.limiter = RateLimiter(config.rate, config.burst)
        self.frame_limiter = RateLimiter(config.frame_rate, config.frame_rate)
        self._tokens: dict[bytes, tuple[bytes, int]] = {}
        self._store: Store | None = None
        self._hub: Hub | None = None
        self.calls: dict[bytes, dict[bytes, _Participant]] = {}

    @property
    def store(self) -> Store:
        assert self._store is not None
        return self._store

    @property
    def hub(self) -> Hub:
        assert self._hub is not None
        return self._hub

    @contextlib.asynccontextmanager
    async def lifespan(self, app: Starlette) -> AsyncIterator[None]:
        db = open_database(
            self.config.database,
            pool_size=self.config.pool_size,
            sqlite_sync=self.config.sqlite_sync,
        )
        self._store = Store(db, self.config.limits)
        self._hub = Hub(asyncio.get_running_loop())
        db.set_notify(self._hub.wake_threadsafe)
        db.start_listener()
        log_event("start", node=self.config.node, database=db.kind)
        try:
            yield
        finally:
            db.close()
            log_event("stop", node=self.config.node)

    # -- authentication --------------------------------------------------------------------

    async def identity_of_token(self, token_text: object) -> bytes:
        token = b64d(token_text, "token", max_len=64)
        key = hashlib.sha256(token).digest()
        now = int(time.time())
        cached = self._tokens.get(key)
        if cached is None or cached[1] < now:
            found = await self.store.token_owner(token)
            if found is None:
                raise Refused(401, "unauthenticated", "unknown or expired token")
            if len(self._tokens) > 100_000:
                self._tokens.clear()
            self._tokens[key] = cached = found
        return cached[0]

    async def authenticate(self, request: Request) -> bytes:
        header = request.headers.get("authorization", "")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token:
            raise Refused(401, "unauthenticated", "send Authorization: Bearer <token>")
        identity = await self.identity_of_token(token.strip())
        self.limiter.take(identity)
        return identity

    def _unauth_limit(self, request: Request) -> None:
        host = request.client.host if request.client else "?"
        self.limiter.take(("addr", host))

    # -- handlers ------------------------------------------------------------------------------

    async def health(self, request: Request) -> Response:
        """Alive and the database answers (503 ``database_unavailable`` otherwise)."""
        await self.store.ping()
        return JSONResponse(
            {"status": "ok", "node": self.config.node, "database": self.store.db.kind}
        )

    async def metrics_view(self, request: Request) -> Response:
        return JSONResponse({"node": self.config.node, **self.metrics.snapshot()})

    async def openapi(self, request: Request) -> Response:
        return JSONResponse(openapi_spec())

    async def register(self, request: Request) -> Response:
        self._unauth_limit(request)
        body = await _read_json(request, self.config.max_body)
        identity = _bytes(body, "identity", MAX_ID)
        key = _bytes(body, "signature_key", 1024)
        suite = suite_or_refuse(body.get("cipher_suite"))
        proof = _bytes(body, "proof", 1024)
        try:
            verify_with_label(suite, key, REGISTER_LABEL, register_content(identity, key), proof)
        except (MLSError, ValueError):
            raise Refused(422, "bad_signature", "the registration proof does not verify") from None
        await self.store.register(Client(identity, key, suite.suite_id))
        self.metrics.accepted["register"] += 1
        log_event("register", client=b64e(identity), suite=suite.suite_id)
        return JSONResponse({"identity": b64e(identity)}, status_code=201)

    async def challenge(self, request: Request) -> Response:
        self._unauth_limit(request)
        body = await _read_json(request, self.config.max_body)
        identity = _bytes(body, "identity", MAX_ID)
        challenge = await self.store.new_challenge(identity)
        return JSONResponse(
            {"challenge": b64e(challenge), "expires_in": self.config.limits.challenge_ttl}
        )

    async def token(self, request: Request) -> Response:
        self._unauth_limit(request)
        body = await _read_json(request, self.config.max_body)
        identity = _bytes(body, "identity", MAX_ID)
        challenge = _bytes(body, "challenge", 64)
        signature = _bytes(body, "signature", 1024)
        client = await self.store.client(identity)
        if client is None:
            raise Refused(401, "unauthenticated", "no client has this identity")
        try:
            verify_with_label(
                suite_or_refuse(client.cipher_suite),
                client.signature_key,
                AUTH_LABEL,
                auth_content(identity, challenge),
                signature,
            )
        except (MLSError, ValueError):
            raise Refused(
                401, "bad_signature", "the signature over the challenge does not verify"
            ) from None
        token, expires = await self.store.issue_token(identity, challenge)
        self.metrics.accepted["token"] += 1
        log_event("token", client=b64e(identity))
        return JSONResponse({"token": b64e(token), "expires_at": expires})

    async def publish_key_packages(self, request: Request) -> Response:
        identity = await self.authenticate(request)
        body = await _read_json(request, self.config.max_body)
        raw = body.get("key_packages")
        if not isinstance(raw, list) or not 1 <= len(raw) <= self.config.max_batch:
            raise Refused(
                400, "bad_request", f"key_packages must be a list of 1..{self.config.max_batch}"
            )
        client = await self.store.client(identity)
        assert client is not None
        suite = suite_or_refuse(client.cipher_suite)
        kps = [
            check_key_package(
                b64d(kp, "key_packages", max_len=self.config.max_message),
                identity=identity,
                signature_key=client.signature_key,
                suite=suite,
            )
            for kp in raw
        ]
        stored = await self.store.publish_key_packages(identity, kps)
        self.metrics.accepted["key_package"] += stored
        log_event("publish_key_packages", client=b64e(identity), stored=stored)
        return JSONResponse({"stored": stored}, status_code=201)

    async def count_key_packages(self, request: Request) -> Response:
        identity = await self.authenticate(request)
        fresh, last_resort = await self.store.key_package_counts(identity)
        return JSONResponse({"available": fresh, "last_resort": last_resort})

    async def claim_key_packages(self, request: Request) -> Response:
        identity = await self.authenticate(request)
        body = await _read_json(request, self.config.max_body)
        targets = _list(body, "identities", self.config.max_batch, MAX_ID, min_items=1)
        claimed = await self.store.claim_key_packages(targets)
        self.metrics.accepted["claim"] += len(claimed)
        log_event("claim_key_packages", client=b64e(identity), count=len(claimed))
        return JSONResponse(
            {
                "key_packages": [
                    {"identity": b64e(i), "key_package": b64e(claimed[i])} for i in targets
                ]
            }
        )

    async def create_group(self, request: Request) -> Response:
        identity = await self.authenticate(request)
        body = await _read_json(request, self.config.max_body)
        gid = _bytes(body, "group_id", MAX_ID)
        epoch = _int(body, "epoch", default=0, hi=MAX_EPOCH)
        await self.store.create_group(identity, gid, epoch)
        self.metrics.accepted["group"] += 1
        log_event("create_group", client=b64e(identity), group=b64e(gid))
        return JSONResponse({"group_id": b64e(gid), "epoch": epoch}, status_code=201)

    async def get_group(self, request: Request) -> Response:
        identity = await self.authenticate(request)
        state = await self.store.group(identity, _group_id(request))
        return JSONResponse(
            {
                "epoch": state.epoch,
                "group_seq": state.group_seq,
                "members": [b64e(m) for m in state.members],
            }
        )

    async def post_commit(self, request: Request) -> Response:
        identity = await self.authenticate(request)
        gid = _group_id(request)
        body = await _read_json(request, self.config.max_body)
        limit = self.config.max_message
        commit = _bytes(body, "commit", limit)
        welcome = _opt_bytes(body, "welcome", limit)
        group_info = _opt_bytes(body, "group_info", limit)
        batch = self.config.max_batch
        added = _list(body, "added", batch, MAX_ID, default=[])
        removed = _list(body, "removed", batch, MAX_ID, default=[])
        header = parse_group_message(commit)
        if header.group_id != gid:
            raise Refused(422, "wrong_group", "the commit is of another group")
        if header.kind != "commit":
            raise Refused(
                422, "not_a_commit", "post proposals and application messages to /messages"
            )
        if welcome is not None:
            check_welcome(welcome)
            if not added:
                raise Refused(422, "bad_roster", "a Welcome needs added identities")
        if group_info is not None and check_group_info(group_info, gid) != header.epoch + 1:
            raise Refused(422, "wrong_epoch", "the GroupInfo is not of the commit's epoch")
        posted = await self.store.post_commit(
            identity,
            gid,
            header,
            commit,
            welcome=welcome,
            group_info=group_info,
            added=added,
            removed=removed,
        )
        self.metrics.accepted["commit"] += 1
        log_event(
            "commit",
            client=b64e(identity),
            group=b64e(gid),
            epoch=posted.epoch,
            group_seq=posted.group_seq,
            size=len(commit),
            added=len(added),
            removed=len(removed),
        )
        if removed:
            await self._drop_from_call(gid, removed)
        return JSONResponse({"epoch": posted.epoch, "group_seq": posted.group_seq})

    async def post_message(self, request: Request) -> Response:
        identity = await self.authenticate(request)
        gid = _group_id(request)
        body = await _read_json(request, self.config.max_body)
        data = _bytes(body, "message", self.config.max_message)
        header = parse_group_message(data)
        if header.group_id != gid:
            raise Refused(422, "wrong_group", "the message is of another group")
        if header.kind == "commit":
            raise Refused(422, "use_commit_endpoint", "post commits to /commit")
        posted = await self.store.post_message(
            identity,
            gid,
            header,
            data,
            self_remove=header.kind == "proposal" and self_remove_of(data),
        )
        self.metrics.accepted[header.kind] += 1
        log_event(
            "message",
            client=b64e(identity),
            group=b64e(gid),
            kind=header.kind,
            epoch=header.epoch,
            group_seq=posted.group_seq,
            size=len(data),
        )
        return JSONResponse({"group_seq": posted.group_seq, "epoch": posted.epoch})

    async def put_group_info(self, request: Request) -> Response:
        identity = await self.authenticate(request)
        gid = _group_id(request)
        body = await _read_json(request, self.config.max_body)
        info = _bytes(body, "group_info", self.config.max_message)
        epoch = check_group_info(info, gid)
        await self.store.put_group_info(identity, gid, info, epoch)
        self.metrics.accepted["group_info"] += 1
        return JSONResponse({"epoch": epoch})

    async def get_group_info(self, request: Request) -> Response:
        await self.authenticate(request)
        info, epoch, current, self_removes = await self.store.group_info(_group_id(request))
        return JSONResponse(
            {
                "group_info": b64e(info),
                "epoch": epoch,
                "group_epoch": current,
                "self_removes": [b64e(p) for p in self_removes],
            }
        )

    async def fetch_inbox(self, request: Request) -> Response:
        identity = await self.authenticate(request)
        q = request.query_params
        try:
            after = int(q.get("after", "0"))
            limit = int(q.get("limit", str(self.config.inbox_page)))
        except ValueError:
            raise Refused(400, "bad_request", "after and limit must be integers") from None
        if not 0 <= after <= MAX_INT or not 1 <= limit <= self.config.inbox_page:
            raise Refused(
                400, "bad_request", f"after >= 0 and 1 <= limit <= {self.config.inbox_page}"
            )
        entries, last = await self.store.fetch(identity, after, limit)
        return JSONResponse({"entries": [_entry(e) for e in entries], "last_seq": last})

    async def ack_inbox(self, request: Request) -> Response:
        identity = await self.authenticate(request)
        body = await _read_json(request, self.config.max_body)
        acked = await self.store.ack(identity, _int(body, "seq"))
        self.metrics.accepted["ack"] += 1
        return JSONResponse({"acked": acked})

    # -- WebSockets ----------------------------------------------------------------------------

    async def _ws_auth(self, ws: WebSocket) -> tuple[bytes, dict[str, Any]]:
        await ws.accept()
        try:
            text = await asyncio.wait_for(ws.receive_text(), timeout=10)
            msg = json.loads(text)
            if not isinstance(msg, dict) or msg.get("type") != "auth":
                raise Refused(400, "bad_request", 'the first message must be {"type": "auth"}')
            return await self.identity_of_token(msg.get("token")), msg
        except (ValueError, KeyError, TimeoutError, RecursionError):
            await self._ws_close(ws, Refused(400, "bad_request", "expected an auth message"))
            raise WebSocketDisconnect(4400) from None
        except Refused as exc:
            await self._ws_close(ws, exc)
            raise WebSocketDisconnect(4000 + exc.status) from None

    async def _ws_close(self, ws: WebSocket, exc: Refused) -> None:
        self.metrics.refused[exc.code] += 1
        with contextlib.suppress(Exception):
            await ws.send_text(json.dumps({"type": "error", **exc.body()}))
            await ws.close(4000 + exc.status, exc.code)

    async def inbox_ws(self, ws: WebSocket) -> None:
        """Push inbox entries past the client's cursor as they arrive (see docs/ds.md)."""
        try:
            identity, msg = await self._ws_auth(ws)
        except WebSocketDisconnect:
            return
        try:
            after = _int(msg, "after", default=0)
        except Refused as exc:
            await self._ws_close(ws, exc)
            return
        sub = self.hub.subscribe(identity)
        log_event("ws_open", client=b64e(identity), after=after)
        acks: list[int] = []
        ack_wanted = asyncio.Event()

        async def push() -> None:
            nonlocal after
            first = True
            while True:
                sub.event.clear()
                entries = None if first else sub.take(after)
                first = False
                if entries is None:
                    entries, _ = await self.store.fetch(identity, after, self.config.inbox_page)
                if entries:
                    await ws.send_text(
                        json.dumps(
                            {
                                "type": "entries",
                                "entries": [_entry(e) for e in entries],
                                "last_seq": entries[-1].seq,
                            }
                        )
                    )
                    after = entries[-1].seq
                    if len(entries) == self.config.inbox_page:
                        sub.hints.append(_GAP)
                        continue
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(sub.event.wait(), self.config.poll_interval)
                if not sub.event.is_set():
                    sub.hints.append(_GAP)  # the idle poll: read the inbox

        async def listen() -> None:
            while True:
                text = await ws.receive_text()
                try:
                    msg = json.loads(text)
                    if not isinstance(msg, dict) or msg.get("type") != "ack":
                        raise Refused(400, "bad_request", 'expected {"type": "ack", "seq": n}')
                    self.limiter.take(identity)
                    acks.append(_int(msg, "seq"))
                    ack_wanted.set()
                except (ValueError, RecursionError):
                    await ws.send_text(
                        json.dumps({"type": "error", "error": "bad_request", "message": "not JSON"})
                    )
                except Refused as exc:
                    self.metrics.refused[exc.code] += 1
                    await ws.send_text(json.dumps({"type": "error", **exc.body()}))

        async def store_acks() -> None:
            # Acks that arrive together are stored in one transaction. Losing one (a crash
            # before it is stored) only means the entries are sent again, which the client's
            # cursor absorbs; the answer "acked" is sent once it is stored.
            while True:
                await ack_wanted.wait()
                await asyncio.sleep(0.01)
                ack_wanted.clear()
                seq = max(acks)
                acks.clear()
                try:
                    acked = await self.store.ack(identity, seq)
                except Refused as exc:
                    self.metrics.refused[exc.code] += 1
                    await ws.send_text(json.dumps({"type": "error", **exc.body()}))
                    continue
                self.metrics.accepted["ack"] += 1
                await ws.send_text(json.dumps({"type": "acked", "acked": acked}))

        tasks = [asyncio.create_task(c()) for c in (push, listen, store_acks)]
        try:
            await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for t in tasks:
                t.cancel()
            for t in tasks:
                with contextlib.suppress(BaseException):
                    await t
            self.hub.unsubscribe(identity, sub)
            log_event("ws_close", client=b64e(identity))

    async def call_ws(self, ws: WebSocket) -> None:
        """The SFU: forward each SFrame frame to the call's other participants. Only the SFrame
        header is read (RFC 9605 §4.3, to refuse what is not a frame); frames to a slow
        participant are dropped rather than queued without bound, as media relays do."""
        try:
            gid = _group_id(ws)
        except Refused as exc:
            await ws.accept()
            await self._ws_close(ws, exc)
            return
        try:
            identity, _ = await self._ws_auth(ws)
        except WebSocketDisconnect:
            return
        if not await self.store.is_member(identity, gid):
            await self._ws_close(ws, Refused(403, "not_in_roster", "not in the group's roster"))
            return
        room = self.calls.setdefault(gid, {})
        old = room.get(identity)
        if old is not None:
            with contextlib.suppress(Exception):
                await old.ws.close(4409, "replaced")
        me = room[identity] = _Participant(ws, asyncio.Queue(maxsize=256))
        await ws.send_text(
            json.dumps(
                {
                    "type": "joined",
                    "participants": [b64e(p) for p in sorted(room)],
                }
            )
        )
        log_event("call_join", client=b64e(identity), group=b64e(gid))
        prefix = bytes([len(identity)]) + identity

        async def write() -> None:
            while True:
                await ws.send_bytes(await me.queue.get())

        async def read() -> None:
            while True:
                frame = await ws.receive_bytes()
                if len(frame) > self.config.max_frame:
                    raise Refused(413, "too_large", "frame too large")
                try:
                    parse_header(frame)
                except DecodeError:
                    raise Refused(400, "malformed_frame", "not an SFrame frame") from None
                self.frame_limiter.take(identity)
                out = prefix + frame
                for who, p in list(room.items()):
                    if who != identity:
                        try:
                            p.queue.put_nowait(out)
                        except asyncio.QueueFull:
                            self.metrics.refused["frame_dropped"] += 1
                self.metrics.accepted["frame"] += 1

        async def watch() -> None:
            # Removals committed through another node reach us here.
            while await self.store.is_member(identity, gid):
                await asyncio.sleep(1.0)
            raise Refused(403, "not_in_roster", "removed from the group")

        tasks = [asyncio.create_task(c()) for c in (write, read, watch)]
        try:
            done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
            for t in done:
                failure = t.exception()
                if isinstance(failure, Refused):
                    await self._ws_close(ws, failure)
        finally:
            for t in tasks:
                t.cancel()
            for t in tasks:
                with contextlib.suppress(BaseException):
                    await t
            if room.get(identity) is me:
                del room[identity]
            if not room and self.calls.get(gid) is room:
                del self.calls[gid]
            log_event("call_leave", client=b64e(identity), group=b64e(gid))

    async def _drop_from_call(self, gid: bytes, removed: list[bytes]) -> None:
        room = self.calls.get(gid, {})
        for r in removed:
            p = room.get(r)
            if p is not None:
                await self._ws_close(p.ws, Refused(403, "not_in_roster", "removed from the group"))


class _AccessLog:
    """One log line per HTTP request: method, path, status, milliseconds (no bodies)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = 0

        async def send_wrapper(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            log_event(
                "request",
                level=logging.DEBUG if status < 400 else logging.INFO,
                method=scope["method"],
                path=scope["path"],
                status=status,
                ms=round((time.perf_counter() - start) * 1000, 2),
            )


def create_app(config: DsConfig) -> Starlette:
    ds = DeliveryService(config)

    async def refused(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, Refused)
        ds.metrics.refused[exc.code] += 1
        headers = {}
        if exc.status == 429:
            headers["Retry-After"] = str(max(1, round(exc.extra.get("retry_after", 1))))
        return JSONResponse(exc.body(), status_code=exc.status, headers=headers)

    async def unavailable(request: Request, exc: Exception) -> Response:
        ds.metrics.refused["database_unavailable"] += 1
        return JSONResponse({"error": "database_unavailable", "message": str(exc)}, status_code=503)

    async def http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "bad_request")
        ds.metrics.refused[code] += 1
        return JSONResponse(
            {"error": code, "message": str(exc.detail)}, status_code=exc.status_code
        )

    def route(path: str, fn: Callable[[Request], Awaitable[Response]], method: str) -> Route:
        return Route(path, fn, methods=[method])

    g = "/v1/groups/{group_id}"
    routes = [
        route("/health", ds.health, "GET"),
        route("/metrics", ds.metrics_view, "GET"),
        route("/openapi.json", ds.openapi, "GET"),
        route("/v1/clients", ds.register, "POST"),
        route("/v1/auth/challenge", ds.challenge, "POST"),
        route("/v1/auth/token", ds.token, "POST"),
        route("/v1/key_packages", ds.publish_key_packages, "POST"),
        route("/v1/key_packages", ds.count_key_packages, "GET"),
        route("/v1/key_packages/claim", ds.claim_key_packages, "POST"),
        route("/v1/groups", ds.create_group, "POST"),
        route(g, ds.get_group, "GET"),
        route(g + "/commit", ds.post_commit, "POST"),
        route(g + "/messages", ds.post_message, "POST"),
        route(g + "/group_info", ds.put_group_info, "PUT"),
        route(g + "/group_info", ds.get_group_info, "GET"),
        route("/v1/inbox", ds.fetch_inbox, "GET"),
        route("/v1/inbox/ack", ds.ack_inbox, "POST"),
        WebSocketRoute("/v1/ws", ds.inbox_ws),
        WebSocketRoute(g + "/call", ds.call_ws),
    ]
    app = Starlette(
        routes=routes,
        lifespan=ds.lifespan,
        exception_handlers={
            Refused: refused,
            Unavailable: unavailable,
            HTTPException: http_error,
        },
    )
    app.state.ds = ds
    app.add_middleware(_AccessLog)
    return app
