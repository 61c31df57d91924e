"""The sans-I/O group state machine (RFC 9420 §11, §12, §14, §15).

A :class:`Group` is one member's view of one group in one epoch. Local operations return bytes
(``protect``, ``propose_*``, ``commit``); ``process`` takes bytes and returns one typed event.
This module owns the mutable state and the lifecycle; each flow's steps live in their own
module (see :mod:`mls.group`).

Stage, then merge (§12.4.2). Processing a commit builds the next epoch aside in a
:class:`~mls.group.staged_commit.StagedCommit` without touching the current one; only when
every check passed does ``_merge`` swap it in. A rejected message therefore leaves the group
exactly as it was; this includes the secret-tree ratchets, whose keys are prepared first and
consumed only on acceptance.

Pipeline of ``process`` (parse, then verify)::

    bytes --decode--> MLSMessage --receive.unprotect_*--> VerifiedContent (+ accept)
          --_dispatch--> application | proposal (validated, cached) | commit (stage_commit)
          --accept--> event, ratchet key consumed, commit merged

Any exception other than an :class:`~mls.errors.MLSError` escaping ``process`` is a bug; it is
reported as :class:`~mls.errors.InternalError`.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import replace

from mls.codec import decode
from mls.constants import (
    ContentType,
    LeafNodeSource,
    ProtocolVersion,
    ResumptionPSKUsage,
    WireFormat,
)
from mls.credentials import Credential
from mls.crypto import CipherSuite
from mls.errors import (
    DecodeError,
    GroupReinitialized,
    InternalError,
    InvalidContentType,
    InvalidState,
    MemberRemoved,
    MLSError,
    UnauthorizedProposal,
    UnsupportedError,
    UsageError,
    WrongEpoch,
    WrongGroup,
)
from mls.extensions import Extension
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
    encrypt_private_message,
    protect_application_data,
    public_message_from,
)
from mls.framing.public import PublicMessage
from mls.group.client import Client
from mls.group.commit_builder import make_group_info, member_commit
from mls.group.config import GroupConfig
from mls.group.epoch import EpochState, GroupStatus, PastEpoch, PastEpochs
from mls.group.events import (
    ApplicationMessage,
    CommitMerged,
    CommitOutput,
    GroupEvent,
    ProposalReceived,
)
from mls.group.external import new_member_proposal
from mls.group.identity import BasicIdentityProvider, IdentityProvider
from mls.group.join import (
    StagedWelcome,
    check_branch_welcome,
    check_reinit_welcome,
    external_commit,
    stage_welcome,
)
from mls.group.proposal_list import (
    CachedProposal,
    ProposalContext,
    authorized,
    check_cacheable,
    external_psk_id,
    own_self_remove,
    resolve_psk,
)
from mls.group.receive import Received, unprotect_private, unprotect_public
from mls.group.snapshot import GroupSnapshot
from mls.group.staged_commit import StagedCommit, stage_commit
from mls.group.validation import (
    Checks,
    build_client_index,
    self_remove_capable,
    update_client_index,
)
from mls.messages.commit import Commit
from mls.messages.key_package import KeyPackage
from mls.messages.proposals import (
    Add,
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
from mls.schedule.key_schedule import mls_exporter
from mls.tree.ratchet_tree import RatchetTree
from mls.tree.treekem import TreePrivate

__all__ = ["Group", "GroupStatus"]

#: The old name of :data:`~mls.group.events.GroupEvent` (``mls.app`` imports it).
Event = GroupEvent


class Group:
    """One member's state of one MLS group. Create with :meth:`create`, :meth:`join` or
    :meth:`external_join`; never construct directly."""

    def __init__(
        self,
        *,
        client: Client,
        cs: CipherSuite,
        config: GroupConfig,
        epoch: EpochState,
        identity: IdentityProvider | None = None,
    ) -> None:
        self._client = client
        self._cs = cs
        self._config = config
        self._identity: IdentityProvider = identity or BasicIdentityProvider()
        self._enter(epoch)
        self._status = GroupStatus.OPERATIONAL
        self._proposals: OrderedDict[bytes, CachedProposal] = OrderedDict()
        self._pending: tuple[StagedCommit, CommitOutput] | None = None
        self._past = PastEpochs()
        self._resumption: OrderedDict[int, bytes] = OrderedDict()
        self._resumption[self._context.epoch] = self._secrets.resumption_psk
        self._reinit: ReInit | None = None
        self._clients: dict[bytes, set[int]] | None = None

    def _enter(self, epoch: EpochState) -> None:
        """Make ``epoch`` the current epoch: the one place that sets the epoch's fields (kept
        as attributes, not one ``EpochState`` field, for the hot paths and their readers)."""
        self._context = epoch.context
        self._tree: RatchetTree = epoch.tree
        self._private = epoch.private
        self._secrets = epoch.secrets
        self._secret_tree = epoch.secret_tree
        self._interim = epoch.interim_transcript_hash
        self._confirmation_tag = epoch.confirmation_tag

    def _epoch_state(self) -> EpochState:
        return EpochState(
            context=self._context,
            tree=self._tree,
            private=self._private,
            secrets=self._secrets,
            secret_tree=self._secret_tree,
            interim_transcript_hash=self._interim,
            confirmation_tag=self._confirmation_tag,
        )

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
        pc = self._proposal_context()
        for ref in [r for r, c in self._proposals.items() if not authorized(c, pc)]:
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
        """The whole member state as versioned CBOR (see :mod:`mls.group.snapshot`)."""
        return GroupSnapshot(
            suite_id=self._cs.suite_id,
            config=self._config,
            epoch=self._epoch_state(),
            status=self._status,
            reinit=self._reinit,
            proposals=tuple(self._proposals.items()),
            past=tuple(self._past.items()),
            resumption=tuple(self._resumption.items()),
        ).to_bytes()

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
        snap = GroupSnapshot.from_bytes(data, client.suite, config)
        group = cls(
            client=client, cs=client.suite, config=snap.config, epoch=snap.epoch, identity=identity
        )
        group._status = snap.status
        group._reinit = snap.reinit
        group._proposals = OrderedDict(snap.proposals)
        group._past = PastEpochs(snap.past)
        group._resumption = OrderedDict(snap.resumption)
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
        epoch = EpochState.first(
            cs,
            config,
            group_id=group_id,
            extensions=tuple(extensions),
            tree=RatchetTree.create(cs, leaf),
            private=TreePrivate.for_leaf(cs, 0, enc_sk, enc_pk),
        )
        return cls(client=client, cs=cs, config=config, epoch=epoch, identity=identity)

    # -- lifecycle: what each status allows (every status check is here) ----------------------

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

    def _check_can_commit(self) -> None:
        self._check_operational()
        if self._pending is not None:
            raise InvalidState("a commit is already pending: merge or clear it first")

    def _check_can_send_data(self) -> None:
        self._check_operational()
        if self._proposals:
            # §12.4: a member that observed valid proposals MUST commit before sending data.
            raise InvalidState("pending proposals must be committed before sending data")

    # -- sending ------------------------------------------------------------------------------

    def protect(self, plaintext: bytes, authenticated_data: bytes = b"") -> bytes:
        """An application message as a PrivateMessage (§15)."""
        self._check_can_send_data()
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

    # -- proposals (§12.1) --------------------------------------------------------------------

    def _propose(
        self, proposal: Proposal, update_key: bytes | None = None, *, private: bool | None = None
    ) -> bytes:
        self._check_operational()
        content = FramedContent(
            group_id=self.group_id,
            epoch=self.epoch,
            sender=Sender.member(self.own_leaf_index),
            content=proposal,
        )
        cs = self._cs
        auth = self._signed(
            content, private=self._config.private_handshake if private is None else private
        )
        data = self._wrap(auth)
        self._proposals[auth.proposal_ref(cs)] = CachedProposal(
            proposal, content.sender, update_key
        )
        return data

    def propose_add(self, key_package: bytes | KeyPackage, *, now: int | None = None) -> bytes:
        kp = self._parse_key_package(key_package)
        self._validate_own_proposal(Add(key_package=kp), now)
        return self._propose(Add(key_package=kp))

    def _check_removable(self, leaf_index: int, *, proposal: bool = False) -> None:
        # A local request to remove a blank, unknown or (by commit) our own leaf is misuse.
        if not 0 <= leaf_index < self._tree.n_leaves or self._tree.leaf(leaf_index) is None:
            raise UsageError(f"leaf {leaf_index} is not a member")
        if leaf_index == self.own_leaf_index and not proposal:
            raise UsageError("a member cannot remove itself by commit (§12.2); ask another member")

    def propose_remove(self, leaf_index: int) -> bytes:
        """A Remove proposal; of our own leaf too (§12.2 forbids only committing it): another
        member's commit removes us."""
        self._check_removable(leaf_index, proposal=True)
        p = Remove(removed=leaf_index)
        self._validate_own_proposal(p, None)
        return self._propose(p)

    @property
    def self_remove_capable(self) -> bool:
        """Every member supports SelfRemove (draft-ietf-mls-extensions)."""
        return self_remove_capable(self._tree)

    def propose_self_remove(self) -> bytes:
        """A SelfRemove proposal (draft-ietf-mls-extensions): the next commit by any member,
        or an external joiner, removes us. Always a PublicMessage, at most one per epoch; in a
        group that is not self-remove-capable, :class:`UnsupportedError` (propose a Remove
        of :attr:`own_leaf_index` instead)."""
        self._check_operational()
        if not self.self_remove_capable:
            raise UnsupportedError(
                "not every member supports SelfRemove: propose_remove(own_leaf_index) instead"
            )
        if any(own_self_remove(c, self.own_leaf_index) for c in self._proposals.values()):
            raise InvalidState("a SelfRemove was already sent this epoch")
        return self._propose(SelfRemove(), private=False)

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

    def propose_resumption_psk(self, epoch: int) -> bytes:
        """A PreSharedKey proposal of this group's resumption PSK of ``epoch`` (usage
        ``application``, §8.6); the epoch's PSK must still be kept."""
        if self.resumption_psk(epoch) is None:
            raise UsageError(f"no resumption PSK kept for epoch {epoch}")
        cs = self._cs
        pid = PreSharedKeyID.resumption(
            ResumptionPSKUsage.application, self.group_id, epoch, cs.random(cs.hash_len)
        )
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
        self._proposal_context().validate(
            p, Sender.member(self.own_leaf_index), self._checks(now, received=False)
        )

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

    def _proposal_context(
        self, linked: tuple[PreSharedKeyID, bytes] | None = None
    ) -> ProposalContext:
        """The current epoch as proposal validation sees it; ``linked`` is the ReInit/branch
        PSK of a new group's first commit (§11.2, §11.3)."""
        return ProposalContext(
            cs=self._cs,
            context=self._context,
            tree=self._tree,
            identity=self._identity,
            config=self._config,
            client_index=self._client_index,
            resolve_psk=lambda pid: resolve_psk(
                pid,
                external=self._client.external_psk,
                group_id=self.group_id,
                resumption=self._resumption,
                linked=linked,
            ),
        )

    def _client_index(self) -> dict[bytes, set[int]] | None:
        """Client key -> member leaves (§12.2 duplicate-Add check), built on first use (O(n))
        and then kept up to date per commit (O(changes))."""
        if self._clients is None:
            self._clients = build_client_index(self._identity, self._tree)
        return self._clients

    def _parse_key_package(self, key_package: bytes | KeyPackage) -> KeyPackage:
        if isinstance(key_package, KeyPackage):
            return key_package
        msg = decode(MLSMessage, key_package)
        if not isinstance(msg.body, KeyPackage):
            raise DecodeError("expected an MLSMessage carrying a KeyPackage")
        return msg.body

    def _external_psk_id(self, psk_id: bytes) -> PreSharedKeyID:
        return external_psk_id(self._cs, self._client.external_psk, psk_id)

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
        self._check_can_commit()
        cs = self._cs
        by_value: list[Proposal] = list(proposals)
        by_value += [Add(key_package=self._parse_key_package(k)) for k in add]
        for i in remove:
            self._check_removable(i)
        by_value += [Remove(removed=i) for i in remove]
        by_value += [PreSharedKey(psk=self._external_psk_id(p)) for p in psks]
        for usage, ep in resumption_psks:
            pid = PreSharedKeyID.resumption(usage, self.group_id, ep, cs.random(cs.hash_len))
            by_value.append(PreSharedKey(psk=pid))
        if extensions is not None:
            by_value.append(GroupContextExtensions(extensions=tuple(extensions)))
        if reinit is not None:
            by_value.append(reinit)
        return self._commit(
            by_value,
            include_pending=include_pending,
            path=path,
            group_info=group_info,
            authenticated_data=authenticated_data,
            now=now,
        )

    def _commit(
        self,
        by_value: Sequence[Proposal],
        *,
        include_pending: bool = True,
        path: bool | None = None,
        group_info: bool = False,
        authenticated_data: bytes = b"",
        now: int | None = None,
        linked: tuple[PreSharedKeyID, bytes] | None = None,
    ) -> CommitOutput:
        """:meth:`commit` of proposals by value, plus the ``linked`` ReInit/branch PSK of a
        new group's first commit (§11.2, §11.3)."""
        self._check_can_commit()
        staged, out = member_commit(
            self._proposal_context(linked),
            self._epoch_state(),
            store=self._proposals if include_pending else {},
            by_value=by_value,
            linked=linked,
            path=path,
            checks=self._checks(now, received=False),
            now=now,
            signature_private_key=self._client.signature_private_key,
            wire_format=self._handshake_wire_format,
            authenticated_data=authenticated_data,
            wrap=self._wrap,
            group_info=group_info,
            ratchet_tree_extension=self._config.ratchet_tree_extension,
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
        return self._merge(staged, now)

    def clear_pending_commit(self) -> None:
        self._pending = None

    def group_info(self, *, with_tree: bool = True, external_pub: bool = True) -> bytes:
        """A signed GroupInfo of the current epoch (§12.4.3), with ``external_pub`` and
        optionally the ``ratchet_tree`` extension, for external joins."""
        self._check_operational()
        return make_group_info(
            self._cs,
            self._context,
            self._tree,
            self._secrets,
            self._confirmation_tag,
            signer=self.own_leaf_index,
            signature_private_key=self._client.signature_private_key,
            with_tree=with_tree,
            external_pub=external_pub,
        )

    # -- processing (§6, §12) -----------------------------------------------------------------

    def process(self, message: bytes, *, now: int | None = None) -> GroupEvent:
        """Process one message of this group and return what it was.

        Raises an :class:`~mls.errors.MLSError` (and changes nothing) if the message is invalid.
        """
        try:
            return self._process(message, now)
        except MLSError:
            raise
        except Exception as exc:  # every other exception escaping process() is a bug
            raise InternalError(f"{type(exc).__name__} while processing a message") from exc

    def _process(self, message: bytes, now: int | None) -> GroupEvent:
        msg = decode(MLSMessage, message)
        body = msg.body
        if isinstance(body, PrivateMessage):
            return self._dispatch(self._receive_private(body, now), now)
        if isinstance(body, PublicMessage):
            return self._dispatch(self._receive_public(body), now)
        raise InvalidContentType(
            f"wire format {msg.wire_format} is not a group message (use join for a Welcome)"
        )

    def _receive_private(self, msg: PrivateMessage, now: int | None) -> Received:
        if msg.group_id != self.group_id:
            raise WrongGroup("message for another group")
        if msg.content_type != ContentType.application or self._status is GroupStatus.REMOVED:
            # A removed member deleted its keys (§12.4.2): it reads nothing more.
            self._check_accepts_handshake()
        if msg.epoch == self.epoch:
            tree, sd_secret, ctx = (
                self._secret_tree,
                self._secrets.sender_data_secret,
                self._context,
            )
            past: PastEpoch | None = None
        elif msg.content_type == ContentType.application and msg.epoch in self._past:
            past = self._past[msg.epoch]
            if past.expired(now, self._config.past_epoch_grace):
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
        return unprotect_private(
            self._cs,
            msg,
            secret_tree=tree,
            sender_data_secret=sd_secret,
            context=ctx,
            tree=self._tree,
            past=past,
            own_leaf=self.own_leaf_index,
            refuse_removed=self._config.removed_sender_messages == "refuse",
        )

    def _receive_public(self, msg: PublicMessage) -> Received:
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
        return unprotect_public(
            self._cs,
            msg,
            membership_key=self._secrets.membership_key,
            context=self._context,
            tree=self._tree,
            own_leaf=self.own_leaf_index,
        )

    def _dispatch(self, received: Received, now: int | None) -> GroupEvent:
        auth = received.content
        accept = received.accept
        content = auth.content
        body = content.content
        if isinstance(body, bytes):
            event = ApplicationMessage(
                sender=content.sender.index,
                epoch=content.epoch,
                data=body,
                authenticated_data=content.authenticated_data,
                generation=received.generation,
                credential=received.credential,
                sender_removed=received.sender_removed,
            )
            if accept is not None:
                accept()
            return event
        if received.past is not None:
            raise InternalError("handshake message from a past epoch")
        pc = self._proposal_context()
        if isinstance(body, Commit):
            staged = stage_commit(
                pc,
                self._epoch_state(),
                auth,
                body,
                store=self._proposals,
                checks=self._checks(now, received=True),
            )
            if accept is not None:
                accept()
            return self._merge(staged, now)
        # A proposal (§12.1): validate on its own, authorize, and cache by reference.
        pc.validate(
            body, content.sender, self._checks(now, received=True), wire_format=auth.wire_format
        )
        if isinstance(body, PreSharedKey):
            pc.resolve_psk(body.psk)
        cached = CachedProposal(body, content.sender)
        if not authorized(cached, pc):
            raise UnauthorizedProposal(
                "the group's external_proposal_policy does not authorize this proposal (§12.1.8)"
            )
        ref = auth.proposal_ref(self._cs)
        check_cacheable(ref, cached, self._proposals)
        if accept is not None:
            accept()
        self._proposals[ref] = cached
        return ProposalReceived(ref=ref, proposal=body, sender=content.sender, epoch=self.epoch)

    def _merge(self, staged: StagedCommit, now: int | None) -> CommitMerged:
        """Merge a staged epoch: the current epoch is replaced in one step (``_enter``); the
        stores beside it (past epochs, proposals, resumption PSKs, client index) follow."""
        if staged.self_removed:
            # §12.4.2: a removed member "SHOULD promptly delete its group state and secret
            # tree": every secret goes; the public context and tree stay for inspection.
            self._status = GroupStatus.REMOVED
            self._proposals.clear()
            self._pending = None
            self._past.clear()
            self._resumption.clear()
            self._enter(self._epoch_state().forgotten(self._cs))
            self._clients = None
            return CommitMerged(
                epoch=staged.context.epoch,
                committer=staged.committer,
                removed=staged.removed,
                self_removed=True,
            )
        # Keep the old epoch's application keys for late messages (§15.3), for a bounded
        # number of epochs and time (§9.2: then they are deleted).
        if self._config.past_epochs > 0:
            past = PastEpoch(
                context=self._context,
                secret_tree=self._secret_tree,
                sender_data_secret=self._secrets.sender_data_secret,
                retired_at=now,
            )
            self._past.retire(
                self.epoch,
                past,
                old_leaves=staged.old_leaves,
                removed=staged.removed,
                config=self._config,
                now=now,
            )
        tree = staged.tree.merge()
        if self._clients is not None:
            update_client_index(self._clients, self._identity, staged.old_leaves, tree)
        self._enter(staged.merged(self._cs, self._config, tree))
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
        linked = (pid, self._secrets.resumption_psk)
        by_value = [Add(key_package=new._parse_key_package(k)) for k in key_packages]
        return new, new._commit(by_value, now=now, linked=linked)

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
        linked = (pid, self._secrets.resumption_psk)
        by_value = [Add(key_package=new._parse_key_package(k)) for k in key_packages]
        return new, new._commit(by_value, now=now, linked=linked)

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
        identity, old_tree = self._identity, self._tree
        return Group._join(
            client,
            welcome,
            ratchet_tree=ratchet_tree,
            config=config or self._config,
            identity=self._identity,
            resumption_psks={(self.group_id, self.epoch): self._secrets.resumption_psk},
            check=lambda staged, group: check_reinit_welcome(
                staged.joined_with,
                group.context,
                group.tree,
                reinit=r,
                identity=identity,
                old_tree=old_tree,
            ),
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
        parent, identity, parent_tree = self._context, self._identity, self._tree
        return Group._join(
            client,
            welcome,
            ratchet_tree=ratchet_tree,
            config=config or self._config,
            identity=self._identity,
            resumption_psks={(self.group_id, ep): s for ep, s in self._resumption.items()},
            check=lambda staged, group: check_branch_welcome(
                staged.joined_with,
                group.context,
                group.tree,
                parent=parent,
                identity=identity,
                parent_tree=parent_tree,
            ),
        )

    # -- proposals from outside the group (§12.1.8) ------------------------------------------

    @classmethod
    def new_member_proposal(
        cls, client: Client, group_info: bytes, *, now: int | None = None
    ) -> bytes:
        """An Add of ``client`` itself, sent as a ``new_member_proposal`` PublicMessage to the
        group the GroupInfo describes (§12.1.8). The KeyPackage's keys stay in the client's
        pool for the Welcome that follows the commit."""
        return new_member_proposal(client, group_info, now=now)

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
        return cls._join(
            client,
            welcome,
            ratchet_tree=ratchet_tree,
            config=config,
            identity=identity,
            resumption_psks=resumption_psks,
            check=None if check is None else lambda _, group: check(group),
        )

    @classmethod
    def _join(
        cls,
        client: Client,
        welcome: bytes,
        *,
        ratchet_tree: bytes | None,
        config: GroupConfig | None,
        identity: IdentityProvider | None,
        resumption_psks: dict[tuple[bytes, int], bytes] | None,
        check: Callable[[StagedWelcome, Group], None] | None,
    ) -> Group:
        """:meth:`join` with a ``check`` that also sees what the Welcome used (ReInit, branch);
        extra checks run before the KeyPackage is spent."""
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
            cs = client.suite
            epoch = staged.epoch_state(cs, config)
            group = cls(client=client, cs=cs, config=config, epoch=epoch, identity=ident)
            if check is not None:
                check(staged, group)
            client.consume_key_package(staged.key_package_ref)
            return group
        except MLSError:
            raise
        except Exception as exc:
            raise InternalError(f"{type(exc).__name__} while joining") from exc

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
        self_removes: Sequence[bytes] = (),
    ) -> tuple[Group, bytes]:
        """Join by external commit (§12.4.3.2); returns the group and the commit to send.

        With ``resync``, the commit also removes this client's old leaf (same signature key).
        ``self_removes``: the group's pending SelfRemove proposals (draft-ietf-mls-extensions),
        each validated and committed by reference.
        """
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
            group = cls(client=client, cs=client.suite, config=config, epoch=epoch, identity=ident)
            return group, commit_bytes
        except MLSError:
            raise
        except Exception as exc:
            raise InternalError(f"{type(exc).__name__} during external join") from exc
