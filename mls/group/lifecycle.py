"""A group's lifecycle (RFC 9420 §11.2, §12.4, §12.4.2): what each
:class:`~mls.group.epoch.GroupStatus` allows, and the one step that changes epoch and status,
merging a staged commit.

Every status rule is here, in one place (as h11 keeps its state rules in one table):
:class:`~mls.group.group.Group` and :mod:`mls.group.incoming` call these checks before they
act. :func:`merge_commit` computes the next epoch, status and event and updates the stores kept
beside the epoch; ``Group._merge`` then installs the epoch in one step.
"""

from __future__ import annotations

from collections import OrderedDict

from mls.crypto import CipherSuite
from mls.errors import GroupReinitialized, InvalidState, MemberRemoved
from mls.group.config import GroupConfig
from mls.group.epoch import EpochState, GroupStatus, PastEpoch, PastEpochs
from mls.group.events import CommitMerged
from mls.group.identity import IdentityProvider
from mls.group.staged_commit import StagedCommit
from mls.group.validation import update_client_index
from mls.messages.proposals import ReInit

__all__ = [
    "check_accepts_handshake",
    "check_can_commit",
    "check_can_send_data",
    "check_has_secrets",
    "check_operational",
    "committed_reinit",
    "merge_commit",
]


def check_operational(status: GroupStatus) -> None:
    """A removed member, or one of a re-initialised group, sends nothing more."""
    if status is GroupStatus.REMOVED:
        raise InvalidState("this member was removed from the group")
    if status is GroupStatus.REINIT:
        raise InvalidState("the group was re-initialised; join the new group")


def check_accepts_handshake(status: GroupStatus) -> None:
    # §12.4.2: a removed member processes no more handshakes; §11.2: nor does a member of a
    # group that was re-initialised (late application messages are still read).
    if status is GroupStatus.REMOVED:
        raise MemberRemoved("this member was removed from the group")
    if status is GroupStatus.REINIT:
        raise GroupReinitialized("the group was re-initialised; use the new group")


def check_can_commit(status: GroupStatus, *, pending: bool) -> None:
    check_operational(status)
    if pending:
        raise InvalidState("a commit is already pending: merge or clear it first")


def check_can_send_data(status: GroupStatus, *, proposals: bool) -> None:
    check_operational(status)
    if proposals:
        # §12.4: a member that observed valid proposals MUST commit before sending data.
        raise InvalidState("pending proposals must be committed before sending data")


def check_has_secrets(status: GroupStatus) -> None:
    """§12.4.2: a removed member deleted its epoch secrets."""
    if status is GroupStatus.REMOVED:
        raise InvalidState("this member was removed: its epoch secrets are deleted")


def committed_reinit(status: GroupStatus, reinit: ReInit | None) -> ReInit:
    """The ReInit a merged commit ended the group with (§11.2)."""
    if status is not GroupStatus.REINIT or reinit is None:
        raise InvalidState("no ReInit was committed in this group")
    return reinit


def merge_commit(
    staged: StagedCommit,
    current: EpochState,
    *,
    cs: CipherSuite,
    config: GroupConfig,
    identity: IdentityProvider,
    past: PastEpochs,
    resumption: OrderedDict[int, bytes],
    clients: dict[bytes, set[int]] | None,
    now: int | None,
) -> tuple[EpochState, GroupStatus, CommitMerged]:
    """The epoch, status and event after merging ``staged`` into ``current`` (§12.4.2). The
    stores beside the epoch follow here: past epochs, resumption PSKs, the client index (the
    caller drops its cached proposals and any pending commit)."""
    if staged.self_removed:
        # §12.4.2: a removed member "SHOULD promptly delete its group state and secret
        # tree": every secret goes; the public context and tree stay for inspection.
        past.clear()
        resumption.clear()
        event = CommitMerged(
            epoch=staged.context.epoch,
            committer=staged.committer,
            removed=staged.removed,
            self_removed=True,
        )
        return current.forgotten(cs), GroupStatus.REMOVED, event
    # Keep the old epoch's application keys for late messages (§15.3), for a bounded
    # number of epochs and time (§9.2: then they are deleted).
    if config.past_epochs > 0:
        retired = PastEpoch(
            context=current.context,
            secret_tree=current.secret_tree,
            sender_data_secret=current.secrets.sender_data_secret,
            retired_at=now,
        )
        past.retire(
            current.context.epoch,
            retired,
            old_leaves=staged.old_leaves,
            removed=staged.removed,
            config=config,
            now=now,
        )
    tree = staged.tree.merge()
    if clients is not None:
        update_client_index(clients, identity, staged.old_leaves, tree)
    epoch = staged.merged(cs, config, tree)
    resumption[epoch.context.epoch] = epoch.secrets.resumption_psk
    while len(resumption) > max(1, config.resumption_psks):
        resumption.popitem(last=False)
    event = CommitMerged(
        epoch=epoch.context.epoch,
        committer=staged.committer,
        added=staged.added,
        removed=staged.removed,
        updated=staged.updated,
        has_path=staged.has_path,
        reinit=staged.reinit,
        extensions_changed=staged.extensions_changed,
        external=staged.external,
    )
    status = GroupStatus.OPERATIONAL if staged.reinit is None else GroupStatus.REINIT
    return epoch, status, event
