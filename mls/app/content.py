"""MIMI content messages (draft-ietf-mimi-content-08): typed values, CBOR codec, message IDs.

The schema (Appendix B, ``mimi-content.cddl``)::

    mimiContent = [
      salt: bstr .size 16,
      replaces: null / MessageId,
      topicId: bstr,
      expires: null / Expiration,
      inReplyTo: null / MessageId,
      mimiExtensions: extensions,
      nestedPart: NestedPart
    ]
    NestedPart = [
      disposition: baseDispos / $extDispos / unknownDispos,
      language: tstr,
      ( NullPart // SinglePart // ExternalPart // MultiPart)
    ]

maps onto :class:`MimiContent`, :class:`NestedPart` and the four part bodies :class:`NullPart`,
:class:`SinglePart`, :class:`ExternalPart` and :class:`MultiPart`. :class:`MessageDerivedValues`
is the "implied" data of ``implied.cddl``.

Encoding is CBOR "deterministic" serialization (RFC 8949 §4.2.1, required by the draft's "CBOR Data
Model and Encoding Restrictions"): shortest heads and floats, definite lengths, and map keys sorted
bytewise by their encoding (not RFC 7049 length-first order, which the draft forbids). cbor2 parses
the input. Its semantic tag decoders are turned off so tags stay as :class:`cbor2.CBORTag`. The
value is then checked against the CDDL and the data-model, depth and size rules, and re-encoded
with the deterministic encoder here. Input that does not re-encode to the identical bytes is not
deterministic CBOR and is rejected. :func:`decode_content` raises only
:class:`~mls.errors.InvalidContent`.

Constructors for common messages (:func:`text`, :func:`reply`, :func:`reaction`, :func:`edit`,
:func:`delete`, :func:`unlike`, :func:`mention`, :func:`attachment`) take the 16-byte ``salt``
from the caller, who MUST generate it randomly (:func:`new_salt`, :func:`derive_salt`).
"""

from __future__ import annotations

import hashlib
import hmac
import html
import itertools
import math
import os
import struct
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from enum import IntEnum
from types import MappingProxyType
from typing import Any, TypeAlias, TypeVar

import cbor2

from mls.errors import InvalidContent, UsageError

CborValue: TypeAlias = Any
"""Any CBOR data item as cbor2 represents it (int, bytes, str, list, dict, CBORTag, ...)."""

ExtensionKey: TypeAlias = int | str
_T = TypeVar("_T")

MARKDOWN = "text/markdown;variant=GFM-MIMI"
HTML = "text/html;charset=utf-8"
PLAIN = "text/plain;charset=utf-8"

SALT_LEN = 16
MESSAGE_ID_LEN = 32
SHA256_ID = 0x01  # IANA Named Information Hash Algorithm Registry: sha-256

MAX_PART_DEPTH = 4  # "NestedParts MUST NOT be nested more than 4-levels deep"
MAX_EXTENSION_DEPTH = 4  # extensions: tags, maps and arrays at most 4 levels deep
# Security Considerations, "General handling": treated as malicious and discarded.
MAX_PARTS = 1024
MAX_TOPIC_ID = 4096
MAX_SAFE_INT = (1 << 53) - 1  # integer map keys must survive a double (data model restrictions)


class Disposition(IntEnum):
    """MIMI Content Disposition registry (IANA Considerations). Unknown values 9..255 are kept."""

    unspecified = 0
    render = 1
    reaction = 2
    profile = 3
    inline = 4
    icon = 5
    attachment = 6
    session = 7
    preview = 8


class Cardinality(IntEnum):
    null_part = 0
    single = 1
    external = 2
    multi = 3


class PartSemantics(IntEnum):
    choose_one = 0  # the receiver picks exactly one part (like multipart/alternative)
    single_unit = 1  # all parts form one entity (like multipart/related)
    process_all = 2  # process each part individually (like multipart/mixed)


class ExtensionKeys(IntEnum):
    """MIMI Content Extension Keys registry."""

    sender_uri = 1
    room_uri = 2


def _require(cond: bool, message: str) -> None:
    if not cond:
        raise UsageError(message)


def _is_int(v: object) -> bool:
    # bool is an int subclass in Python, but CBOR true/false are not integers.
    return isinstance(v, int) and not isinstance(v, bool)


def _is_uint(v: object, max_bytes: int = 8) -> bool:
    return _is_int(v) and 0 <= v < (1 << (8 * max_bytes))  # type: ignore[operator]


def _is_message_id(v: object) -> bool:
    return type(v) is bytes and len(v) == MESSAGE_ID_LEN


# ---------------------------------------------------------------------------------------------
# Typed values.


