"""Joining a group: by Welcome (RFC 9420 §12.4.3.1) and by external commit (§12.4.3.2).

Both work on explicit public inputs (the GroupInfo, the tree, the client) and return plain
values; ``Group.join`` and ``Group.external_join`` build the group from them. No provisional
group with empty secrets is needed: the external joiner's proposal list is judged by a
:class:`~mls.group.proposal_list.ProposalContext` of the public tree and GroupContext, and the
commit is built by the same :func:`~mls.group.commit_builder.build_commit` a member uses.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TypeVar

from mls.codec import decode
from mls.constants import (
    ExtensionType,
    ProtocolVersion,
    PSKType,
    ResumptionPSKUsage,
    SenderType,
    WireFormat,
)
from mls.crypto import CipherSuite
from mls.errors import (
    DecodeError,
    InternalError,
    InvalidGroupInfo,
    InvalidPSK,
    InvalidSelfRemove,
    InvalidSender,
    InvalidWelcome,
    MLSError,
    NoMatchingKeyPackage,
    SizeLimitExceeded,
    UnsupportedCapability,
    UsageError,
    ValidationError,
    WrongEpoch,
    WrongGroup,
)
from mls.extensions import ExternalPub, RequiredCapabilities, find_extension
from mls.framing.content import Sender
from mls.framing.message import MLSMessage
from mls.framing.protection import public_message_from
from mls.framing.public import PublicMessage
from mls.group.client import Client
from mls.group.commit_builder import build_commit
from mls.group.config import GroupConfig
from mls.group.epoch import EpochState, external_init
from mls.group.identity import BasicIdentityProvider, IdentityProvider
from mls.group.proposal_list import (
    ProposalContext,
    apply_proposals,
    external_psk_id,
    resolve_psk,
)
from mls.group.validation import (
    DEFAULT_EXTENSION_TYPES,
    NO_CHECKS,
    ProposalEntry,
    build_client_index,
)
from mls.messages.group_info import GroupInfo
from mls.messages.proposals import (
    ExternalInit,
    PreSharedKey,
    PreSharedKeyID,
    Remove,
    SelfRemove,
)
from mls.messages.welcome import Welcome
from mls.messages.welcome_crypto import decrypt_group_info, decrypt_group_secrets
from mls.schedule.group_context import GroupContext
from mls.schedule.key_schedule import (
    EpochSecrets,
    epoch_secrets_from_joiner,
    verify_confirmation_tag,
    welcome_secret,
)
from mls.schedule.psk import psk_secret
from mls.schedule.transcript import next_interim_transcript_hash
from mls.tree.ratchet_tree import RatchetTree
from mls.tree.treekem import TreePrivate
from mls.tree.validation import validate_tree

__all__ = [
    "StagedWelcome",
    "check_joinable",
    "external_commit",
    "join_by_external_commit",
    "join_by_welcome",
    "stage_welcome",
    "tree_for",
    "verified_tree",
]

#: The caller's group type: ``Group`` builds itself from a joined epoch (a ``build`` callable).
G = TypeVar("G")


@dataclass(frozen=True, slots=True)
class StagedWelcome:
    """Everything a Welcome gave us, checked; the KeyPackage is not spent yet."""

    context: GroupContext
    tree: RatchetTree
    private: TreePrivate = field(repr=False)
    secrets: EpochSecrets = field(repr=False)
    interim_transcript_hash: bytes
    confirmation_tag: bytes
    #: The KeyPackage the Welcome was addressed to (spent once the join succeeds).
    key_package_ref: bytes
    #: The reinit or branch resumption PSK the Welcome used, if any (§11.2, §11.3).
    joined_with: PreSharedKeyID | None

    def epoch_state(self, cs: CipherSuite, config: GroupConfig) -> EpochState:
        return EpochState.start(
            cs,
            config,
            context=self.context,
            tree=self.tree,
            private=self.private,
            secrets=self.secrets,
            interim_transcript_hash=self.interim_transcript_hash,
            confirmation_tag=self.confirmation_tag,
        )


def stage_welcome(
    client: Client,
    welcome_bytes: bytes,
    *,
    ratchet_tree: bytes | None,
    config: GroupConfig,
    identity: IdentityProvider,
    resumption_psks: Mapping[tuple[bytes, int], bytes] | None,
) -> StagedWelcome:
    """Decrypt and check a Welcome (§12.4.3.1) up to the new epoch's secrets."""
    msg = decode(MLSMessage, welcome_bytes)
    welcome = msg.body
    if not isinstance(welcome, Welcome):
        raise DecodeError("expected an MLSMessage carrying a Welcome")
    cs = client.suite
    if welcome.cipher_suite != cs.suite_id:
        raise InvalidWelcome("Welcome cipher suite differs from the client's")
    mine = None
    for entry in welcome.secrets:
        kpp = client.find_key_package(entry.new_member)
        if kpp is not None:
            mine = (entry, kpp)
            break
    if mine is None:
        raise NoMatchingKeyPackage("the Welcome is not addressed to any of our KeyPackages")
    entry, kpp = mine
    if kpp.key_package.cipher_suite != welcome.cipher_suite:
        raise InvalidWelcome("KeyPackage and Welcome cipher suites differ")
    gs = decrypt_group_secrets(
        cs, kpp.init_private_key, welcome.encrypted_group_info, entry.encrypted_group_secrets
    )
    psks: list[tuple[PreSharedKeyID, bytes]] = []
    special = [
        p
        for p in gs.psks
        if p.psktype == PSKType.resumption
        and p.usage in (ResumptionPSKUsage.reinit, ResumptionPSKUsage.branch)
    ]
    if len(special) > 1:
        raise InvalidPSK("more than one reinit/branch resumption PSK in a Welcome")
    for pid in gs.psks:
        if pid.psktype == PSKType.external:
            secret = client.external_psk(pid.psk_id)
        elif pid.psktype == PSKType.resumption:
            secret = (resumption_psks or {}).get((pid.psk_group_id, pid.psk_epoch))
        else:
            raise InvalidPSK(f"unknown PSK type {pid.psktype}")
        if secret is None:
            raise InvalidPSK("the Welcome needs a PSK this client does not have")
        psks.append((pid, secret))
    psk = psk_secret(cs, psks) if psks else None
    wsecret = welcome_secret(cs, gs.joiner_secret, psk)
    gi = decrypt_group_info(cs, wsecret, welcome.encrypted_group_info)
    ctx = gi.group_context
    if ctx.cipher_suite != cs.suite_id or ctx.version != ProtocolVersion.mls10:
        raise InvalidWelcome("GroupInfo suite or version differs from the KeyPackage's")
    tree = verified_tree(client, gi, ratchet_tree, identity, config)
    # Our leaf: the one identical to our KeyPackage's LeafNode.
    my_leaf = tree.find_signature_key(kpp.key_package.leaf_node.signature_key)
    if my_leaf is None or tree.leaf(my_leaf) != kpp.key_package.leaf_node:
        raise InvalidWelcome("our KeyPackage's LeafNode is not in the tree")
    private = TreePrivate.from_welcome(
        cs,
        tree,
        my_leaf,
        kpp.encryption_private_key,
        gi.signer,
        gs.path_secret.path_secret if gs.path_secret is not None else None,
    )
    secrets = epoch_secrets_from_joiner(cs, gs.joiner_secret, psk, ctx.to_bytes())
    verify_confirmation_tag(
        cs, secrets.confirmation_key, ctx.confirmed_transcript_hash, gi.confirmation_tag
    )
    interim = next_interim_transcript_hash(cs, ctx.confirmed_transcript_hash, gi.confirmation_tag)
    if special:
        if ctx.epoch != 1:
            raise InvalidWelcome("a reinit/branch Welcome must start at epoch 1 (§12.4.3.1)")
    return StagedWelcome(
        context=ctx,
        tree=tree,
        private=private,
        secrets=secrets,
        interim_transcript_hash=interim,
        confirmation_tag=gi.confirmation_tag,
        key_package_ref=entry.new_member,
        joined_with=special[0] if special else None,
    )


