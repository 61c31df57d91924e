"""Handler for ``mlswg/deserialization.json`` (test-vectors.md "Vector Deserialization").

Each case is a variable-length vector header (RFC 9420 §2.1.2) and the length it encodes: the
header must decode to that length using exactly its bytes, and encoding the length must give
the header back (the header is minimal).
"""

from __future__ import annotations

from typing import Any

from mls.codec.buffer import Buffer, encode_varint
from mls.conformance.core import CaseFailed, expect_eq, h
from mls.errors import DecodeError


def case_ids(data: Any) -> list[str]:
    return [f"{c['vlbytes_header']}={c['length']}" for c in data]


def check(case: Any) -> None:
    header = h(case["vlbytes_header"])
    want = case["length"]
    buf = Buffer(header)
    try:
        length = buf.pull_varint()
    except DecodeError as exc:
        raise CaseFailed(f"header did not decode: {exc}") from exc
    if not buf.eof():
        raise CaseFailed(f"{buf.remaining()} bytes left after the header")
    expect_eq("length", length, want)
    expect_eq("re-encoded header", encode_varint(length), header)
    # The header must also frame a vector body of that length (checked when small enough).
    if want <= 1 << 16:
        body = bytes(want)
        expect_eq("vector body", Buffer(header + body).pull_opaque(), body)
