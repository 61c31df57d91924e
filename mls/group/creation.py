"""A new group (RFC 9420 §11): its first epoch, and a group re-initialised (§11.2) or
branched (§11.3) from another.

A ReInit or a branch starts a new group whose first commit carries a resumption PSK of the old
group (usage ``reinit`` or ``branch``); a member joining by that commit's Welcome checks that
the Welcome used this group's PSK and that the new group is what the ReInit, or the branch,
promised (§12.4.3.1). ``Group.create``, ``reinit_group``, ``branch``, ``join_reinit`` and
``join_branch`` hold the state and build the groups; the values they need are made here.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from mls.constants import ResumptionPSKUsage
from mls.crypto import CipherSuite
from mls.errors import InvalidPSK, InvalidReInit, InvalidWelcome, UsageError
from mls.extensions import Extension
from mls.group.client import Client
from mls.group.config import GroupConfig
from mls.group.epoch import EpochState
from mls.group.identity import IdentityProvider, all_matched
from mls.group.join import StagedWelcome
from mls.messages.proposals import PreSharedKeyID, ReInit
from mls.schedule.group_context import GroupContext
from mls.tree.ratchet_tree import RatchetTree, TreeView
from mls.tree.treekem import TreePrivate

__all__ = [
    "branch_psk",
    "branch_welcome_check",
    "check_branch_welcome",
    "check_reinit_welcome",
    "first_epoch",
    "reinit_psk",
    "reinit_welcome_check",
]


def first_epoch(
    client: Client,
    group_id: bytes,
    *,
    config: GroupConfig,
    extensions: Sequence[Extension],
    leaf_extensions: tuple[Extension, ...],
    now: int | None,
) -> EpochState:
    """Epoch 0 of a one-member group (§11): ``client``'s leaf with a fresh encryption key."""
    if len(group_id) > config.max_group_id_length:
        raise UsageError(f"group_id longer than {config.max_group_id_length} bytes")
    cs = client.suite
    enc_sk, enc_pk = cs.generate_key_pair()
    leaf = client.leaf_node(enc_pk, now or 0, extensions=leaf_extensions)
    return EpochState.first(
        cs,
        config,
        group_id=group_id,
        extensions=tuple(extensions),
        tree=RatchetTree.create(cs, leaf),
        private=TreePrivate.for_leaf(cs, 0, enc_sk, enc_pk),
    )


#: The PSK that links a new group's first commit to the old group, with its secret.
LinkedPSK = tuple[PreSharedKeyID, bytes]


def reinit_psk(
    reinit: ReInit, suite: CipherSuite, group_id: bytes, epoch: int, resumption_psk: bytes
) -> LinkedPSK:
    """The ``reinit`` resumption PSK of ``epoch`` for the group ``reinit`` asks for (§11.2);
    ``suite`` is the new group's client's, which must be the one the ReInit names."""
    if suite.suite_id != reinit.cipher_suite:
        raise UsageError("the client's cipher suite must be the one the ReInit names")
    pid = PreSharedKeyID.resumption(
        ResumptionPSKUsage.reinit, group_id, epoch, suite.random(suite.hash_len)
    )
    return pid, resumption_psk


def branch_psk(
    suite_id: int, cs: CipherSuite, group_id: bytes, epoch: int, resumption_psk: bytes
) -> LinkedPSK:
    """The ``branch`` resumption PSK of ``epoch`` for a subgroup (§11.3); ``suite_id`` is the
    subgroup's client's, which must be the group's ``cs``."""
    if suite_id != cs.suite_id:
        raise UsageError("a branch keeps the cipher suite of the group (§11.3)")
    pid = PreSharedKeyID.resumption(
        ResumptionPSKUsage.branch, group_id, epoch, cs.random(cs.hash_len)
    )
    return pid, resumption_psk


def reinit_welcome_check(
    reinit: ReInit, *, identity: IdentityProvider, old_tree: TreeView
) -> Callable[[StagedWelcome, object], None]:
    """:func:`check_reinit_welcome` of a staged Welcome against this group's ReInit."""
    return lambda staged, _group: check_reinit_welcome(
        staged.joined_with,
        staged.context,
        staged.tree,
        reinit=reinit,
        identity=identity,
        old_tree=old_tree,
    )


def branch_welcome_check(
    parent: GroupContext, *, identity: IdentityProvider, parent_tree: TreeView
) -> Callable[[StagedWelcome, object], None]:
    """:func:`check_branch_welcome` of a staged Welcome against the parent group."""
    return lambda staged, _group: check_branch_welcome(
        staged.joined_with,
        staged.context,
        staged.tree,
        parent=parent,
        identity=identity,
        parent_tree=parent_tree,
    )


def check_reinit_welcome(
    used: PreSharedKeyID | None,
    ctx: GroupContext,
    tree: TreeView,
    *,
    reinit: ReInit,
    identity: IdentityProvider,
    old_tree: TreeView,
) -> None:
    """§12.4.3.1: a Welcome into the group a ReInit asked for."""
    if used is None or used.usage != ResumptionPSKUsage.reinit:
        raise InvalidReInit("the Welcome does not carry this group's reinit PSK")
    if (
        ctx.group_id != reinit.group_id
        or ctx.version != reinit.version
        or ctx.cipher_suite != reinit.cipher_suite
        or tuple(ctx.extensions) != tuple(reinit.extensions)
    ):
        raise InvalidReInit("the new group does not match the ReInit proposal (§12.4.3.1)")
    # §12.4.3.1: all members of the old group are members of the new one.
    if not all_matched(identity, old_tree, tree):
        raise InvalidReInit("a member of the old group is missing from the new group")


def check_branch_welcome(
    used: PreSharedKeyID | None,
    ctx: GroupContext,
    tree: TreeView,
    *,
    parent: GroupContext,
    identity: IdentityProvider,
    parent_tree: TreeView,
) -> None:
    """§11.3, §12.4.3.1: a Welcome into a subgroup branched from ``parent``."""
    if used is None or used.usage != ResumptionPSKUsage.branch:
        raise InvalidPSK("the Welcome does not carry a branch PSK of this group")
    if ctx.version != parent.version or ctx.cipher_suite != parent.cipher_suite:
        raise InvalidWelcome("a branch keeps the version and cipher suite (§11.3)")
    # §11.3: every member of the subgroup matches a member of this group.
    if not all_matched(identity, tree, parent_tree):
        raise InvalidWelcome("a subgroup member is not a member of the parent group")
