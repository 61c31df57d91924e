"""Building a commit, for a member and for an external joiner alike (RFC 9420 §12.4.1), and the
GroupInfo and Welcome that go with it (§12.4.3).

The caller has collected the proposal list and applied it
(:func:`~mls.group.proposal_list.apply_proposals`); :func:`build_commit` then creates the
UpdatePath (if any), the new GroupContext, the signed FramedContent and the next epoch's
secrets and confirmation tag. Wrapping it as a PublicMessage or PrivateMessage is the caller's:
a member uses its epoch's keys, an external joiner has none. :func:`member_commit` is a
member's whole flow: cached and new proposals, path choice, build, the staged next epoch, and
the GroupInfo and Welcome.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from mls.constants import ExtensionType
from mls.crypto import CipherSuite
from mls.errors import UsageError
from mls.extensions import Extension, ExternalPub
from mls.framing.content import (
    AuthenticatedContent,
    FramedContent,
    FramedContentAuthData,
    Sender,
    sign_framed_content,
)
from mls.framing.message import MLSMessage
from mls.group.epoch import EpochState, NextEpoch, next_epoch
from mls.group.events import CommitOutput
from mls.group.proposal_list import (
    AppliedProposals,
    CachedProposal,
    ProposalContext,
    apply_proposals,
    authorized,
    list_extensions,
    usable_now,
)
from mls.group.staged_commit import StagedCommit
from mls.group.validation import Checks, ProposalEntry, validate_psk_id
from mls.messages.commit import Commit
from mls.messages.group_info import GroupInfo
from mls.messages.proposals import (
    Add,
    PreSharedKey,
    PreSharedKeyID,
    Proposal,
    ProposalOrRef,
    Remove,
    SelfRemove,
    Update,
)
from mls.messages.welcome import EncryptedGroupSecrets, GroupSecrets, PathSecret, Welcome
from mls.messages.welcome_crypto import encrypt_group_info, encrypt_group_secrets
from mls.schedule.group_context import GroupContext
from mls.schedule.key_schedule import EpochSecrets, external_key_pair
from mls.tree.nodes import LeafNode, UpdatePath
from mls.tree.ratchet_tree import TreeDiff, TreeView
from mls.tree.treekem import PreparedPath, TreePrivate, prepare_update_path

__all__ = ["BuiltCommit", "build_commit", "make_group_info", "make_welcome", "member_commit"]


@dataclass(frozen=True, slots=True)
class BuiltCommit:
    """A signed commit with its confirmation tag, and the epoch it leads to."""

    content: AuthenticatedContent
    next: NextEpoch = field(repr=False)
    diff: TreeDiff
    #: The committer's private keys in the next epoch.
    private: TreePrivate = field(repr=False)
    prepared: PreparedPath | None = field(repr=False)


def build_commit(
    cs: CipherSuite,
    *,
    context: GroupContext,
    interim_transcript_hash: bytes,
    init_secret: bytes,
    entries: Sequence[ProposalEntry],
    applied: AppliedProposals,
    sender: Sender,
    committer: int,
    leaf_template: LeafNode | None,
    private: TreePrivate,
    signature_private_key: bytes,
    wire_format: int,
    authenticated_data: bytes,
) -> BuiltCommit:
    """The commit of ``entries`` (already applied to ``applied.diff``) by leaf ``committer``
    of the epoch ``context``; with a ``leaf_template``, an UpdatePath from that leaf (§7.5),
    else no path and the committer keeps ``private``."""
    diff = applied.diff
    prepared: PreparedPath | None = None
    if leaf_template is not None:
        prepared = prepare_update_path(
            cs, diff, committer, leaf_template, signature_private_key, context.group_id
        )
        private = prepared.private
    ctx = GroupContext(
        cipher_suite=cs.suite_id,
        group_id=context.group_id,
        epoch=context.epoch + 1,
        tree_hash=diff.tree_hash(),
        confirmed_transcript_hash=context.confirmed_transcript_hash,
        extensions=applied.extensions,
    )
    update_path: UpdatePath | None = None
    if prepared is not None:
        update_path = prepared.encrypt(cs, diff, ctx.to_bytes(), exclude=applied.added)
    commit = Commit(
        proposals=tuple(
            ProposalOrRef(reference=e.ref)
            if e.ref is not None
            else ProposalOrRef(proposal=e.proposal)
            for e in entries
        ),
        path=update_path,
    )
    content = FramedContent(
        group_id=context.group_id,
        epoch=context.epoch,
        sender=sender,
        authenticated_data=authenticated_data,
        content=commit,
    )
    sig = sign_framed_content(cs, signature_private_key, wire_format, content, context)
    nxt = next_epoch(
        cs,
        interim_transcript_hash=interim_transcript_hash,
        wire_format=wire_format,
        content=content,
        signature=sig,
        context=ctx,
        commit_secret=prepared.commit_secret if prepared else None,
        psks=applied.psks,
        init_secret=init_secret,
    )
    auth = AuthenticatedContent(
        wire_format=wire_format,
        content=content,
        auth=FramedContentAuthData(signature=sig, confirmation_tag=nxt.confirmation_tag),
    )
    return BuiltCommit(content=auth, next=nxt, diff=diff, private=private, prepared=prepared)


def make_group_info(
    cs: CipherSuite,
    ctx: GroupContext,
    tree: TreeView,
    secrets: EpochSecrets,
    tag: bytes,
    *,
    signer: int,
    signature_private_key: bytes,
    with_tree: bool,
    external_pub: bool = True,
) -> bytes:
    """A signed GroupInfo (§12.4.3) as an encoded MLSMessage."""
    exts: list[Extension] = []
    if with_tree:
        exts.append(
            Extension(extension_type=ExtensionType.ratchet_tree, extension_data=tree.encode_tree())
        )
    if external_pub:
        _, pub = external_key_pair(cs, secrets.external_secret)
        exts.append(ExternalPub(external_pub=pub).to_extension())
    gi = GroupInfo(
        group_context=ctx,
        extensions=tuple(exts),
        confirmation_tag=tag,
        signer=signer,
    ).sign(cs, signature_private_key)
    return MLSMessage(body=gi).to_bytes()


def make_welcome(
    cs: CipherSuite,
    built: BuiltCommit,
    applied: AppliedProposals,
    *,
    signer: int,
    signature_private_key: bytes,
    ratchet_tree_extension: bool,
) -> bytes:
    """The Welcome for the members ``applied`` adds (§12.4.3.1), as an encoded MLSMessage."""
    ctx, secrets = built.next.context, built.next.secrets
    prepared = built.prepared
    exts: list[Extension] = []
    if ratchet_tree_extension:
        exts.append(
            Extension(
                extension_type=ExtensionType.ratchet_tree,
                extension_data=built.diff.encode_tree(),
            )
        )
    gi = GroupInfo(
        group_context=ctx,
        extensions=tuple(exts),
        confirmation_tag=built.next.confirmation_tag,
        signer=signer,
    ).sign(cs, signature_private_key)
    psk_ids = tuple(pid for pid, _ in applied.psks)
    encrypted_gi = encrypt_group_info(cs, secrets.welcome_secret, gi)
    entries: list[EncryptedGroupSecrets] = []
    for leaf_index, kp in zip(applied.added, applied.added_key_packages, strict=True):
        ps = prepared.path_secret_for_joiner(leaf_index) if prepared is not None else None
        gs = GroupSecrets(
            joiner_secret=secrets.joiner_secret,
            path_secret=PathSecret(path_secret=ps) if ps is not None else None,
            psks=psk_ids,
        )
        ct = encrypt_group_secrets(cs, kp.init_key, encrypted_gi, gs)
        entries.append(EncryptedGroupSecrets(new_member=kp.ref(cs), encrypted_group_secrets=ct))
    welcome = Welcome(
        cipher_suite=cs.suite_id, secrets=tuple(entries), encrypted_group_info=encrypted_gi
    )
    return MLSMessage(body=welcome).to_bytes()


def member_commit(
    pc: ProposalContext,
    epoch: EpochState,
    *,
    store: Mapping[bytes, CachedProposal],
    by_value: Sequence[Proposal],
    linked: tuple[PreSharedKeyID, bytes] | None,
    path: bool | None,
    checks: Checks,
    now: int | None,
    signature_private_key: bytes,
    wire_format: int,
    authenticated_data: bytes,
    wrap: Callable[[AuthenticatedContent], bytes],
    group_info: bool,
    ratchet_tree_extension: bool,
) -> tuple[StagedCommit, CommitOutput]:
    """A member's commit (§12.4.1) of the cached proposals in ``store`` and ``by_value``, plus
    the ``linked`` ReInit/branch PSK (§11.2, §11.3); ``wrap`` frames it with the epoch's
    keys. Returns the staged next epoch (merged once the delivery service accepts the
    commit) and the messages."""
    cs = pc.cs
    me = epoch.private.leaf_index
    entries: list[ProposalEntry] = []
    # draft-ietf-mls-extensions: every pending SelfRemove (but our own, which only another
    # member can commit) goes in by reference; a Remove or Update of a leaf that one of them
    # removes would make the list invalid, so it is left out (RFC 9420 §12.2).
    leaving = {
        c.sender.index
        for c in store.values()
        if isinstance(c.proposal, SelfRemove) and c.sender.index != me
    }
    taken: set[int] = set()
    for ref, cached in store.items():
        p = cached.proposal
        if isinstance(p, SelfRemove):
            if cached.sender.index == me or cached.sender.index in taken:
                continue
            taken.add(cached.sender.index)  # one per sender
            entries.append(ProposalEntry(p, cached.sender, ref))
            continue
        if (isinstance(p, Remove) and (p.removed in leaving or p.removed == me)) or (
            isinstance(p, Update) and cached.sender.index in leaving
        ):
            continue  # our own Remove proposal waits for another member's commit (§12.2)
        if cached.update_private_key is not None:
            # §12.2: a commit cannot include the committer's own Update; the path
            # refreshes our leaf instead.
            continue
        if not authorized(cached, pc):
            continue  # §12.1.8: never commit what our policy does not authorize
        if isinstance(cached.proposal, Add) and not usable_now(cached.proposal, now):
            continue  # §7.3: a KeyPackage that expired since it was proposed
        entries.append(ProposalEntry(cached.proposal, cached.sender, ref))
    sender = Sender.member(me)
    list_exts = list_extensions(
        [e.proposal for e in entries] + list(by_value), epoch.context.extensions
    )
    for p in by_value:
        if isinstance(p, Remove) and p.removed in leaving:
            continue  # its SelfRemove removes it already
        pc.validate(p, sender, checks, extensions=list_exts, in_commit=True)
        entries.append(ProposalEntry(p, sender, None))
    if linked is not None:
        pid = linked[0]
        linked_psk = PreSharedKey(psk=pid)
        validate_psk_id(cs, linked_psk, allow_usage=pid.usage)
        entries.append(ProposalEntry(linked_psk, sender, None))
    if not entries and path is False:
        raise UsageError("an empty commit must carry a path (§12.4)")
    applied = apply_proposals(pc, entries, committer=me, external=False, own_leaf=me, store=store)
    use_path = True if path is None else path
    if applied.path_required or not entries:
        if path is False:
            raise UsageError("these proposals require an UpdatePath (§12.4)")
        use_path = True
    if applied.reinit is not None:
        # §11.2: a ReInit commit carries no path of its own (nothing follows the epoch).
        use_path = path is True
    old_keys = dict(applied.old_leaves)
    leaf_template = None
    if use_path:
        leaf_template = epoch.tree.leaf(me)
        assert leaf_template is not None
        old_keys.setdefault(me, leaf_template)
    built = build_commit(
        cs,
        context=epoch.context,
        interim_transcript_hash=epoch.interim_transcript_hash,
        init_secret=epoch.secrets.init_secret,
        entries=entries,
        applied=applied,
        sender=sender,
        committer=me,
        leaf_template=leaf_template,
        private=epoch.private.pruned(applied.diff),
        signature_private_key=signature_private_key,
        wire_format=wire_format,
        authenticated_data=authenticated_data,
    )
    commit_bytes = wrap(built.content)
    nxt = built.next
    staged = StagedCommit(
        context=nxt.context,
        tree=built.diff,
        private=built.private,
        secrets=nxt.secrets,
        interim_transcript_hash=nxt.interim_transcript_hash,
        confirmation_tag=nxt.confirmation_tag,
        added=applied.added,
        removed=applied.removed,
        updated=applied.updated,
        committer=me,
        has_path=built.prepared is not None,
        reinit=applied.reinit,
        extensions_changed=applied.extensions != epoch.context.extensions,
        old_leaves=old_keys,
    )
    # A GroupInfo costs a signature and, with the tree, O(n) encoding: only on request.
    gi_bytes = None
    if group_info:
        gi_bytes = make_group_info(
            cs,
            nxt.context,
            built.diff,
            nxt.secrets,
            nxt.confirmation_tag,
            signer=me,
            signature_private_key=signature_private_key,
            with_tree=True,
        )
    welcome = None
    if applied.added:
        welcome = make_welcome(
            cs,
            built,
            applied,
            signer=me,
            signature_private_key=signature_private_key,
            ratchet_tree_extension=ratchet_tree_extension,
        )
    out = CommitOutput(
        commit=commit_bytes, welcome=welcome, group_info=gi_bytes, epoch=nxt.context.epoch
    )
    return staged, out
