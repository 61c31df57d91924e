"""``PublicMessage`` (RFC 9420 §6.2) and its membership tag over ``AuthenticatedContentTBM``.

``membership_tag`` is present exactly when the sender is a ``member``. The tag is
MAC(membership_key, AuthenticatedContentTBM); the membership key comes from the key schedule.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Self

from mls.codec.buffer import Buffer, Writer
from mls.constants import WireFormat
from mls.errors import BadMembershipTag, UsageError
from mls.framing.content import (
    AuthenticatedContent,
    FramedContent,
    FramedContentAuthData,
    framed_content_tbs,
)
from mls.schedule.group_context import GroupContext

if TYPE_CHECKING:
    from mls.crypto import CipherSuite

__all__ = ["PublicMessage", "membership_tag", "tbm"]


@dataclass(frozen=True, slots=True, kw_only=True)
class PublicMessage:
    """RFC 9420 §6.2::

    struct {
        FramedContent content;
        FramedContentAuthData auth;
        select (PublicMessage.content.sender.sender_type) {
            case member:
                MAC membership_tag;
            case external:
            case new_member_commit:
            case new_member_proposal:
                struct{};
        };
    } PublicMessage;
    """

    content: FramedContent
    auth: FramedContentAuthData
    membership_tag: bytes | None = None

    def __post_init__(self) -> None:
        self.auth.check_content_type(self.content.content_type)
        if self.content.sender.is_member != (self.membership_tag is not None):
            raise UsageError("membership_tag must be present exactly for member senders")

    def encode(self, w: Writer) -> None:
        self.content.encode(w)
        self.auth.encode(w)
        if self.membership_tag is not None:
            w.push_opaque(self.membership_tag)

    @classmethod
    def decode(cls, buf: Buffer) -> Self:
        content = FramedContent.decode(buf)
        auth = FramedContentAuthData.pull(buf, content.content_type)
        tag = buf.pull_opaque() if content.sender.is_member else None
        return cls(content=content, auth=auth, membership_tag=tag)

    @classmethod
    def from_authenticated(
        cls, authenticated: AuthenticatedContent, membership_tag: bytes | None
    ) -> Self:
        if authenticated.wire_format != WireFormat.mls_public_message:
            raise UsageError("AuthenticatedContent is not for mls_public_message")
        return cls(
            content=authenticated.content, auth=authenticated.auth, membership_tag=membership_tag
        )

    def authenticated_content(self) -> AuthenticatedContent:
        """The AuthenticatedContent this message carries (wire_format mls_public_message)."""
        return AuthenticatedContent(
            wire_format=WireFormat.mls_public_message, content=self.content, auth=self.auth
        )

    def tbm(self, context: GroupContext) -> bytes:
        """The encoded AuthenticatedContentTBM (§6.2)::

        struct {
          FramedContentTBS content_tbs;
          FramedContentAuthData auth;
        } AuthenticatedContentTBM;
        """
        return tbm(self.content, self.auth, context)

    def verify_membership_tag(
        self, cs: CipherSuite, membership_key: bytes, context: GroupContext
    ) -> None:
        """Check ``membership_tag`` in constant time; raises :class:`BadMembershipTag`."""
        if self.membership_tag is None:
            raise UsageError("only member senders carry a membership tag")
        cs.verify_mac(membership_key, self.tbm(context), self.membership_tag, BadMembershipTag)


def tbm(content: FramedContent, auth: FramedContentAuthData, context: GroupContext) -> bytes:
    """AuthenticatedContentTBM of a member's PublicMessage (see :meth:`PublicMessage.tbm`)."""
    w = Writer()
    w.push_bytes(framed_content_tbs(WireFormat.mls_public_message, content, context))
    auth.encode(w)
    return w.getvalue()


def membership_tag(
    cs: CipherSuite,
    membership_key: bytes,
    content: FramedContent,
    auth: FramedContentAuthData,
    context: GroupContext,
) -> bytes:
    """membership_tag = MAC(membership_key, AuthenticatedContentTBM) (§6.2)."""
    return cs.mac(membership_key, tbm(content, auth, context))
