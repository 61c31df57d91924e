"""The interop driver: ``python -m mls interop`` (``/work/shared/interop/PROTOCOL.md``).

Reads one JSON request per line on standard input and writes one JSON response per line on
standard output, so a coordinator that only forwards wire bytes (RFC 9420 §6 ``MLSMessage``
encodings, as lowercase hex) can place this library in a group with other implementations.

This module is application-level glue and holds no protocol logic: it maps requests onto the
:mod:`mls.group` API, keeps handles for clients and groups, reads the clock (the library is
sans-I/O and takes ``now`` from its caller) and times each library call. Errors map to the
protocol's ``error_kind`` by the library's exception hierarchy (:mod:`mls.errors`); any other
exception is reported as ``"bug"``. A request that fails changes no handle table, and the library
itself guarantees (stage, then merge) that a failed call leaves a group or client as it was; the
driver only has to discard a commit it created but could not merge.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import replace
from typing import IO, Any, TypeVar

from mls.crypto import get_suite, supported_suites
from mls.errors import (
    InternalError,
    MLSError,
    PeerError,
    UnsupportedError,
    UsageError,
)
from mls.framing.message import MLSMessage
from mls.group import (
    ApplicationMessage,
    Client,
    CommitOutput,
    Group,
    GroupConfig,
    ProposalReceived,
)

__all__ = ["IMPL", "Driver", "error_kind", "main", "serve"]

IMPL = "mls-python"
#: Ops beyond PROTOCOL.md's table, listed in ``hello``.
EXTRA_OPS = ("propose_update", "self_remove")
_OPTION_KEYS = frozenset({"wire", "ratchet_tree_extension"})

T = TypeVar("T")
Request = dict[str, Any]
Response = dict[str, Any]


def error_kind(exc: BaseException) -> str:
    """The protocol's ``error_kind`` for an exception (PROTOCOL.md, Framing)."""
    if isinstance(exc, PeerError):
        return "peer"
    if isinstance(exc, UsageError):
        return "usage"
    if isinstance(exc, UnsupportedError):
        return "unsupported"
    if isinstance(exc, InternalError):
        return "internal"
    # An MLSError outside the four branches would be a hole in mls/errors.py: still a defect.
    return "bug"


def _timed(call: Callable[[], T]) -> tuple[T, float]:
    """Run one library call; its duration in milliseconds (``time.perf_counter``)."""
    start = time.perf_counter()
    result = call()
    return result, round((time.perf_counter() - start) * 1000.0, 3)


# Request fields. A malformed request is the coordinator's misuse of this API: UsageError.


def _field(req: Request, key: str) -> Any:
    if key not in req:
        raise UsageError(f"missing field {key!r}")
    return req[key]


def _str(req: Request, key: str, default: str | None = None) -> str:
    value = req.get(key, default) if default is not None else _field(req, key)
    if not isinstance(value, str):
        raise UsageError(f"field {key!r} must be a string")
    try:
        # JSON's \ud800 escapes decode to lone surrogates, which no UTF-8 encoder accepts: refuse
        # them here rather than let a label or identity fail deep in the library.
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise UsageError(f"field {key!r} is not valid Unicode (lone surrogate)") from None
    return value


def _int(value: Any, key: str) -> int:
    # bool is an int in Python; a JSON true is not a number here.
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise UsageError(f"field {key!r} must be a non-negative integer")
    return value


def _unhex(value: Any, key: str) -> bytes:
    if not isinstance(value, str):
        raise UsageError(f"field {key!r} must be a hex string")
    try:
        return bytes.fromhex(value)
    except ValueError:
        raise UsageError(f"field {key!r} is not valid hex") from None


def _hex(req: Request, key: str) -> bytes:
    return _unhex(_field(req, key), key)


def _opt_hex(req: Request, key: str) -> bytes | None:
    value = req.get(key)
    return None if value is None else _unhex(value, key)