@dataclass(frozen=True, slots=True, kw_only=True)
class Expiration:
    """``Expiration = [relative: bool, time: uint .size 4]``.

    Relative: seconds the message stays visible after it is read. Absolute: seconds since the UNIX
    epoch at which it should be deleted.
    """

    relative: bool
    time: int

    def __post_init__(self) -> None:
        _require(type(self.relative) is bool, "Expiration.relative must be a bool")
        _require(_is_uint(self.time, 4), "Expiration.time must be a uint .size 4")

    @classmethod
    def after_read(cls, seconds: int) -> Expiration:
        return cls(relative=True, time=seconds)

    @classmethod
    def at(cls, unix_seconds: int) -> Expiration:
        return cls(relative=False, time=unix_seconds)


@dataclass(frozen=True, slots=True, kw_only=True)
class NullPart:
    """``NullPart = ( cardinality: nullpart )``: no body, e.g. a delete or an unlike."""

    cardinality = Cardinality.null_part


@dataclass(frozen=True, slots=True, kw_only=True)
class SinglePart:
    """``SinglePart = ( cardinality: single, contentType: tstr, content: bstr )``."""

    content_type: str
    content: bytes

    cardinality = Cardinality.single

    def __post_init__(self) -> None:
        _require(type(self.content_type) is str, "contentType must be a text string")
        _require(type(self.content) is bytes, "content must be a byte string")


@dataclass(frozen=True, slots=True, kw_only=True)
class ExternalPart:
    """External content (draft § External content)::

    ExternalPart = (
        cardinality: external,
        contentType: tstr, url: tstr, expires: uint .size 4, size: uint .size 8,
        encAlg: uint .size 2, key: bstr, nonce: bstr, aad: bstr,
        hashAlg: uint .size 1, contentHash: bstr, description: tstr, filename: tstr
    )

    ``encAlg`` is an IANA AEAD algorithm (0: not encrypted, then key/nonce/aad are empty);
    ``hashAlg`` an IANA Named Information hash algorithm; ``expires``/``size`` 0 mean "not given".
    """

    content_type: str
    url: str
    expires: int = 0
    size: int = 0
    enc_alg: int = 0
    key: bytes = field(default=b"", repr=False)
    nonce: bytes = b""
    aad: bytes = b""
    hash_alg: int = 0
    content_hash: bytes = b""
    description: str = ""
    filename: str = ""

    cardinality = Cardinality.external

    def __post_init__(self) -> None:
        for name in ("content_type", "url", "description", "filename"):
            _require(type(getattr(self, name)) is str, f"ExternalPart.{name} must be a text string")
        for name in ("key", "nonce", "aad", "content_hash"):
            _require(type(getattr(self, name)) is bytes, f"ExternalPart.{name} must be bytes")
        _require(_is_uint(self.expires, 4), "ExternalPart.expires must be a uint .size 4")
        _require(_is_uint(self.size, 8), "ExternalPart.size must be a uint .size 8")
        _require(_is_uint(self.enc_alg, 2), "ExternalPart.encAlg must be a uint .size 2")
        _require(_is_uint(self.hash_alg, 1), "ExternalPart.hashAlg must be a uint .size 1")


@dataclass(frozen=True, slots=True, kw_only=True)
class MultiPart:
    """``MultiPart = ( cardinality: multi, partSemantics: 0..2, parts: [2* NestedPart] )``."""

    part_semantics: int
    parts: tuple[NestedPart, ...]

    cardinality = Cardinality.multi

    def __post_init__(self) -> None:
        object.__setattr__(self, "parts", tuple(self.parts))
        _require(
            _is_int(self.part_semantics) and self.part_semantics in (0, 1, 2),
            f"unknown partSemantics {self.part_semantics!r}",
        )
        _require(len(self.parts) >= 2, "a MultiPart has at least two parts")
        _require(all(isinstance(p, NestedPart) for p in self.parts), "parts must be NestedParts")


PartBody: TypeAlias = NullPart | SinglePart | ExternalPart | MultiPart


