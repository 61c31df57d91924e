"""A received commit, staged (RFC 9420 §12.4.2).

:func:`stage_commit` builds the next epoch aside, as a :class:`StagedCommit` (a tree diff, the
new private keys, epoch secrets and transcript hashes, and what changed), without touching the
current epoch. Only when every check passed does the group merge it (``Group._merge``). A
rejected commit therefore leaves the group exactly as it was.

Steps, in order (§12.4.2): sender type and confirmation tag present; the proposal list
(references resolved from the cache, by-value proposals judged with the list's extensions);
validate and apply the list (:func:`~mls.group.proposal_list.apply_proposals`); path required?;
our own Update key; for an external commit, the ExternalInit secret and the resync rules; the
path leaf (§7.3) and its identity; apply and decrypt the path; the key schedule and the
confirmation tag.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from mls.constants import LeafNodeSource, SenderType
from mls.crypto import CipherSuite
from mls.errors import (
    DecodeError,
    InvalidExternalInit,
    InvalidSender,
    InvalidSuccessor,
    InvalidUpdate,
    MissingProposal,
    PathRequired,
)
from mls.group.config import GroupConfig
from mls.group.epoch import EpochState, external_init_secret, next_epoch
from mls.group.proposal_list import (
    CachedProposal,
    ProposalContext,
    apply_proposals,
    list_extensions,
)
from mls.group.receive import VerifiedContent
from mls.group.validation import Checks, ProposalEntry, check_unique_client, validate_leaf_node
from mls.messages.commit import Commit
from mls.messages.proposals import ReInit, SelfRemove, Update
from mls.schedule.group_context import GroupContext
from mls.schedule.key_schedule import EpochSecrets, verify_confirmation_tag
from mls.tree.nodes import LeafNode
from mls.tree.ratchet_tree import RatchetTree, TreeDiff
from mls.tree.treekem import TreePrivate, apply_update_path, decrypt_update_path

__all__ = ["StagedCommit", "stage_commit"]


@dataclass(slots=True)
class StagedCommit:
    """The epoch a commit leads to, not yet merged, and what the commit changed."""

    context: GroupContext
    tree: TreeDiff
    private: TreePrivate
    #: The new epoch's full secrets (scrubbed when merged); the current ones if self_removed.
    secrets: EpochSecrets = field(repr=False)
    interim_transcript_hash: bytes
    confirmation_tag: bytes
    added: tuple[int, ...] = ()
    removed: tuple[int, ...] = ()
    updated: tuple[int, ...] = ()
    committer: int | None = None
    has_path: bool = False
    reinit: ReInit | None = None
    #: We were removed: nothing of the next epoch is known (the signature was verified).
    self_removed: bool = False
    external: bool = False
    extensions_changed: bool = False
    #: Leaf -> its LeafNode before this commit, for leaves it changed (late messages).
    old_leaves: dict[int, LeafNode | None] = field(default_factory=dict)

    def merged(self, cs: CipherSuite, config: GroupConfig, tree: RatchetTree) -> EpochState:
        """The next epoch as the current one, on ``tree`` (this diff, merged)."""
        return EpochState.start(
            cs,
            config,
            context=self.context,
            tree=tree,
            private=self.private,
            secrets=self.secrets,
            interim_transcript_hash=self.interim_transcript_hash,
            confirmation_tag=self.confirmation_tag,
        )


def stage_commit(
    pc: ProposalContext,
    epoch: EpochState,
    auth: VerifiedContent,
    commit: Commit,
    *,
    store: Mapping[bytes, CachedProposal],
    checks: Checks,
) -> StagedCommit:
    """Process a received, verified commit into a staged next epoch (§12.4.2). ``store`` is
    the proposal cache; ``checks`` are the receive-side leaf checks."""
    cs = pc.cs
    current = epoch.context
    content = auth.content
    sender = content.sender
    external = sender.sender_type == SenderType.new_member_commit
    if not external and sender.sender_type != SenderType.member:
        raise InvalidSender("a commit is sent by a member or a new member (§12.4)")
    if auth.auth.confirmation_tag is None:
        raise DecodeError("a commit carries a confirmation tag")
    committer = None if external else sender.index
    entries: list[ProposalEntry] = []
    for por in commit.proposals:
        if por.reference is not None:
            cached = store.get(por.reference)
            if cached is None:
                raise MissingProposal("commit references a proposal this member does not have")
            # draft-ietf-mls-extensions: an external commit references SelfRemoves, nothing else.
            if external and not isinstance(cached.proposal, SelfRemove):
                raise InvalidExternalInit("external commits reference only SelfRemove proposals")
            entries.append(ProposalEntry(cached.proposal, cached.sender, por.reference))
        else:
            assert por.proposal is not None
            if isinstance(por.proposal, Update):
                raise InvalidUpdate("Update proposals cannot be committed by value (§12.4)")
            entries.append(ProposalEntry(por.proposal, sender, None))
    # §12.3: proposals by value are judged with the extensions the list sets.
    list_exts = list_extensions([e.proposal for e in entries], current.extensions)
    for e in entries:
        if e.ref is None:
            pc.validate(e.proposal, sender, checks, extensions=list_exts, in_commit=True)
    me = epoch.private.leaf_index
    applied = apply_proposals(
        pc, entries, committer=committer, external=external, own_leaf=me, store=store
    )
    if (applied.path_required or not entries) and commit.path is None:
        raise PathRequired("these proposals require an UpdatePath (§12.4)")
    diff = applied.diff
    self_removed = me in applied.removed
    private = epoch.private
    if applied.own_update_key is not None:
        own_leaf = diff.leaf(me)
        assert own_leaf is not None
        private = private.with_leaf_key(applied.own_update_key, own_leaf.encryption_key)
    elif me in applied.updated:
        raise InvalidUpdate("an Update of our leaf that we did not propose")
    if commit.path is None and not self_removed:
        # With a path, decrypt_update_path prunes once the path is merged.
        private = private.pruned(diff)
    old_keys = dict(applied.old_leaves)
    commit_secret: bytes | None = None
    init_secret = epoch.secrets.init_secret
    if external:
        assert applied.external_init is not None
        init_secret = external_init_secret(
            cs, epoch.secrets.external_secret, applied.external_init.kem_output
        )

    def provisional_context() -> GroupContext:
        # §12.4.2: the new epoch, the tree hash of the new tree, the old confirmed transcript
        # hash and the list's extensions; built once the tree is final.
        return GroupContext(
            cipher_suite=cs.suite_id,
            group_id=current.group_id,
            epoch=current.epoch + 1,
            tree_hash=diff.tree_hash(),
            confirmed_transcript_hash=current.confirmed_transcript_hash,
            extensions=applied.extensions,
        )

    tree = epoch.tree
    identity = pc.identity
    if commit.path is not None:
        path = commit.path
        if external:
            committer = diff.add_external_leaf_slot()
            old_keys.setdefault(committer, None)
            # §12.2: an external commit's Remove may only remove the joiner's old self.
            for r in applied.removed:
                if r in applied.self_removed:
                    continue  # the SelfRemove's own sender, not the joiner's old self
                old_leaf = tree.leaf(r)
                assert old_leaf is not None
                if not identity.same_client(old_leaf, path.leaf_node):
                    raise InvalidExternalInit("an external commit removes another member")
                # §5.3.1: the resync leaf's credential succeeds the removed one's.
                if not identity.valid_successor(old_leaf.credential, path.leaf_node.credential):
                    raise InvalidSuccessor("the resync leaf's credential is not a successor")
                # §12.4.3.2: the path leaf meets the criteria of an Update of the removed
                # leaf, so its encryption key is a new one (§7.3).
                if path.leaf_node.encryption_key == old_leaf.encryption_key:
                    raise InvalidUpdate("the resync leaf keeps the removed leaf's key")
        assert committer is not None
        old_committer = tree.leaf(committer) if committer < tree.n_leaves else None
        if old_committer is not None:
            old_keys.setdefault(committer, old_committer)
            # §12.4.2: the new leaf's encryption key differs from the committer's old one.
            if path.leaf_node.encryption_key == old_committer.encryption_key:
                raise InvalidUpdate("the commit leaf keeps the committer's encryption key")
        validate_leaf_node(
            cs,
            path.leaf_node,
            source=LeafNodeSource.commit,
            tree=diff,
            group_extensions=applied.extensions,
            identity=identity,
            group_id=current.group_id,
            leaf_index=committer,
            replaces=committer,
            checks=checks,
        )
        # §5.3.1: a path leaf that changes the credential (or a joiner's) names no other
        # member; an unchanged credential was unique already.
        if old_committer is None or path.leaf_node.credential != old_committer.credential:
            check_unique_client(
                identity,
                path.leaf_node,
                tree=tree,
                client_index=pc.client_index(),
                own=None if external else committer,
                removed=applied.removed,
            )
        fdp = apply_update_path(diff, committer, path)
        ctx = provisional_context()
        if not self_removed:
            result = decrypt_update_path(
                cs, diff, private, committer, path, ctx.to_bytes(), applied.added, fdp=fdp
            )
            commit_secret = result.commit_secret
            private = result.private
    else:
        ctx = provisional_context()
    if self_removed:
        # We cannot follow into the new epoch; the commit's signature was verified.
        return StagedCommit(
            context=ctx,
            tree=diff,
            private=private,
            secrets=epoch.secrets,
            interim_transcript_hash=epoch.interim_transcript_hash,
            confirmation_tag=epoch.confirmation_tag,
            removed=applied.removed,
            committer=committer,
            self_removed=True,
        )
    nxt = next_epoch(
        cs,
        interim_transcript_hash=epoch.interim_transcript_hash,
        wire_format=auth.wire_format,
        content=content,
        signature=auth.auth.signature,
        context=ctx,
        commit_secret=commit_secret,
        psks=applied.psks,
        init_secret=init_secret,
    )
    verify_confirmation_tag(
        cs,
        nxt.secrets.confirmation_key,
        nxt.context.confirmed_transcript_hash,
        auth.auth.confirmation_tag,
    )
    added = applied.added
    if external:
        assert committer is not None
        added = (*added, committer)
    return StagedCommit(
        context=nxt.context,
        tree=diff,
        private=private,
        secrets=nxt.secrets,
        interim_transcript_hash=nxt.interim_transcript_hash,
        confirmation_tag=nxt.confirmation_tag,
        added=added,
        removed=applied.removed,
        updated=applied.updated,
        committer=committer,
        has_path=commit.path is not None,
        reinit=applied.reinit,
        external=external,
        extensions_changed=applied.extensions != current.extensions,
        old_leaves=old_keys,
    )
