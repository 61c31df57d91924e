"""Messages from parties outside the group (RFC 9420 §12.1.8): external senders, and a
client asking to be added (``new_member_proposal``).

A server listed in the group's ``external_senders`` extension can propose Add, Remove,
PreSharedKey, ReInit and GroupContextExtensions. It signs with its own key, without the
GroupContext (§6.1), and sends a PublicMessage without a membership tag.
"""

from __future__ import annotations

from mls.codec import decode
from mls.constants import WireFormat
from mls.crypto import CipherSuite
from mls.errors import DecodeError, UsageError
from mls.framing.content import (
    AuthenticatedContent,
    FramedContent,
    FramedContentAuthData,
    Sender,
    sign_framed_content,
)
from mls.framing.message import MLSMessage
from mls.framing.protection import public_message_from
from mls.framing.public import PublicMessage
from mls.group.client import Client
from mls.group.validation import EXTERNAL_SENDER_PROPOSALS
from mls.messages.group_info import GroupInfo
from mls.messages.proposals import Add, Proposal

__all__ = ["external_proposal", "new_member_proposal"]


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
    if proposal.proposal_type not in EXTERNAL_SENDER_PROPOSALS:
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


def new_member_proposal(client: Client, group_info: bytes, *, now: int | None = None) -> bytes:
    """An Add of ``client`` itself, sent as a ``new_member_proposal`` PublicMessage to the
    group the GroupInfo describes (§12.1.8). The KeyPackage's keys stay in the client's
    pool for the Welcome that follows the commit."""
    msg = decode(MLSMessage, group_info)
    gi = msg.body
    if not isinstance(gi, GroupInfo):
        raise DecodeError("expected an MLSMessage carrying a GroupInfo")
    cs = client.suite
    ctx = gi.group_context
    if ctx.cipher_suite != cs.suite_id:
        raise UsageError("the group uses another cipher suite than the client")
    kp = client.key_package(now or 0)
    content = FramedContent(
        group_id=ctx.group_id,
        epoch=ctx.epoch,
        sender=Sender.new_member_proposal(),
        content=Add(key_package=kp),
    )
    wf = WireFormat.mls_public_message
    sig = sign_framed_content(cs, client.signature_private_key, wf, content, None)
    auth = AuthenticatedContent(
        wire_format=wf, content=content, auth=FramedContentAuthData(signature=sig)
    )
    return MLSMessage(body=public_message_from(cs, auth, None, ctx)).to_bytes()