@dataclass(frozen=True, slots=True, kw_only=True)
class NestedPart:
    """``NestedPart = [disposition, language, ( NullPart // SinglePart // ExternalPart //
    MultiPart )]``.

    ``disposition`` is 0..255 (:class:`Disposition` for the registered values; receivers treat an
    unknown value as ``render``). ``language`` is "" or a comma-separated list of RFC 5646 tags.
    """

    body: PartBody
    disposition: int = Disposition.render
    language: str = ""

    def __post_init__(self) -> None:
        _require(_is_uint(self.disposition, 1), "disposition must be in 0..255")
        _require(type(self.language) is str, "language must be a text string")
        _require(
            isinstance(self.body, NullPart | SinglePart | ExternalPart | MultiPart),
            "body must be a NullPart, SinglePart, ExternalPart or MultiPart",
        )
        _require(self.depth() <= MAX_PART_DEPTH, "NestedParts are nested more than 4 levels deep")

    def depth(self) -> int:
        """Levels of NestedPart, this one included."""
        if isinstance(self.body, MultiPart):
            return 1 + max(p.depth() for p in self.body.parts)
        return 1

    def iter_parts(self) -> Iterator[tuple[int, NestedPart]]:
        """``(partIndex, part)`` in depth-first order; this part has index 0 (draft § Message
        Bodies, Appendix "Complicated Nested Example")."""
        stack: list[NestedPart] = [self]
        index = 0
        while stack:
            part = stack.pop()
            yield index, part
            index += 1
            if isinstance(part.body, MultiPart):
                stack.extend(reversed(part.body.parts))

    def part(self, index: int) -> NestedPart:
        """The part with implied ``partIndex`` ``index``."""
        for i, p in self.iter_parts():
            if i == index:
                return p
        raise UsageError(f"no part with partIndex {index}")

    def resolve_cid(self, uri: str) -> NestedPart | None:
        """The part a ``cid:<partIndex>@local.invalid`` URI names, if it is a single or external
        part (the only kinds such a URI may reference); otherwise None."""
        prefix, suffix = "cid:", "@local.invalid"
        if not (uri.startswith(prefix) and uri.endswith(suffix)):
            return None
        digits = uri[len(prefix) : -len(suffix)]
        if not digits.isdigit() or not digits.isascii():
            return None
        for i, p in self.iter_parts():
            if i == int(digits):
                return p if isinstance(p.body, SinglePart | ExternalPart) else None
        return None


@dataclass(frozen=True, slots=True, kw_only=True)
class MimiContent:
    """A MIMI content message (``mimiContent``); see the module docstring for the CDDL.

    ``extensions`` maps int or text keys (text: 1..255 UTF-8 bytes) to any CBOR value; keys 1
    (``senderUri``) and 2 (``roomUri``) hold text. It is stored read-only.
    """

    salt: bytes = field(repr=False)
    nested_part: NestedPart
    replaces: bytes | None = None
    topic_id: bytes = b""
    expires: Expiration | None = None
    in_reply_to: bytes | None = None
    extensions: Mapping[ExtensionKey, CborValue] = field(
        default_factory=lambda: MappingProxyType({}), hash=False
    )

    def __post_init__(self) -> None:
        _require(type(self.salt) is bytes and len(self.salt) == SALT_LEN, "salt must be 16 bytes")
        _require(self.replaces is None or _is_message_id(self.replaces), "replaces: MessageId")
        _require(self.in_reply_to is None or _is_message_id(self.in_reply_to), "inReplyTo")
        _require(type(self.topic_id) is bytes, "topicId must be a byte string")
        _require(len(self.topic_id) <= MAX_TOPIC_ID, "topicId longer than 4096 bytes")
        _require(self.expires is None or isinstance(self.expires, Expiration), "expires")
        _require(isinstance(self.nested_part, NestedPart), "nestedPart must be a NestedPart")
        _check_extensions(self.extensions)
        object.__setattr__(self, "extensions", MappingProxyType(dict(self.extensions)))
        count = sum(1 for _ in self.nested_part.iter_parts())
        _require(count <= MAX_PARTS, f"{count} body parts (more than {MAX_PARTS})")

    @property
    def sender_uri(self) -> str | None:
        value = self.extensions.get(ExtensionKeys.sender_uri)
        return value if isinstance(value, str) else None

    @property
    def room_uri(self) -> str | None:
        value = self.extensions.get(ExtensionKeys.room_uri)
        return value if isinstance(value, str) else None

    def to_cbor(self) -> bytes:
        return encode_content(self)

    @classmethod
    def from_cbor(cls, data: bytes) -> MimiContent:
        return decode_content(data)

    def message_id(self, sender_uri: str | None = None, room_uri: str | None = None) -> bytes:
        """This message's ID (draft § Message ID); the URIs default to the senderUri and roomUri
        extensions."""
        sender = sender_uri if sender_uri is not None else self.sender_uri
        room = room_uri if room_uri is not None else self.room_uri
        if sender is None or room is None:
            raise UsageError("message ID needs the sender URI and the room URI")
        return compute_message_id(encode_content(self), self.salt, sender, room)


@dataclass(frozen=True, slots=True, kw_only=True)
class ExtendedTime:
    """``ExtendedTime = #6.1001({* name => value })`` (RFC 9581 §3)."""

    fields: Mapping[ExtensionKey, CborValue] = field(hash=False)

    def __post_init__(self) -> None:
        _require(isinstance(self.fields, Mapping), "ExtendedTime holds a map")
        for k in self.fields:
            _check_key(k)
        _check_value(dict(self.fields), 1)
        object.__setattr__(self, "fields", MappingProxyType(dict(self.fields)))


