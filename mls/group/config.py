"""Per-group policy: the choices RFC 9420 leaves to the application (see SPEC_NOTES.md,
"Policy").

Every field has the safe default. The one decision that needs code rather than a number, which
proposals from outside the group to accept (§12.1.8), is a callable: it sees an
:class:`ExternalProposalRequest` and returns ``True`` to authorize it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from mls.credentials import Credential
from mls.framing.content import Sender
from mls.messages.proposals import Proposal
from mls.schedule.group_context import GroupContext

__all__ = [
    "DEFAULT_MAX_LIFETIME",
    "ExternalProposalPolicy",
    "ExternalProposalRequest",
    "GroupConfig",
    "allow_external_proposals",
    "refuse_external_proposals",
]

#: §7.2: the longest total lifetime (not_after - not_before) accepted for a LeafNode: a year,
#: room for every implementation's default KeyPackage lifetime (ours: 84 days and an hour).
DEFAULT_MAX_LIFETIME = 366 * 24 * 3600


@dataclass(frozen=True, slots=True, kw_only=True)
class ExternalProposalRequest:
    """A proposal from a non-member (§12.1.8), already authenticated, for the application to
    authorize: an ``external`` sender (one of the group's ``external_senders``) or a
    ``new_member_proposal`` (a client asking to be added)."""

    proposal: Proposal
    sender: Sender
    #: The external sender's credential, or the joiner's (from its KeyPackage's LeafNode).
    credential: Credential
    #: The context of the epoch the proposal is for.
    context: GroupContext


#: Decides whether a proposal from outside the group is authorized (§12.1.8).
ExternalProposalPolicy = Callable[[ExternalProposalRequest], bool]


def refuse_external_proposals(request: ExternalProposalRequest) -> bool:
    """The default: no proposal from outside the group is authorized (§12.1.8: "External
    proposals that are not authorized are considered invalid")."""
    return False


def allow_external_proposals(request: ExternalProposalRequest) -> bool:
    """Authorize every authenticated external proposal. Only for groups where anyone holding a
    GroupInfo (for ``new_member_proposal``) and every configured external sender may change
    the membership: an open group, or a test."""
    return True


@dataclass(frozen=True, slots=True, kw_only=True)
class GroupConfig:
    """Options of one group. All defaults are the safe choice."""

    #: Send handshake messages (proposals, commits) as PrivateMessage (hides the sender and the
    #: content from the delivery service, §6.3) or, with ``False``, as PublicMessage (lets the
    #: delivery service track the tree, §6.2). Application messages are always PrivateMessage.
    private_handshake: bool = True
    #: Put the ratchet tree in the Welcome's GroupInfo (``ratchet_tree`` extension, §12.4.3.3).
    ratchet_tree_extension: bool = False
    #: Pad PrivateMessage content to a multiple of this many bytes (§6.3.1; 0 = no padding).
    padding_block: int = 32
    #: Past epochs whose application keys are kept so late messages still decrypt (§15.3).
    past_epochs: int = 1
    #: How long (seconds) after a commit merged its previous epoch still reads late application
    #: messages (§15.3); then its keys are deleted (§9.2). Enforced when ``now`` is given.
    past_epoch_grace: int = 300
    #: A late application message (§15.3) from a member that a later commit removed, with a
    #: generation this member had not reached when it processed the removal (so possibly
    #: written after it, §12.4.2): ``"refuse"`` raises ``RemovedSender``; ``"flag"`` delivers
    #: it with ``ApplicationMessage.sender_removed`` set (for delivery services that do not
    #: order application messages before the commits that follow them).
    removed_sender_messages: Literal["refuse", "flag"] = "refuse"
    #: Resumption PSKs kept for this many past epochs (§8.6), for branch, ReInit and PSK use.
    resumption_psks: int = 8
    #: Secret-tree window: skipped generations kept per sender and ratchet (§9.2).
    out_of_order_window: int = 128
    #: Largest forward jump in generations accepted from one sender (a DoS bound, §9.2).
    max_forward_distance: int = 1024
    #: Lifetimes (§7.2, §7.3) are checked when the caller gives ``now``. Creating a proposal or
    #: commit requires ``not_before <= now <= not_after``. On receipt a leaf is never refused
    #: for having expired (it may have expired in transit, §7.3) and is refused as not yet
    #: valid only when ``not_before`` is more than this many seconds ahead of ``now``.
    lifetime_skew: int = 300
    #: §7.2: "Applications MUST define a maximum total lifetime": a KeyPackage LeafNode whose
    #: ``not_after - not_before`` exceeds this (seconds) is refused (checked with ``now``).
    max_lifetime: int = DEFAULT_MAX_LIFETIME
    #: Who may propose from outside the group (§12.1.8). Unauthorized proposals are refused
    #: with ``UnauthorizedProposal``, never cached, never committed.
    external_proposal_policy: ExternalProposalPolicy = refuse_external_proposals
    #: Size bounds on what peers send (DoS and poison-message defence): a Basic identity, an
    #: encoded credential of any type (X.509 chains), a group id, and the ratchet tree a
    #: joiner accepts (leaves).
    max_identity_length: int = 1024
    max_credential_length: int = 64 * 1024
    max_group_id_length: int = 256
    max_tree_leaves: int = 1 << 17

    def __post_init__(self) -> None:
        if (
            self.padding_block < 0
            or self.past_epochs < 0
            or self.resumption_psks < 0
            or self.past_epoch_grace < 0
            or self.lifetime_skew < 0
        ):
            raise ValueError("GroupConfig values must be non-negative")
        if (
            min(
                self.max_lifetime,
                self.max_identity_length,
                self.max_credential_length,
                self.max_group_id_length,
                self.max_tree_leaves,
            )
            <= 0
        ):
            raise ValueError("GroupConfig bounds must be positive")
        if self.removed_sender_messages not in ("refuse", "flag"):
            raise ValueError("removed_sender_messages is 'refuse' or 'flag'")