def _config(base: GroupConfig, options: Any) -> GroupConfig:
    """Apply protocol ``options`` (``wire``, ``ratchet_tree_extension``) to a GroupConfig."""
    if options is None:
        return base
    if not isinstance(options, dict):
        raise UsageError("options must be an object")
    unknown = set(options) - _OPTION_KEYS
    if unknown:
        raise UsageError(f"unknown options {sorted(unknown)}")
    config = base
    if "wire" in options:
        wire = options["wire"]
        if wire not in ("private", "public"):
            raise UsageError('options.wire must be "private" or "public"')
        config = replace(config, private_handshake=wire == "private")
    if "ratchet_tree_extension" in options:
        rte = options["ratchet_tree_extension"]
        if not isinstance(rte, bool):
            raise UsageError("options.ratchet_tree_extension must be a boolean")
        config = replace(config, ratchet_tree_extension=rte)
    return config


def _options(config: GroupConfig) -> Response:
    return {
        "wire": "private" if config.private_handshake else "public",
        "ratchet_tree_extension": config.ratchet_tree_extension,
    }


def _dump(resp: Response) -> str:
    return json.dumps(resp, separators=(",", ":"))


def _now() -> int:
    # The library is sans-I/O (RFC 9420 §7.2 lifetimes need a clock): the driver reads it.
    return int(time.time())


