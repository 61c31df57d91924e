"""Typed results of :meth:`mls.group.Group.process` and of local group operations (h2 style).

Every event is a frozen dataclass; ``Group.process`` returns exactly one of
:class:`ApplicationMessage`, :class:`ProposalReceived` or :class:`CommitMerged` and keeps no
hidden queue.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from mls.credentials import Credential
from mls.framing.content import Sender
from mls.messages.proposals import Proposal, ReInit

__all__ = [
    "ApplicationMessage",
    "CommitMerged",
    "CommitOutput",
    "GroupEvent",
    "ProposalReceived",
]


@dataclass(frozen=True, slots=True, kw_only=True)
class ApplicationMessage:
    """An application message from a member (RFC 9420 §15)."""

    #: Leaf index of the sending member.
    sender: int
    #: Epoch in which the message was sent (may be a recent past epoch, §15.3).
    epoch: int
    #: The application plaintext.
    data: bytes = field(repr=False)
    #: The ``authenticated_data`` of the PrivateMessage (authenticated, not encrypted).
    authenticated_data: bytes = b""
    #: Ratchet generation of the message key (for ordering diagnostics).
    generation: int = 0
    #: The sender's credential in the epoch the message was sent in.
    credential: Credential | None = None
    #: The sender was removed by a later commit and this generation may have been written
    #: after the removal (only with ``GroupConfig(removed_sender_messages="flag")``).
    sender_removed: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class ProposalReceived:
    """A proposal was verified and cached for a later commit (RFC 9420 §12)."""

    #: ProposalRef (MakeProposalRef over the AuthenticatedContent, §5.2).
    ref: bytes
    proposal: Proposal
    sender: Sender
    epoch: int


@dataclass(frozen=True, slots=True, kw_only=True)
class CommitMerged:
    """A commit was fully validated and the group moved to a new epoch (RFC 9420 §12.4.2)."""

    #: The new epoch.
    epoch: int
    #: Committer: a leaf index for members and external joiners (new_member_commit).
    committer: int | None
    #: Leaf indices of members added by this commit (Add proposals or the external joiner).
    added: tuple[int, ...] = ()
    #: Leaf indices removed by this commit.
    removed: tuple[int, ...] = ()
    #: Leaf indices whose leaf changed by an Update proposal.
    updated: tuple[int, ...] = ()
    #: True if this member was removed: the group is now inactive.
    self_removed: bool = False
    #: True if the commit carried a path (rekeying the committer's direct path).
    has_path: bool = False
    #: The ReInit proposal, if the commit re-initialises the group (§11.2).
    reinit: ReInit | None = None
    #: True if the GroupContext extensions changed.
    extensions_changed: bool = False
    #: True for an external commit (sender new_member_commit, §12.4.3.2).
    external: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class CommitOutput:
    """What :meth:`Group.commit` produces for the delivery service."""

    #: The Commit as an encoded MLSMessage (PublicMessage or PrivateMessage).
    commit: bytes
    #: A Welcome (encoded MLSMessage) for the members it adds, if any.
    welcome: bytes | None
    #: A signed GroupInfo of the new epoch (encoded MLSMessage) if requested, for external joins.
    group_info: bytes | None
    #: The new epoch once the commit is merged.
    epoch: int


#: What :meth:`mls.group.Group.process` returns: exactly one of these.
GroupEvent = ApplicationMessage | ProposalReceived | CommitMerged
