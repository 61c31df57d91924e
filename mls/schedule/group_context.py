"""The ``GroupContext`` struct (RFC 9420 §8.1).

Only the wire struct lives here; how the fields evolve from epoch to epoch is the key
schedule's and the group's business. The encoding is cached: it is an input to every
FramedContentTBS (§6.1), every UpdatePath encryption (§7.6) and the key schedule (§8).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Self

from mls.codec.buffer import Buffer, Writer, opaque
from mls.constants import ProtocolVersion
from mls.extensions import Extension, pull_extensions, push_extensions

__all__ = ["GroupContext"]


@dataclass(frozen=True, slots=True, kw_only=True)
class GroupContext:
    """RFC 9420 §8.1::

    struct {
        ProtocolVersion version = mls10;
        CipherSuite cipher_suite;
        opaque group_id<V>;
        uint64 epoch;
        opaque tree_hash<V>;
        opaque confirmed_transcript_hash<V>;
        Extension extensions<V>;
    } GroupContext;
    """

    version: int = ProtocolVersion.mls10
    cipher_suite: int
    group_id: bytes
    epoch: int
    tree_hash: bytes
    confirmed_transcript_hash: bytes
    extensions: tuple[Extension, ...] = ()
    _encoded: bytes | None = field(default=None, init=False, repr=False, compare=False)

    def to_bytes(self) -> bytes:
        """The encoded GroupContext (cached)."""
        enc = self._encoded
        if enc is None:
            if self.extensions:
                w = Writer()
                push_extensions(w, self.extensions)
                exts = w.getvalue()
            else:
                exts = b"\x00"  # an empty vector: its varint length, 0
            enc = (
                self.version.to_bytes(2, "big")
                + self.cipher_suite.to_bytes(2, "big")
                + opaque(self.group_id)
                + self.epoch.to_bytes(8, "big")
                + opaque(self.tree_hash)
                + opaque(self.confirmed_transcript_hash)
                + exts
            )
            object.__setattr__(self, "_encoded", enc)
        return enc

    def encode(self, w: Writer) -> None:
        w.push_bytes(self.to_bytes())

    @classmethod
    def decode(cls, buf: Buffer) -> Self:
        return cls(
            version=buf.pull_uint16(),
            cipher_suite=buf.pull_uint16(),
            group_id=buf.pull_opaque(),
            epoch=buf.pull_uint64(),
            tree_hash=buf.pull_opaque(),
            confirmed_transcript_hash=buf.pull_opaque(),
            extensions=pull_extensions(buf),
        )