@dataclass(frozen=True, slots=True, kw_only=True)
class MessageDerivedValues:
    """The implied fields of a message (``implied.cddl``)::

    MessageDerivedValues = [
        messageId: MessageId, hubAcceptedTimestamp: Timestamp, mlsGroupId: bstr,
        senderLeafIndex: uint .size 4, senderClientUrl: MsgUri, senderUserUrl: MsgUri,
        roomUrl: MsgUri
    ]
    Timestamp = MsecsSinceEpoch / ExtendedTime   ; MsecsSinceEpoch = uint .size 8
    """

    message_id: bytes
    hub_accepted_timestamp: int | ExtendedTime
    mls_group_id: bytes
    sender_leaf_index: int
    sender_client_url: str
    sender_user_url: str
    room_url: str

    def __post_init__(self) -> None:
        _require(_is_message_id(self.message_id), "messageId must be 32 bytes")
        ts = self.hub_accepted_timestamp
        _require(_is_uint(ts, 8) or isinstance(ts, ExtendedTime), "hubAcceptedTimestamp")
        _require(type(self.mls_group_id) is bytes, "mlsGroupId must be bytes")
        _require(_is_uint(self.sender_leaf_index, 4), "senderLeafIndex must be a uint .size 4")
        for name in ("sender_client_url", "sender_user_url", "room_url"):
            _require(type(getattr(self, name)) is str, f"{name} must be a text string")

    def to_cbor(self) -> bytes:
        ts = self.hub_accepted_timestamp
        return _encode(
            [
                self.message_id,
                ts if isinstance(ts, int) else cbor2.CBORTag(1001, dict(ts.fields)),
                self.mls_group_id,
                self.sender_leaf_index,
                self.sender_client_url,
                self.sender_user_url,
                self.room_url,
            ]
        )

    @classmethod
    def from_cbor(cls, data: bytes) -> MessageDerivedValues:
        def build(v: CborValue) -> MessageDerivedValues:
            _shape(v, 7, "MessageDerivedValues")
            ts = v[1]
            if isinstance(ts, cbor2.CBORTag):
                _shape_tag(ts, 1001)
                _require(isinstance(ts.value, dict), "ExtendedTime holds a map")
                ts = ExtendedTime(fields=ts.value)
            return cls(
                message_id=v[0],
                hub_accepted_timestamp=ts,
                mls_group_id=v[2],
                sender_leaf_index=v[3],
                sender_client_url=v[4],
                sender_user_url=v[5],
                room_url=v[6],
            )

        return _decode(data, build, cls.to_cbor)


# ---------------------------------------------------------------------------------------------
# Validation of the CBOR data model (draft § CBOR Data Model and Encoding Restrictions).


def _check_key(k: object) -> None:
    if isinstance(k, int) and not isinstance(k, bool):
        _require(-MAX_SAFE_INT <= k <= MAX_SAFE_INT, f"integer map key {k} beyond 2^53 - 1")
    elif type(k) is str:
        _require(1 <= len(k.encode("utf-8", "surrogatepass")) <= 255, "text key of 1..255 bytes")
    else:
        raise UsageError(f"extension keys are integers or text strings, not {type(k).__name__}")


def _check_value(v: CborValue, level: int) -> None:
    """Check one value at nesting ``level`` (a map, array or tag at level > 4 is too deep)."""
    if isinstance(v, list | tuple):
        _require(level <= MAX_EXTENSION_DEPTH, "extension nested more than 4 levels deep")
        for item in v:
            _check_value(item, level + 1)
    elif isinstance(v, Mapping):
        _require(level <= MAX_EXTENSION_DEPTH, "extension nested more than 4 levels deep")
        for k, item in v.items():
            # Keys of maps inside extensions: integers, text or byte strings only.
            if _is_int(k):
                _require(abs(k) <= MAX_SAFE_INT, f"integer map key {k} beyond 2^53 - 1")
            elif not isinstance(k, str | bytes):
                raise UsageError(f"map keys are integers, text or bytes, not {type(k).__name__}")
            _check_value(item, level + 1)
    elif isinstance(v, cbor2.CBORTag):
        _require(level <= MAX_EXTENSION_DEPTH, "extension nested more than 4 levels deep")
        if v.tag in (2, 3):
            # Preferred serialization (RFC 8949 §3.4.3): no leading zeros, and integers that fit
            # in 64 bits are plain integers.
            raw = v.value
            _require(type(raw) is bytes and raw[:1] != b"\x00", "bignum with leading zero")
            _require(len(raw) > 8, "bignum that fits in 64 bits")
        _check_value(v.value, level + 1)
    elif _is_int(v):
        _require(-(1 << 64) <= v < (1 << 64), "integer outside the CBOR major types 0/1")
    elif not (v is None or v is cbor2.undefined or isinstance(v, _SCALARS)):
        raise UsageError(f"{type(v).__name__} is not a CBOR data item")


