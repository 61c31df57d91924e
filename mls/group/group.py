"""The sans-I/O group state machine (RFC 9420 §11, §12, §14, §15).

A :class:`Group` is one member's view of one group in one epoch. Local operations return bytes
(``protect``, ``propose_*``, ``commit``); ``process`` takes bytes and returns one typed event.

Stage, then merge (§12.4.2). Processing a commit builds the next epoch aside in an
:class:`_Epoch` (a tree diff, the new private keys, key schedule, secret tree and transcript
hashes) without touching the current one; only when every check passed does ``_install`` swap it
in. A rejected message therefore leaves the group exactly as it was; this includes the
secret-tree ratchets, whose keys are prepared first and consumed only on acceptance.

Pipeline of ``process`` (parse, then verify)::

    bytes --decode--> MLSMessage --unprotect--> AuthenticatedContent (unverified)
          --verify signature--> application | proposal (validated, cached) | commit (staged)
          --accept--> event, ratchet key consumed, commit merged

Any exception other than an :class:`~mls.errors.MLSError` escaping ``process`` is a bug; it is
reported as :class:`~mls.errors.InternalError`.
"""

from __future__ import annotations

import enum
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

from mls.codec import decode
from mls.constants import (
    ContentType,
    ExtensionType,
    LeafNodeSource,
    ProposalType,
    ProtocolVersion,
    PSKType,
    ResumptionPSKUsage,
    SenderType,
    WireFormat,
)
from mls.credentials import Credential
from mls.crypto import CipherSuite
from mls.errors import (
    DecodeError,
    GroupReinitialized,
    InternalError,
    InvalidContentType,
    InvalidExternalInit,
    InvalidGroupInfo,
    InvalidPSK,
    InvalidReInit,
    InvalidRemove,
    InvalidSender,
    InvalidState,
    InvalidSuccessor,
    InvalidUpdate,
    InvalidWelcome,
    MemberRemoved,
    MissingProposal,
    MLSError,
    NoMatchingKeyPackage,
    PathRequired,
    PeerError,
    RemovedSender,
    SizeLimitExceeded,
    UnauthorizedProposal,
    UnknownSender,
    UnsupportedCapability,
    UsageError,
    ValidationError,
    WrongEpoch,
    WrongGroup,
)
from mls.extensions import (
    Extension,
    ExternalPub,
    ExternalSenders,
    RequiredCapabilities,
    find_extension,
)
from mls.framing.content import (
    AuthenticatedContent,
    FramedContent,
    FramedContentAuthData,
    Sender,
    sign_framed_content,
)
from mls.framing.message import MLSMessage
from mls.framing.private import PrivateMessage
from mls.framing.protection import (
    decrypt_private_message,
    encrypt_private_message,
    protect_application_data,
    public_message_from,
    verify_membership_tag,
)
from mls.framing.public import PublicMessage
from mls.group.client import Client
from mls.group.config import ExternalProposalRequest, GroupConfig
from mls.group.events import (
    ApplicationMessage,
    CommitMerged,
    CommitOutput,
    GroupEvent,
    ProposalReceived,
)
from mls.group.identity import BasicIdentityProvider, IdentityProvider, all_matched
from mls.group.validation import (
    DEFAULT_EXTENSION_TYPES,
    Checks,
    ProposalEntry,
    build_client_index,
    check_credential_support,
    check_custom_supported,
    check_required_capabilities,
    check_unique_client,
    update_client_index,
    validate_gce,
    validate_leaf_node,
    validate_proposal,
    validate_proposal_list,
    validate_psk_id,
)
from mls.messages.commit import Commit
from mls.messages.group_info import GroupInfo
from mls.messages.key_package import KeyPackage
from mls.messages.proposals import (
    Add,
    CustomProposal,
    ExternalInit,
    GroupContextExtensions,
    PreSharedKey,
    PreSharedKeyID,
    Proposal,
    ProposalOrRef,
    ReInit,
    Remove,
    Update,
)
from mls.messages.welcome import EncryptedGroupSecrets, GroupSecrets, PathSecret, Welcome
from mls.messages.welcome_crypto import (
    decrypt_group_info,
    decrypt_group_secrets,
    encrypt_group_info,
    encrypt_group_secrets,
)
from mls.schedule.group_context import GroupContext
from mls.schedule.key_schedule import (
    EpochSecrets,
    confirmation_tag,
    derive_epoch_secrets,
    epoch_secrets_from_joiner,
    external_key_pair,
    mls_exporter,
    verify_confirmation_tag,
    welcome_secret,
)
from mls.schedule.psk import psk_secret
from mls.schedule.secret_tree import SecretTree
from mls.schedule.transcript import (
    ConfirmedTranscriptHashInput,
    next_confirmed_transcript_hash,
    next_interim_transcript_hash,
)
from mls.tree.nodes import LeafNode, UpdatePath
from mls.tree.ratchet_tree import RatchetTree, TreeDiff
from mls.tree.treekem import (
    PreparedPath,
    TreePrivate,
    apply_update_path,
    decrypt_update_path,
    prepare_update_path,
)
from mls.tree.validation import validate_tree

if TYPE_CHECKING:
    from mls.tree.ratchet_tree import TreeView

__all__ = ["Group", "GroupStatus"]

#: Kept for importers of the old name (mls.app).
Event = GroupEvent

_EXTERNAL_INIT_LABEL = b"MLS 1.0 external init secret"

# §12.4: proposal types that require an UpdatePath.
_PATH_REQUIRED = frozenset(
    {
        ProposalType.update,
        ProposalType.remove,
        ProposalType.external_init,
        ProposalType.group_context_extensions,
    }
)


class GroupStatus(enum.Enum):
    """Lifecycle of a member's group state."""

    OPERATIONAL = "operational"
    #: This member was removed by a commit (§12.4.2): it can send nothing any more.
    REMOVED = "removed"
    #: A commit with a ReInit was merged (§11.2): wait for the new group's Welcome.
    REINIT = "reinit"


@dataclass(slots=True)
class _CachedProposal:
    proposal: Proposal
    sender: Sender
    #: For our own Update proposals: the new leaf's HPKE private key.
    update_private_key: bytes | None = field(default=None, repr=False)


@dataclass(slots=True)
class _PastEpoch:
    """What a member keeps of a past epoch to read late application messages (§15.3)."""

    context: GroupContext
    secret_tree: SecretTree
    sender_data_secret: bytes = field(repr=False)
    #: Leaves that changed since that epoch (leaf index -> its LeafNode then, None = blank).
    leaves: dict[int, LeafNode | None] = field(default_factory=dict)
    #: When the commit that ended the epoch merged (the caller's ``now``; None if not given).
    retired_at: int | None = None
    #: Leaves removed since: the first application generation refused from each (§12.4.2: a
    #: removed member may not keep writing into the epoch it was removed in).
    removed_limits: dict[int, int] = field(default_factory=dict)


@dataclass(slots=True)
class _Epoch:
    """A complete epoch state; the current one, or the next one being staged."""

    context: GroupContext
    tree: RatchetTree | TreeDiff
    private: TreePrivate
    secrets: EpochSecrets
    interim_transcript_hash: bytes
    confirmation_tag: bytes
    #: Extra outputs of the commit that produced it.
    added: tuple[int, ...] = ()
    removed: tuple[int, ...] = ()
    updated: tuple[int, ...] = ()
    committer: int | None = None
    has_path: bool = False
    reinit: ReInit | None = None
    self_removed: bool = False
    external: bool = False
    extensions_changed: bool = False
    #: Leaf -> its LeafNode before this commit, for leaves it changed (late messages).
    old_leaves: dict[int, LeafNode | None] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class _AppliedProposals:
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