class Driver:
    """Handle table plus one method per op; :meth:`handle` answers one request object."""

    def __init__(self) -> None:
        self.clients: dict[str, Client] = {}
        self.groups: dict[str, Group] = {}
        self._next_client = 0
        self._next_group = 0
        self._ops: dict[str, Callable[[Request], Response]] = {
            "hello": self.op_hello,
            "new_client": self.op_new_client,
            "key_package": self.op_key_package,
            "new_clients_with_key_packages": self.op_new_clients_with_key_packages,
            "create_group": self.op_create_group,
            "set_options": self.op_set_options,
            "add": self.op_add,
            "join": self.op_join,
            "update": self.op_update,
            "commit": self.op_commit,
            "remove": self.op_remove,
            "propose_add": self.op_propose_add,
            "propose_remove": self.op_propose_remove,
            "propose_update": self.op_propose_update,
            "self_remove": self.op_self_remove,
            "process": self.op_process,
            "protect": self.op_protect,
            "state": self.op_state,
            "exporter": self.op_exporter,
            "members": self.op_members,
            "export_tree": self.op_export_tree,
            "group_info": self.op_group_info,
            "external_join": self.op_external_join,
            "add_psk": self.op_add_psk,
            "commit_psk": self.op_commit_psk,
            "drop_group": self.op_drop_group,
        }

    # Dispatch and error mapping.

    def handle(self, req: Any) -> Response:
        """Answer one decoded request (never raises an ``Exception``)."""
        rid = req.get("id") if isinstance(req, dict) else None
        try:
            if not isinstance(req, dict):
                raise UsageError("a request must be a JSON object")
            op = _str(req, "op")
            fn = self._ops.get(op)
            if fn is None:
                raise UnsupportedError(f"unknown op {op!r}")
            body = fn(req)
            resp: Response = {"ok": True, **body}
        except Exception as exc:
            resp = {
                "ok": False,
                "error": str(exc) or type(exc).__name__,
                "error_type": type(exc).__name__,
                "error_kind": error_kind(exc),
            }
        if isinstance(req, dict) and "id" in req:
            resp = {"id": rid, **resp}
        return resp

    def handle_line(self, line: str | bytes) -> str | None:
        """Answer one input line with one output line (no newline); ``None`` for a blank line."""
        try:
            text = line.decode("utf-8") if isinstance(line, bytes) else line
        except UnicodeDecodeError:
            return _dump(self.handle_error(UsageError("request is not UTF-8")))
        if not text.strip():
            return None
        try:
            req = json.loads(text)
        except ValueError:
            return _dump(self.handle_error(UsageError("request is not valid JSON")))
        except RecursionError:
            # Deeply nested arrays or objects exhaust the parser's stack, not a library bug.
            return _dump(self.handle_error(UsageError("request nests too deeply")))
        return _dump(self.handle(req))

    @staticmethod
    def handle_error(exc: MLSError) -> Response:
        return {
            "ok": False,
            "error": str(exc),
            "error_type": type(exc).__name__,
            "error_kind": error_kind(exc),
        }

    # Handles.

    def _client(self, req: Request) -> Client:
        handle = _str(req, "client")
        client = self.clients.get(handle)
        if client is None:
            raise UsageError(f"unknown client {handle!r}")
        return client

    def _group(self, req: Request) -> Group:
        handle = _str(req, "group")
        group = self.groups.get(handle)
        if group is None:
            raise UsageError(f"unknown group {handle!r}")
        return group

    def _add_client(self, client: Client) -> str:
        self._next_client += 1
        handle = f"c{self._next_client}"
        self.clients[handle] = client
        return handle

    def _add_group(self, group: Group) -> str:
        self._next_group += 1
        handle = f"g{self._next_group}"
        self.groups[handle] = group
        return handle

    @staticmethod
    def _commit_and_merge(
        group: Group, make: Callable[[], CommitOutput]
    ) -> tuple[CommitOutput, float]:
        """Create a commit and merge it at once (the committer's side of PROTOCOL.md ops).

        If the merge fails, the pending commit is discarded so the group stays in its epoch.
        """

        def run() -> CommitOutput:
            out = make()
            try:
                group.merge_pending_commit()
            except Exception:
                group.clear_pending_commit()
                raise
            return out

        return _timed(run)

    # Ops (PROTOCOL.md, Operations).

    def op_hello(self, req: Request) -> Response:
        # RFC 9420 suites 1-7, then the post-quantum suites under the active profile's ids
        # (``python -m mls interop --suite-profile NAME``, mls.crypto.registry).
        suites = []
        for suite in supported_suites():
            try:
                get_suite(suite)
            except UnsupportedError:
                continue
            suites.append(suite)
        # ``extra_ops``: ops beyond PROTOCOL.md's table (docs/interop.md, "stdio driver").
        return {"impl": IMPL, "suites": suites, "unsupported": {}, "extra_ops": list(EXTRA_OPS)}

    def _identity(self, req: Request) -> bytes:
        if "identity_hex" in req:
            return _hex(req, "identity_hex")
        return _str(req, "identity").encode("utf-8")

    def op_new_client(self, req: Request) -> Response:
        suite = _int(_field(req, "suite"), "suite")
        client = Client.create(self._identity(req), suite)
        return {"client": self._add_client(client)}

    def op_key_package(self, req: Request) -> Response:
        client = self._client(req)
        now = _now()
        kp, t_ms = _timed(lambda: MLSMessage(body=client.key_package(now)).to_bytes())
        return {"key_package": kp.hex(), "t_ms": t_ms}

    def op_new_clients_with_key_packages(self, req: Request) -> Response:
        suite = _int(_field(req, "suite"), "suite")
        count = _int(_field(req, "count"), "count")
        prefix = _str(req, "prefix")
        now = _now()

        def run() -> list[tuple[Client, bytes]]:
            made = []
            for i in range(count):
                client = Client.create(f"{prefix}{i}".encode(), suite)
                made.append((client, MLSMessage(body=client.key_package(now)).to_bytes()))
            return made

        made, t_ms = _timed(run)
        # Handles are allocated only once every client exists (a failure adds none).
        clients = [{"client": self._add_client(c), "key_package": kp.hex()} for c, kp in made]
        return {"clients": clients, "t_ms": t_ms}

    def op_create_group(self, req: Request) -> Response:
        client = self._client(req)
        group_id = _hex(req, "group_id")
        config = _config(GroupConfig(), req.get("options"))
        now = _now()
        group, t_ms = _timed(lambda: Group.create(client, group_id, config=config, now=now))
        return {"group": self._add_group(group), "t_ms": t_ms}

    def op_set_options(self, req: Request) -> Response:
        group = self._group(req)
        config = _config(group.config, _field(req, "options"))
        group.set_config(config)
        return {"options": _options(group.config)}

    def op_add(self, req: Request) -> Response:
        group = self._group(req)
        raw = _field(req, "key_packages")
        if not isinstance(raw, list) or not raw:
            raise UsageError("key_packages must be a non-empty list")
        kps = [_unhex(kp, "key_packages") for kp in raw]
        now = _now()
        out, t_ms = self._commit_and_merge(group, lambda: group.commit(add=kps, now=now))
        return {
            "commit": out.commit.hex(),
            "welcome": out.welcome.hex() if out.welcome is not None else None,
            "ratchet_tree": group.export_tree().hex(),
            "epoch": group.epoch,
            "t_ms": t_ms,
        }

    def op_join(self, req: Request) -> Response:
        client = self._client(req)
        welcome = _hex(req, "welcome")
        tree = _opt_hex(req, "ratchet_tree")
        # ``options`` is an extension of PROTOCOL.md: the joiner's own wire/tree choices.
        config = _config(GroupConfig(), req.get("options"))
        now = _now()
        group, t_ms = _timed(
            lambda: Group.join(client, welcome, ratchet_tree=tree, config=config, now=now)
        )
        return {"group": self._add_group(group), "epoch": group.epoch, "t_ms": t_ms}

    def _commit_response(self, group: Group, out: CommitOutput, t_ms: float) -> Response:
        resp: Response = {"commit": out.commit.hex(), "epoch": group.epoch, "t_ms": t_ms}
        if out.welcome is not None:
            resp["welcome"] = out.welcome.hex()
        return resp

    def op_update(self, req: Request) -> Response:
        group = self._group(req)
        now = _now()
        out, t_ms = self._commit_and_merge(group, lambda: group.commit(path=True, now=now))
        return self._commit_response(group, out, t_ms)

    def op_commit(self, req: Request) -> Response:
        group = self._group(req)
        now = _now()
        out, t_ms = self._commit_and_merge(group, lambda: group.commit(now=now))
        return self._commit_response(group, out, t_ms)

    def op_remove(self, req: Request) -> Response:
        group = self._group(req)
        raw = _field(req, "leaf_index")
        indices = [_int(i, "leaf_index") for i in (raw if isinstance(raw, list) else [raw])]
        if not indices:
            raise UsageError("leaf_index must name at least one member")
        now = _now()
        out, t_ms = self._commit_and_merge(group, lambda: group.commit(remove=indices, now=now))
        return self._commit_response(group, out, t_ms)

    def op_propose_add(self, req: Request) -> Response:
        group = self._group(req)
        kp = _hex(req, "key_package")
        now = _now()
        proposal, t_ms = _timed(lambda: group.propose_add(kp, now=now))
        return {"proposal": proposal.hex(), "t_ms": t_ms}

    def op_propose_remove(self, req: Request) -> Response:
        group = self._group(req)
        leaf = _int(_field(req, "leaf_index"), "leaf_index")
        proposal, t_ms = _timed(lambda: group.propose_remove(leaf))
        return {"proposal": proposal.hex(), "t_ms": t_ms}

    def op_propose_update(self, req: Request) -> Response:
        # An extension of PROTOCOL.md's table: an Update proposal (RFC 9420 §12.1.2).
        group = self._group(req)
        proposal, t_ms = _timed(group.propose_update)
        return {"proposal": proposal.hex(), "t_ms": t_ms}

    def op_self_remove(self, req: Request) -> Response:
        # An extension of PROTOCOL.md's table: a SelfRemove proposal (draft-ietf-mls-extensions),
        # always a PublicMessage; an error where not every member supports it.
        group = self._group(req)
        proposal, t_ms = _timed(group.propose_self_remove)
        return {"proposal": proposal.hex(), "t_ms": t_ms}

    def op_process(self, req: Request) -> Response:
        group = self._group(req)
        message = _hex(req, "message")
        now = _now()
        event, t_ms = _timed(lambda: group.process(message, now=now))
        resp: Response
        if isinstance(event, ApplicationMessage):
            resp = {
                "kind": "application",
                "plaintext": event.data.hex(),
                "sender": event.sender,
                "epoch": group.epoch,
            }
        elif isinstance(event, ProposalReceived):
            resp = {"kind": "proposal", "epoch": group.epoch}
        else:
            resp = {"kind": "commit", "epoch": event.epoch, "removed": event.self_removed}
        resp.setdefault("removed", False)
        resp["t_ms"] = t_ms
        return resp

    def op_protect(self, req: Request) -> Response:
        group = self._group(req)
        plaintext = _hex(req, "plaintext")
        # ``authenticated_data`` is an optional extension of PROTOCOL.md (RFC 9420 §6.3).
        aad = _opt_hex(req, "authenticated_data") or b""
        message, t_ms = _timed(lambda: group.protect(plaintext, aad))
        return {"message": message.hex(), "t_ms": t_ms}

    def op_state(self, req: Request) -> Response:
        group = self._group(req)
        label = _str(req, "label", "test")
        context = _opt_hex(req, "context") or b""
        length = _int(req.get("length", 32), "length")
        return {
            "epoch": group.epoch,
            "epoch_authenticator": group.epoch_authenticator.hex(),
            "exporter": group.export_secret(label, context, length).hex(),
            "tree_hash": group.tree_hash.hex(),
            "confirmed_transcript_hash": group.confirmed_transcript_hash.hex(),
            "group_id": group.group_id.hex(),
            "cipher_suite": group.cipher_suite,
            "members": group.member_count,
            "own_leaf_index": group.own_leaf_index,
        }

    def op_exporter(self, req: Request) -> Response:
        group = self._group(req)
        label = _str(req, "label")
        context = _hex(req, "context")
        length = _int(_field(req, "length"), "length")
        return {"secret": group.export_secret(label, context, length).hex()}

    def op_members(self, req: Request) -> Response:
        group = self._group(req)
        return {
            "members": [
                {"leaf_index": leaf, "identity": cred.identity.hex()}
                for leaf, cred in group.members()
            ]
        }

    def op_export_tree(self, req: Request) -> Response:
        return {"ratchet_tree": self._group(req).export_tree().hex()}

    def op_group_info(self, req: Request) -> Response:
        group = self._group(req)
        info, t_ms = _timed(lambda: group.group_info(with_tree=True))
        return {"group_info": info.hex(), "t_ms": t_ms}

    def op_external_join(self, req: Request) -> Response:
        client = self._client(req)
        info = _hex(req, "group_info")
        tree = _opt_hex(req, "ratchet_tree")
        config = _config(GroupConfig(), req.get("options"))
        raw = req.get("self_removes", [])
        if not isinstance(raw, list):
            raise UsageError("field 'self_removes' must be a list of hex strings")
        self_removes = [_unhex(m, "self_removes") for m in raw]
        now = _now()
        (group, commit), t_ms = _timed(
            lambda: Group.external_join(
                client,
                info,
                ratchet_tree=tree,
                config=config,
                now=now,
                self_removes=self_removes,
            )
        )
        return {
            "group": self._add_group(group),
            "commit": commit.hex(),
            "epoch": group.epoch,
            "t_ms": t_ms,
        }

    def op_add_psk(self, req: Request) -> Response:
        client = self._client(req)
        psk_id = _hex(req, "psk_id")
        secret = _hex(req, "secret")
        client.add_external_psk(psk_id, secret)
        return {}

    def op_commit_psk(self, req: Request) -> Response:
        group = self._group(req)
        psk_id = _hex(req, "psk_id")
        now = _now()
        out, t_ms = self._commit_and_merge(group, lambda: group.commit(psks=[psk_id], now=now))
        return self._commit_response(group, out, t_ms)

    def op_drop_group(self, req: Request) -> Response:
        handle = _str(req, "group")
        if self.groups.pop(handle, None) is None:
            raise UsageError(f"unknown group {handle!r}")
        return {}


def serve(lines: Iterable[str | bytes], out: IO[str], driver: Driver | None = None) -> None:
    """Answer each request line with one response line on ``out``, flushed at once."""
    driver = driver or Driver()
    for line in lines:
        response = driver.handle_line(line)
        if response is None:
            continue
        out.write(response + "\n")
        out.flush()


def main(argv: Sequence[str] = ()) -> int:
    """``python -m mls interop``: serve stdin until end of input."""
    if argv:
        print("usage: python -m mls interop   (JSON lines on stdin/stdout)", file=sys.stderr)
        return 2
    out = sys.stdout
    # Only responses may reach stdout: anything else printed while serving goes to stderr.
    sys.stdout = sys.stderr
    try:
        serve(sys.stdin.buffer, out)
    except BrokenPipeError:
        return 1
    finally:
        sys.stdout = out
    return 0