_SCALARS = (bool, float, str, bytes, cbor2.CBORSimpleValue)


def _check_extensions(ext: Mapping[ExtensionKey, CborValue]) -> None:
    _require(isinstance(ext, Mapping), "extensions must be a map")
    for k, v in ext.items():
        _check_key(k)
        if k in (ExtensionKeys.sender_uri, ExtensionKeys.room_uri):
            _require(type(v) is str, f"extension {k} (senderUri/roomUri) must be a text string")
        _check_value(v, 2)  # the extensions map itself is level 1


# ---------------------------------------------------------------------------------------------
# Deterministic CBOR encoding (RFC 8949 §4.2.1).


def _head(major: int, n: int) -> bytes:
    mt = major << 5
    if n < 24:
        return bytes((mt | n,))
    if n < 0x100:
        return bytes((mt | 24, n))
    if n < 0x10000:
        return bytes((mt | 25,)) + n.to_bytes(2, "big")
    if n < 0x100000000:
        return bytes((mt | 26,)) + n.to_bytes(4, "big")
    if n < 1 << 64:
        return bytes((mt | 27,)) + n.to_bytes(8, "big")
    raise UsageError(f"CBOR argument {n} does not fit in 64 bits")


def _float(v: float) -> bytes:
    # The shortest of half, single and double precision that keeps the value (§4.2.1, and the
    # draft: the only NaN is the half-width quiet NaN 0xf97e00).
    if math.isnan(v):
        return b"\xf9\x7e\x00"
    for marker, fmt in ((b"\xf9", ">e"), (b"\xfa", ">f")):
        try:
            packed = struct.pack(fmt, v)
        except OverflowError:
            continue
        if struct.unpack(fmt, packed)[0] == v:
            return marker + packed
    return b"\xfb" + struct.pack(">d", v)


def _enc(v: CborValue, out: bytearray) -> None:
    if v is None:
        out += b"\xf6"
    elif v is True:
        out += b"\xf5"
    elif v is False:
        out += b"\xf4"
    elif isinstance(v, int):
        n = int(v)
        out += _head(0, n) if n >= 0 else _head(1, -1 - n)
    elif isinstance(v, bytes):
        out += _head(2, len(v))
        out += v
    elif isinstance(v, str):
        try:
            raw = v.encode("utf-8")
        except UnicodeEncodeError:
            raise UsageError("text strings must be valid UTF-8 (no lone surrogates)") from None
        out += _head(3, len(raw))
        out += raw
    elif isinstance(v, list | tuple):
        out += _head(4, len(v))
        for item in v:
            _enc(item, out)
    elif isinstance(v, Mapping):
        items = sorted(((_encode(k), item) for k, item in v.items()), key=lambda kv: kv[0])
        for (a, _), (b, _) in itertools.pairwise(items):
            if a == b:
                raise UsageError("two map keys have the same encoding")
        out += _head(5, len(items))
        for key, item in items:
            out += key
            _enc(item, out)
    elif isinstance(v, float):
        out += _float(v)
    elif isinstance(v, cbor2.CBORTag):
        out += _head(6, v.tag)
        _enc(v.value, out)
    elif isinstance(v, cbor2.CBORSimpleValue):
        out += bytes((0xE0 | v.value,)) if v.value < 24 else bytes((0xF8, v.value))
    elif v is cbor2.undefined:
        out += b"\xf7"
    else:
        raise UsageError(f"cannot encode {type(v).__name__} as CBOR")


def _encode(v: CborValue) -> bytes:
    out = bytearray()
    _enc(v, out)
    return bytes(out)


def _part_to_cbor(p: NestedPart) -> list[CborValue]:
    head: list[CborValue] = [p.disposition, p.language]
    b = p.body
    if isinstance(b, NullPart):
        return [*head, Cardinality.null_part]
    if isinstance(b, SinglePart):
        return [*head, Cardinality.single, b.content_type, b.content]
    if isinstance(b, ExternalPart):
        return [
            *head,
            Cardinality.external,
            b.content_type,
            b.url,
            b.expires,
            b.size,
            b.enc_alg,
            b.key,
            b.nonce,
            b.aad,
            b.hash_alg,
            b.content_hash,
            b.description,
            b.filename,
        ]
    return [*head, Cardinality.multi, b.part_semantics, [_part_to_cbor(x) for x in b.parts]]


