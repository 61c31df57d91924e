"""The sans-I/O group state machine (RFC 9420 §11, §12, §14, §15).

A :class:`Group` is one member's view of one group in one epoch. Local operations return bytes
(``protect``, ``propose_*``, ``commit``); ``process`` takes bytes and returns one typed event.
This module owns the mutable state and the public operations; each flow's steps live in their
own module and work on explicit inputs (the module map and the pipeline: :mod:`mls.group`).

Stage, then merge (§12.4.2): a commit's next epoch is built aside in a
:class:`~mls.group.staged_commit.StagedCommit`; only when every check passed does ``_merge``
swap it in, so a rejected message leaves the group exactly as it was, ratchet keys included
(they are consumed only on acceptance). Any exception other than an
:class:`~mls.errors.MLSError` escaping ``process`` is a bug, reported as
:class:`~mls.errors.InternalError`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from mls.codec import decode
from mls.constants import ProtocolVersion, ResumptionPSKUsage, WireFormat
from mls.errors import InternalError, InvalidState, MLSError, UsageError
from mls.extensions import Extension
from mls.framing.content import AuthenticatedContent, Sender
from mls.framing.message import MLSMessage
from mls.framing.protection import protect_application_data
from mls.group.client import Client
from mls.group.commit_builder import make_group_info, member_commit
from mls.group.config import GroupConfig
from mls.group.creation import (
    branch_psk,
    branch_welcome_check,
    first_epoch,
    reinit_psk,
    reinit_welcome_check,
)
from mls.group.epoch import EpochState, GroupStatus
from mls.group.events import CommitMerged, CommitOutput, GroupEvent
from mls.group.external import new_member_proposal
from mls.group.identity import IdentityProvider
from mls.group.incoming import application_event, receive_proposal, unprotect_message
from mls.group.join import join_by_external_commit, join_by_welcome
from mls.group.lifecycle import (
    check_can_commit,
    check_can_send_data,
    check_operational,
    committed_reinit,
    merge_commit,
)
from mls.group.member_state import MemberState
from mls.group.outgoing import (
    check_removable,
    check_self_remove,
    checks_for,
    commit_proposals,
    frame,
    member_proposal,
    parse_key_package,
    proposal_context,
    update_proposal,
)
from mls.group.proposal_list import (
    CachedProposal,
    ProposalContext,
    authorized,
    external_psk_id,
)
from mls.group.receive import Received
from mls.group.staged_commit import StagedCommit, stage_commit
from mls.group.validation import build_client_index
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
)

__all__ = ["Group", "GroupStatus"]

#: The old name of :data:`~mls.group.events.GroupEvent` (``mls.app`` imports it).
Event = GroupEvent


class Group(MemberState):
    """One member's state of one MLS group. Create with :meth:`create`, :meth:`join` or
    :meth:`external_join`; never construct directly. The state and its accessors are
    :class:`~mls.group.member_state.MemberState`'s; the operations are here."""

    def set_config(self, config: GroupConfig) -> None:
        """Change the group's options. Cached proposals from outside the group that the new
        ``external_proposal_policy`` does not authorize are dropped."""
        self._config = config
        pc = self._proposal_context()
        for ref in [r for r, c in self._proposals.items() if not authorized(c, pc)]:
            del self._proposals[ref]

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
        epoch = first_epoch(
            client,
            group_id,
            config=config,
            extensions=extensions,
            leaf_extensions=leaf_extensions,
            now=now,
        )
        return cls(client=client, cs=client.suite, config=config, epoch=epoch, identity=identity)

    @classmethod
    def _builder(
        cls, client: Client
    ) -> Callable[[EpochState, GroupConfig, IdentityProvider], Group]:
        """Builds ``client``'s group from a joined epoch (:mod:`mls.group.join`)."""
        return lambda epoch, config, identity: cls(
            client=client, cs=client.suite, config=config, epoch=epoch, identity=identity
        )

    # -- sending (status checks: mls.group.lifecycle) --------------------------------------------

    def protect(self, plaintext: bytes, authenticated_data: bytes = b"") -> bytes:
        """An application message as a PrivateMessage (§15)."""
        check_can_send_data(self._status, proposals=bool(self._proposals))
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

    def _wrap(self, auth: AuthenticatedContent) -> bytes:
        return frame(
            self._cs,
            auth,
            secret_tree=self._secret_tree,
            secrets=self._secrets,
            context=self._context,
            padding=self._config.padding_block,
        )

    # -- proposals (§12.1; built in mls.group.outgoing) ----------------------------------------

    def _propose(
        self, proposal: Proposal, update_key: bytes | None = None, *, private: bool | None = None
    ) -> bytes:
        check_operational(self._status)
        private = self._config.private_handshake if private is None else private
        key, leaf = self._client.signature_private_key, self.own_leaf_index
        ref, data = member_proposal(
            self._cs, key, self._context, leaf, proposal, private=private, wrap=self._wrap
        )
        self._proposals[ref] = CachedProposal(proposal, Sender.member(leaf), update_key)
        return data

    def propose_add(self, key_package: bytes | KeyPackage, *, now: int | None = None) -> bytes:
        kp = parse_key_package(key_package)
        self._validate_own_proposal(Add(key_package=kp), now)
        return self._propose(Add(key_package=kp))

    def propose_remove(self, leaf_index: int) -> bytes:
        """A Remove proposal; of our own leaf too (§12.2 forbids only committing it): another
        member's commit removes us."""
        check_removable(self._tree, leaf_index, own_leaf=self.own_leaf_index, proposal=True)
        p = Remove(removed=leaf_index)
        self._validate_own_proposal(p, None)
        return self._propose(p)

    def propose_self_remove(self) -> bytes:
        """A SelfRemove proposal (draft-ietf-mls-extensions): the next commit by any member,
        or an external joiner, removes us. Always a PublicMessage, at most one per epoch; in a
        group that is not self-remove-capable, :class:`UnsupportedError` (propose a Remove
        of :attr:`own_leaf_index` instead)."""
        check_operational(self._status)
        check_self_remove(self._tree, self._proposals, self.own_leaf_index)
        return self._propose(SelfRemove(), private=False)

    def propose_update(self) -> bytes:
        old = self._tree.leaf(self.own_leaf_index)
        assert old is not None
        key, leaf = self._client.signature_private_key, self.own_leaf_index
        update, sk = update_proposal(self._cs, old, key, self.group_id, leaf)
        return self._propose(update, update_key=sk)

    def propose_psk(self, psk_id: bytes) -> bytes:
        pid = external_psk_id(self._cs, self._client.external_psk, psk_id)
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
        checks = checks_for(self._config, now, received=False)
        self._proposal_context().validate(p, Sender.member(self.own_leaf_index), checks)

    def _proposal_context(
        self, linked: tuple[PreSharedKeyID, bytes] | None = None
    ) -> ProposalContext:
        """The current epoch as proposal validation sees it (``linked``: see ``_commit``)."""
        return proposal_context(
            self._cs,
            self._context,
            self._tree,
            identity=self._identity,
            config=self._config,
            client_index=self._client_index,
            external=self._client.external_psk,
            resumption=self._resumption,
            linked=linked,
        )

    def _client_index(self) -> dict[bytes, set[int]] | None:
        """Client key -> member leaves (§12.2 duplicate-Add check), built on first use (O(n))
        and then kept up to date per commit (O(changes))."""
        if self._clients is None:
            self._clients = build_client_index(self._identity, self._tree)
        return self._clients

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
        check_can_commit(self._status, pending=self._pending is not None)
        by_value = commit_proposals(
            self._cs,
            self._tree,
            self.group_id,
            own_leaf=self.own_leaf_index,
            external=self._client.external_psk,
            proposals=proposals,
            add=add,
            remove=remove,
            psks=psks,
            resumption_psks=resumption_psks,
            extensions=extensions,
            reinit=reinit,
        )
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
        check_can_commit(self._status, pending=self._pending is not None)
        staged, out = member_commit(
            self._proposal_context(linked),
            self._epoch_state(),
            store=self._proposals if include_pending else {},
            by_value=by_value,
            linked=linked,
            path=path,
            checks=checks_for(self._config, now, received=False),
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
        check_operational(self._status)
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
        received = unprotect_message(
            self._cs,
            decode(MLSMessage, message),
            status=self._status,
            context=self._context,
            tree=self._tree,
            secret_tree=self._secret_tree,
            secrets=self._secrets,
            past_epochs=self._past,
            config=self._config,
            own_leaf=self.own_leaf_index,
            now=now,
        )
        return self._dispatch(received, now)

    def _dispatch(self, received: Received, now: int | None) -> GroupEvent:
        auth = received.content
        body = auth.content.content
        if isinstance(body, bytes):
            return application_event(received, body)
        if received.past is not None:
            raise InternalError("handshake message from a past epoch")
        pc = self._proposal_context()
        checks = checks_for(self._config, now, received=True)
        if isinstance(body, Commit):
            staged = stage_commit(
                pc, self._epoch_state(), auth, body, store=self._proposals, checks=checks
            )
            if received.accept is not None:
                received.accept()
            return self._merge(staged, now)
        return receive_proposal(
            pc, auth, body, checks=checks, store=self._proposals, accept=received.accept
        )

    def _merge(self, staged: StagedCommit, now: int | None) -> CommitMerged:
        """Merge a staged epoch (:func:`~mls.group.lifecycle.merge_commit`): the current epoch
        is replaced in one step (``_enter``); the stores beside it follow."""
        epoch, status, event = merge_commit(
            staged,
            self._epoch_state(),
            cs=self._cs,
            config=self._config,
            identity=self._identity,
            past=self._past,
            resumption=self._resumption,
            clients=self._clients,
            now=now,
        )
        self._enter(epoch)
        self._proposals.clear()
        self._pending = None
        self._status = status
        if status is GroupStatus.REMOVED:
            self._clients = None
        if status is GroupStatus.REINIT:
            self._reinit = staged.reinit
        return event

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
        r = committed_reinit(self._status, self._reinit)
        psk = self._secrets.resumption_psk
        linked = reinit_psk(r, client.suite, self.group_id, self.epoch, psk)
        return self._first_commit(
            client, r.group_id, r.extensions, config, linked, key_packages, now
        )

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
        check_operational(self._status)
        client = client or self._client
        psk = self._secrets.resumption_psk
        linked = branch_psk(client.suite.suite_id, self._cs, self.group_id, self.epoch, psk)
        exts = self.extensions if extensions is None else extensions
        return self._first_commit(client, group_id, exts, config, linked, key_packages, now)

    def _first_commit(
        self,
        client: Client,
        group_id: bytes,
        extensions: Sequence[Extension],
        config: GroupConfig | None,
        linked: tuple[PreSharedKeyID, bytes],
        key_packages: Sequence[bytes | KeyPackage],
        now: int | None,
    ) -> tuple[Group, CommitOutput]:
        """A new group and its first commit, adding ``key_packages`` with the ``linked`` PSK."""
        config = config or self._config
        new = Group.create(
            client, group_id, config=config, extensions=extensions, identity=self._identity, now=now
        )
        by_value = [Add(key_package=parse_key_package(k)) for k in key_packages]
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
        r = committed_reinit(self._status, self._reinit)
        return join_by_welcome(
            client,
            welcome,
            ratchet_tree=ratchet_tree,
            config=config or self._config,
            identity=self._identity,
            resumption_psks={(self.group_id, self.epoch): self._secrets.resumption_psk},
            build=Group._builder(client),
            check=reinit_welcome_check(r, identity=self._identity, old_tree=self._tree),
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
        return join_by_welcome(
            client,
            welcome,
            ratchet_tree=ratchet_tree,
            config=config or self._config,
            identity=self._identity,
            resumption_psks={(self.group_id, ep): s for ep, s in self._resumption.items()},
            build=Group._builder(client),
            check=branch_welcome_check(
                self._context, identity=self._identity, parent_tree=self._tree
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
        return join_by_welcome(
            client,
            welcome,
            ratchet_tree=ratchet_tree,
            config=config,
            identity=identity,
            resumption_psks=resumption_psks,
            build=cls._builder(client),
            check=None if check is None else lambda _, group: check(group),
        )

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
        return join_by_external_commit(
            client,
            group_info,
            ratchet_tree=ratchet_tree,
            config=config,
            identity=identity,
            psks=psks,
            resync=resync,
            authenticated_data=authenticated_data,
            self_removes=self_removes,
            build=cls._builder(client),
        )
