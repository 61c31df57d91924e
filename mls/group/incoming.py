"""A message for the group, up to its event (RFC 9420 §6, §12.1, §15.3).

:func:`unprotect_message` runs the checks that choose the keys (group, status, epoch, and a
past epoch for a late application message) and hands the message to
:mod:`mls.group.receive`, which verifies it into
:data:`~mls.group.receive.VerifiedContent`. ``Group._dispatch`` then takes the verified content
to :func:`application_event`, :func:`receive_proposal` or, for a commit,
:func:`~mls.group.staged_commit.stage_commit`. Nothing here changes the group until the
message is accepted: the ``accept`` callback consumes the ratchet key, then the proposal is
cached.
"""

from __future__ import annotations

from collections.abc import Callable, MutableMapping

from mls.constants import ContentType
from mls.crypto import CipherSuite
from mls.errors import InvalidContentType, UnauthorizedProposal, WrongEpoch, WrongGroup
from mls.framing.message import MLSMessage
from mls.framing.private import PrivateMessage
from mls.framing.public import PublicMessage
from mls.group.config import GroupConfig
from mls.group.epoch import GroupStatus, PastEpoch, PastEpochs
from mls.group.events import ApplicationMessage, ProposalReceived
from mls.group.lifecycle import check_accepts_handshake
from mls.group.proposal_list import CachedProposal, ProposalContext, authorized, check_cacheable
from mls.group.receive import Received, VerifiedContent, unprotect_private, unprotect_public
from mls.group.validation import Checks
from mls.messages.proposals import PreSharedKey, Proposal
from mls.schedule.group_context import GroupContext
from mls.schedule.key_schedule import EpochSecrets
from mls.schedule.secret_tree import SecretTree
from mls.tree.ratchet_tree import RatchetTree

__all__ = ["application_event", "receive_proposal", "unprotect_message"]


def unprotect_message(
    cs: CipherSuite,
    msg: MLSMessage,
    *,
    status: GroupStatus,
    context: GroupContext,
    tree: RatchetTree,
    secret_tree: SecretTree,
    secrets: EpochSecrets,
    past_epochs: PastEpochs,
    config: GroupConfig,
    own_leaf: int,
    now: int | None,
) -> Received:
    """Verify a PrivateMessage or PublicMessage of the group at ``context`` (§6.2, §6.3)."""
    body = msg.body
    if isinstance(body, PrivateMessage):
        return _unprotect_private(
            cs,
            body,
            status=status,
            context=context,
            tree=tree,
            secret_tree=secret_tree,
            secrets=secrets,
            past_epochs=past_epochs,
            config=config,
            own_leaf=own_leaf,
            now=now,
        )
    if isinstance(body, PublicMessage):
        return _unprotect_public(
            cs, body, status=status, context=context, tree=tree, secrets=secrets, own_leaf=own_leaf
        )
    raise InvalidContentType(
        f"wire format {msg.wire_format} is not a group message (use join for a Welcome)"
    )


def _unprotect_private(
    cs: CipherSuite,
    msg: PrivateMessage,
    *,
    status: GroupStatus,
    context: GroupContext,
    tree: RatchetTree,
    secret_tree: SecretTree,
    secrets: EpochSecrets,
    past_epochs: PastEpochs,
    config: GroupConfig,
    own_leaf: int,
    now: int | None,
) -> Received:
    if msg.group_id != context.group_id:
        raise WrongGroup("message for another group")
    if msg.content_type != ContentType.application or status is GroupStatus.REMOVED:
        # A removed member deleted its keys (§12.4.2): it reads nothing more.
        check_accepts_handshake(status)
    if msg.epoch == context.epoch:
        keys, sd_secret, ctx = secret_tree, secrets.sender_data_secret, context
        past: PastEpoch | None = None
    elif msg.content_type == ContentType.application and msg.epoch in past_epochs:
        past = past_epochs[msg.epoch]
        if past.expired(now, config.past_epoch_grace):
            raise WrongEpoch(
                f"epoch {msg.epoch} ended more than {config.past_epoch_grace} s ago",
                expected=context.epoch,
                got=msg.epoch,
            )
        keys, sd_secret, ctx = past.secret_tree, past.sender_data_secret, past.context
    else:
        raise WrongEpoch(
            f"message for epoch {msg.epoch}, group is at {context.epoch}",
            expected=context.epoch,
            got=msg.epoch,
        )
    return unprotect_private(
        cs,
        msg,
        secret_tree=keys,
        sender_data_secret=sd_secret,
        context=ctx,
        tree=tree,
        past=past,
        own_leaf=own_leaf,
        refuse_removed=config.removed_sender_messages == "refuse",
    )


def _unprotect_public(
    cs: CipherSuite,
    msg: PublicMessage,
    *,
    status: GroupStatus,
    context: GroupContext,
    tree: RatchetTree,
    secrets: EpochSecrets,
    own_leaf: int,
) -> Received:
    content = msg.content
    if content.group_id != context.group_id:
        raise WrongGroup("message for another group")
    check_accepts_handshake(status)
    if content.epoch != context.epoch:
        raise WrongEpoch(
            f"message for epoch {content.epoch}, group is at {context.epoch}",
            expected=context.epoch,
            got=content.epoch,
        )
    return unprotect_public(
        cs,
        msg,
        membership_key=secrets.membership_key,
        context=context,
        tree=tree,
        own_leaf=own_leaf,
    )


def application_event(received: Received, data: bytes) -> ApplicationMessage:
    """The event of a verified application message (§15); its key is consumed here."""
    content = received.content.content
    event = ApplicationMessage(
        sender=content.sender.index,
        epoch=content.epoch,
        data=data,
        authenticated_data=content.authenticated_data,
        generation=received.generation,
        credential=received.credential,
        sender_removed=received.sender_removed,
    )
    if received.accept is not None:
        received.accept()
    return event


def receive_proposal(
    pc: ProposalContext,
    auth: VerifiedContent,
    proposal: Proposal,
    *,
    checks: Checks,
    store: MutableMapping[bytes, CachedProposal],
    accept: Callable[[], None] | None,
) -> ProposalReceived:
    """A proposal (§12.1): validate it on its own, authorize it (§12.1.8) and cache it by
    reference in ``store`` once accepted."""
    content = auth.content
    pc.validate(proposal, content.sender, checks, wire_format=auth.wire_format)
    if isinstance(proposal, PreSharedKey):
        pc.resolve_psk(proposal.psk)
    cached = CachedProposal(proposal, content.sender)
    if not authorized(cached, pc):
        raise UnauthorizedProposal(
            "the group's external_proposal_policy does not authorize this proposal (§12.1.8)"
        )
    ref = auth.proposal_ref(pc.cs)
    check_cacheable(ref, cached, store)
    if accept is not None:
        accept()
    store[ref] = cached
    return ProposalReceived(
        ref=ref, proposal=proposal, sender=content.sender, epoch=pc.context.epoch
    )
