"""TLS presentation language codec of RFC 9420 §2.1.

``Buffer`` reads, ``Writer`` writes. Both are written once here; every wire struct is built on
them. Any malformed input raises :class:`~mls.errors.DecodeError`.

Vectors (``T items<V>``) carry a variable-length integer length prefix (§2.1.2): 1, 2 or 4 bytes
whose two high bits give the length of the length. The ``0b11`` prefix is invalid and a length
MUST be encoded with the fewest bytes possible.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import TypeVar

from mls.errors import DecodeError

T = TypeVar("T")

# Upper bound on any single length we accept: the varint can express 2^30 - 1.
MAX_VARINT = (1 << 30) - 1


class Buffer:
    """A reader over immutable bytes. ``end`` bounds the current block."""

    __slots__ = ("_data", "_end", "_pos")

    def __init__(self, data: bytes) -> None:
        self._data = bytes(data)
        self._pos = 0
        self._end = len(self._data)

    @property
    def position(self) -> int:
        return self._pos

    def remaining(self) -> int:
        return self._end - self._pos

    def eof(self) -> bool:
        return self._pos >= self._end

    def _take(self, n: int) -> bytes:
        pos = self._pos
        new = pos + n
        if new > self._end:
            raise DecodeError(f"truncated: need {n} bytes at offset {pos}, have {self._end - pos}")
        self._pos = new
        return self._data[pos:new]

    def slice(self, start: int, end: int) -> bytes:
        """The bytes between two positions already read (a decoder keeping its own encoding)."""
        if not 0 <= start <= end <= self._pos:
            raise ValueError("slice outside the bytes read so far")
        return self._data[start:end]

    def pull_bytes(self, n: int) -> bytes:
        return self._take(n)

    def pull_uint8(self) -> int:
        pos = self._pos
        if pos >= self._end:
            raise DecodeError(f"truncated: need 1 byte at offset {pos}")
        self._pos = pos + 1
        return self._data[pos]

    # The pull_* methods below inline _take and pull_uint8 (every struct decode runs them);
    # they raise the same DecodeError messages.

    def pull_uint16(self) -> int:
        pos = self._pos
        if pos + 2 > self._end:
            return int.from_bytes(self._take(2), "big")
        self._pos = pos + 2
        return int.from_bytes(self._data[pos : pos + 2], "big")

    def pull_uint32(self) -> int:
        pos = self._pos
        if pos + 4 > self._end:
            return int.from_bytes(self._take(4), "big")
        self._pos = pos + 4
        return int.from_bytes(self._data[pos : pos + 4], "big")

    def pull_uint64(self) -> int:
        pos = self._pos
        if pos + 8 > self._end:
            return int.from_bytes(self._take(8), "big")
        self._pos = pos + 8
        return int.from_bytes(self._data[pos : pos + 8], "big")

    def pull_varint(self) -> int:
        """RFC 9420 §2.1.2 variable-length integer; rejects 0b11 and non-minimal forms."""
        pos = self._pos
        if pos >= self._end:
            raise DecodeError(f"truncated: need 1 byte at offset {pos}")
        first = self._data[pos]
        self._pos = pos + 1
        prefix = first >> 6
        if prefix == 0:
            return first
        if prefix == 1:
            value = ((first & 0x3F) << 8) | self.pull_uint8()
            if value < 0x40:
                raise DecodeError("non-minimal varint encoding")
            return value
        if prefix == 2:
            value = ((first & 0x3F) << 24) | int.from_bytes(self._take(3), "big")
            if value < 0x4000:
                raise DecodeError("non-minimal varint encoding")
            return value
        raise DecodeError("invalid varint prefix 0b11")

    def pull_opaque(self) -> bytes:
        """``opaque data<V>``."""
        pos, data = self._pos, self._data
        if pos < self._end:
            n = data[pos]
            if n < 0x40:
                # A one-byte length, the common case; anything else (or a truncation) takes
                # the general path below, which raises.
                stop = pos + 1 + n
                if stop <= self._end:
                    self._pos = stop
                    return data[pos + 1 : stop]
        return self._take(self.pull_varint())

    def pull_opaque8(self) -> bytes:
        """``opaque data<0..255>`` with a one-byte length (used by SFrame/HPKE helpers)."""
        return self._take(self.pull_uint8())

    @contextmanager
    def pull_block(self) -> Iterator[int]:
        """Read a varint-length block; the body must consume it exactly.

        Yields the absolute end offset of the block, so loops can run ``while buf.position < end``.
        """
        length = self.pull_varint()
        end = self._pos + length
        if end > self._end:
            raise DecodeError(f"truncated: block of {length} bytes at offset {self._pos}")
        saved_end = self._end
        self._end = end
        try:
            yield end
        finally:
            self._end = saved_end
        if self._pos != end:
            raise DecodeError("extra bytes at the end of a block")

    def pull_vector(self, item: Callable[[Buffer], T]) -> list[T]:
        """``T items<V>``: a varint byte length, then items until it is consumed exactly."""
        out: list[T] = []
        with self.pull_block() as end:
            while self._pos < end:
                out.append(item(self))
        return out

    def pull_optional(self, item: Callable[[Buffer], T]) -> T | None:
        """``optional<T>``: a presence byte 0 or 1."""
        present = self.pull_uint8()
        if present == 0:
            return None
        if present == 1:
            return item(self)
        raise DecodeError(f"invalid optional presence byte {present}")

    def pull_bool(self) -> bool:
        value = self.pull_uint8()
        if value > 1:
            raise DecodeError(f"invalid boolean {value}")
        return value == 1


class Writer:
    """An append-only encoder."""

    __slots__ = ("_out",)

    def __init__(self) -> None:
        self._out = bytearray()

    def getvalue(self) -> bytes:
        return bytes(self._out)

    def __len__(self) -> int:
        return len(self._out)

    def push_bytes(self, data: bytes) -> None:
        self._out += data

    def push_uint8(self, value: int) -> None:
        self._out.append(value)

    def push_uint16(self, value: int) -> None:
        self._out += value.to_bytes(2, "big")

    def push_uint32(self, value: int) -> None:
        self._out += value.to_bytes(4, "big")

    def push_uint64(self, value: int) -> None:
        self._out += value.to_bytes(8, "big")

    def push_varint(self, value: int) -> None:
        self._out += encode_varint(value)

    def push_opaque(self, data: bytes | bytearray) -> None:
        n = len(data)
        self._out += _ONE_BYTE[n] if n < 0x40 else encode_varint(n)
        self._out += data

    def push_opaque8(self, data: bytes) -> None:
        if len(data) > 0xFF:
            raise ValueError("opaque<0..255> too long")
        self._out.append(len(data))
        self._out += data

    @contextmanager
    def push_block(self) -> Iterator[Writer]:
        """Write a varint-length-prefixed block: ``with w.push_block() as body: ...``."""
        body = Writer()
        yield body
        self.push_opaque(body._out)

    def push_vector(self, items: Iterable[T], item: Callable[[Writer, T], None]) -> None:
        body = Writer()
        for x in items:
            item(body, x)
        self.push_opaque(body._out)

    def push_optional(self, value: T | None, item: Callable[[Writer, T], None]) -> None:
        if value is None:
            self._out.append(0)
        else:
            self._out.append(1)
            item(self, value)

    def push_bool(self, value: bool) -> None:
        self._out.append(1 if value else 0)


#: The one-byte varints (values 0 to 63), prebuilt.
ONE_BYTE_VARINTS = tuple(bytes((i,)) for i in range(0x40))
_ONE_BYTE = ONE_BYTE_VARINTS


def encode_varint(value: int) -> bytes:
    """Minimal RFC 9420 §2.1.2 encoding of ``value`` (0 <= value < 2^30)."""
    if value < 0x40:
        if value < 0:
            raise ValueError("varint must be non-negative")
        return _ONE_BYTE[value]
    if value < 0x4000:
        return (value | 0x4000).to_bytes(2, "big")
    if value <= MAX_VARINT:
        return (value | 0x80000000).to_bytes(4, "big")
    raise ValueError(f"varint too large: {value}")


def opaque(data: bytes) -> bytes:
    """``opaque<V>`` encoding of ``data`` as a standalone byte string."""
    n = len(data)
    return (_ONE_BYTE[n] if n < 0x40 else encode_varint(n)) + data
