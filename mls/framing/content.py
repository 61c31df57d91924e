"""Message content and its signature (RFC 9420 §6, §6.1): ``Sender``, ``FramedContent``,
``FramedContentAuthData``, ``AuthenticatedContent`` and the ``FramedContentTBS`` encoding.

Signature: SignWithLabel(., "FramedContentTBS", FramedContentTBS) (§6.1). Which key signs
depends on the sender type (§6.1); resolving it from the tree or the ``external_senders``
extension is the group layer's job, so :func:`verify_framed_content` takes the key.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Self, TypeAlias

from mls.codec.buffer import Buffer, Writer, opaque
from mls.constants import ContentType, ProtocolVersion, SenderType, WireFormat
from mls.crypto.labels import make_proposal_ref, sign_with_label, verify_with_label
from mls.errors import DecodeError, UsageError
from mls.messages.commit import Commit
from mls.messages.proposals import Proposal, pull_proposal, push_proposal
from mls.schedule.group_context import GroupContext

if TYPE_CHECKING:
    from mls.crypto import CipherSuite

__all__ = [
    "Sender",
    "Content",
    "content_type_of",
    "push_content",
    "pull_content",
    "FramedContent",
    "FramedContentAuthData",
    "AuthenticatedContent",
    "framed_content_tbs",
    "sign_framed_content",
    "verify_framed_content",
]

_MEMBER = SenderType.member
_EXTERNAL = SenderType.external
_NEW_MEMBER_PROPOSAL = SenderType.new_member_proposal
_NEW_MEMBER_COMMIT = SenderType.new_member_commit


@dataclass(frozen=True, slots=True, kw_only=True)
class Sender:
    """RFC 9420 §6::

        struct {
            SenderType sender_type;
            select (Sender.sender_type) {
                case member:
                    uint32 leaf_index;
                case external:
                    uint32 sender_index;
                case new_member_commit:
                case new_member_proposal:
                    struct{};
            };
        } Sender;

    ``index`` is the ``leaf_index`` of a member or the ``sender_index`` (into the
    ``external_senders`` extension) of an external sender, and 0 for the new-member types.
    """

    sender_type: int
    index: int = 0

    def __post_init__(self) -> None:
        st = self.sender_type
        if st in (_NEW_MEMBER_PROPOSAL, _NEW_MEMBER_COMMIT):
            if self.index != 0:
                raise UsageError("a new_member sender carries no index")
        elif st not in (_MEMBER, _EXTERNAL):
            raise UsageError(f"unknown sender_type {st}")

    @classmethod
    def member(cls, leaf_index: int) -> Self:
        return cls(sender_type=_MEMBER, index=leaf_index)

    @classmethod
    def external(cls, sender_index: int) -> Self:
        return cls(sender_type=_EXTERNAL, index=sender_index)

    @classmethod
    def new_member_proposal(cls) -> Self:
        return cls(sender_type=_NEW_MEMBER_PROPOSAL)

    @classmethod
    def new_member_commit(cls) -> Self:
        return cls(sender_type=_NEW_MEMBER_COMMIT)

    @property
    def is_member(self) -> bool:
        return self.sender_type == _MEMBER

    def encode(self, w: Writer) -> None:
        w.push_uint8(self.sender_type)
        if self.sender_type in (_MEMBER, _EXTERNAL):
            w.push_uint32(self.index)

    @classmethod
    def decode(cls, buf: Buffer) -> Self:
        st = buf.pull_uint8()
        if st == _MEMBER or st == _EXTERNAL:
            return cls(sender_type=st, index=buf.pull_uint32())
        if st == _NEW_MEMBER_PROPOSAL or st == _NEW_MEMBER_COMMIT:
            return cls(sender_type=st)
        raise DecodeError(f"unknown sender_type {st}")


Content: TypeAlias = bytes | Proposal | Commit
"""The ``select (content_type)`` body: application data (``bytes``), a Proposal or a Commit."""


def content_type_of(content: Content) -> int:
    """The ContentType (§6) of a content body."""
    if isinstance(content, bytes):
        return ContentType.application
    if isinstance(content, Commit):
        return ContentType.commit
    return ContentType.proposal


def push_content(w: Writer, content: Content) -> None:
    """The ``select (content_type)`` body, without the ``content_type`` byte."""
    if isinstance(content, bytes):
        w.push_opaque(content)
    elif isinstance(content, Commit):
        content.encode(w)
    else:
        push_proposal(w, content)


def pull_content(buf: Buffer, content_type: int) -> Content:
    if content_type == ContentType.application:
        return buf.pull_opaque()
    if content_type == ContentType.proposal:
        return pull_proposal(buf)
    if content_type == ContentType.commit:
        return Commit.decode(buf)
    raise DecodeError(f"unknown content_type {content_type}")


@dataclass(frozen=True, slots=True, kw_only=True)
class FramedContent:
    """RFC 9420 §6::

        struct {
            opaque group_id<V>;
            uint64 epoch;
            Sender sender;
            opaque authenticated_data<V>;

            ContentType content_type;
            select (FramedContent.content_type) {
                case application:
                  opaque application_data<V>;
                case proposal:
                  Proposal proposal;
                case commit:
                  Commit commit;
            };
        } FramedContent;

    ``content_type`` follows from the Python type of ``content`` (:data:`Content`).
    """

    group_id: bytes
    epoch: int
    sender: Sender
    authenticated_data: bytes = b""
    content: Content
    # The encoding, computed once (signature, transcript hash and references all cover it) or
    # kept from the received bytes.
    _encoded: bytes | None = field(default=None, init=False, repr=False, compare=False)

    @property
    def content_type(self) -> int:
        return content_type_of(self.content)

    def to_bytes(self) -> bytes:
        """The encoded FramedContent (cached)."""
        enc = self._encoded
        if enc is None:
            content = self.content
            if isinstance(content, bytes) and self.sender.sender_type == _MEMBER:
                # The application-message case, on every message sent: by concatenation.
                enc = (
                    opaque(self.group_id)
                    + self.epoch.to_bytes(8, "big")
                    + b"\x01"
                    + self.sender.index.to_bytes(4, "big")
                    + opaque(self.authenticated_data)
                    + b"\x01"
                    + opaque(content)
                )
            else:
                w = Writer()
                w.push_opaque(self.group_id)
                w.push_uint64(self.epoch)
                self.sender.encode(w)
                w.push_opaque(self.authenticated_data)
                w.push_uint8(content_type_of(content))
                push_content(w, content)
                enc = w.getvalue()
            object.__setattr__(self, "_encoded", enc)
        return enc

    def encode(self, w: Writer) -> None:
        w.push_bytes(self.to_bytes())

    @classmethod
    def decode(cls, buf: Buffer) -> Self:
        start = buf.position
        group_id = buf.pull_opaque()
        epoch = buf.pull_uint64()
        sender = Sender.decode(buf)
        authenticated_data = buf.pull_opaque()
        content = pull_content(buf, buf.pull_uint8())
        framed = cls(
            group_id=group_id,
            epoch=epoch,
            sender=sender,
            authenticated_data=authenticated_data,
            content=content,
        )
        object.__setattr__(framed, "_encoded", buf.slice(start, buf.position))
        return framed


@dataclass(frozen=True, slots=True, kw_only=True)
class FramedContentAuthData:
    """RFC 9420 §6.1::

        struct {
            /* SignWithLabel(., "FramedContentTBS", FramedContentTBS) */
            opaque signature<V>;
            select (FramedContent.content_type) {
                case commit:
                    /* MAC(confirmation_key, GroupContext.confirmed_transcript_hash) */
                    MAC confirmation_tag;
                case application:
                case proposal:
                    struct{};
            };
        } FramedContentAuthData;

    ``confirmation_tag`` is set exactly for commits. The layout depends on the content type,
    so decoding is :meth:`pull` with that type (there is no context-free ``decode``).
    """

    signature: bytes
    confirmation_tag: bytes | None = None

    def encode(self, w: Writer) -> None:
        w.push_bytes(self.to_bytes())

    def to_bytes(self) -> bytes:
        out = opaque(self.signature)
        if self.confirmation_tag is not None:
            out += opaque(self.confirmation_tag)
        return out

    def check_content_type(self, content_type: int) -> None:
        """Raise UsageError unless ``confirmation_tag`` is set exactly for commits."""
        if (content_type == ContentType.commit) != (self.confirmation_tag is not None):
            raise UsageError("confirmation_tag must be present exactly for commit content")

    @classmethod
    def pull(cls, buf: Buffer, content_type: int) -> Self:
        signature = buf.pull_opaque()
        if content_type == ContentType.commit:
            return cls(signature=signature, confirmation_tag=buf.pull_opaque())
        return cls(signature=signature)


# version || wire_format for the two framings, precomputed.
_TBS_HEADS: dict[int, bytes] = {
    int(wf): ProtocolVersion.mls10.to_bytes(2, "big") + wf.to_bytes(2, "big")
    for wf in (WireFormat.mls_public_message, WireFormat.mls_private_message)
}


def framed_content_tbs(
    wire_format: int, content: FramedContent, context: GroupContext | None
) -> bytes:
    """The encoded FramedContentTBS (§6.1)::

        struct {
            ProtocolVersion version = mls10;
            WireFormat wire_format;
            FramedContent content;
            select (FramedContentTBS.content.sender.sender_type) {
                case member:
                case new_member_commit:
                    GroupContext context;
                case external:
                case new_member_proposal:
                    struct{};
            };
        } FramedContentTBS;

    ``context`` (the current epoch's GroupContext) is required for ``member`` and
    ``new_member_commit`` senders and ignored for the others.
    """
    head = _TBS_HEADS.get(wire_format)
    if head is None:
        head = ProtocolVersion.mls10.to_bytes(2, "big") + wire_format.to_bytes(2, "big")
    st = content.sender.sender_type
    if st == _MEMBER or st == _NEW_MEMBER_COMMIT:
        if context is None:
            raise UsageError("member and new_member_commit signatures cover the GroupContext")
        return head + content.to_bytes() + context.to_bytes()
    return head + content.to_bytes()


def sign_framed_content(
    cs: CipherSuite,
    signature_private_key: bytes,
    wire_format: int,
    content: FramedContent,
    context: GroupContext | None,
) -> bytes:
    """SignWithLabel(sk, "FramedContentTBS", FramedContentTBS) (§6.1): the ``signature``.

    For a commit, the confirmation tag is computed afterwards (it covers this signature
    through the confirmed transcript hash, §8.2), then both go into FramedContentAuthData.
    """
    tbs = framed_content_tbs(wire_format, content, context)
    return sign_with_label(cs, signature_private_key, "FramedContentTBS", tbs)


def verify_framed_content(
    cs: CipherSuite,
    signature_public_key: bytes,
    wire_format: int,
    content: FramedContent,
    context: GroupContext | None,
    signature: bytes,
) -> None:
    """VerifyWithLabel(pk, "FramedContentTBS", FramedContentTBS, signature); BadSignature."""
    tbs = framed_content_tbs(wire_format, content, context)
    verify_with_label(cs, signature_public_key, "FramedContentTBS", tbs, signature)


@dataclass(frozen=True, slots=True, kw_only=True)
class AuthenticatedContent:
    """RFC 9420 §6::

    struct {
        WireFormat wire_format;
        FramedContent content;
        FramedContentAuthData auth;
    } AuthenticatedContent;
    """

    wire_format: int
    content: FramedContent
    auth: FramedContentAuthData

    def __post_init__(self) -> None:
        self.auth.check_content_type(self.content.content_type)

    def encode(self, w: Writer) -> None:
        w.push_uint16(self.wire_format)
        self.content.encode(w)
        self.auth.encode(w)

    @classmethod
    def decode(cls, buf: Buffer) -> Self:
        wire_format = buf.pull_uint16()
        content = FramedContent.decode(buf)
        auth = FramedContentAuthData.pull(buf, content.content_type)
        return cls(wire_format=wire_format, content=content, auth=auth)

    def to_bytes(self) -> bytes:
        w = Writer()
        self.encode(w)
        return w.getvalue()

    def tbs(self, context: GroupContext | None) -> bytes:
        """The encoded FramedContentTBS of this content (see :func:`framed_content_tbs`)."""
        return framed_content_tbs(self.wire_format, self.content, context)

    def verify(
        self, cs: CipherSuite, signature_public_key: bytes, context: GroupContext | None
    ) -> None:
        """Check ``auth.signature`` (§6.1); raises BadSignature. The confirmation tag is the
        key schedule's to check."""
        verify_framed_content(
            cs, signature_public_key, self.wire_format, self.content, context, self.auth.signature
        )

    def confirmed_transcript_hash_input(self) -> bytes:
        """The encoded ConfirmedTranscriptHashInput (§8.2) of a commit::

        struct {
            WireFormat wire_format;
            FramedContent content; /* with content_type == commit */
            opaque signature<V>;
        } ConfirmedTranscriptHashInput;
        """
        if not isinstance(self.content.content, Commit):
            raise UsageError("only commits enter the transcript hash")
        w = Writer()
        w.push_uint16(self.wire_format)
        self.content.encode(w)
        w.push_opaque(self.auth.signature)
        return w.getvalue()

    def proposal_ref(self, cs: CipherSuite) -> bytes:
        """ProposalRef = MakeProposalRef(encoded AuthenticatedContent) (§5.2)."""
        if content_type_of(self.content.content) != ContentType.proposal:
            raise UsageError("only proposals have a ProposalRef")
        return make_proposal_ref(cs, self.to_bytes())
