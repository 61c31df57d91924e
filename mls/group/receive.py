"""Unprotecting a group message: PrivateMessage or PublicMessage to verified content (RFC 9420
§6, §6.1-§6.3, §15.3).

The group checks first what depends on its lifecycle (group id, status, epoch, which past
epoch); the functions here then decrypt or check the membership tag, find the sender's
signature key, and verify the signature. Only they produce :data:`VerifiedContent`, and the
later steps (commit staging, application delivery, the proposal cache) accept only that type,
so mypy rejects a path that skips signature verification. A ``NewType`` costs nothing at run
time: it is the same object.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import NewType

from mls.constants import ContentType, SenderType
from mls.credentials import Credential
from mls.crypto import CipherSuite
from mls.errors import (
    InvalidContentType,
    InvalidExternalInit,
    InvalidSender,
    RemovedSender,
    UnknownSender,
)
from mls.extensions import ExternalSenders
from mls.framing.content import AuthenticatedContent
from mls.framing.private import PrivateMessage
from mls.framing.protection import decrypt_private_message, verify_membership_tag
from mls.framing.public import PublicMessage
from mls.group.epoch import PastEpoch
from mls.messages.commit import Commit
from mls.messages.proposals import Add
from mls.schedule.group_context import GroupContext
from mls.schedule.secret_tree import SecretTree
from mls.tree.nodes import LeafNode
from mls.tree.ratchet_tree import RatchetTree

__all__ = [
    "Received",
    "VerifiedContent",
    "leaf_checker",
    "member_leaf",
    "unprotect_private",
    "unprotect_public",
]

#: Content whose signature verified under the key of its sender (§6.1).
VerifiedContent = NewType("VerifiedContent", AuthenticatedContent)


@dataclass(frozen=True, slots=True)
class Received:
    """A verified message and what delivering it needs."""

    content: VerifiedContent
    #: Consumes the PrivateMessage's ratchet key; run only once the message is accepted.
    accept: Callable[[], None] | None = None
    #: The past epoch a late application message belongs to (§15.3).
    past: PastEpoch | None = None
    credential: Credential | None = None
    generation: int = 0
    sender_removed: bool = False


def leaf_checker(tree: RatchetTree, past: PastEpoch | None) -> Callable[[int], bool]:
    def is_member(leaf_index: int) -> bool:
        if past is not None and leaf_index in past.leaves:
            return past.leaves[leaf_index] is not None
        return 0 <= leaf_index < tree.n_leaves and tree.leaf(leaf_index) is not None

    return is_member


def member_leaf(tree: RatchetTree, leaf_index: int, past: PastEpoch | None) -> LeafNode:
    """The sender's LeafNode in the current epoch or, for a late message, in ``past``."""
    if past is not None and leaf_index in past.leaves:
        then = past.leaves[leaf_index]
        if then is None:
            raise UnknownSender(f"leaf {leaf_index} was blank in epoch {past.context.epoch}")
        return then
    if not 0 <= leaf_index < tree.n_leaves:
        raise UnknownSender(f"leaf {leaf_index} is outside the tree")
    leaf = tree.leaf(leaf_index)
    if leaf is None:
        raise UnknownSender(f"leaf {leaf_index} is blank")
    return leaf


def unprotect_private(
    cs: CipherSuite,
    msg: PrivateMessage,
    *,
    secret_tree: SecretTree,
    sender_data_secret: bytes,
    context: GroupContext,
    tree: RatchetTree,
    past: PastEpoch | None,
    own_leaf: int,
    refuse_removed: bool,
) -> Received:
    """A PrivateMessage of the current epoch or of ``past`` (whose keys are the ones given)."""
    # §6.3.2: reject a blank or unknown sender leaf before deriving any key.
    auth, pending = decrypt_private_message(
        cs, msg, secret_tree, sender_data_secret, leaf_is_member=leaf_checker(tree, past)
    )
    sender = auth.content.sender
    if sender.sender_type != SenderType.member:
        raise InvalidSender("a PrivateMessage sender must be a member (§6.3)")
    if sender.index == own_leaf and past is None:
        raise InvalidSender("a member does not process its own PrivateMessage")
    removed = False
    if past is not None:
        limit = past.removed_limits.get(sender.index)
        removed = limit is not None and pending.generation >= limit
        if removed and refuse_removed:
            raise RemovedSender(
                f"leaf {sender.index} was removed when we had seen generations below "
                f"{limit} of epoch {msg.epoch}; generation {pending.generation} may have "
                "been written after that"
            )
    sender_leaf = member_leaf(tree, sender.index, past)
    auth.verify(cs, sender_leaf.signature_key, context)
    return Received(
        VerifiedContent(auth),
        lambda: secret_tree.confirm_receive(pending),
        past,
        sender_leaf.credential,
        generation=pending.generation,
        sender_removed=removed,
    )


def unprotect_public(
    cs: CipherSuite,
    msg: PublicMessage,
    *,
    membership_key: bytes,
    context: GroupContext,
    tree: RatchetTree,
    own_leaf: int,
) -> Received:
    """A PublicMessage of the current epoch: membership tag, then one signature key per
    sender type (§6.1, §6.2, §12.1.8, §12.4.3.2)."""
    auth = verify_membership_tag(cs, msg, membership_key, context)
    if auth.content.content_type == ContentType.application:
        raise InvalidContentType("application data must be sent as PrivateMessage (§6.2)")
    sender = auth.content.sender
    st = sender.sender_type
    if st == SenderType.member:
        if sender.index == own_leaf:
            raise InvalidSender("a member does not process its own handshake message")
        auth.verify(cs, member_leaf(tree, sender.index, None).signature_key, context)
    elif st == SenderType.external:
        senders = ExternalSenders.find(context.extensions)
        if senders is None or sender.index >= len(senders.senders):
            raise UnknownSender(f"unknown external sender {sender.index}")
        if auth.content.content_type != ContentType.proposal:
            raise InvalidSender("an external sender can only send proposals (§12.1.8)")
        auth.verify(cs, senders.senders[sender.index].signature_key, None)
    elif st == SenderType.new_member_proposal:
        proposal = auth.content.content
        if not isinstance(proposal, Add):
            raise InvalidSender("new_member_proposal must carry an Add proposal (§12.1.8)")
        auth.verify(cs, proposal.key_package.leaf_node.signature_key, None)
    elif st == SenderType.new_member_commit:
        commit = auth.content.content
        if not isinstance(commit, Commit):
            raise InvalidSender("new_member_commit must carry a Commit (§12.4.3.2)")
        if commit.path is None:
            raise InvalidExternalInit("an external commit must carry a path (§12.4.3.2)")
        auth.verify(cs, commit.path.leaf_node.signature_key, context)
    else:
        raise InvalidSender(f"unknown sender type {st}")
    return Received(VerifiedContent(auth))
