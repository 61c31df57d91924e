"""Messages from parties outside the group (RFC 9420 §12.1.8): external senders.

A server listed in the group's ``external_senders`` extension can propose Add, Remove,
PreSharedKey, ReInit and GroupContextExtensions. It signs with its own key, without the
GroupContext (§6.1), and sends a PublicMessage without a membership tag.
"""

from __future__ import annotations

from mls.constants import ProposalType, WireFormat
from mls.crypto import CipherSuite
from mls.errors import UsageError
from mls.framing.content import (
    AuthenticatedContent,
    FramedContent,
    FramedContentAuthData,
    Sender,
    sign_framed_content,
)
from mls.framing.message import MLSMessage
from mls.framing.public import PublicMessage
from mls.messages.proposals import Proposal

__all__ = ["external_proposal"]

_ALLOWED = frozenset(
    {
        ProposalType.add,
        ProposalType.remove,
        ProposalType.psk,
        ProposalType.reinit,
        ProposalType.group_context_extensions,
    }
)


def external_proposal(
    cs: CipherSuite,
    signature_private_key: bytes,
    sender_index: int,
    group_id: bytes,
    epoch: int,
    proposal: Proposal,
    *,
    authenticated_data: bytes = b"",
) -> bytes:
    """A proposal from the external sender at ``sender_index`` of the group's
    ``external_senders`` extension, as an MLSMessage (PublicMessage)."""
    if proposal.proposal_type not in _ALLOWED:
        raise UsageError(f"an external sender cannot propose type {proposal.proposal_type}")
    content = FramedContent(
        group_id=group_id,
        epoch=epoch,
        sender=Sender.external(sender_index),
        authenticated_data=authenticated_data,
        content=proposal,
    )
    wf = WireFormat.mls_public_message
    sig = sign_framed_content(cs, signature_private_key, wf, content, None)
    auth = AuthenticatedContent(
        wire_format=wf, content=content, auth=FramedContentAuthData(signature=sig)
    )
    return MLSMessage(body=PublicMessage.from_authenticated(auth, None)).to_bytes()