def join_by_welcome(
    client: Client,
    welcome: bytes,
    *,
    ratchet_tree: bytes | None,
    config: GroupConfig | None,
    identity: IdentityProvider | None,
    resumption_psks: Mapping[tuple[bytes, int], bytes] | None,
    build: Callable[[EpochState, GroupConfig, IdentityProvider], G],
    check: Callable[[StagedWelcome, G], None] | None = None,
) -> G:
    """Join from a Welcome (§12.4.3.1): stage it, ``build`` the group, run ``check`` (the
    caller's, or the ReInit/branch checks of §12.4.3.1), and only then spend the KeyPackage.
    Any exception other than an :class:`~mls.errors.MLSError` is a bug, reported as
    :class:`~mls.errors.InternalError`."""
    try:
        config = config or GroupConfig()
        ident = identity or BasicIdentityProvider()
        staged = stage_welcome(
            client,
            welcome,
            ratchet_tree=ratchet_tree,
            config=config,
            identity=ident,
            resumption_psks=resumption_psks,
        )
        group = build(staged.epoch_state(client.suite, config), config, ident)
        if check is not None:
            check(staged, group)
        client.consume_key_package(staged.key_package_ref)
        return group
    except MLSError:
        raise
    except Exception as exc:
        raise InternalError(f"{type(exc).__name__} while joining") from exc


