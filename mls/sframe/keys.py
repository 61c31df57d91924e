"""SFrame keys from an MLS group: the per-epoch ``base_key`` and KID packing (RFC 9605 §5.2).

Each MLS epoch yields one ``base_key`` shared by the whole group::

    base_key = MLS-Exporter("SFrame 1.0 Base Key", "", AEAD.Nk)

and each sender gets its own KIDs, so ``derive_key_salt(KID, base_key)`` (§4.4.2) gives every
sender a distinct ``sframe_key``/``sframe_salt``::

    KID = (context << (S + E)) + (sender_index << E) + (epoch % (1 << E))

``E`` (epoch bits) is chosen by the application; ``S`` is the smallest value with
``group_size <= 1 << S`` where the group size is the number of leaves of the ratchet tree, so
every leaf index fits; ``context`` fills the remaining ``64 - S - E`` bits and lets one sender run
several uncoordinated streams.

The MLS group is reached only through the small :class:`Exporter` Protocol declared here, which
``mls.group.Group`` satisfies structurally; ``mls.sframe`` never imports the group layer. A member
removed in an epoch never sees that epoch's exporter, so it cannot derive the epoch's keys.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

from mls.errors import UnknownKeyID, UsageError
from mls.sframe.cipher import FrameKey, SFrameSuite

BASE_KEY_LABEL = "SFrame 1.0 Base Key"


class Exporter(Protocol):
    """What SFrame needs from an MLS group in one epoch (RFC 9420 §8.5, RFC 9605 §5.2)."""

    @property
    def epoch(self) -> int:
        """The MLS epoch number."""
        ...

    @property
    def own_leaf_index(self) -> int:
        """This member's leaf index (its SFrame sender index)."""
        ...

    @property
    def leaf_count(self) -> int:
        """Number of leaves of the ratchet tree (blank ones included): bounds every leaf index."""
        ...

    def export_secret(self, label: str, context: bytes, length: int) -> bytes:
        """``MLS-Exporter(label, context, length)``."""
        ...


def index_bits(leaf_count: int) -> int:
    """``S``: the smallest value such that ``leaf_count <= 1 << S`` (RFC 9605 §5.2)."""
    if leaf_count < 1:
        raise UsageError(f"an MLS group has at least one leaf, got {leaf_count}")
    return (leaf_count - 1).bit_length()


@dataclass(frozen=True, slots=True)
class KidParts:
    context_id: int
    sender_index: int
    epoch_low: int


@dataclass(frozen=True, slots=True, kw_only=True)
class KidLayout:
    """The split of a 64-bit KID into context | sender index (S bits) | epoch (E bits)."""

    epoch_bits: int
    index_bits: int

    def __post_init__(self) -> None:
        if self.epoch_bits < 0 or self.index_bits < 0 or self.epoch_bits + self.index_bits > 64:
            raise UsageError(f"invalid KID layout E={self.epoch_bits} S={self.index_bits}")

    def kid(self, *, epoch: int, sender_index: int, context_id: int = 0) -> int:
        e, s = self.epoch_bits, self.index_bits
        if not 0 <= sender_index < (1 << s):
            raise UsageError(f"sender index {sender_index} does not fit in {s} bits")
        if not 0 <= context_id < (1 << (64 - s - e)):
            raise UsageError(f"context id {context_id} does not fit in {64 - s - e} bits")
        if epoch < 0:
            raise UsageError(f"negative epoch {epoch}")
        return (context_id << (s + e)) | (sender_index << e) | (epoch & ((1 << e) - 1))

    def parse(self, kid: int) -> KidParts:
        e, s = self.epoch_bits, self.index_bits
        return KidParts(
            context_id=kid >> (s + e),
            sender_index=(kid >> e) & ((1 << s) - 1),
            epoch_low=kid & ((1 << e) - 1),
        )


def mls_base_key(exporter: Exporter, suite: SFrameSuite) -> bytes:
    """``MLS-Exporter("SFrame 1.0 Base Key", "", AEAD.Nk)`` (RFC 9605 §5.2)."""
    return exporter.export_secret(BASE_KEY_LABEL, b"", suite.nk)


@dataclass(frozen=True, slots=True, kw_only=True)
class EpochKeys:
    """The SFrame key material of one MLS epoch: ``base_key`` and the KID layout."""

    suite: SFrameSuite
    epoch: int
    own_index: int
    leaf_count: int
    layout: KidLayout
    base_key: bytes = field(repr=False)

    @classmethod
    def from_exporter(cls, exporter: Exporter, suite: SFrameSuite, *, epoch_bits: int) -> EpochKeys:
        leaf_count = exporter.leaf_count
        own = exporter.own_leaf_index
        if not 0 <= own < leaf_count:
            raise UsageError(f"own leaf index {own} outside a tree of {leaf_count} leaves")
        return cls(
            suite=suite,
            epoch=exporter.epoch,
            own_index=own,
            leaf_count=leaf_count,
            layout=KidLayout(epoch_bits=epoch_bits, index_bits=index_bits(leaf_count)),
            base_key=mls_base_key(exporter, suite),
        )

    def kid(self, sender_index: int, context_id: int = 0) -> int:
        if not 0 <= sender_index < self.leaf_count:
            raise UsageError(f"sender index {sender_index} outside a tree of {self.leaf_count}")
        return self.layout.kid(epoch=self.epoch, sender_index=sender_index, context_id=context_id)

    def sender_of(self, kid: int) -> KidParts:
        """Split a received KID, checking that it names this epoch and another member's leaf."""
        parts = self.layout.parse(kid)
        if parts.epoch_low != self.epoch & ((1 << self.layout.epoch_bits) - 1):
            raise UnknownKeyID(f"KID {kid:#x} is not from epoch {self.epoch}", kid=kid)
        if parts.sender_index >= self.leaf_count:
            raise UnknownKeyID(
                f"KID {kid:#x}: sender index {parts.sender_index} outside the group", kid=kid
            )
        if parts.sender_index == self.own_index:
            # RFC 9605 §4.4.1: our own KIDs are encryption-only keys.
            raise UnknownKeyID(f"KID {kid:#x} is one of our own send-only KIDs", kid=kid)
        return parts

    def frame_key(self, kid: int) -> FrameKey:
        return FrameKey.derive(self.suite, kid, self.base_key)
