"""Proposals (RFC 9420 §12.1) and ``ProposalOrRef`` (§12.4), plus ``PreSharedKeyID`` (§8.4).

Each proposal class encodes only its body (``Add``, ``Update``, ... as the RFC's structs, which
is what the ``messages.json`` vectors hold); the tagged ``Proposal`` struct is written by
:func:`push_proposal` / read by :func:`pull_proposal`, and ``Proposal`` is the union type.

Unknown proposal types. RFC 9420 defines only the seven bodies of §12.1; the body of any other
type is defined by its registration (§13.2), so it cannot be delimited in general. Like
deployed implementations (mls-rs, OpenMLS), we read the body of an unknown type as a single
``opaque data<V>`` (:class:`CustomProposal`) so the surrounding message still decodes and
re-encodes byte-identically; proposal validation (§12.2, §13.2: a non-default type must be
supported by every member) rejects it if the group does not support it.

``SelfRemove`` (draft-ietf-mls-extensions, "SelfRemove Proposal") is the one draft proposal we
implement: an empty struct under a provisional code point, 0x000a as the draft suggests and
OpenMLS uses, changeable with :func:`set_self_remove_proposal_type` (process-wide, like the
post-quantum suite profiles) until IANA assigns one.

``PreSharedKeyID`` is defined here, next to ``PreSharedKey``; the key schedule
(:mod:`mls.schedule.psk`, a lower layer) takes it as any encodable value.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum
from typing import ClassVar, Self, TypeAlias

from mls.codec.buffer import Buffer, Writer
from mls.constants import ProposalType, PSKType
from mls.errors import DecodeError, UsageError
from mls.extensions import Extension, pull_extensions, push_extensions
from mls.messages.key_package import KeyPackage
from mls.tree.nodes import LeafNode

__all__ = [
    "PreSharedKeyID",
    "Add",
    "Update",
    "Remove",
    "PreSharedKey",
    "ReInit",
    "ExternalInit",
    "GroupContextExtensions",
    "CustomProposal",
    "SelfRemove",
    "SELF_REMOVE_DRAFT_CODE_POINT",
    "set_self_remove_proposal_type",
    "Proposal",
    "push_proposal",
    "pull_proposal",
    "encode_proposal",
    "decode_proposal",
    "ProposalOrRefType",
    "ProposalOrRef",
]


@dataclass(frozen=True, slots=True, kw_only=True)
class PreSharedKeyID:
    """RFC 9420 §8.4::

        struct {
          PSKType psktype;
          select (PreSharedKeyID.psktype) {
            case external:
              opaque psk_id<V>;
            case resumption:
              ResumptionPSKUsage usage;
              opaque psk_group_id<V>;
              uint64 psk_epoch;
          };
          opaque psk_nonce<V>;
        } PreSharedKeyID;

    ``psk_id`` is meaningful for ``external``; ``usage``, ``psk_group_id`` and ``psk_epoch``
    for ``resumption``. Use :meth:`external` / :meth:`resumption` to build one.
    """

    psktype: int
    psk_id: bytes = b""
    usage: int = 0
    psk_group_id: bytes = b""
    psk_epoch: int = 0
    psk_nonce: bytes

    @classmethod
    def external(cls, psk_id: bytes, psk_nonce: bytes) -> Self:
        return cls(psktype=PSKType.external, psk_id=psk_id, psk_nonce=psk_nonce)

    @classmethod
    def resumption(cls, usage: int, psk_group_id: bytes, psk_epoch: int, psk_nonce: bytes) -> Self:
        return cls(
            psktype=PSKType.resumption,
            usage=usage,
            psk_group_id=psk_group_id,
            psk_epoch=psk_epoch,
            psk_nonce=psk_nonce,
        )

    def encode(self, w: Writer) -> None:
        psktype = self.psktype
        w.push_uint8(psktype)
        if psktype == PSKType.external:
            w.push_opaque(self.psk_id)
        elif psktype == PSKType.resumption:
            w.push_uint8(self.usage)
            w.push_opaque(self.psk_group_id)
            w.push_uint64(self.psk_epoch)
        else:
            raise UsageError(f"unknown psktype {psktype}")
        w.push_opaque(self.psk_nonce)

    @classmethod
    def decode(cls, buf: Buffer) -> Self:
        psktype = buf.pull_uint8()
        if psktype == PSKType.external:
            return cls(psktype=psktype, psk_id=buf.pull_opaque(), psk_nonce=buf.pull_opaque())
        if psktype == PSKType.resumption:
            return cls(
                psktype=psktype,
                usage=buf.pull_uint8(),
                psk_group_id=buf.pull_opaque(),
                psk_epoch=buf.pull_uint64(),
                psk_nonce=buf.pull_opaque(),
            )
        raise DecodeError(f"unknown psktype {psktype}")


@dataclass(frozen=True, slots=True, kw_only=True)
class Add:
    """RFC 9420 §12.1.1: ``struct { KeyPackage key_package; } Add;``"""

    proposal_type: ClassVar[int] = ProposalType.add
    key_package: KeyPackage

    def encode(self, w: Writer) -> None:
        self.key_package.encode(w)

    @classmethod
    def decode(cls, buf: Buffer) -> Self:
        return cls(key_package=KeyPackage.decode(buf))


@dataclass(frozen=True, slots=True, kw_only=True)
class Update:
    """RFC 9420 §12.1.2: ``struct { LeafNode leaf_node; } Update;``"""

    proposal_type: ClassVar[int] = ProposalType.update
    leaf_node: LeafNode

    def encode(self, w: Writer) -> None:
        self.leaf_node.encode(w)

    @classmethod
    def decode(cls, buf: Buffer) -> Self:
        return cls(leaf_node=LeafNode.decode(buf))


@dataclass(frozen=True, slots=True, kw_only=True)
class Remove:
    """RFC 9420 §12.1.3: ``struct { uint32 removed; } Remove;``"""

    proposal_type: ClassVar[int] = ProposalType.remove
    removed: int

    def encode(self, w: Writer) -> None:
        w.push_uint32(self.removed)

    @classmethod
    def decode(cls, buf: Buffer) -> Self:
        return cls(removed=buf.pull_uint32())


@dataclass(frozen=True, slots=True, kw_only=True)
class PreSharedKey:
    """RFC 9420 §12.1.4: ``struct { PreSharedKeyID psk; } PreSharedKey;``"""

    proposal_type: ClassVar[int] = ProposalType.psk
    psk: PreSharedKeyID

    def encode(self, w: Writer) -> None:
        self.psk.encode(w)

    @classmethod
    def decode(cls, buf: Buffer) -> Self:
        return cls(psk=PreSharedKeyID.decode(buf))


@dataclass(frozen=True, slots=True, kw_only=True)
class ReInit:
    """RFC 9420 §12.1.5::

    struct {
        opaque group_id<V>;
        ProtocolVersion version;
        CipherSuite cipher_suite;
        Extension extensions<V>;
    } ReInit;
    """

    proposal_type: ClassVar[int] = ProposalType.reinit
    group_id: bytes
    version: int
    cipher_suite: int
    extensions: tuple[Extension, ...] = ()

    def encode(self, w: Writer) -> None:
        w.push_opaque(self.group_id)
        w.push_uint16(self.version)
        w.push_uint16(self.cipher_suite)
        push_extensions(w, self.extensions)

    @classmethod
    def decode(cls, buf: Buffer) -> Self:
        return cls(
            group_id=buf.pull_opaque(),
            version=buf.pull_uint16(),
            cipher_suite=buf.pull_uint16(),
            extensions=pull_extensions(buf),
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class ExternalInit:
    """RFC 9420 §12.1.6: ``struct { opaque kem_output<V>; } ExternalInit;``"""

    proposal_type: ClassVar[int] = ProposalType.external_init
    kem_output: bytes

    def encode(self, w: Writer) -> None:
        w.push_opaque(self.kem_output)

    @classmethod
    def decode(cls, buf: Buffer) -> Self:
        return cls(kem_output=buf.pull_opaque())


@dataclass(frozen=True, slots=True, kw_only=True)
class GroupContextExtensions:
    """RFC 9420 §12.1.7: ``struct { Extension extensions<V>; } GroupContextExtensions;``"""

    proposal_type: ClassVar[int] = ProposalType.group_context_extensions
    extensions: tuple[Extension, ...]

    def encode(self, w: Writer) -> None:
        push_extensions(w, self.extensions)

    @classmethod
    def decode(cls, buf: Buffer) -> Self:
        return cls(extensions=pull_extensions(buf))


#: draft-ietf-mls-extensions, IANA considerations: ``self_remove`` 0x000a (suggested).
SELF_REMOVE_DRAFT_CODE_POINT = 0x000A


@dataclass(frozen=True, slots=True, kw_only=True)
class SelfRemove:
    """draft-ietf-mls-extensions, "SelfRemove Proposal": ``struct {} SelfRemove;``. A member
    removes itself: the leaf removed is the proposal's sender (so it is only valid by
    reference, from a member, in a PublicMessage)."""

    proposal_type: ClassVar[int] = SELF_REMOVE_DRAFT_CODE_POINT

    def encode(self, w: Writer) -> None:
        pass  # an empty struct has an empty encoding

    @classmethod
    def decode(cls, buf: Buffer) -> Self:
        return cls()


@dataclass(frozen=True, slots=True, kw_only=True)
class CustomProposal:
    """A proposal of a type outside §12.1, body kept as ``opaque data<V>`` (module docstring)."""

    proposal_type: int
    data: bytes

    def __post_init__(self) -> None:
        if self.proposal_type in _KNOWN:
            raise UsageError(f"proposal type {self.proposal_type} has a defined struct")

    def encode(self, w: Writer) -> None:
        w.push_opaque(self.data)

    @classmethod
    def decode_body(cls, proposal_type: int, buf: Buffer) -> Self:
        return cls(proposal_type=proposal_type, data=buf.pull_opaque())


Proposal: TypeAlias = (
    Add
    | Update
    | Remove
    | PreSharedKey
    | ReInit
    | ExternalInit
    | GroupContextExtensions
    | SelfRemove
    | CustomProposal
)
"""The RFC 9420 §12.1 ``Proposal`` union; the ``proposal_type`` tag follows from the class."""

_KNOWN: dict[
    int,
    type[
        Add
        | Update
        | Remove
        | PreSharedKey
        | ReInit
        | ExternalInit
        | GroupContextExtensions
        | SelfRemove
    ],
] = {
    ProposalType.add: Add,
    ProposalType.update: Update,
    ProposalType.remove: Remove,
    ProposalType.psk: PreSharedKey,
    ProposalType.reinit: ReInit,
    ProposalType.external_init: ExternalInit,
    ProposalType.group_context_extensions: GroupContextExtensions,
    SELF_REMOVE_DRAFT_CODE_POINT: SelfRemove,
}


def set_self_remove_proposal_type(code_point: int) -> None:
    """Use ``code_point`` for SelfRemove from now on, in this process (a draft's value may
    change, and peers may use another until IANA assigns one). Every member of a group must
    agree: the type is listed in capabilities and carried on the wire."""
    if not 0 < code_point <= 0xFFFF:
        raise UsageError("a proposal type is a non-zero uint16")
    current = SelfRemove.proposal_type
    if code_point != current and code_point in _KNOWN:
        raise UsageError(f"proposal type {code_point:#06x} is taken")
    del _KNOWN[current]
    _KNOWN[code_point] = SelfRemove
    SelfRemove.proposal_type = code_point


def push_proposal(w: Writer, proposal: Proposal) -> None:
    """RFC 9420 §12.1::

    struct {
        ProposalType proposal_type;
        select (Proposal.proposal_type) {
            case add:                      Add;
            case update:                   Update;
            case remove:                   Remove;
            case psk:                      PreSharedKey;
            case reinit:                   ReInit;
            case external_init:            ExternalInit;
            case group_context_extensions: GroupContextExtensions;
        };
    } Proposal;
    """
    w.push_uint16(proposal.proposal_type)
    proposal.encode(w)


def pull_proposal(buf: Buffer) -> Proposal:
    proposal_type = buf.pull_uint16()
    cls = _KNOWN.get(proposal_type)
    if cls is None:
        return CustomProposal.decode_body(proposal_type, buf)
    return cls.decode(buf)


def encode_proposal(proposal: Proposal) -> bytes:
    w = Writer()
    push_proposal(w, proposal)
    return w.getvalue()


def decode_proposal(data: bytes) -> Proposal:
    buf = Buffer(data)
    proposal = pull_proposal(buf)
    if not buf.eof():
        raise DecodeError("trailing bytes after Proposal")
    return proposal


class ProposalOrRefType(IntEnum):
    """RFC 9420 §12.4."""

    reserved = 0
    proposal = 1
    reference = 2


@dataclass(frozen=True, slots=True, kw_only=True)
class ProposalOrRef:
    """RFC 9420 §12.4::

        struct {
          ProposalOrRefType type;
          select (ProposalOrRef.type) {
            case proposal:  Proposal proposal;
            case reference: ProposalRef reference;
          };
        } ProposalOrRef;

    Exactly one of ``proposal`` and ``reference`` (``opaque ProposalRef<V>``, §5.2) is set.
    """

    proposal: Proposal | None = None
    reference: bytes | None = None

    def __post_init__(self) -> None:
        if (self.proposal is None) == (self.reference is None):
            raise UsageError("ProposalOrRef needs exactly one of proposal and reference")

    @property
    def type(self) -> int:
        return (
            ProposalOrRefType.proposal if self.proposal is not None else ProposalOrRefType.reference
        )

    def encode(self, w: Writer) -> None:
        if self.proposal is not None:
            w.push_uint8(ProposalOrRefType.proposal)
            push_proposal(w, self.proposal)
        else:
            assert self.reference is not None
            w.push_uint8(ProposalOrRefType.reference)
            w.push_opaque(self.reference)

    @classmethod
    def decode(cls, buf: Buffer) -> Self:
        kind = buf.pull_uint8()
        if kind == ProposalOrRefType.proposal:
            return cls(proposal=pull_proposal(buf))
        if kind == ProposalOrRefType.reference:
            return cls(reference=buf.pull_opaque())
        raise DecodeError(f"unknown ProposalOrRefType {kind}")