def encode_content(c: MimiContent) -> bytes:
    """The deterministic CBOR encoding of ``c``."""
    exp = None if c.expires is None else [c.expires.relative, c.expires.time]
    return _encode(
        [
            c.salt,
            c.replaces,
            c.topic_id,
            exp,
            c.in_reply_to,
            dict(c.extensions),
            _part_to_cbor(c.nested_part),
        ]
    )


# ---------------------------------------------------------------------------------------------
# Decoding.


def _keep_tag(tag: int) -> Callable[[CborValue, bool], cbor2.CBORTag]:
    return lambda value, immutable: cbor2.CBORTag(tag, value)


# cbor2 turns these tags into Python objects (datetime, Decimal, UUID, ...) or resolves them
# (shared values, string references, the self-describe tag); keep every one as a plain tag so the
# value round-trips. A tag cbor2 handles beyond this list fails the re-encoding check instead.
_RAW_TAGS = (0, 1, 2, 3, 4, 5, 25, 28, 29, 30, 35, 36, 37, 52, 54, 100, 256, 258, 260, 261)
_SEMANTIC = {t: _keep_tag(t) for t in (*_RAW_TAGS, 1004, 43000, 55799)}
_MAX_CBOR_DEPTH = 16  # well above what 4 levels of NestedPart or extensions need


def _shape(v: CborValue, n: int, what: str) -> None:
    _require(isinstance(v, list), f"{what} must be an array")
    _require(len(v) == n, f"{what} must have {n} elements, not {len(v)}")


def _shape_tag(v: cbor2.CBORTag, tag: int) -> None:
    _require(v.tag == tag, f"unexpected CBOR tag {v.tag}")


def _part_from_cbor(v: CborValue) -> NestedPart:
    _require(isinstance(v, list) and len(v) >= 3, "NestedPart must be an array of 3+ items")
    card = v[2]
    body: PartBody
    if card == Cardinality.null_part and type(card) is int:
        _shape(v, 3, "NullPart")
        body = NullPart()
    elif card == Cardinality.single and type(card) is int:
        _shape(v, 5, "SinglePart")
        body = SinglePart(content_type=v[3], content=v[4])
    elif card == Cardinality.external and type(card) is int:
        _shape(v, 15, "ExternalPart")
        body = ExternalPart(
            content_type=v[3],
            url=v[4],
            expires=v[5],
            size=v[6],
            enc_alg=v[7],
            key=v[8],
            nonce=v[9],
            aad=v[10],
            hash_alg=v[11],
            content_hash=v[12],
            description=v[13],
            filename=v[14],
        )
    elif card == Cardinality.multi and type(card) is int:
        _shape(v, 5, "MultiPart")
        _require(isinstance(v[4], list), "MultiPart parts must be an array")
        body = MultiPart(part_semantics=v[3], parts=tuple(_part_from_cbor(p) for p in v[4]))
    else:
        raise UsageError(f"unknown cardinality {card!r}")
    return NestedPart(disposition=v[0], language=v[1], body=body)


def _content_from_cbor(v: CborValue) -> MimiContent:
    _shape(v, 7, "mimiContent")
    exp = v[3]
    if exp is not None:
        _shape(exp, 2, "Expiration")
        exp = Expiration(relative=exp[0], time=exp[1])
    _require(isinstance(v[5], dict), "mimiExtensions must be a map")
    return MimiContent(
        salt=v[0],
        replaces=v[1],
        topic_id=v[2],
        expires=exp,
        in_reply_to=v[4],
        extensions=v[5],
        nested_part=_part_from_cbor(v[6]),
    )


def _decode(data: bytes, build: Callable[[CborValue], _T], encode: Callable[[_T], bytes]) -> _T:
    if not isinstance(data, bytes | bytearray | memoryview):
        raise InvalidContent("MIMI content must be bytes")
    data = bytes(data)
    try:
        raw = cbor2.loads(
            data,
            semantic_decoders=_SEMANTIC,
            max_depth=_MAX_CBOR_DEPTH,
            allow_indefinite=False,
            allow_duplicate_keys=False,
        )
    except (cbor2.CBORError, ValueError, TypeError, OverflowError, RecursionError) as exc:
        raise InvalidContent(f"not well-formed CBOR: {exc}") from None
    try:
        obj = build(raw)
        again = encode(obj)
    except (UsageError, TypeError, ValueError) as exc:
        raise InvalidContent(str(exc)) from None
    if again != data:
        if data.startswith(again):
            raise InvalidContent(f"{len(data) - len(again)} trailing bytes after the CBOR item")
        raise InvalidContent("not CBOR deterministic encoding (RFC 8949 §4.2.1)")
    return obj


def decode_content(data: bytes) -> MimiContent:
    """Parse and validate one ``mimiContent``; raises only :class:`~mls.errors.InvalidContent`."""
    return _decode(data, _content_from_cbor, encode_content)


