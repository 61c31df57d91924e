"""Confirmed and interim transcript hashes (RFC 9420 §8.2).

Owns ``ConfirmedTranscriptHashInput``, ``InterimTranscriptHashInput`` and the two hash updates.
``FramedContent`` is a framing struct (layer L6) that this module (L4) must not import, so the
``content`` field accepts any :class:`~mls.codec.Encodable`; callers pass the FramedContent of
the Commit's AuthenticatedContent.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Self

from mls.codec import Buffer, Encodable, Writer, encode
from mls.crypto import CipherSuite

__all__ = [
    "ConfirmedTranscriptHashInput",
    "InterimTranscriptHashInput",
    "next_confirmed_transcript_hash",
    "next_interim_transcript_hash",
    "next_transcript_hashes",
]


@dataclass(frozen=True, slots=True, kw_only=True)
class ConfirmedTranscriptHashInput:
    """The part of a Commit's AuthenticatedContent covered by the confirmed hash (§8.2).

    ```
    struct {
        WireFormat wire_format;
        FramedContent content; /* with content_type == commit */
        opaque signature<V>;
    } ConfirmedTranscriptHashInput;
    ```

    Only ever hashed, never received, so there is no ``decode``.
    """

    wire_format: int
    content: Encodable
    signature: bytes

    def encode(self, w: Writer) -> None:
        w.push_uint16(self.wire_format)
        self.content.encode(w)
        w.push_opaque(self.signature)


@dataclass(frozen=True, slots=True, kw_only=True)
class InterimTranscriptHashInput:
    """The Commit's confirmation tag, covered by the interim hash (§8.2).

    ```
    struct {
        MAC confirmation_tag;
    } InterimTranscriptHashInput;
    ```
    """

    confirmation_tag: bytes

    def encode(self, w: Writer) -> None:
        w.push_opaque(self.confirmation_tag)

    @classmethod
    def decode(cls, buf: Buffer) -> Self:
        return cls(confirmation_tag=buf.pull_opaque())


def next_confirmed_transcript_hash(
    cs: CipherSuite, interim_transcript_hash: bytes, hash_input: ConfirmedTranscriptHashInput
) -> bytes:
    """``Hash(interim_transcript_hash_[epoch-1] || ConfirmedTranscriptHashInput_[epoch])``."""
    return cs.hash(interim_transcript_hash + encode(hash_input))


def next_interim_transcript_hash(
    cs: CipherSuite, confirmed_transcript_hash: bytes, confirmation_tag: bytes
) -> bytes:
    """``Hash(confirmed_transcript_hash_[epoch] || InterimTranscriptHashInput_[epoch])``."""
    tag_input = encode(InterimTranscriptHashInput(confirmation_tag=confirmation_tag))
    return cs.hash(confirmed_transcript_hash + tag_input)


def next_transcript_hashes(
    cs: CipherSuite,
    interim_transcript_hash: bytes,
    *,
    wire_format: int,
    content: Encodable,
    signature: bytes,
    confirmation_tag: bytes,
) -> tuple[bytes, bytes]:
    """``(confirmed, interim)`` transcript hashes after a Commit (§8.2).

    Only for a receiver that already holds the ``confirmation_tag``; a committer computes the
    confirmed hash first, derives the key schedule from it and then the tag.
    """
    confirmed = next_confirmed_transcript_hash(
        cs,
        interim_transcript_hash,
        ConfirmedTranscriptHashInput(wire_format=wire_format, content=content, signature=signature),
    )
    return confirmed, next_interim_transcript_hash(cs, confirmed, confirmation_tag)
