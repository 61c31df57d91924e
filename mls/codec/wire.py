"""Top-level encode/decode of wire structs.

A wire struct is any class with ``encode(self, w: Writer) -> None`` and a classmethod
``decode(cls, buf: Buffer) -> Self``. :func:`decode` requires every byte to be consumed and is
the single boundary where stray low-level exceptions become :class:`DecodeError`.
"""

from __future__ import annotations

import struct
from typing import Protocol, Self, TypeVar

from mls.codec.buffer import Buffer, Writer
from mls.errors import DecodeError, MLSError


class Encodable(Protocol):
    def encode(self, w: Writer) -> None: ...


class Decodable(Protocol):
    @classmethod
    def decode(cls, buf: Buffer) -> Self: ...


D = TypeVar("D", bound=Decodable)


def encode(obj: Encodable) -> bytes:
    w = Writer()
    obj.encode(w)
    return w.getvalue()


def decode(cls: type[D], data: bytes) -> D:
    """Decode ``data`` as exactly one ``cls``; trailing bytes are an error."""
    buf = Buffer(data)
    try:
        obj = cls.decode(buf)
    except MLSError:
        raise
    except (ValueError, IndexError, KeyError, struct.error, OverflowError, TypeError) as exc:
        # Translate at the boundary (aioquic handle_message): malformed input is a DecodeError.
        raise DecodeError(f"cannot decode {cls.__name__}: {type(exc).__name__}") from exc
    if not buf.eof():
        raise DecodeError(f"{buf.remaining()} trailing bytes after {cls.__name__}")
    return obj