# ---------------------------------------------------------------------------------------------
# Message IDs and salts (draft § Message ID, § Generating the random salt).


def compute_message_id(content: bytes, salt: bytes, sender_uri: str, room_uri: str) -> bytes:
    """``hashAlg || SHA-256(senderUriLength || senderUri || roomUriLength || roomUri || message ||
    salt)[0..30]`` with 16-bit big-endian lengths and ``hashAlg`` = 0x01 (SHA-256)."""
    sender, room = sender_uri.encode("utf-8"), room_uri.encode("utf-8")
    _require(len(sender) < 0x10000 and len(room) < 0x10000, "URI longer than 65535 bytes")
    digest = hashlib.sha256(
        len(sender).to_bytes(2, "big")
        + sender
        + len(room).to_bytes(2, "big")
        + room
        + content
        + salt  # repeated to prevent a length-extension attack
    ).digest()
    return bytes((SHA256_ID,)) + digest[:31]


def new_salt(rng: Callable[[int], bytes] = os.urandom) -> bytes:
    """A fresh random 16-byte salt."""
    return rng(SALT_LEN)


def derive_salt(salt_base_secret: bytes, nonce: bytes) -> bytes:
    """``HMAC_SHA256(salt_base_secret, nonce)[0..15]``, with ``salt_base_secret`` exported from
    the MLS key schedule (draft § Generating the random salt)."""
    return hmac.new(salt_base_secret, nonce, "sha256").digest()[:SALT_LEN]


# ---------------------------------------------------------------------------------------------
# Constructors.


@dataclass(frozen=True, slots=True)
class Mention:
    """A mention of a user or room URI inside :func:`mention` text."""

    display: str
    uri: str


def _utf8(s: str) -> bytes:
    try:
        return s.encode("utf-8")
    except UnicodeEncodeError:
        raise UsageError("text must be valid Unicode (no lone surrogates)") from None


def _content(
    body: NestedPart,
    *,
    salt: bytes,
    sender_uri: str | None,
    room_uri: str | None,
    replaces: bytes | None = None,
    in_reply_to: bytes | None = None,
    topic_id: bytes = b"",
    expires: Expiration | None = None,
    extensions: Mapping[ExtensionKey, CborValue] | None = None,
) -> MimiContent:
    ext: dict[ExtensionKey, CborValue] = dict(extensions or {})
    if sender_uri is not None:
        ext[ExtensionKeys.sender_uri.value] = sender_uri
    if room_uri is not None:
        ext[ExtensionKeys.room_uri.value] = room_uri
    return MimiContent(
        salt=salt,
        replaces=replaces,
        topic_id=topic_id,
        expires=expires,
        in_reply_to=in_reply_to,
        extensions=ext,
        nested_part=body,
    )


def text(
    body: str,
    *,
    salt: bytes,
    sender_uri: str | None = None,
    room_uri: str | None = None,
    content_type: str = MARKDOWN,
    language: str = "",
    in_reply_to: bytes | None = None,
    topic_id: bytes = b"",
    expires: Expiration | None = None,
    extensions: Mapping[ExtensionKey, CborValue] | None = None,
) -> MimiContent:
    """A text message (GFM-MIMI Markdown by default) rendered to the user."""
    part = NestedPart(
        disposition=Disposition.render,
        language=language,
        body=SinglePart(content_type=content_type, content=_utf8(body)),
    )
    return _content(
        part,
        salt=salt,
        sender_uri=sender_uri,
        room_uri=room_uri,
        in_reply_to=in_reply_to,
        topic_id=topic_id,
        expires=expires,
        extensions=extensions,
    )


def reply(
    body: str,
    *,
    in_reply_to: bytes,
    salt: bytes,
    sender_uri: str | None = None,
    room_uri: str | None = None,
    content_type: str = MARKDOWN,
    topic_id: bytes = b"",
    expires: Expiration | None = None,
) -> MimiContent:
    """A text reply to the message ``in_reply_to``."""
    return text(
        body,
        salt=salt,
        sender_uri=sender_uri,
        room_uri=room_uri,
        content_type=content_type,
        in_reply_to=in_reply_to,
        topic_id=topic_id,
        expires=expires,
    )


def reaction(
    emoji: str,
    *,
    in_reply_to: bytes,
    salt: bytes,
    sender_uri: str | None = None,
    room_uri: str | None = None,
) -> MimiContent:
    """A single reaction (disposition ``reaction``) to ``in_reply_to``."""
    part = NestedPart(
        disposition=Disposition.reaction,
        body=SinglePart(content_type=PLAIN, content=_utf8(emoji)),
    )
    return _content(
        part, salt=salt, sender_uri=sender_uri, room_uri=room_uri, in_reply_to=in_reply_to
    )


