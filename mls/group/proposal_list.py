"""Proposals between their arrival and their commit (RFC 9420 §12.1-§12.3, §8.4).

- :class:`CachedProposal`: a validated proposal kept by reference until a commit covers it.
- :class:`ProposalContext`: what judging a proposal needs from the group at one epoch (tree,
  GroupContext, identity provider, bounds, PSK store), so that the same call serves a proposal
  we send, one we receive and each one inside a commit.
- :func:`apply_proposals`: validate a list (§12.2) and apply it to a diff of the tree (§12.3).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from mls.constants import ProposalType, PSKType, SenderType
from mls.crypto import CipherSuite
from mls.errors import (
    InvalidPSK,
    InvalidRemove,
    InvalidSelfRemove,
    InvalidUpdate,
    SizeLimitExceeded,
    UsageError,
)
from mls.extensions import Extension, ExternalSenders
from mls.framing.content import Sender
from mls.group.config import ExternalProposalRequest, GroupConfig
from mls.group.identity import IdentityProvider
from mls.group.validation import (
    Checks,
    ProposalEntry,
    check_credential_support,
    check_custom_supported,
    check_required_capabilities,
    check_unique_client,
    validate_gce,
    validate_proposal,
    validate_proposal_list,
)
from mls.messages.key_package import KeyPackage
from mls.messages.proposals import (
    Add,
    CustomProposal,
    ExternalInit,
    GroupContextExtensions,
    PreSharedKey,
    PreSharedKeyID,
    Proposal,
    ReInit,
    Remove,
    SelfRemove,
    Update,
)
from mls.schedule.group_context import GroupContext
from mls.tree.nodes import LeafNode
from mls.tree.ratchet_tree import RatchetTree, TreeDiff

__all__ = [
    "PATH_REQUIRED",
    "AppliedProposals",
    "CachedProposal",
    "ProposalContext",
    "apply_proposals",
    "authorized",
    "check_cacheable",
    "own_self_remove",
    "external_psk_id",
    "list_extensions",
    "resolve_psk",
    "usable_now",
]

# §12.4: proposal types that require an UpdatePath.
PATH_REQUIRED = frozenset(
    {
        ProposalType.update,
        ProposalType.remove,
        ProposalType.external_init,
        ProposalType.group_context_extensions,
    }
)


@dataclass(slots=True)
class CachedProposal:
    proposal: Proposal
    sender: Sender
    #: For our own Update proposals: the new leaf's HPKE private key.
    update_private_key: bytes | None = field(default=None, repr=False)


@dataclass(frozen=True, slots=True)
class AppliedProposals:
    diff: TreeDiff
    extensions: tuple[Extension, ...]
    added: tuple[int, ...]
    added_key_packages: tuple[KeyPackage, ...]
    removed: tuple[int, ...]
    updated: tuple[int, ...]
    psks: tuple[tuple[PreSharedKeyID, bytes], ...]
    external_init: ExternalInit | None
    reinit: ReInit | None
    path_required: bool
    old_leaves: dict[int, LeafNode | None]
    own_update_key: bytes | None
    custom: tuple[CustomProposal, ...] = ()
    #: Leaves removed by SelfRemove proposals (also in ``removed``).
    self_removed: tuple[int, ...] = ()


@dataclass(frozen=True, slots=True)
class ProposalContext:
    """The group at one epoch, as proposal validation sees it."""

    cs: CipherSuite
    context: GroupContext
    tree: RatchetTree
    identity: IdentityProvider
    config: GroupConfig
    #: Client key -> member leaves (§12.2), built on first use; None if the provider has none.
    client_index: Callable[[], dict[bytes, set[int]] | None]
    #: The secret of a PSK id (§8.4), or InvalidPSK.
    resolve_psk: Callable[[PreSharedKeyID], bytes]

    def validate(
        self,
        p: Proposal,
        sender: Sender,
        checks: Checks,
        *,
        extensions: Sequence[Extension] | None = None,
        in_commit: bool = False,
        wire_format: int | None = None,
    ) -> None:
        """§12.1 checks of one proposal against the current tree (with ``extensions``, the ones
        its commit's list sets, §12.3) and the group's bounds; ``wire_format`` is the one of
        the message that carried it, when known."""
        if isinstance(p, ReInit) and len(p.group_id) > self.config.max_group_id_length:
            raise SizeLimitExceeded(f"ReInit group_id of {len(p.group_id)} bytes")
        tree = self.tree
        if isinstance(p, Update):
            old = tree.leaf(sender.index) if sender.index < tree.n_leaves else None
            if old is not None and old.credential != p.leaf_node.credential:
                # §5.3.1: a changed credential still names no other member.
                check_unique_client(
                    self.identity,
                    p.leaf_node,
                    tree=tree,
                    client_index=self.client_index(),
                    own=sender.index,
                )
        validate_proposal(
            self.cs,
            p,
            sender,
            tree=tree,
            version=self.context.version,
            group_id=self.context.group_id,
            group_extensions=self.context.extensions if extensions is None else extensions,
            identity=self.identity,
            checks=checks,
            in_commit=in_commit,
            wire_format=wire_format,
        )


def own_self_remove(cached: CachedProposal, leaf: int) -> bool:
    """``cached`` is a SelfRemove of member ``leaf``."""
    return isinstance(cached.proposal, SelfRemove) and cached.sender == Sender.member(leaf)


def check_cacheable(
    ref: bytes, cached: CachedProposal, store: Mapping[bytes, CachedProposal]
) -> None:
    """A proposal may join the cache under ``ref``: at most one SelfRemove per member and
    epoch (draft-ietf-mls-extensions, "SelfRemove Proposal"; the same message again is fine)."""
    if not isinstance(cached.proposal, SelfRemove):
        return
    for other_ref, other in store.items():
        if other_ref == ref:
            continue
        if isinstance(other.proposal, SelfRemove) and other.sender == cached.sender:
            raise InvalidSelfRemove(f"a second SelfRemove of leaf {cached.sender.index} this epoch")


def authorized(cached: CachedProposal, pc: ProposalContext) -> bool:
    """§12.1.8: a member's proposal is authorized by membership; one from outside the group
    only if the application's ``external_proposal_policy`` says so."""
    sender = cached.sender
    st = sender.sender_type
    if st == SenderType.member:
        return True
    if st == SenderType.external:
        senders = ExternalSenders.find(pc.context.extensions)
        if senders is None or sender.index >= len(senders.senders):
            return False
        credential = senders.senders[sender.index].credential
    elif st == SenderType.new_member_proposal and isinstance(cached.proposal, Add):
        credential = cached.proposal.key_package.leaf_node.credential
    else:
        return False
    request = ExternalProposalRequest(
        proposal=cached.proposal, sender=sender, credential=credential, context=pc.context
    )
    return pc.config.external_proposal_policy(request) is True


def resolve_psk(
    pid: PreSharedKeyID,
    *,
    external: Callable[[bytes], bytes | None],
    group_id: bytes,
    resumption: Mapping[int, bytes],
    linked: tuple[PreSharedKeyID, bytes] | None = None,
) -> bytes:
    """The secret of a PSK id (§8.4): external from the client, the ReInit/branch PSK of a new
    group's first commit (``linked``, §11.2, §11.3), resumption from this group's history."""
    if pid.psktype == PSKType.external:
        secret = external(pid.psk_id)
        if secret is None:
            raise InvalidPSK("unknown external PSK")
        return secret
    if linked is not None and pid == linked[0]:
        return linked[1]
    if pid.psktype == PSKType.resumption:
        if pid.psk_group_id != group_id:
            raise InvalidPSK("resumption PSK of another group")
        secret = resumption.get(pid.psk_epoch)
        if secret is None:
            raise InvalidPSK(f"no resumption PSK kept for epoch {pid.psk_epoch}")
        return secret
    raise InvalidPSK(f"unknown PSK type {pid.psktype}")


def external_psk_id(
    cs: CipherSuite, external: Callable[[bytes], bytes | None], psk_id: bytes
) -> PreSharedKeyID:
    """A fresh-nonce id of an external PSK the client holds (a local request: UsageError)."""
    if external(psk_id) is None:
        raise UsageError("unknown external PSK id: add it to the client first")
    return PreSharedKeyID.external(psk_id, cs.random(cs.hash_len))


def list_extensions(
    proposals: Iterable[Proposal], current: Sequence[Extension]
) -> Sequence[Extension]:
    """The GroupContext extensions a proposal list sets (§12.3), else the current ones."""
    for p in proposals:
        if isinstance(p, GroupContextExtensions):
            return p.extensions
    return current


def usable_now(add: Add, now: int | None) -> bool:
    """A cached Add's KeyPackage is within its lifetime at ``now`` (§7.3, when committing)."""
    lifetime = add.key_package.leaf_node.lifetime
    return now is None or (lifetime is not None and lifetime.contains(now))


def apply_proposals(
    pc: ProposalContext,
    entries: Sequence[ProposalEntry],
    *,
    committer: int | None,
    external: bool,
    own_leaf: int | None,
    store: Mapping[bytes, CachedProposal],
) -> AppliedProposals:
    """Validate a proposal list (§12.2) and apply it to a diff of the tree (§12.3).
    ``own_leaf`` and ``store`` find the private key of our own committed Update."""
    tree = pc.tree
    validate_proposal_list(
        entries,
        committer=committer,
        external=external,
        tree=tree,
        identity=pc.identity,
        client_index=pc.client_index()
        if any(isinstance(e.proposal, Add | Update) for e in entries)
        else None,
    )
    diff = tree.diff()
    extensions = pc.context.extensions
    old_keys: dict[int, LeafNode | None] = {}
    path_required = False
    own_update_key: bytes | None = None
    gce = [e.proposal for e in entries if isinstance(e.proposal, GroupContextExtensions)]
    for e in entries:
        # Custom proposal types are treated as path-required: we cannot know they are safe
        # without one (§12.4, §17.4 "Path Required").
        # So does SelfRemove (draft-ietf-mls-extensions, IANA: "Path Required: Y").
        if e.proposal.proposal_type in PATH_REQUIRED or isinstance(
            e.proposal, CustomProposal | SelfRemove
        ):
            path_required = True
    if gce:
        assert isinstance(gce[0], GroupContextExtensions)
        extensions = gce[0].extensions
    updated: list[int] = []
    for e in entries:
        p = e.proposal
        if isinstance(p, Update):
            i = e.sender.index
            old = diff.leaf(i)
            if old is None:
                raise InvalidUpdate(f"Update from blank leaf {i}")
            old_keys[i] = old
            diff.update_leaf(i, p.leaf_node)
            updated.append(i)
            if i == own_leaf and e.ref is not None:
                cached = store.get(e.ref)
                own_update_key = cached.update_private_key if cached else None
    removed: list[int] = []
    # draft-ietf-mls-extensions: SelfRemoves after Updates, before Removes; each removes its
    # proposal's sender (a member, checked when the proposal was received).
    self_removed: list[int] = []
    for e in entries:
        if isinstance(e.proposal, SelfRemove):
            i = e.sender.index
            old = diff.leaf(i) if i < diff.n_leaves else None
            if old is None:
                raise InvalidSelfRemove(f"SelfRemove of blank leaf {i}")
            old_keys.setdefault(i, old)
            diff.remove_leaf(i)
            removed.append(i)
            self_removed.append(i)
    for e in entries:
        p = e.proposal
        if isinstance(p, Remove):
            old = diff.leaf(p.removed) if p.removed < diff.n_leaves else None
            if old is None:
                raise InvalidRemove(f"Remove of blank leaf {p.removed}")
            old_keys.setdefault(p.removed, old)
            diff.remove_leaf(p.removed)
            removed.append(p.removed)
    added: list[int] = []
    added_kps: list[KeyPackage] = []
    for e in entries:
        p = e.proposal
        if isinstance(p, Add):
            i = diff.add_leaf(p.key_package.leaf_node)
            old_keys.setdefault(i, None)
            added.append(i)
            added_kps.append(p.key_package)
    customs = [e.proposal for e in entries if isinstance(e.proposal, CustomProposal)]
    for t in sorted({c.proposal_type for c in customs}):
        check_custom_supported(t, diff.iter_leaves(), skip=added)
    # §12.1.7 / §11.1: after a GroupContextExtensions, every member (including new ones)
    # must support the new required capabilities.
    if gce:
        assert isinstance(gce[0], GroupContextExtensions)
        validate_gce(gce[0], diff)
    elif added:
        for kp in added_kps:
            check_required_capabilities(kp.leaf_node, extensions)
    # §12.2 / §7.3: the tree after the commit is valid: each leaf the commit brings in was
    # judged against the old tree alone, so check the credential types once more against
    # the new one (two joiners of one commit may not support each other). O(changes).
    for i in (*updated, *added):
        check_credential_support(diff, i)
    psks: list[tuple[PreSharedKeyID, bytes]] = []
    for e in entries:
        p = e.proposal
        if isinstance(p, PreSharedKey):
            psks.append((p.psk, pc.resolve_psk(p.psk)))
    ext_init = next((e.proposal for e in entries if isinstance(e.proposal, ExternalInit)), None)
    reinit = next((e.proposal for e in entries if isinstance(e.proposal, ReInit)), None)
    assert ext_init is None or isinstance(ext_init, ExternalInit)
    assert reinit is None or isinstance(reinit, ReInit)
    return AppliedProposals(
        diff=diff,
        extensions=tuple(extensions),
        added=tuple(added),
        added_key_packages=tuple(added_kps),
        removed=tuple(removed),
        updated=tuple(updated),
        psks=tuple(psks),
        external_init=ext_init,
        reinit=reinit,
        path_required=path_required,
        old_leaves=old_keys,
        own_update_key=own_update_key,
        custom=tuple(c for c in customs if isinstance(c, CustomProposal)),
        self_removed=tuple(self_removed),
    )
