"""Handler for ``mlswg/messages.json`` (test-vectors.md "Messages").

Every field must decode as its struct (with no trailing bytes) and re-encode to the same bytes.
The MLSMessage fields must also carry the wire format (and, for the public messages, the
content type) their name announces.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any, TypeVar

from mls.codec.wire import Decodable
from mls.codec.wire import decode as wire_decode
from mls.codec.wire import encode as wire_encode
from mls.conformance.core import CaseFailed, h
from mls.constants import ContentType, WireFormat
from mls.framing.message import MLSMessage
from mls.framing.public import PublicMessage
from mls.messages import (
    Add,
    Commit,
    ExternalInit,
    GroupContextExtensions,
    GroupSecrets,
    PreSharedKey,
    ReInit,
    Remove,
    Update,
)
from mls.tree.nodes import Node, decode_ratchet_tree, encode_ratchet_tree

T = TypeVar("T")

_STRUCTS: dict[str, type[Decodable]] = {
    "group_secrets": GroupSecrets,
    "add_proposal": Add,
    "update_proposal": Update,
    "remove_proposal": Remove,
    "pre_shared_key_proposal": PreSharedKey,
    "re_init_proposal": ReInit,
    "external_init_proposal": ExternalInit,
    "group_context_extensions_proposal": GroupContextExtensions,
    "commit": Commit,
}

_MESSAGES: dict[str, tuple[int, int | None]] = {
    "mls_welcome": (WireFormat.mls_welcome, None),
    "mls_group_info": (WireFormat.mls_group_info, None),
    "mls_key_package": (WireFormat.mls_key_package, None),
    "public_message_application": (WireFormat.mls_public_message, ContentType.application),
    "public_message_proposal": (WireFormat.mls_public_message, ContentType.proposal),
    "public_message_commit": (WireFormat.mls_public_message, ContentType.commit),
    "private_message": (WireFormat.mls_private_message, None),
}


def _roundtrip(
    name: str, data: bytes, decode: Callable[[bytes], T], encode: Callable[[T], bytes]
) -> T:
    obj = decode(data)
    again = encode(obj)
    if again != data:
        raise CaseFailed(f"{name}: re-encoding differs ({len(again)} vs {len(data)} bytes)")
    return obj


def _encode_any(obj: Any) -> bytes:
    return wire_encode(obj)


def _decode_tree(data: bytes) -> list[Node | None]:
    nodes = decode_ratchet_tree(data)
    if not nodes or nodes[-1] is None:
        raise CaseFailed("ratchet_tree: empty or ends in a blank node")
    return nodes


def check(case: Any) -> None:
    for name, (wire_format, content_type) in _MESSAGES.items():
        msg = _roundtrip(name, h(case[name]), partial(wire_decode, MLSMessage), wire_encode)
        if msg.wire_format != wire_format:
            raise CaseFailed(f"{name}: wire_format {msg.wire_format}, want {wire_format}")
        if content_type is not None:
            if not isinstance(msg.body, PublicMessage):
                raise CaseFailed(f"{name}: not a PublicMessage")
            if msg.body.content.content_type != content_type:
                raise CaseFailed(f"{name}: content_type {msg.body.content.content_type}")
    for name, cls in _STRUCTS.items():
        _roundtrip(name, h(case[name]), partial(wire_decode, cls), _encode_any)
    _roundtrip("ratchet_tree", h(case["ratchet_tree"]), _decode_tree, encode_ratchet_tree)
    missing = set(case) - set(_MESSAGES) - set(_STRUCTS) - {"ratchet_tree"}
    if missing:
        raise CaseFailed(f"fields not checked: {sorted(missing)}")
