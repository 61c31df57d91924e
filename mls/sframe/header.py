"""The SFrame header: config byte, Key ID and Counter (RFC 9605 §4.3).

```
 0 1 2 3 4 5 6 7
+-+-+-+-+-+-+-+-+------------+------------+
|X|  K  |Y|  C  |   KID...   |   CTR...   |
+-+-+-+-+-+-+-+-+------------+------------+
```

A value 0-7 sits in the config byte (flag 0). A larger value follows the config byte in
big-endian order using the minimum number of bytes (1-8); the 3-bit field then holds that
length minus one and the flag is 1. KID comes first, CTR second. Both are 64-bit unsigned.

The decoder accepts only the encoding the RFC mandates: an extended field holding a value below 8,
or with a leading zero byte, is rejected with :class:`~mls.errors.DecodeError`. This way each
(KID, CTR) has exactly one header, which keeps the header (part of the AAD) canonical.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Self

from mls.codec.buffer import Buffer, Writer
from mls.errors import DecodeError, UsageError

MAX_VALUE = (1 << 64) - 1
MAX_HEADER_LEN = 17  # config byte + 8 bytes of KID + 8 bytes of CTR


def _field(value: int) -> tuple[int, bytes]:
    """(3-bit config field with its flag in bit 3, extension bytes) for one value."""
    if value < 8:
        if value < 0:
            raise UsageError(f"SFrame KID/CTR must be non-negative, got {value}")
        return value, b""
    if value > MAX_VALUE:
        raise UsageError(f"SFrame KID/CTR must fit in 64 bits, got {value}")
    n = (value.bit_length() + 7) >> 3
    return 0x8 | (n - 1), value.to_bytes(n, "big")


def encode_header(kid: int, ctr: int) -> bytes:
    """The minimal SFrame header for ``kid`` and ``ctr`` (RFC 9605 §4.3)."""
    if 0 <= kid < 8 and 0 <= ctr < 8:
        return bytes(((kid << 4) | ctr,))  # the one-byte form, common for small KIDs
    k, kid_bytes = _field(kid)
    c, ctr_bytes = _field(ctr)
    return bytes(((k << 4) | c,)) + kid_bytes + ctr_bytes


def _pull_value(data: bytes, pos: int, bits: int, what: str) -> tuple[int, int]:
    if not bits & 0x8:
        return bits, pos
    n = (bits & 0x7) + 1
    end = pos + n
    if end > len(data):
        raise DecodeError(
            f"SFrame header truncated: {what} needs {n} bytes, have {len(data) - pos}"
        )
    if data[pos] == 0:
        # RFC 9605 §4.3: "the value MUST be encoded with the minimum number of bytes required".
        raise DecodeError(f"SFrame header: non-minimal {what} encoding (leading zero byte)")
    value = int.from_bytes(data[pos:end], "big")
    if value < 8:
        # RFC 9605 §4.3: values 0-7 are carried in the config byte.
        raise DecodeError(f"SFrame header: {what} {value} must be carried in the config byte")
    return value, end


def parse_header(data: bytes) -> tuple[int, int, int]:
    """Read the header at the start of ``data``: ``(kid, ctr, header_length)``.

    The bytes after ``header_length`` are the AEAD ciphertext of the frame.
    """
    if not data:
        raise DecodeError("SFrame header truncated: no config byte")
    config = data[0]
    kid, pos = _pull_value(data, 1, config >> 4, "KID")
    ctr, pos = _pull_value(data, pos, config & 0xF, "CTR")
    return kid, ctr, pos


@dataclass(frozen=True, slots=True, kw_only=True)
class SFrameHeader:
    """RFC 9605 §4.3 (the header is not a TLS struct; see the module docstring for its layout).

    ```
    Config Byte: X (1 bit) | K (3 bits) | Y (1 bit) | C (3 bits)
    KID...  (present when X = 1, K + 1 bytes)
    CTR...  (present when Y = 1, C + 1 bytes)
    ```
    """

    kid: int
    ctr: int

    def __post_init__(self) -> None:
        if not (0 <= self.kid <= MAX_VALUE and 0 <= self.ctr <= MAX_VALUE):
            raise UsageError("SFrame KID and CTR must be 64-bit unsigned integers")

    def to_bytes(self) -> bytes:
        return encode_header(self.kid, self.ctr)

    def encode(self, w: Writer) -> None:
        w.push_bytes(encode_header(self.kid, self.ctr))

    @classmethod
    def decode(cls, buf: Buffer) -> Self:
        config = buf.pull_uint8()
        kid = cls._pull(buf, config >> 4, "KID")
        ctr = cls._pull(buf, config & 0xF, "CTR")
        return cls(kid=kid, ctr=ctr)

    @staticmethod
    def _pull(buf: Buffer, bits: int, what: str) -> int:
        if not bits & 0x8:
            return bits
        raw = buf.pull_bytes((bits & 0x7) + 1)
        value, _ = _pull_value(raw, 0, bits, what)
        return value

    @classmethod
    def from_bytes(cls, data: bytes) -> Self:
        """Decode a header that spans all of ``data`` (trailing bytes are an error)."""
        kid, ctr, n = parse_header(data)
        if n != len(data):
            raise DecodeError(f"{len(data) - n} trailing bytes after the SFrame header")
        return cls(kid=kid, ctr=ctr)