class Group:
    """One member's state of one MLS group. Create with :meth:`create`, :meth:`join` or
    :meth:`external_join`; never construct directly."""

    def __init__(
        self,
        *,
        client: Client,
        cs: CipherSuite,
        config: GroupConfig,
        epoch: _Epoch,
        identity: IdentityProvider | None = None,
        secret_tree: SecretTree | None = None,
    ) -> None:
        if not isinstance(epoch.tree, RatchetTree):
            raise InternalError("a group is built on a merged tree")
        self._client = client
        self._cs = cs
        self._config = config
        self._identity: IdentityProvider = identity or BasicIdentityProvider()
        self._context = epoch.context
        self._tree: RatchetTree = epoch.tree
        self._private = epoch.private
        self._interim = epoch.interim_transcript_hash
        self._confirmation_tag = epoch.confirmation_tag
        self._secret_tree = secret_tree or self._new_secret_tree(epoch)
        self._secrets = _scrubbed(epoch.secrets)
        self._status = GroupStatus.OPERATIONAL
        self._proposals: OrderedDict[bytes, _CachedProposal] = OrderedDict()
        self._pending: tuple[_Epoch, CommitOutput] | None = None
        self._past: OrderedDict[int, _PastEpoch] = OrderedDict()
        self._resumption: OrderedDict[int, bytes] = OrderedDict()
        self._resumption[self._context.epoch] = self._secrets.resumption_psk
        self._reinit: ReInit | None = None
        # The reinit/branch resumption PSK of a new group's first commit (§11.2, §11.3), and the
        # one a joiner's Welcome used.
        self._linked: tuple[PreSharedKeyID, bytes] | None = None
        self._joined_with: PreSharedKeyID | None = None
        self._clients: dict[bytes, set[int]] | None = None

    # -- properties ---------------------------------------------------------------------------

    @property
    def client(self) -> Client:
        return self._client

    @property
    def config(self) -> GroupConfig:
        return self._config

    def set_config(self, config: GroupConfig) -> None:
        """Change the group's options. Cached proposals from outside the group that the new
        ``external_proposal_policy`` does not authorize are dropped."""
        self._config = config
        for ref in [r for r, c in self._proposals.items() if not self._authorized(c)]:
            del self._proposals[ref]

    @property
    def status(self) -> GroupStatus:
        return self._status

    @property
    def group_id(self) -> bytes:
        return self._context.group_id

    @property
    def epoch(self) -> int:
        return self._context.epoch

    @property
    def cipher_suite(self) -> int:
        return self._cs.suite_id

    @property
    def suite(self) -> CipherSuite:
        return self._cs

    @property
    def context(self) -> GroupContext:
        return self._context

    @property
    def tree(self) -> RatchetTree:
        return self._tree

    @property
    def extensions(self) -> tuple[Extension, ...]:
        return self._context.extensions

    @property
    def epoch_authenticator(self) -> bytes:
        return self._secrets.epoch_authenticator

    @property
    def tree_hash(self) -> bytes:
        return self._context.tree_hash

    @property
    def confirmed_transcript_hash(self) -> bytes:
        return self._context.confirmed_transcript_hash

    @property
    def own_leaf_index(self) -> int:
        return self._private.leaf_index

    @property
    def member_count(self) -> int:
        return self._tree.member_count

    @property
    def pending_proposal_refs(self) -> list[bytes]:
        return list(self._proposals)

    @property
    def has_pending_commit(self) -> bool:
        return self._pending is not None

    @property
    def reinit(self) -> ReInit | None:
        """The ReInit this group ended with (status REINIT), if any."""
        return self._reinit

    def members(self) -> list[tuple[int, Credential]]:
        return [(i, leaf.credential) for i, leaf in self._tree.iter_leaves()]

    def export_secret(self, label: str, context: bytes, length: int) -> bytes:
        """MLS-Exporter(label, context, length) of the current epoch (§8.5)."""
        try:
            label.encode()
        except UnicodeEncodeError as exc:  # lone surrogates have no UTF-8 form
            raise UsageError("the exporter label is not valid Unicode text") from exc
        if self._status is GroupStatus.REMOVED:
            raise InvalidState("this member was removed: its epoch secrets are deleted")
        return mls_exporter(self._cs, self._secrets.exporter_secret, label, context, length)

    def resumption_psk(self, epoch: int) -> bytes | None:
        """The resumption PSK of a recent epoch of this group (§8.6), if still kept."""
        return self._resumption.get(epoch)

    @property
    def leaf_count(self) -> int:
        """Number of leaves of the ratchet tree, blanks included (SFrame KID layout)."""
        return self._tree.n_leaves

    def to_bytes(self) -> bytes:
        """The whole member state as versioned CBOR (see :mod:`mls.group.state`)."""
        from mls.group.state import group_to_bytes

        out: bytes = group_to_bytes(self)
        return out

    @classmethod
    def from_bytes(
        cls,
        data: bytes,
        client: Client,
        *,
        identity: IdentityProvider | None = None,
        config: GroupConfig | None = None,
    ) -> Group:
        """Restore a group saved by :meth:`to_bytes` for ``client``. The stored options are
        restored except the ``external_proposal_policy`` (code, not state: it is the default,
        refuse, unless ``config`` is given, which then replaces the stored options)."""
        from mls.group.state import group_from_bytes

        group = group_from_bytes(data, client, identity, config)
        assert isinstance(group, Group)
        return group

    def export_tree(self) -> bytes:
        """The ratchet tree in its §12.4.3.3 encoding (for out-of-band delivery)."""
        return self._tree.encode_tree()

    def __repr__(self) -> str:
        return (
            f"Group(group_id={self.group_id.hex()}, epoch={self.epoch}, "
            f"leaf={self.own_leaf_index}, members={self.member_count}, status={self._status.name})"
        )

    # -- creation -----------------------------------------------------------------------------

    @classmethod
    def create(
        cls,
        client: Client,
        group_id: bytes,
        *,
        config: GroupConfig | None = None,
        extensions: Sequence[Extension] = (),
        identity: IdentityProvider | None = None,
        now: int | None = None,
        leaf_extensions: tuple[Extension, ...] = (),
    ) -> Group:
        """A one-member group (§11)."""
        config = config or GroupConfig()
        if len(group_id) > config.max_group_id_length:
            raise UsageError(f"group_id longer than {config.max_group_id_length} bytes")
        cs = client.suite
        enc_sk, enc_pk = cs.generate_key_pair()
        leaf = client.leaf_node(enc_pk, now or 0, extensions=leaf_extensions)
        tree = RatchetTree.create(cs, leaf)
        ctx = GroupContext(
            cipher_suite=cs.suite_id,
            group_id=group_id,
            epoch=0,
            tree_hash=tree.tree_hash(),
            confirmed_transcript_hash=b"",
            extensions=tuple(extensions),
        )
        # §11: the first epoch secret is fresh randomness; deriving it from a random joiner
        # secret gives the same distribution and reuses the one schedule code path.
        secrets = epoch_secrets_from_joiner(cs, cs.random(cs.hash_len), None, ctx.to_bytes())
        tag = confirmation_tag(cs, secrets.confirmation_key, b"")
        interim = next_interim_transcript_hash(cs, b"", tag)
        epoch = _Epoch(
            context=ctx,
            tree=tree,
            private=TreePrivate.for_leaf(cs, 0, enc_sk, enc_pk),
            secrets=secrets,
            interim_transcript_hash=interim,
            confirmation_tag=tag,
        )
        return cls(client=client, cs=cs, config=config, epoch=epoch, identity=identity)

    # -- secret trees and past epochs ---------------------------------------------------------

    def _new_secret_tree(self, epoch: _Epoch) -> SecretTree:
        return SecretTree(
            self._cs,
            epoch.secrets.encryption_secret,
            epoch.tree.n_leaves,
            own_leaf=epoch.private.leaf_index,
            out_of_order_window=self._config.out_of_order_window,
            max_forward_distance=self._config.max_forward_distance,
        )

    def _check_operational(self) -> None:
        if self._status is GroupStatus.REMOVED:
            raise InvalidState("this member was removed from the group")
        if self._status is GroupStatus.REINIT:
            raise InvalidState("the group was re-initialised; join the new group")

    def _check_accepts_handshake(self) -> None:
        # §12.4.2: a removed member processes no more handshakes; §11.2: nor does a member of a
        # group that was re-initialised (late application messages are still read).
        if self._status is GroupStatus.REMOVED:
            raise MemberRemoved("this member was removed from the group")
        if self._status is GroupStatus.REINIT:
            raise GroupReinitialized("the group was re-initialised; use the new group")

    # -- sending ------------------------------------------------------------------------------

    def protect(self, plaintext: bytes, authenticated_data: bytes = b"") -> bytes:
        """An application message as a PrivateMessage (§15)."""
        self._check_operational()
        if self._proposals:
            # §12.4: a member that observed valid proposals MUST commit before sending data.
            raise InvalidState("pending proposals must be committed before sending data")
        return protect_application_data(
            self._cs,
            self._client.signature_private_key,
            self._context,
            self._secret_tree,
            self._secrets.sender_data_secret,
            plaintext,
            authenticated_data=authenticated_data,
            padding=self._config.padding_block,
        )

    @property
    def _handshake_wire_format(self) -> int:
        if self._config.private_handshake:
            return WireFormat.mls_private_message
        return WireFormat.mls_public_message

    def _signed(self, content: FramedContent, *, private: bool) -> AuthenticatedContent:
        """Sign a member's content with the current GroupContext (§6.1)."""
        wf = WireFormat.mls_private_message if private else WireFormat.mls_public_message
        sig = sign_framed_content(
            self._cs, self._client.signature_private_key, wf, content, self._context
        )
        return AuthenticatedContent(
            wire_format=wf, content=content, auth=FramedContentAuthData(signature=sig)
        )

    def _wrap(self, auth: AuthenticatedContent) -> bytes:
        cs = self._cs
        if auth.wire_format == WireFormat.mls_private_message:
            body: PublicMessage | PrivateMessage = encrypt_private_message(
                cs,
                auth,
                self._secret_tree,
                self._secrets.sender_data_secret,
                padding=self._config.padding_block,
            )
        else:
            body = public_message_from(cs, auth, self._secrets.membership_key, self._context)
        return MLSMessage(body=body).to_bytes()

    def _propose(self, proposal: Proposal, update_key: bytes | None = None) -> bytes:
        self._check_operational()
        content = FramedContent(
            group_id=self.group_id,
            epoch=self.epoch,
            sender=Sender.member(self.own_leaf_index),
            content=proposal,
        )
        cs = self._cs
        auth = self._signed(content, private=self._config.private_handshake)
        data = self._wrap(auth)
        self._proposals[auth.proposal_ref(cs)] = _CachedProposal(
            proposal, content.sender, update_key
        )
        return data

    def propose_add(self, key_package: bytes | KeyPackage, *, now: int | None = None) -> bytes:
        kp = self._parse_key_package(key_package)
        self._validate_own_proposal(Add(key_package=kp), now)
        return self._propose(Add(key_package=kp))

    def _check_removable(self, leaf_index: int) -> None:
        # A local request to remove a blank, unknown or our own leaf is misuse, not bad input.
        if not 0 <= leaf_index < self._tree.n_leaves or self._tree.leaf(leaf_index) is None:
            raise UsageError(f"leaf {leaf_index} is not a member")
        if leaf_index == self.own_leaf_index:
            raise UsageError("a member cannot remove itself by commit (§12.2); ask another member")

    def propose_remove(self, leaf_index: int) -> bytes:
        self._check_removable(leaf_index)
        p = Remove(removed=leaf_index)
        self._validate_own_proposal(p, None)
        return self._propose(p)

    def propose_update(self) -> bytes:
        cs = self._cs
        sk, pk = cs.generate_key_pair()
        old = self._tree.leaf(self.own_leaf_index)
        assert old is not None
        leaf = replace(
            old,
            encryption_key=pk,
            leaf_node_source=LeafNodeSource.update,
            lifetime=None,
            parent_hash=None,
            signature=b"",
        ).sign(cs, self._client.signature_private_key, self.group_id, self.own_leaf_index)
        return self._propose(Update(leaf_node=leaf), update_key=sk)

    def propose_psk(self, psk_id: bytes) -> bytes:
        pid = self._external_psk_id(psk_id)
        return self._propose(PreSharedKey(psk=pid))

    def propose_group_context_extensions(self, extensions: Sequence[Extension]) -> bytes:
        p = GroupContextExtensions(extensions=tuple(extensions))
        self._validate_own_proposal(p, None)
        return self._propose(p)

    def propose_reinit(
        self,
        *,
        group_id: bytes,
        cipher_suite: int,
        extensions: Sequence[Extension] = (),
        version: int = ProtocolVersion.mls10,
    ) -> bytes:
        p = ReInit(
            group_id=group_id,
            version=version,
            cipher_suite=cipher_suite,
            extensions=tuple(extensions),
        )
        self._validate_own_proposal(p, None)
        return self._propose(p)

    def _validate_own_proposal(self, p: Proposal, now: int | None) -> None:
        self._validate(p, Sender.member(self.own_leaf_index), self._checks(now, received=False))

    def _checks(self, now: int | None, *, received: bool) -> Checks:
        c = self._config
        return Checks(
            now=now,
            received=received,
            lifetime_skew=c.lifetime_skew,
            max_lifetime=c.max_lifetime,
            max_identity_length=c.max_identity_length,
            max_credential_length=c.max_credential_length,
        )

    def _validate(
        self,
        p: Proposal,
        sender: Sender,
        checks: Checks,
        *,
        extensions: Sequence[Extension] | None = None,
        in_commit: bool = False,
    ) -> None:
        """§12.1 checks of one proposal against the current tree (with ``extensions``, the ones
        its commit's list sets, §12.3) and the group's bounds."""
        if isinstance(p, ReInit) and len(p.group_id) > self._config.max_group_id_length:
            raise SizeLimitExceeded(f"ReInit group_id of {len(p.group_id)} bytes")
        if isinstance(p, Update):
            old = self._tree.leaf(sender.index) if sender.index < self._tree.n_leaves else None
            if old is not None and old.credential != p.leaf_node.credential:
                # §5.3.1: a changed credential still names no other member.
                check_unique_client(
                    self._identity,
                    p.leaf_node,
                    tree=self._tree,
                    client_index=self._client_index(),
                    own=sender.index,
                )
        validate_proposal(
            self._cs,
            p,
            sender,
            tree=self._tree,
            version=self._context.version,
            group_id=self.group_id,
            group_extensions=self._context.extensions if extensions is None else extensions,
            identity=self._identity,
            checks=checks,
            in_commit=in_commit,
        )

    def _authorized(self, cached: _CachedProposal) -> bool:
        """§12.1.8: a member's proposal is authorized by membership; one from outside the group
        only if the application's ``external_proposal_policy`` says so."""
        sender = cached.sender
        st = sender.sender_type
        if st == SenderType.member:
            return True
        if st == SenderType.external:
            senders = ExternalSenders.find(self._context.extensions)
            if senders is None or sender.index >= len(senders.senders):
                return False
            credential = senders.senders[sender.index].credential
        elif st == SenderType.new_member_proposal and isinstance(cached.proposal, Add):
            credential = cached.proposal.key_package.leaf_node.credential
        else:
            return False
        request = ExternalProposalRequest(
            proposal=cached.proposal, sender=sender, credential=credential, context=self._context
        )
        return self._config.external_proposal_policy(request) is True

    def _parse_key_package(self, key_package: bytes | KeyPackage) -> KeyPackage:
        if isinstance(key_package, KeyPackage):
            return key_package
        msg = decode(MLSMessage, key_package)
        if not isinstance(msg.body, KeyPackage):
            raise DecodeError("expected an MLSMessage carrying a KeyPackage")
        return msg.body

    def _external_psk_id(self, psk_id: bytes) -> PreSharedKeyID:
        if self._client.external_psk(psk_id) is None:
            raise UsageError("unknown external PSK id: add it to the client first")
        return PreSharedKeyID.external(psk_id, self._cs.random(self._cs.hash_len))

    # -- commit creation (§12.4) --------------------------------------------------------------

    def commit(
        self,
        *,
        add: Sequence[bytes | KeyPackage] = (),
        remove: Sequence[int] = (),
        psks: Sequence[bytes] = (),
        resumption_psks: Sequence[tuple[int, int]] = (),
        extensions: Sequence[Extension] | None = None,
        reinit: ReInit | None = None,
        proposals: Sequence[Proposal] = (),
        path: bool | None = None,
        include_pending: bool = True,
        group_info: bool = False,
        authenticated_data: bytes = b"",
        now: int | None = None,
    ) -> CommitOutput:
        """Create a commit (§12.4) of every pending proposal plus the ones given here.

        ``psks`` are external PSK ids known to the client; ``resumption_psks`` are
        ``(usage, epoch)`` pairs of this group. ``path=None`` includes an UpdatePath (the safe
        default, refreshing the committer's keys); ``path=False`` omits it where §12.4 allows.
        The commit is staged: call :meth:`merge_pending_commit` once the delivery service
        accepted it, or :meth:`clear_pending_commit` if it lost to another commit. With
        ``group_info=True`` the output also carries a signed GroupInfo of the new epoch (with
        ``external_pub`` and the tree) for external joiners.
        """
        self._check_operational()
        if self._pending is not None:
            raise InvalidState("a commit is already pending: merge or clear it first")
        cs = self._cs
        me = self.own_leaf_index
        entries: list[ProposalEntry] = []
        if include_pending:
            for ref, cached in self._proposals.items():
                if cached.update_private_key is not None:
                    # §12.2: a commit cannot include the committer's own Update; the path
                    # refreshes our leaf instead.
                    continue
                if not self._authorized(cached):
                    continue  # §12.1.8: never commit what our policy does not authorize
                if isinstance(cached.proposal, Add) and not _usable_now(cached.proposal, now):
                    continue  # §7.3: a KeyPackage that expired since it was proposed
                entries.append(ProposalEntry(cached.proposal, cached.sender, ref))
        by_value: list[Proposal] = list(proposals)
        by_value += [Add(key_package=self._parse_key_package(k)) for k in add]
        for i in remove:
            self._check_removable(i)
        by_value += [Remove(removed=i) for i in remove]
        by_value += [PreSharedKey(psk=self._external_psk_id(p)) for p in psks]
        for usage, ep in resumption_psks:
            by_value.append(
                PreSharedKey(
                    psk=PreSharedKeyID.resumption(usage, self.group_id, ep, cs.random(cs.hash_len))
                )
            )
        if extensions is not None:
            by_value.append(GroupContextExtensions(extensions=tuple(extensions)))
        if reinit is not None:
            by_value.append(reinit)
        sender = Sender.member(me)
        list_exts = _list_extensions(
            [e.proposal for e in entries] + by_value, self._context.extensions
        )
        checks = self._checks(now, received=False)
        for p in by_value:
            self._validate(p, sender, checks, extensions=list_exts, in_commit=True)
            entries.append(ProposalEntry(p, sender, None))
        if self._linked is not None:
            pid = self._linked[0]
            linked = PreSharedKey(psk=pid)
            validate_psk_id(cs, linked, allow_usage=pid.usage)
            entries.append(ProposalEntry(linked, sender, None))
        if not entries and path is False:
            raise UsageError("an empty commit must carry a path (§12.4)")
        applied = self._apply_proposals(entries, committer=me, external=False, now=now)
        use_path = True if path is None else path
        if applied.path_required or not entries:
            if path is False:
                raise UsageError("these proposals require an UpdatePath (§12.4)")
            use_path = True
        if applied.reinit is not None:
            # §11.2: a ReInit commit carries no path of its own (nothing follows the epoch).
            use_path = path is True
        diff = applied.diff
        prepared: PreparedPath | None = None
        private = self._private.pruned(diff)
        old_keys = dict(applied.old_leaves)
        if use_path:
            leaf_template = self._tree.leaf(me)
            assert leaf_template is not None
            old_keys.setdefault(me, leaf_template)
            prepared = prepare_update_path(
                cs, diff, me, leaf_template, self._client.signature_private_key, self.group_id
            )
            private = prepared.private
        ctx = GroupContext(
            cipher_suite=cs.suite_id,
            group_id=self.group_id,
            epoch=self.epoch + 1,
            tree_hash=diff.tree_hash(),
            confirmed_transcript_hash=self._context.confirmed_transcript_hash,
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
            group_id=self.group_id,
            epoch=self.epoch,
            sender=sender,
            authenticated_data=authenticated_data,
            content=commit,
        )
        wf = self._handshake_wire_format
        sig = sign_framed_content(
            cs, self._client.signature_private_key, wf, content, self._context
        )
        next_epoch, joiner = self._key_schedule(
            wire_format=wf,
            content=content,
            signature=sig,
            ctx=ctx,
            commit_secret=prepared.commit_secret if prepared else None,
            psks=applied.psks,
            init_secret=self._secrets.init_secret,
        )
        auth = AuthenticatedContent(
            wire_format=wf,
            content=content,
            auth=FramedContentAuthData(signature=sig, confirmation_tag=next_epoch[1]),
        )
        commit_bytes = self._wrap(auth)
        secrets, tag, interim, new_ctx = next_epoch
        staged = _Epoch(
            context=new_ctx,
            tree=diff,
            private=private,
            secrets=secrets,
            interim_transcript_hash=interim,
            confirmation_tag=tag,
            added=applied.added,
            removed=applied.removed,
            updated=applied.updated,
            committer=me,
            has_path=prepared is not None,
            reinit=applied.reinit,
            extensions_changed=applied.extensions != self._context.extensions,
            old_leaves=old_keys,
        )
        # A GroupInfo costs a signature and, with the tree, O(n) encoding: only on request.
        gi_bytes = (
            self._make_group_info(new_ctx, diff, secrets, tag, with_tree=True)
            if group_info
            else None
        )
        welcome = None
        if applied.added:
            welcome = self._make_welcome(
                new_ctx,
                diff,
                secrets,
                tag,
                joiner,
                applied,
                prepared,
            )
        out = CommitOutput(
            commit=commit_bytes, welcome=welcome, group_info=gi_bytes, epoch=new_ctx.epoch
        )
        self._pending = (staged, out)
        return out

    def merge_pending_commit(self, *, now: int | None = None) -> CommitMerged:
        """Install the epoch of our own pending commit (§12.4). ``now`` starts the previous
        epoch's grace period (``GroupConfig.past_epoch_grace``)."""
        if self._pending is None:
            raise InvalidState("no pending commit")
        staged, _ = self._pending
        self._pending = None
        return self._install(staged, now)

    def clear_pending_commit(self) -> None:
        self._pending = None

    def _make_group_info(
        self,
        ctx: GroupContext,
        tree: TreeView,
        secrets: EpochSecrets,
        tag: bytes,
        *,
        with_tree: bool,
        external_pub: bool = True,
    ) -> bytes:
        exts: list[Extension] = []
        if with_tree:
            exts.append(
                Extension(
                    extension_type=ExtensionType.ratchet_tree, extension_data=tree.encode_tree()
                )
            )
        if external_pub:
            _, pub = external_key_pair(self._cs, secrets.external_secret)
            exts.append(ExternalPub(external_pub=pub).to_extension())
        gi = GroupInfo(
            group_context=ctx,
            extensions=tuple(exts),
            confirmation_tag=tag,
            signer=self.own_leaf_index,
        ).sign(self._cs, self._client.signature_private_key)
        return MLSMessage(body=gi).to_bytes()

    def group_info(self, *, with_tree: bool = True, external_pub: bool = True) -> bytes:
        """A signed GroupInfo of the current epoch (§12.4.3), with ``external_pub`` and
        optionally the ``ratchet_tree`` extension, for external joins."""
        self._check_operational()
        return self._make_group_info(
            self._context,
            self._tree,
            self._secrets,
            self._confirmation_tag,
            with_tree=with_tree,
            external_pub=external_pub,
        )

    def _make_welcome(
        self,
        ctx: GroupContext,
        tree: TreeDiff,
        secrets: EpochSecrets,
        tag: bytes,
        joiner_secret: bytes,
        applied: _AppliedProposals,
        prepared: PreparedPath | None,
    ) -> bytes:
        cs = self._cs
        exts: list[Extension] = []
        if self._config.ratchet_tree_extension:
            exts.append(
                Extension(
                    extension_type=ExtensionType.ratchet_tree, extension_data=tree.encode_tree()
                )
            )
        gi = GroupInfo(
            group_context=ctx,
            extensions=tuple(exts),
            confirmation_tag=tag,
            signer=self.own_leaf_index,
        ).sign(cs, self._client.signature_private_key)
        psk_ids = tuple(pid for pid, _ in applied.psks)
        wsecret = secrets.welcome_secret
        encrypted_gi = encrypt_group_info(cs, wsecret, gi)
        entries: list[EncryptedGroupSecrets] = []
        for leaf_index, kp in zip(applied.added, applied.added_key_packages, strict=True):
            ps = prepared.path_secret_for_joiner(leaf_index) if prepared is not None else None
            gs = GroupSecrets(
                joiner_secret=joiner_secret,
                path_secret=PathSecret(path_secret=ps) if ps is not None else None,
                psks=psk_ids,
            )
            ct = encrypt_group_secrets(cs, kp.init_key, encrypted_gi, gs)
            entries.append(EncryptedGroupSecrets(new_member=kp.ref(cs), encrypted_group_secrets=ct))
        welcome = Welcome(
            cipher_suite=cs.suite_id, secrets=tuple(entries), encrypted_group_info=encrypted_gi
        )
        return MLSMessage(body=welcome).to_bytes()

    # -- shared commit machinery --------------------------------------------------------------

    def _key_schedule(
        self,
        *,
        wire_format: int,
        content: FramedContent,
        signature: bytes,
        ctx: GroupContext,
        commit_secret: bytes | None,
        psks: Sequence[tuple[PreSharedKeyID, bytes]],
        init_secret: bytes,
    ) -> tuple[tuple[EpochSecrets, bytes, bytes, GroupContext], bytes]:
        """Transcript hash, new GroupContext, epoch secrets, confirmation tag and interim hash
        for a commit (§8, §8.2). Returns ((secrets, tag, interim, context), joiner_secret)."""
        cs = self._cs
        confirmed = next_confirmed_transcript_hash(
            cs,
            self._interim,
            ConfirmedTranscriptHashInput(
                wire_format=wire_format, content=content, signature=signature
            ),
        )
        new_ctx = replace(ctx, confirmed_transcript_hash=confirmed)
        psk = psk_secret(cs, list(psks)) if psks else None
        secrets = derive_epoch_secrets(
            cs,
            init_secret=init_secret,
            commit_secret=commit_secret,
            psk_secret=psk,
            group_context=new_ctx.to_bytes(),
        )
        tag = confirmation_tag(cs, secrets.confirmation_key, confirmed)
        interim = next_interim_transcript_hash(cs, confirmed, tag)
        return (secrets, tag, interim, new_ctx), secrets.joiner_secret

    def _apply_proposals(
        self,
        entries: Sequence[ProposalEntry],
        *,
        committer: int | None,
        external: bool,
        now: int | None,
    ) -> _AppliedProposals:
        """Validate a proposal list (§12.2) and apply it to a diff of the tree (§12.3)."""
        tree = self._tree
        validate_proposal_list(
            entries,
            committer=committer,
            external=external,
            tree=tree,
            identity=self._identity,
            client_index=self._client_index()
            if any(isinstance(e.proposal, Add | Update) for e in entries)
            else None,
        )
        diff = tree.diff()
        extensions = self._context.extensions
        old_keys: dict[int, LeafNode | None] = {}
        path_required = False
        own_update_key: bytes | None = None
        gce = [e.proposal for e in entries if isinstance(e.proposal, GroupContextExtensions)]
        for e in entries:
            # Custom proposal types are treated as path-required: we cannot know they are safe
            # without one (§12.4, §17.4 "Path Required").
            if e.proposal.proposal_type in _PATH_REQUIRED or isinstance(e.proposal, CustomProposal):
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
                if i == self.own_leaf_index and e.ref is not None:
                    cached = self._proposals.get(e.ref)
                    own_update_key = cached.update_private_key if cached else None
        removed: list[int] = []
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
                psks.append((p.psk, self._resolve_psk(p.psk)))
        ext_init = next((e.proposal for e in entries if isinstance(e.proposal, ExternalInit)), None)
        reinit = next((e.proposal for e in entries if isinstance(e.proposal, ReInit)), None)
        assert ext_init is None or isinstance(ext_init, ExternalInit)
        assert reinit is None or isinstance(reinit, ReInit)
        return _AppliedProposals(
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
        )

    def _resolve_psk(self, pid: PreSharedKeyID) -> bytes:
        """The secret of a PSK id (§8.4): external from the client, resumption from history."""
        if pid.psktype == PSKType.external:
            secret = self._client.external_psk(pid.psk_id)
            if secret is None:
                raise InvalidPSK("unknown external PSK")
            return secret
        if self._linked is not None and pid == self._linked[0]:
            return self._linked[1]
        if pid.psktype == PSKType.resumption:
            if pid.psk_group_id != self.group_id:
                raise InvalidPSK("resumption PSK of another group")
            secret = self._resumption.get(pid.psk_epoch)
            if secret is None:
                raise InvalidPSK(f"no resumption PSK kept for epoch {pid.psk_epoch}")
            return secret
        raise InvalidPSK(f"unknown PSK type {pid.psktype}")

    # -- processing (§6, §12) -----------------------------------------------------------------

    def process(self, message: bytes, *, now: int | None = None) -> Event:
        """Process one message of this group and return what it was.

        Raises an :class:`~mls.errors.MLSError` (and changes nothing) if the message is invalid.
        """
        try:
            return self._process(message, now)
        except MLSError:
            raise
        except Exception as exc:  # every other exception escaping process() is a bug
            raise InternalError(f"{type(exc).__name__} while processing a message") from exc

    def _process(self, message: bytes, now: int | None) -> Event:
        msg = decode(MLSMessage, message)
        body = msg.body
        if isinstance(body, PrivateMessage):
            return self._process_private(body, now)
        if isinstance(body, PublicMessage):
            return self._process_public(body, now)
        raise InvalidContentType(
            f"wire format {msg.wire_format} is not a group message (use join for a Welcome)"
        )

    def _process_private(self, msg: PrivateMessage, now: int | None) -> Event:
        if msg.group_id != self.group_id:
            raise WrongGroup("message for another group")
        if msg.content_type != ContentType.application or self._status is GroupStatus.REMOVED:
            # A removed member deleted its keys (§12.4.2): it reads nothing more.
            self._check_accepts_handshake()
        cs = self._cs
        if msg.epoch == self.epoch:
            tree, sd_secret, ctx = (
                self._secret_tree,
                self._secrets.sender_data_secret,
                self._context,
            )
            past: _PastEpoch | None = None
        elif msg.content_type == ContentType.application and msg.epoch in self._past:
            past = self._past[msg.epoch]
            if self._past_expired(past, now):
                raise WrongEpoch(
                    f"epoch {msg.epoch} ended more than {self._config.past_epoch_grace} s ago",
                    expected=self.epoch,
                    got=msg.epoch,
                )
            tree, sd_secret, ctx = past.secret_tree, past.sender_data_secret, past.context
        else:
            raise WrongEpoch(
                f"message for epoch {msg.epoch}, group is at {self.epoch}",
                expected=self.epoch,
                got=msg.epoch,
            )
        # §6.3.2: reject a blank or unknown sender leaf before deriving any key.
        auth, pending = decrypt_private_message(
            cs, msg, tree, sd_secret, leaf_is_member=self._leaf_checker(past)
        )
        sender = auth.content.sender
        if sender.sender_type != SenderType.member:
            raise InvalidSender("a PrivateMessage sender must be a member (§6.3)")
        if sender.index == self.own_leaf_index and past is None:
            raise InvalidSender("a member does not process its own PrivateMessage")
        removed = False
        if past is not None:
            limit = past.removed_limits.get(sender.index)
            removed = limit is not None and pending.generation >= limit
            if removed and self._config.removed_sender_messages == "refuse":
                raise RemovedSender(
                    f"leaf {sender.index} was removed when we had seen generations below "
                    f"{limit} of epoch {msg.epoch}; generation {pending.generation} may have "
                    "been written after that"
                )
        sender_leaf = self._member_leaf(sender.index, past)
        auth.verify(cs, sender_leaf.signature_key, ctx)
        return self._dispatch(
            auth,
            now,
            lambda: tree.confirm_receive(pending),
            past,
            sender_leaf.credential,
            generation=pending.generation,
            sender_removed=removed,
        )

    def _process_public(self, msg: PublicMessage, now: int | None) -> Event:
        content = msg.content
        if content.group_id != self.group_id:
            raise WrongGroup("message for another group")
        self._check_accepts_handshake()
        if content.epoch != self.epoch:
            raise WrongEpoch(
                f"message for epoch {content.epoch}, group is at {self.epoch}",
                expected=self.epoch,
                got=content.epoch,
            )
        cs = self._cs
        auth = verify_membership_tag(cs, msg, self._secrets.membership_key, self._context)
        if auth.content.content_type == ContentType.application:
            raise InvalidContentType("application data must be sent as PrivateMessage (§6.2)")
        sender = auth.content.sender
        st = sender.sender_type
        if st == SenderType.member:
            if sender.index == self.own_leaf_index:
                raise InvalidSender("a member does not process its own handshake message")
            auth.verify(cs, self._member_leaf(sender.index, None).signature_key, self._context)
        elif st == SenderType.external:
            senders = ExternalSenders.find(self._context.extensions)
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
            auth.verify(cs, commit.path.leaf_node.signature_key, self._context)
        else:
            raise InvalidSender(f"unknown sender type {st}")
        return self._dispatch(auth, now, None, None)

    def _past_expired(self, past: _PastEpoch, now: int | None) -> bool:
        grace = self._config.past_epoch_grace
        return now is not None and past.retired_at is not None and now > past.retired_at + grace

    def _leaf_checker(self, past: _PastEpoch | None) -> Callable[[int], bool]:
        def is_member(leaf_index: int) -> bool:
            if past is not None and leaf_index in past.leaves:
                return past.leaves[leaf_index] is not None
            return 0 <= leaf_index < self._tree.n_leaves and self._tree.leaf(leaf_index) is not None

        return is_member

    def _client_index(self) -> dict[bytes, set[int]] | None:
        """Client key -> member leaves (§12.2 duplicate-Add check), built on first use (O(n))
        and then kept up to date per commit (O(changes))."""
        if self._clients is None:
            self._clients = build_client_index(self._identity, self._tree)
        return self._clients

    def _member_leaf(self, leaf_index: int, past: _PastEpoch | None) -> LeafNode:
        """The sender's LeafNode in the current epoch or, for a late message, in ``past``."""
        if past is not None and leaf_index in past.leaves:
            then = past.leaves[leaf_index]
            if then is None:
                raise UnknownSender(f"leaf {leaf_index} was blank in epoch {past.context.epoch}")
            return then
        if not 0 <= leaf_index < self._tree.n_leaves:
            raise UnknownSender(f"leaf {leaf_index} is outside the tree")
        leaf = self._tree.leaf(leaf_index)
        if leaf is None:
            raise UnknownSender(f"leaf {leaf_index} is blank")
        return leaf

    def _dispatch(
        self,
        auth: AuthenticatedContent,
        now: int | None,
        accept: Callable[[], None] | None,
        past: _PastEpoch | None,
        credential: Credential | None = None,
        *,
        generation: int = 0,
        sender_removed: bool = False,
    ) -> Event:
        content = auth.content
        body = content.content
        if isinstance(body, bytes):
            event: Event = ApplicationMessage(
                sender=content.sender.index,
                epoch=content.epoch,
                data=body,
                authenticated_data=content.authenticated_data,
                generation=generation,
                credential=credential,
                sender_removed=sender_removed,
            )
            _run(accept)
            return event
        if past is not None:
            raise InternalError("handshake message from a past epoch")
        if isinstance(body, Commit):
            staged = self._stage_commit(auth, body, now)
            _run(accept)
            return self._install(staged, now)
        # A proposal (§12.1): validate on its own, authorize, and cache by reference.
        self._validate(body, content.sender, self._checks(now, received=True))
        if isinstance(body, PreSharedKey):
            self._resolve_psk(body.psk)
        cached = _CachedProposal(body, content.sender)
        if not self._authorized(cached):
            raise UnauthorizedProposal(
                "the group's external_proposal_policy does not authorize this proposal (§12.1.8)"
            )
        ref = auth.proposal_ref(self._cs)
        _run(accept)
        self._proposals[ref] = cached
        return ProposalReceived(ref=ref, proposal=body, sender=content.sender, epoch=self.epoch)

    def _stage_commit(self, auth: AuthenticatedContent, commit: Commit, now: int | None) -> _Epoch:
        """Process a received commit into a staged next epoch (§12.4.2)."""
        cs = self._cs
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
                if external:
                    raise InvalidExternalInit("external commits carry no proposal references")
                cached = self._proposals.get(por.reference)
                if cached is None:
                    raise MissingProposal("commit references a proposal this member does not have")
                entries.append(ProposalEntry(cached.proposal, cached.sender, por.reference))
            else:
                assert por.proposal is not None
                if isinstance(por.proposal, Update):
                    raise InvalidUpdate("Update proposals cannot be committed by value (§12.4)")
                entries.append(ProposalEntry(por.proposal, sender, None))
        # §12.3: proposals by value are judged with the extensions the list sets.
        list_exts = _list_extensions([e.proposal for e in entries], self._context.extensions)
        checks = self._checks(now, received=True)
        for e in entries:
            if e.ref is None:
                self._validate(e.proposal, sender, checks, extensions=list_exts, in_commit=True)
        applied = self._apply_proposals(entries, committer=committer, external=external, now=now)
        if (applied.path_required or not entries) and commit.path is None:
            raise PathRequired("these proposals require an UpdatePath (§12.4)")
        diff = applied.diff
        me = self.own_leaf_index
        self_removed = me in applied.removed
        private = self._private
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
        init_secret = self._secrets.init_secret
        if external:
            assert applied.external_init is not None
            init_secret = self._external_init_secret(applied.external_init)
        ctx = GroupContext(
            cipher_suite=cs.suite_id,
            group_id=self.group_id,
            epoch=self.epoch + 1,
            tree_hash=b"",
            confirmed_transcript_hash=self._context.confirmed_transcript_hash,
            extensions=applied.extensions,
        )
        if commit.path is not None:
            path = commit.path
            if external:
                committer = diff.add_external_leaf_slot()
                old_keys.setdefault(committer, None)
                # §12.2: an external commit's Remove may only remove the joiner's old self.
                for r in applied.removed:
                    old_leaf = self._tree.leaf(r)
                    assert old_leaf is not None
                    if not self._identity.same_client(old_leaf, path.leaf_node):
                        raise InvalidExternalInit("an external commit removes another member")
                    # §5.3.1: the resync leaf's credential succeeds the removed one's.
                    if not self._identity.valid_successor(
                        old_leaf.credential, path.leaf_node.credential
                    ):
                        raise InvalidSuccessor("the resync leaf's credential is not a successor")
                    # §12.4.3.2: the path leaf meets the criteria of an Update of the removed
                    # leaf, so its encryption key is a new one (§7.3).
                    if path.leaf_node.encryption_key == old_leaf.encryption_key:
                        raise InvalidUpdate("the resync leaf keeps the removed leaf's key")
            assert committer is not None
            old_committer = self._tree.leaf(committer) if committer < self._tree.n_leaves else None
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
                identity=self._identity,
                group_id=self.group_id,
                leaf_index=committer,
                replaces=committer,
                checks=self._checks(now, received=True),
            )
            # §5.3.1: a path leaf that changes the credential (or a joiner's) names no other
            # member; an unchanged credential was unique already.
            if old_committer is None or path.leaf_node.credential != old_committer.credential:
                check_unique_client(
                    self._identity,
                    path.leaf_node,
                    tree=self._tree,
                    client_index=self._client_index(),
                    own=None if external else committer,
                    removed=applied.removed,
                )
            apply_update_path(diff, committer, path)
            ctx = replace(ctx, tree_hash=diff.tree_hash())
            if not self_removed:
                result = decrypt_update_path(
                    cs, diff, private, committer, path, ctx.to_bytes(), exclude=applied.added
                )
                commit_secret = result.commit_secret
                private = result.private
        else:
            ctx = replace(ctx, tree_hash=diff.tree_hash())
        if self_removed:
            # We cannot follow into the new epoch; the commit's signature was verified.
            return _Epoch(
                context=ctx,
                tree=diff,
                private=private,
                secrets=self._secrets,
                interim_transcript_hash=self._interim,
                confirmation_tag=self._confirmation_tag,
                removed=applied.removed,
                committer=committer,
                self_removed=True,
            )
        (secrets, tag, interim, new_ctx), _ = self._key_schedule(
            wire_format=auth.wire_format,
            content=content,
            signature=auth.auth.signature,
            ctx=ctx,
            commit_secret=commit_secret,
            psks=applied.psks,
            init_secret=init_secret,
        )
        got = auth.auth.confirmation_tag
        verify_confirmation_tag(
            cs, secrets.confirmation_key, new_ctx.confirmed_transcript_hash, got
        )
        added = applied.added
        if external:
            assert committer is not None
            added = (*added, committer)
        return _Epoch(
            context=new_ctx,
            tree=diff,
            private=private,
            secrets=secrets,
            interim_transcript_hash=interim,
            confirmation_tag=tag,
            added=added,
            removed=applied.removed,
            updated=applied.updated,
            committer=committer,
            has_path=commit.path is not None,
            reinit=applied.reinit,
            external=external,
            extensions_changed=applied.extensions != self._context.extensions,
            old_leaves=old_keys,
        )

    def _external_init_secret(self, ext: ExternalInit) -> bytes:
        """§8.3: init_secret from the joiner's ExternalInit kem_output."""
        cs = self._cs
        sk, _ = external_key_pair(cs, self._secrets.external_secret)
        try:
            ctx = cs.hpke.setup_receiver(0, ext.kem_output, sk, b"")
        except PeerError as exc:
            raise InvalidExternalInit("ExternalInit kem_output does not decapsulate") from exc
        return ctx.export(_EXTERNAL_INIT_LABEL, cs.hash_len)

    def _install(self, staged: _Epoch, now: int | None) -> CommitMerged:
        """Merge a staged epoch: the one assignment block that changes the group."""
        if staged.self_removed:
            # §12.4.2: a removed member "SHOULD promptly delete its group state and secret
            # tree": every secret goes; the public context and tree stay for inspection.
            self._status = GroupStatus.REMOVED
            self._proposals.clear()
            self._pending = None
            self._past.clear()
            self._resumption.clear()
            self._private = TreePrivate(self._private.leaf_index, {})
            self._secrets = _REMOVED_SECRETS
            self._secret_tree = SecretTree(self._cs, bytes(self._cs.hash_len), 1)
            self._clients = None
            return CommitMerged(
                epoch=staged.context.epoch,
                committer=staged.committer,
                removed=staged.removed,
                self_removed=True,
            )
        diff = staged.tree
        assert isinstance(diff, TreeDiff)
        # Keep the old epoch's application keys for late messages (§15.3), for a bounded
        # number of epochs and time (§9.2: then they are deleted).
        if self._config.past_epochs > 0:
            self._past[self.epoch] = _PastEpoch(
                context=self._context,
                secret_tree=self._secret_tree,
                sender_data_secret=self._secrets.sender_data_secret,
                leaves={},
                retired_at=now,
            )
            for past in self._past.values():
                for leaf, node in staged.old_leaves.items():
                    past.leaves.setdefault(leaf, node)
                for leaf in staged.removed:
                    past.removed_limits.setdefault(
                        leaf, past.secret_tree.next_generation(leaf, ContentType.application)
                    )
            while len(self._past) > self._config.past_epochs:
                self._past.popitem(last=False)
            for ep in [ep for ep, p in self._past.items() if self._past_expired(p, now)]:
                del self._past[ep]
        tree = diff.merge()
        self._tree = tree
        if self._clients is not None:
            update_client_index(self._clients, self._identity, staged.old_leaves, tree)
        self._context = staged.context
        self._private = staged.private
        self._interim = staged.interim_transcript_hash
        self._confirmation_tag = staged.confirmation_tag
        staged.tree = tree
        self._secret_tree = self._new_secret_tree(staged)
        self._secrets = _scrubbed(staged.secrets)
        self._proposals.clear()
        self._pending = None
        self._resumption[self.epoch] = self._secrets.resumption_psk
        while len(self._resumption) > max(1, self._config.resumption_psks):
            self._resumption.popitem(last=False)
        if staged.reinit is not None:
            self._status = GroupStatus.REINIT
            self._reinit = staged.reinit
        return CommitMerged(
            epoch=self.epoch,
            committer=staged.committer,
            added=staged.added,
            removed=staged.removed,
            updated=staged.updated,
            has_path=staged.has_path,
            reinit=staged.reinit,
            extensions_changed=staged.extensions_changed,
            external=staged.external,
        )

    # -- ReInit and branching (§11.2, §11.3) ----------------------------------------------------

    def reinit_group(
        self,
        client: Client,
        key_packages: Sequence[bytes | KeyPackage],
        *,
        config: GroupConfig | None = None,
        now: int | None = None,
    ) -> tuple[Group, CommitOutput]:
        """After a ReInit commit merged (status REINIT): create the new group the ReInit asks
        for and a first commit adding ``key_packages`` (the other members' KeyPackages in the new
        cipher suite) with the ``reinit`` resumption PSK of this group (§11.2). Merge the returned
        group's pending commit once the delivery service accepted it; send the Welcome."""
        r = self._reinit
        if self._status is not GroupStatus.REINIT or r is None:
            raise InvalidState("no ReInit was committed in this group")
        if client.suite.suite_id != r.cipher_suite:
            raise UsageError("the client's cipher suite must be the one the ReInit names")
        pid = PreSharedKeyID.resumption(
            ResumptionPSKUsage.reinit,
            self.group_id,
            self.epoch,
            client.suite.random(client.suite.hash_len),
        )
        new = Group.create(
            client,
            r.group_id,
            config=config or self._config,
            extensions=r.extensions,
            identity=self._identity,
            now=now,
        )
        return new, new._linked_commit(key_packages, pid, self._secrets.resumption_psk, now)

    def branch(
        self,
        group_id: bytes,
        key_packages: Sequence[bytes | KeyPackage],
        *,
        client: Client | None = None,
        config: GroupConfig | None = None,
        extensions: Sequence[Extension] | None = None,
        now: int | None = None,
    ) -> tuple[Group, CommitOutput]:
        """A subgroup with some of this group's members (§11.3): a new group whose first commit
        adds ``key_packages`` with a ``branch`` resumption PSK of the current epoch."""
        self._check_operational()
        client = client or self._client
        if client.suite.suite_id != self.cipher_suite:
            raise UsageError("a branch keeps the cipher suite of the group (§11.3)")
        pid = PreSharedKeyID.resumption(
            ResumptionPSKUsage.branch,
            self.group_id,
            self.epoch,
            self._cs.random(self._cs.hash_len),
        )
        new = Group.create(
            client,
            group_id,
            config=config or self._config,
            extensions=self.extensions if extensions is None else extensions,
            identity=self._identity,
            now=now,
        )
        return new, new._linked_commit(key_packages, pid, self._secrets.resumption_psk, now)

    def _linked_commit(
        self,
        key_packages: Sequence[bytes | KeyPackage],
        pid: PreSharedKeyID,
        secret: bytes,
        now: int | None,
    ) -> CommitOutput:
        self._linked = (pid, secret)
        try:
            return self.commit(add=key_packages, now=now)
        finally:
            self._linked = None

    def join_reinit(
        self,
        client: Client,
        welcome: bytes,
        *,
        ratchet_tree: bytes | None = None,
        config: GroupConfig | None = None,
        now: int | None = None,
    ) -> Group:
        """Join the group that replaces this one after a ReInit (§11.2, §12.4.3.1)."""
        r = self._reinit
        if self._status is not GroupStatus.REINIT or r is None:
            raise InvalidState("no ReInit was committed in this group")

        def check(group: Group) -> None:
            used = group._joined_with
            if used is None or used.usage != ResumptionPSKUsage.reinit:
                raise InvalidReInit("the Welcome does not carry this group's reinit PSK")
            ctx = group.context
            if (
                ctx.group_id != r.group_id
                or ctx.version != r.version
                or ctx.cipher_suite != r.cipher_suite
                or tuple(ctx.extensions) != tuple(r.extensions)
            ):
                raise InvalidReInit("the new group does not match the ReInit proposal (§12.4.3.1)")
            # §12.4.3.1: all members of the old group are members of the new one.
            if not all_matched(self._identity, self._tree, group.tree):
                raise InvalidReInit("a member of the old group is missing from the new group")

        return Group.join(
            client,
            welcome,
            ratchet_tree=ratchet_tree,
            config=config or self._config,
            identity=self._identity,
            now=now,
            resumption_psks={(self.group_id, self.epoch): self._secrets.resumption_psk},
            check=check,
        )

    def join_branch(
        self,
        client: Client,
        welcome: bytes,
        *,
        ratchet_tree: bytes | None = None,
        config: GroupConfig | None = None,
        now: int | None = None,
    ) -> Group:
        """Join a subgroup branched from this group (§11.3, §12.4.3.1)."""

        def check(group: Group) -> None:
            used = group._joined_with
            if used is None or used.usage != ResumptionPSKUsage.branch:
                raise InvalidPSK("the Welcome does not carry a branch PSK of this group")
            if (
                group.context.version != self._context.version
                or group.cipher_suite != self.cipher_suite
            ):
                raise InvalidWelcome("a branch keeps the version and cipher suite (§11.3)")
            # §11.3: every member of the subgroup matches a member of this group.
            if not all_matched(self._identity, group.tree, self._tree):
                raise InvalidWelcome("a subgroup member is not a member of the parent group")

        return Group.join(
            client,
            welcome,
            ratchet_tree=ratchet_tree,
            config=config or self._config,
            identity=self._identity,
            now=now,
            resumption_psks={(self.group_id, ep): s for ep, s in self._resumption.items()},
            check=check,
        )

    # -- proposals from outside the group (§12.1.8) ------------------------------------------

    @classmethod
    def new_member_proposal(
        cls, client: Client, group_info: bytes, *, now: int | None = None
    ) -> bytes:
        """An Add of ``client`` itself, sent as a ``new_member_proposal`` PublicMessage to the
        group the GroupInfo describes (§12.1.8). The KeyPackage's keys stay in the client's
        pool for the Welcome that follows the commit."""
        msg = decode(MLSMessage, group_info)
        gi = msg.body
        if not isinstance(gi, GroupInfo):
            raise DecodeError("expected an MLSMessage carrying a GroupInfo")
        cs = client.suite
        ctx = gi.group_context
        if ctx.cipher_suite != cs.suite_id:
            raise UsageError("the group uses another cipher suite than the client")
        kp = client.key_package(now or 0)
        content = FramedContent(
            group_id=ctx.group_id,
            epoch=ctx.epoch,
            sender=Sender.new_member_proposal(),
            content=Add(key_package=kp),
        )
        wf = WireFormat.mls_public_message
        sig = sign_framed_content(cs, client.signature_private_key, wf, content, None)
        auth = AuthenticatedContent(
            wire_format=wf, content=content, auth=FramedContentAuthData(signature=sig)
        )
        return MLSMessage(body=public_message_from(cs, auth, None, ctx)).to_bytes()

    # -- joining (§12.4.3) --------------------------------------------------------------------

    @classmethod
    def join(
        cls,
        client: Client,
        welcome: bytes,
        *,
        ratchet_tree: bytes | None = None,
        config: GroupConfig | None = None,
        identity: IdentityProvider | None = None,
        now: int | None = None,
        resumption_psks: dict[tuple[bytes, int], bytes] | None = None,
        check: Callable[[Group], None] | None = None,
    ) -> Group:
        """Join from a Welcome (§12.4.3.1). ``ratchet_tree`` is the §12.4.3.3 encoding when the
        Welcome's GroupInfo has no ``ratchet_tree`` extension. ``resumption_psks`` maps
        ``(group_id, epoch)`` to resumption secrets for ReInit/branch Welcomes."""
        try:
            return cls._join(
                client, welcome, ratchet_tree, config, identity, now, resumption_psks, check
            )
        except MLSError:
            raise
        except Exception as exc:
            raise InternalError(f"{type(exc).__name__} while joining") from exc

    @classmethod
    def _join(
        cls,
        client: Client,
        welcome_bytes: bytes,
        ratchet_tree: bytes | None,
        config: GroupConfig | None,
        identity: IdentityProvider | None,
        now: int | None,
        resumption_psks: dict[tuple[bytes, int], bytes] | None,
        check: Callable[[Group], None] | None = None,
    ) -> Group:
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
        config = config or GroupConfig()
        ident = identity or BasicIdentityProvider()
        tree = cls._verified_tree(client, gi, ratchet_tree, ident, config)
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
        interim = next_interim_transcript_hash(
            cs, ctx.confirmed_transcript_hash, gi.confirmation_tag
        )
        if special:
            if ctx.epoch != 1:
                raise InvalidWelcome("a reinit/branch Welcome must start at epoch 1 (§12.4.3.1)")
        epoch = _Epoch(
            context=ctx,
            tree=tree,
            private=private,
            secrets=secrets,
            interim_transcript_hash=interim,
            confirmation_tag=gi.confirmation_tag,
        )
        group = cls(client=client, cs=cs, config=config, epoch=epoch, identity=ident)
        group._joined_with = special[0] if special else None
        if check is not None:
            # Extra checks of the caller (ReInit, branch) run before the KeyPackage is spent.
            check(group)
        client.consume_key_package(entry.new_member)
        return group

    @classmethod
    def _verified_tree(
        cls,
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
        tree = cls._tree_for(cs, gi, ratchet_tree, missing, config.max_tree_leaves)
        signer = tree.leaf(gi.signer) if gi.signer < tree.n_leaves else None
        if signer is None:
            raise InvalidGroupInfo("GroupInfo signer is a blank or unknown leaf")
        gi.verify(cs, signer.signature_key)
        _check_joinable(client, ctx)
        validate_tree(
            cs,
            tree,
            group_id=ctx.group_id,
            tree_hash=ctx.tree_hash,
            required_capabilities=RequiredCapabilities.find(ctx.extensions),
            identity=identity,
        )
        return tree

    @staticmethod
    def _tree_for(
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

    @classmethod
    def external_join(
        cls,
        client: Client,
        group_info: bytes,
        *,
        ratchet_tree: bytes | None = None,
        config: GroupConfig | None = None,
        identity: IdentityProvider | None = None,
        psks: Sequence[bytes] = (),
        resync: bool = False,
        authenticated_data: bytes = b"",
        now: int | None = None,
    ) -> tuple[Group, bytes]:
        """Join by external commit (§12.4.3.2); returns the group and the commit to send.

        With ``resync``, the commit also removes this client's old leaf (same signature key).
        """
        try:
            return cls._external_join(
                client,
                group_info,
                ratchet_tree,
                config,
                identity,
                psks,
                resync,
                authenticated_data,
                now,
            )
        except MLSError:
            raise
        except Exception as exc:
            raise InternalError(f"{type(exc).__name__} during external join") from exc

    @classmethod
    def _external_join(
        cls,
        client: Client,
        group_info: bytes,
        ratchet_tree: bytes | None,
        config: GroupConfig | None,
        identity: IdentityProvider | None,
        psks: Sequence[bytes],
        resync: bool,
        authenticated_data: bytes,
        now: int | None,
    ) -> tuple[Group, bytes]:
        msg = decode(MLSMessage, group_info)
        gi = msg.body
        if not isinstance(gi, GroupInfo):
            raise DecodeError("expected an MLSMessage carrying a GroupInfo")
        cs = client.suite
        ctx = gi.group_context
        if ctx.cipher_suite != cs.suite_id:
            raise InvalidGroupInfo("GroupInfo cipher suite differs from the client's")
        config = config or GroupConfig()
        ident = identity or BasicIdentityProvider()
        tree = cls._verified_tree(client, gi, ratchet_tree, ident, config, InvalidGroupInfo)
        ext_pub = ExternalPub.find(gi.extensions)
        if ext_pub is None:
            raise InvalidGroupInfo("GroupInfo has no external_pub extension (§12.4.3.2)")
        # §8.3: init_secret exported from an HPKE context to external_pub.
        enc, hctx = cs.hpke.setup_sender(0, ext_pub.external_pub, b"", cs.random(cs.hpke_sk_len))
        init_secret = hctx.export(_EXTERNAL_INIT_LABEL, cs.hash_len)
        # A provisional member state: the joiner sits nowhere yet; build it on the tree.
        interim = next_interim_transcript_hash(
            cs, ctx.confirmed_transcript_hash, gi.confirmation_tag
        )
        # A public-only view of the group: the joiner knows the tree and the GroupContext but no
        # epoch secret. It is used to validate and apply the external commit's proposals and to
        # run the transcript and key schedule for the new epoch; its own secrets are unused.
        no_private = TreePrivate(0, {})
        no_secrets = EpochSecrets(
            joiner_secret=b"",
            welcome_secret=b"",
            sender_data_secret=b"",
            encryption_secret=bytes(cs.hash_len),
            exporter_secret=b"",
            external_secret=b"",
            confirmation_key=b"",
            membership_key=b"",
            resumption_psk=b"",
            epoch_authenticator=b"",
            init_secret=init_secret,
        )
        group = cls(
            client=client,
            cs=cs,
            config=config,
            epoch=_Epoch(
                context=ctx,
                tree=tree,
                private=no_private,
                secrets=no_secrets,
                interim_transcript_hash=interim,
                confirmation_tag=gi.confirmation_tag,
            ),
            identity=ident,
        )
        entries: list[ProposalEntry] = [
            ProposalEntry(ExternalInit(kem_output=enc), Sender.new_member_commit(), None)
        ]
        if resync:
            old = tree.find_signature_key(client.signature_public_key)
            if old is None:
                raise UsageError("resync: this client has no leaf in the group")
            entries.append(ProposalEntry(Remove(removed=old), Sender.new_member_commit(), None))
        for psk_id in psks:
            entries.append(
                ProposalEntry(
                    PreSharedKey(psk=group._external_psk_id(psk_id)),
                    Sender.new_member_commit(),
                    None,
                )
            )
        applied = group._apply_proposals(entries, committer=None, external=True, now=now)
        diff = applied.diff
        me = diff.add_external_leaf_slot()
        prepared = prepare_update_path(
            cs, diff, me, client.leaf_template(), client.signature_private_key, ctx.group_id
        )
        new_ctx = GroupContext(
            cipher_suite=cs.suite_id,
            group_id=ctx.group_id,
            epoch=ctx.epoch + 1,
            tree_hash=diff.tree_hash(),
            confirmed_transcript_hash=ctx.confirmed_transcript_hash,
            extensions=applied.extensions,
        )
        update_path = prepared.encrypt(cs, diff, new_ctx.to_bytes())
        commit = Commit(
            proposals=tuple(ProposalOrRef(proposal=e.proposal) for e in entries),
            path=update_path,
        )
        content = FramedContent(
            group_id=ctx.group_id,
            epoch=ctx.epoch,
            sender=Sender.new_member_commit(),
            authenticated_data=authenticated_data,
            content=commit,
        )
        wf = WireFormat.mls_public_message
        sig = sign_framed_content(cs, client.signature_private_key, wf, content, ctx)
        (secrets, tag, interim2, final_ctx), _ = group._key_schedule(
            wire_format=wf,
            content=content,
            signature=sig,
            ctx=new_ctx,
            commit_secret=prepared.commit_secret,
            psks=applied.psks,
            init_secret=init_secret,
        )
        auth = AuthenticatedContent(
            wire_format=wf,
            content=content,
            auth=FramedContentAuthData(signature=sig, confirmation_tag=tag),
        )
        commit_bytes = MLSMessage(body=public_message_from(cs, auth, None, ctx)).to_bytes()
        tree_after = diff.merge()
        joined = cls(
            client=client,
            cs=cs,
            config=config,
            epoch=_Epoch(
                context=final_ctx,
                tree=tree_after,
                private=prepared.private,
                secrets=secrets,
                interim_transcript_hash=interim2,
                confirmation_tag=tag,
            ),
            identity=ident,
        )
        return joined, commit_bytes


def _list_extensions(
    proposals: Sequence[Proposal], current: Sequence[Extension]
) -> Sequence[Extension]:
    """The GroupContext extensions a proposal list sets (§12.3), else the current ones."""
    for p in proposals:
        if isinstance(p, GroupContextExtensions):
            return p.extensions
    return current


def _usable_now(add: Add, now: int | None) -> bool:
    """A cached Add's KeyPackage is within its lifetime at ``now`` (§7.3, when committing)."""
    lifetime = add.key_package.leaf_node.lifetime
    return now is None or (lifetime is not None and lifetime.contains(now))


def _run(accept: Callable[[], None] | None) -> None:
    if accept is not None:
        accept()


def _check_joinable(client: Client, ctx: GroupContext) -> None:
    """A joiner supports the group's parameters (§12.4.3: GroupContext extensions "MUST be
    supported by the new joiner"; §11.1 required capabilities)."""
    caps = client.capabilities
    for ext in ctx.extensions:
        t = ext.extension_type
        if t not in DEFAULT_EXTENSION_TYPES and t not in caps.extensions:
            raise UnsupportedCapability(f"the group uses extension type {t:#06x} we do not support")
    if ctx.cipher_suite not in caps.cipher_suites:
        raise UnsupportedCapability(f"the group uses cipher suite {ctx.cipher_suite}")


_REMOVED_SECRETS = EpochSecrets(
    joiner_secret=b"",
    welcome_secret=b"",
    sender_data_secret=b"",
    encryption_secret=b"",
    exporter_secret=b"",
    external_secret=b"",
    confirmation_key=b"",
    membership_key=b"",
    resumption_psk=b"",
    epoch_authenticator=b"",
    init_secret=b"",
)


def _scrubbed(secrets: EpochSecrets) -> EpochSecrets:
    """The epoch secrets a member keeps once the epoch is set up (§9.2 forward secrecy):
    ``encryption_secret`` would re-derive every message key of the epoch, consumed ones
    included, and ``joiner_secret``/``welcome_secret`` lead to it; the secret tree holds what
    is still needed."""
    return replace(secrets, joiner_secret=b"", welcome_secret=b"", encryption_secret=b"")