def verified_tree(
    client: Client,
    gi: GroupInfo,
    ratchet_tree: bytes | None,
    identity: IdentityProvider,
    config: GroupConfig,
    missing: type[ValidationError] = InvalidWelcome,
) -> RatchetTree:
    """The group's tree for a joiner, after the checks of §12.4.3.1: the GroupInfo signature
    by its signer's leaf, our support of the group's parameters, and the integrity of the
    tree (tree hash, parent hashes, unmerged leaves, every leaf), within the config's size
    bounds (group id, tree leaves) checked before any expensive step."""
    cs = client.suite
    ctx = gi.group_context
    if len(ctx.group_id) > config.max_group_id_length:
        raise SizeLimitExceeded(f"group_id of {len(ctx.group_id)} bytes")
    tree = tree_for(cs, gi, ratchet_tree, missing, config.max_tree_leaves)
    signer = tree.leaf(gi.signer) if gi.signer < tree.n_leaves else None
    if signer is None:
        raise InvalidGroupInfo("GroupInfo signer is a blank or unknown leaf")
    gi.verify(cs, signer.signature_key)
    check_joinable(client, ctx)
    validate_tree(
        cs,
        tree,
        group_id=ctx.group_id,
        tree_hash=ctx.tree_hash,
        required_capabilities=RequiredCapabilities.find(ctx.extensions),
        identity=identity,
    )
    return tree


def tree_for(
    cs: CipherSuite,
    gi: GroupInfo,
    ratchet_tree: bytes | None,
    missing: type[ValidationError],
    max_leaves: int,
) -> RatchetTree:
    ext = find_extension(gi.extensions, ExtensionType.ratchet_tree)
    if ext is not None:
        return RatchetTree.decode(cs, ext.extension_data, max_leaves=max_leaves)
    if ratchet_tree is None:
        raise missing("no ratchet tree: not in the GroupInfo and none supplied")
    return RatchetTree.decode(cs, ratchet_tree, max_leaves=max_leaves)


def check_joinable(client: Client, ctx: GroupContext) -> None:
    """A joiner supports the group's parameters (§12.4.3: GroupContext extensions "MUST be
    supported by the new joiner"; §11.1 required capabilities)."""
    caps = client.capabilities
    for ext in ctx.extensions:
        t = ext.extension_type
        if t not in DEFAULT_EXTENSION_TYPES and t not in caps.extensions:
            raise UnsupportedCapability(f"the group uses extension type {t:#06x} we do not support")
    if ctx.cipher_suite not in caps.cipher_suites:
        raise UnsupportedCapability(f"the group uses cipher suite {ctx.cipher_suite}")


def external_commit(
    client: Client,
    group_info: bytes,
    *,
    ratchet_tree: bytes | None,
    config: GroupConfig,
    identity: IdentityProvider,
    psks: Sequence[bytes],
    resync: bool,
    authenticated_data: bytes,
    self_removes: Sequence[bytes] = (),
) -> tuple[EpochState, bytes]:
    """An external commit (§12.4.3.2) on the public inputs of a GroupInfo: the joiner's
    epoch once it is merged, and the encoded PublicMessage to send. ``self_removes`` are the
    group's pending SelfRemove proposals (encoded MLSMessages), validated and committed by
    reference (draft-ietf-mls-extensions, "SelfRemove Proposal")."""
    msg = decode(MLSMessage, group_info)
    gi = msg.body
    if not isinstance(gi, GroupInfo):
        raise DecodeError("expected an MLSMessage carrying a GroupInfo")
    cs = client.suite
    ctx = gi.group_context
    if ctx.cipher_suite != cs.suite_id:
        raise InvalidGroupInfo("GroupInfo cipher suite differs from the client's")
    tree = verified_tree(client, gi, ratchet_tree, identity, config, InvalidGroupInfo)
    ext_pub = ExternalPub.find(gi.extensions)
    if ext_pub is None:
        raise InvalidGroupInfo("GroupInfo has no external_pub extension (§12.4.3.2)")
    # §8.3: init_secret exported from an HPKE context to external_pub.
    enc, init_secret = external_init(cs, ext_pub.external_pub)
    interim = next_interim_transcript_hash(cs, ctx.confirmed_transcript_hash, gi.confirmation_tag)
    # The joiner knows the tree and the GroupContext but no epoch secret: that is all judging
    # and applying its own proposal list needs (it may only use external PSKs).
    pc = ProposalContext(
        cs=cs,
        context=ctx,
        tree=tree,
        identity=identity,
        config=config,
        client_index=lambda: build_client_index(identity, tree),
        resolve_psk=lambda pid: resolve_psk(
            pid, external=client.external_psk, group_id=ctx.group_id, resumption={}
        ),
    )
    sender = Sender.new_member_commit()
    entries: list[ProposalEntry] = [ProposalEntry(ExternalInit(kem_output=enc), sender, None)]
    if resync:
        old = tree.find_signature_key(client.signature_public_key)
        if old is None:
            raise UsageError("resync: this client has no leaf in the group")
        entries.append(ProposalEntry(Remove(removed=old), sender, None))
    for psk_id in psks:
        pid = external_psk_id(cs, client.external_psk, psk_id)
        entries.append(ProposalEntry(PreSharedKey(psk=pid), sender, None))
    for data in self_removes:
        entries.append(self_remove_entry(pc, data))
    applied = apply_proposals(pc, entries, committer=None, external=True, own_leaf=None, store={})
    me = applied.diff.add_external_leaf_slot()
    wf = WireFormat.mls_public_message
    built = build_commit(
        cs,
        context=ctx,
        interim_transcript_hash=interim,
        init_secret=init_secret,
        entries=entries,
        applied=applied,
        sender=sender,
        committer=me,
        leaf_template=client.leaf_template(),
        private=TreePrivate(me, {}),
        signature_private_key=client.signature_private_key,
        wire_format=wf,
        authenticated_data=authenticated_data,
    )
    commit_bytes = MLSMessage(body=public_message_from(cs, built.content, None, ctx)).to_bytes()
    nxt = built.next
    epoch = EpochState.start(
        cs,
        config,
        context=nxt.context,
        tree=built.diff.merge(),
        private=built.private,
        secrets=nxt.secrets,
        interim_transcript_hash=nxt.interim_transcript_hash,
        confirmation_tag=nxt.confirmation_tag,
    )
    return epoch, commit_bytes


