"""``PrivateMessage`` structs (RFC 9420 §6.3): the message, its plaintext
``PrivateMessageContent`` (with zero padding), ``SenderData`` and the two AADs.

Only the structs and their byte encodings; the secret tree keys, sender-data key/nonce and AEAD
calls belong to the message-protection code. Decoding a plaintext checks that the padding is all
zero bytes (:class:`~mls.errors.BadPadding`, §6.3.1).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Self

from mls.codec.buffer import ONE_BYTE_VARINTS, Buffer, Writer, encode_varint
from mls.constants import ContentType
from mls.errors import BadPadding, DecodeError, UsageError
from mls.framing.content import (
    Content,
    FramedContentAuthData,
    content_type_of,
    pull_content,
    push_content,
)

__all__ = [
    "PrivateMessage",
    "PrivateMessageContent",
    "SenderData",
    "SenderDataAAD",
    "PrivateContentAAD",
    "encode_content_aad",
    "encode_sender_data",
    "encode_sender_data_aad",
]

_CONTENT_TYPES = (ContentType.application, ContentType.proposal, ContentType.commit)


def _opaque(data: bytes) -> bytes:
    n = len(data)
    return (ONE_BYTE_VARINTS[n] if n < 0x40 else encode_varint(n)) + data


# The AADs and SenderData are encoded for every application message sent or received: they are
# built by concatenation, once per message, rather than through a Writer.


def encode_sender_data(leaf_index: int, generation: int, reuse_guard: bytes) -> bytes:
    """The encoded SenderData (§6.3.2), as :meth:`SenderData.to_bytes`."""
    if len(reuse_guard) != 4:
        raise UsageError("reuse_guard is exactly 4 bytes")
    return leaf_index.to_bytes(4, "big") + generation.to_bytes(4, "big") + reuse_guard


def encode_sender_data_aad(group_id: bytes, epoch: int, content_type: int) -> bytes:
    """The encoded SenderDataAAD (§6.3.2), as :meth:`SenderDataAAD.to_bytes`."""
    return _opaque(group_id) + epoch.to_bytes(8, "big") + bytes((content_type,))


def encode_content_aad(
    group_id: bytes, epoch: int, content_type: int, authenticated_data: bytes
) -> bytes:
    """The encoded PrivateContentAAD (§6.3.1), as :meth:`PrivateContentAAD.to_bytes`."""
    return (
        _opaque(group_id)
        + epoch.to_bytes(8, "big")
        + bytes((content_type,))
        + _opaque(authenticated_data)
    )


def _pull_content_type(buf: Buffer) -> int:
    # The plaintext layout depends on the content type (§6.3.1); an unknown one cannot be read.
    content_type = buf.pull_uint8()
    if content_type not in _CONTENT_TYPES:
        raise DecodeError(f"unknown content_type {content_type}")
    return content_type


@dataclass(frozen=True, slots=True, kw_only=True)
class PrivateMessage:
    """RFC 9420 §6.3::

    struct {
        opaque group_id<V>;
        uint64 epoch;
        ContentType content_type;
        opaque authenticated_data<V>;
        opaque encrypted_sender_data<V>;
        opaque ciphertext<V>;
    } PrivateMessage;
    """

    group_id: bytes
    epoch: int
    content_type: int
    authenticated_data: bytes = b""
    encrypted_sender_data: bytes
    ciphertext: bytes

    def encode(self, w: Writer) -> None:
        w.push_bytes(self.to_bytes())

    def to_bytes(self) -> bytes:
        return (
            encode_content_aad(
                self.group_id, self.epoch, self.content_type, self.authenticated_data
            )
            + _opaque(self.encrypted_sender_data)
            + _opaque(self.ciphertext)
        )

    @classmethod
    def decode(cls, buf: Buffer) -> Self:
        return cls(
            group_id=buf.pull_opaque(),
            epoch=buf.pull_uint64(),
            content_type=_pull_content_type(buf),
            authenticated_data=buf.pull_opaque(),
            encrypted_sender_data=buf.pull_opaque(),
            ciphertext=buf.pull_opaque(),
        )

    def sender_data_aad(self) -> bytes:
        """The encoded SenderDataAAD of this message (§6.3.2)."""
        return encode_sender_data_aad(self.group_id, self.epoch, self.content_type)

    def content_aad(self) -> bytes:
        """The encoded PrivateContentAAD of this message (§6.3.1)."""
        return encode_content_aad(
            self.group_id, self.epoch, self.content_type, self.authenticated_data
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class PrivateMessageContent:
    """RFC 9420 §6.3.1::

        struct {
            select (PrivateMessage.content_type) {
                case application:
                  opaque application_data<V>;
                case proposal:
                  Proposal proposal;
                case commit:
                  Commit commit;
            };

            FramedContentAuthData auth;
            opaque padding[length_of_padding];
        } PrivateMessageContent;

    ``padding`` is the number of zero bytes appended. The layout depends on the content type
    carried outside (in the PrivateMessage), so decoding is :meth:`decode_plaintext`.
    """

    content: Content
    auth: FramedContentAuthData
    padding: int = 0
    # The content's own encoding as received (decode_plaintext), so that the receiver can
    # rebuild the FramedContent bytes without encoding the content again.
    _content_bytes: bytes | None = field(default=None, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        self.auth.check_content_type(content_type_of(self.content))
        if self.padding < 0:
            raise UsageError("padding length must be non-negative")

    @property
    def content_type(self) -> int:
        return content_type_of(self.content)

    def encode(self, w: Writer) -> None:
        w.push_bytes(self.to_bytes())

    def to_bytes(self) -> bytes:
        content = self.content
        if isinstance(content, bytes):
            body = _opaque(content)
        else:
            w = Writer()
            push_content(w, content)
            body = w.getvalue()
        return body + self.auth.to_bytes() + bytes(self.padding)

    @classmethod
    def decode_plaintext(cls, data: bytes, content_type: int) -> Self:
        """Parse a decrypted plaintext for ``content_type``.

        Raises :class:`DecodeError` if the content or auth do not parse and
        :class:`BadPadding` if any byte after them is non-zero (§6.3.1).
        """
        buf = Buffer(data)
        content = pull_content(buf, content_type)
        content_end = buf.position
        auth = FramedContentAuthData.pull(buf, content_type)
        start = buf.position
        padding = data[start:]
        # RFC 9420 §6.3.1: the receiver MUST verify there are no non-zero padding bytes.
        if padding.count(0) != len(padding):
            raise BadPadding("PrivateMessageContent padding has a non-zero byte")
        out = cls(content=content, auth=auth, padding=len(padding))
        object.__setattr__(out, "_content_bytes", data[:content_end])
        return out


@dataclass(frozen=True, slots=True, kw_only=True)
class SenderData:
    """RFC 9420 §6.3.2::

    struct {
        uint32 leaf_index;
        uint32 generation;
        opaque reuse_guard[4];
    } SenderData;
    """

    leaf_index: int
    generation: int
    reuse_guard: bytes

    def __post_init__(self) -> None:
        if len(self.reuse_guard) != 4:
            raise UsageError("reuse_guard is exactly 4 bytes")

    def encode(self, w: Writer) -> None:
        w.push_bytes(self.to_bytes())

    def to_bytes(self) -> bytes:
        return encode_sender_data(self.leaf_index, self.generation, self.reuse_guard)

    @classmethod
    def decode(cls, buf: Buffer) -> Self:
        return cls(
            leaf_index=buf.pull_uint32(),
            generation=buf.pull_uint32(),
            reuse_guard=buf.pull_bytes(4),
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class SenderDataAAD:
    """RFC 9420 §6.3.2::

    struct {
        opaque group_id<V>;
        uint64 epoch;
        ContentType content_type;
    } SenderDataAAD;
    """

    group_id: bytes
    epoch: int
    content_type: int

    def encode(self, w: Writer) -> None:
        w.push_bytes(self.to_bytes())

    def to_bytes(self) -> bytes:
        return encode_sender_data_aad(self.group_id, self.epoch, self.content_type)

    @classmethod
    def decode(cls, buf: Buffer) -> Self:
        return cls(
            group_id=buf.pull_opaque(), epoch=buf.pull_uint64(), content_type=buf.pull_uint8()
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class PrivateContentAAD:
    """RFC 9420 §6.3.1::

    struct {
        opaque group_id<V>;
        uint64 epoch;
        ContentType content_type;
        opaque authenticated_data<V>;
    } PrivateContentAAD;
    """

    group_id: bytes
    epoch: int
    content_type: int
    authenticated_data: bytes

    def encode(self, w: Writer) -> None:
        w.push_bytes(self.to_bytes())

    def to_bytes(self) -> bytes:
        return encode_content_aad(
            self.group_id, self.epoch, self.content_type, self.authenticated_data
        )

    @classmethod
    def decode(cls, buf: Buffer) -> Self:
        return cls(
            group_id=buf.pull_opaque(),
            epoch=buf.pull_uint64(),
            content_type=buf.pull_uint8(),
            authenticated_data=buf.pull_opaque(),
        )
