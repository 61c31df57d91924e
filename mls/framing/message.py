"""The ``MLSMessage`` envelope (RFC 9420 §6).

``wire_format`` follows from the Python type of ``body``. Only ``mls10`` is defined: the body of
another version has an unknown layout, so decoding it raises :class:`~mls.errors.DecodeError`;
so does a wire format outside §17.2, whose body cannot be delimited.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Self, TypeAlias

from mls.codec.buffer import Buffer, Writer
from mls.constants import ProtocolVersion, WireFormat
from mls.errors import DecodeError
from mls.framing.private import PrivateMessage
from mls.framing.public import PublicMessage
from mls.messages.group_info import GroupInfo
from mls.messages.key_package import KeyPackage
from mls.messages.welcome import Welcome

__all__ = ["MLSMessage", "MessageBody"]

MessageBody: TypeAlias = PublicMessage | PrivateMessage | Welcome | GroupInfo | KeyPackage

_WIRE_FORMATS: dict[type[MessageBody], int] = {
    PublicMessage: WireFormat.mls_public_message,
    PrivateMessage: WireFormat.mls_private_message,
    Welcome: WireFormat.mls_welcome,
    GroupInfo: WireFormat.mls_group_info,
    KeyPackage: WireFormat.mls_key_package,
}
_BODIES: dict[int, type[MessageBody]] = {v: k for k, v in _WIRE_FORMATS.items()}


@dataclass(frozen=True, slots=True, kw_only=True)
class MLSMessage:
    """RFC 9420 §6::

    struct {
        ProtocolVersion version = mls10;
        WireFormat wire_format;
        select (MLSMessage.wire_format) {
            case mls_public_message:
                PublicMessage public_message;
            case mls_private_message:
                PrivateMessage private_message;
            case mls_welcome:
                Welcome welcome;
            case mls_group_info:
                GroupInfo group_info;
            case mls_key_package:
                KeyPackage key_package;
        };
    } MLSMessage;
    """

    version: int = ProtocolVersion.mls10
    body: MessageBody

    @property
    def wire_format(self) -> int:
        return _WIRE_FORMATS[type(self.body)]

    def encode(self, w: Writer) -> None:
        w.push_uint16(self.version)
        w.push_uint16(_WIRE_FORMATS[type(self.body)])
        self.body.encode(w)

    def to_bytes(self) -> bytes:
        body = self.body
        if isinstance(body, PrivateMessage):
            # Every application message takes this path: no Writer.
            head = self.version.to_bytes(2, "big") + b"\x00\x02"  # wire_format private (§6)
            return head + body.to_bytes()
        w = Writer()
        self.encode(w)
        return w.getvalue()

    @classmethod
    def decode(cls, buf: Buffer) -> Self:
        version = buf.pull_uint16()
        if version != ProtocolVersion.mls10:
            raise DecodeError(f"unsupported protocol version {version}")
        wire_format = buf.pull_uint16()
        body_cls = _BODIES.get(wire_format)
        if body_cls is None:
            raise DecodeError(f"unknown wire_format {wire_format}")
        return cls(version=version, body=body_cls.decode(buf))