def edit(
    body: str,
    *,
    replaces: bytes,
    salt: bytes,
    sender_uri: str | None = None,
    room_uri: str | None = None,
    in_reply_to: bytes | None = None,
    content_type: str = MARKDOWN,
) -> MimiContent:
    """A new version of the message ``replaces`` (the ID of its first version)."""
    part = NestedPart(
        disposition=Disposition.render,
        body=SinglePart(content_type=content_type, content=_utf8(body)),
    )
    return _content(
        part,
        salt=salt,
        sender_uri=sender_uri,
        room_uri=room_uri,
        replaces=replaces,
        in_reply_to=in_reply_to,
    )


def delete(
    *,
    replaces: bytes,
    salt: bytes,
    sender_uri: str | None = None,
    room_uri: str | None = None,
    in_reply_to: bytes | None = None,
) -> MimiContent:
    """Retract the message ``replaces``: a ``render`` null part that replaces it."""
    part = NestedPart(disposition=Disposition.render, body=NullPart())
    return _content(
        part,
        salt=salt,
        sender_uri=sender_uri,
        room_uri=room_uri,
        replaces=replaces,
        in_reply_to=in_reply_to,
    )


def unlike(
    *,
    replaces: bytes,
    in_reply_to: bytes,
    salt: bytes,
    sender_uri: str | None = None,
    room_uri: str | None = None,
) -> MimiContent:
    """Remove our reaction ``replaces`` to ``in_reply_to``: a ``reaction`` null part."""
    part = NestedPart(disposition=Disposition.reaction, body=NullPart())
    return _content(
        part,
        salt=salt,
        sender_uri=sender_uri,
        room_uri=room_uri,
        replaces=replaces,
        in_reply_to=in_reply_to,
    )


def _md_escape(s: str) -> str:
    return s.replace("\\", "\\\\").replace("[", "\\[").replace("]", "\\]")


def mention(
    segments: Sequence[str | Mention],
    *,
    salt: bytes,
    html_body: bool = False,
    sender_uri: str | None = None,
    room_uri: str | None = None,
    in_reply_to: bytes | None = None,
) -> MimiContent:
    """A rich-text message whose :class:`Mention` segments link a user or room URI (draft §
    Mentions): ``[@display](uri)`` in GFM-MIMI Markdown, or ``<a href="uri">@display</a>`` in a
    ``<p>`` of HTML when ``html_body`` is set."""
    if html_body:
        inner = "".join(
            f'<a href="{html.escape(s.uri)}">@{html.escape(s.display)}</a>'
            if isinstance(s, Mention)
            else html.escape(s)
            for s in segments
        )
        body, ctype = f"<p>{inner}</p>", HTML
    else:
        for s in segments:
            if isinstance(s, Mention):
                _require(not any(c in s.uri for c in " ()<>"), f"URI not linkable: {s.uri!r}")
        body = "".join(
            f"[@{_md_escape(s.display)}]({s.uri})" if isinstance(s, Mention) else s
            for s in segments
        )
        ctype = MARKDOWN
    return text(
        body,
        salt=salt,
        sender_uri=sender_uri,
        room_uri=room_uri,
        content_type=ctype,
        in_reply_to=in_reply_to,
    )


def attachment(
    url: str,
    content_type: str,
    *,
    salt: bytes,
    size: int = 0,
    enc_alg: int = 0,
    key: bytes = b"",
    nonce: bytes = b"",
    aad: bytes = b"",
    hash_alg: int = 0,
    content_hash: bytes = b"",
    description: str = "",
    filename: str = "",
    url_expires: int = 0,
    disposition: int = Disposition.attachment,
    language: str = "",
    sender_uri: str | None = None,
    room_uri: str | None = None,
    topic_id: bytes = b"",
    in_reply_to: bytes | None = None,
    expires: Expiration | None = None,
) -> MimiContent:
    """Content by reference: an :class:`ExternalPart` (an upload encrypted with ``enc_alg``, e.g.
    1 = AES-128-GCM, or a service URL such as a conference with disposition ``session``)."""
    part = NestedPart(
        disposition=disposition,
        language=language,
        body=ExternalPart(
            content_type=content_type,
            url=url,
            expires=url_expires,
            size=size,
            enc_alg=enc_alg,
            key=key,
            nonce=nonce,
            aad=aad,
            hash_alg=hash_alg,
            content_hash=content_hash,
            description=description,
            filename=filename,
        ),
    )
    return _content(
        part,
        salt=salt,
        sender_uri=sender_uri,
        room_uri=room_uri,
        topic_id=topic_id,
        in_reply_to=in_reply_to,
        expires=expires,
    )