def join_by_external_commit(
    client: Client,
    group_info: bytes,
    *,
    ratchet_tree: bytes | None,
    config: GroupConfig | None,
    identity: IdentityProvider | None,
    psks: Sequence[bytes],
    resync: bool,
    authenticated_data: bytes,
    self_removes: Sequence[bytes],
    build: Callable[[EpochState, GroupConfig, IdentityProvider], G],
) -> tuple[G, bytes]:
    """Join by :func:`external_commit` (§12.4.3.2): the group ``build`` makes of the joiner's
    epoch, and the commit to send. Any exception other than an
    :class:`~mls.errors.MLSError` is a bug, reported as :class:`~mls.errors.InternalError`."""
    try:
        config = config or GroupConfig()
        ident = identity or BasicIdentityProvider()
        epoch, commit_bytes = external_commit(
            client,
            group_info,
            ratchet_tree=ratchet_tree,
            config=config,
            identity=ident,
            psks=psks,
            resync=resync,
            authenticated_data=authenticated_data,
            self_removes=self_removes,
        )
        return build(epoch, config, ident), commit_bytes
    except MLSError:
        raise
    except Exception as exc:
        raise InternalError(f"{type(exc).__name__} during external join") from exc


def self_remove_entry(pc: ProposalContext, data: bytes) -> ProposalEntry:
    """A pending SelfRemove (an encoded MLSMessage) as an external joiner validates it: a
    PublicMessage of the GroupInfo's group and epoch, signed by a member's leaf against the
    GroupContext; the membership tag is skipped, as a non-member cannot verify it
    (draft-ietf-mls-extensions, "SelfRemove Proposal")."""
    cs = pc.cs
    ctx = pc.context
    msg = decode(MLSMessage, data)
    body = msg.body
    if not isinstance(body, PublicMessage):
        raise InvalidSelfRemove("a SelfRemove proposal must be sent as a PublicMessage")
    auth = body.authenticated_content()
    content = auth.content
    if not isinstance(content.content, SelfRemove):
        raise InvalidSelfRemove("not a SelfRemove proposal")
    if content.group_id != ctx.group_id:
        raise WrongGroup("SelfRemove proposal of another group")
    if content.epoch != ctx.epoch:
        raise WrongEpoch(
            f"SelfRemove proposal of epoch {content.epoch}, the GroupInfo's is {ctx.epoch}",
            expected=ctx.epoch,
            got=content.epoch,
        )
    sender = content.sender
    if sender.sender_type != SenderType.member:
        raise InvalidSender("only members send SelfRemove proposals")
    leaf = pc.tree.leaf(sender.index) if sender.index < pc.tree.n_leaves else None
    if leaf is None:
        raise InvalidSender(f"SelfRemove from blank or unknown leaf {sender.index}")
    auth.verify(cs, leaf.signature_key, ctx)
    pc.validate(content.content, sender, NO_CHECKS, wire_format=auth.wire_format)
    return ProposalEntry(content.content, sender, auth.proposal_ref(cs))
