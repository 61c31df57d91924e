"""Wire codec (RFC 9420 §2.1): ``Buffer``/``Writer`` and top-level ``encode``/``decode``."""

from __future__ import annotations

from mls.codec.buffer import Buffer, Writer, encode_varint, opaque
from mls.codec.wire import Decodable, Encodable, decode, encode

__all__ = [
    "Buffer",
    "Decodable",
    "Encodable",
    "Writer",
    "decode",
    "encode",
    "encode_varint",
    "opaque",
]
