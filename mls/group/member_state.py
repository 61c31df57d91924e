"""One member's state of one group, and what can be read from it (RFC 9420 §8, §12.4.2).

:class:`MemberState` holds what a member keeps between messages: the current epoch (set in one
place, ``_enter``), the status, cached proposals, a pending commit, past epochs and resumption
PSKs. It offers the read-only accessors, the exporter, and persistence (whole-state
``to_bytes``, and the parts form of ``storage_delta``, see :mod:`mls.group.snapshot`).
:class:`~mls.group.group.Group` extends it with the operations (send, propose, commit, process,
join); it is never used on its own. The split is the Python form of Rust's several ``impl``
blocks of one type (mls-rs ``Group``): one object, its state and accessors here, its flows in
``group.py``.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Self

from mls.credentials import Credential
from mls.crypto import CipherSuite
from mls.errors import UsageError
from mls.extensions import Extension
from mls.group.client import Client
from mls.group.config import GroupConfig
from mls.group.epoch import EpochState, GroupStatus, PastEpochs
from mls.group.events import CommitOutput
from mls.group.identity import BasicIdentityProvider, IdentityProvider
from mls.group.lifecycle import check_has_secrets
from mls.group.proposal_list import CachedProposal
from mls.group.snapshot import GroupDelta, GroupSnapshot, SecretRows
from mls.group.staged_commit import StagedCommit
from mls.group.validation import self_remove_capable
from mls.messages.proposals import ReInit
from mls.schedule.group_context import GroupContext
from mls.schedule.key_schedule import mls_exporter
from mls.schedule.secret_tree import SecretTree
from mls.tree.ratchet_tree import RatchetTree

__all__ = ["MemberState"]


class MemberState:
    """The state of :class:`~mls.group.group.Group` and its read-only accessors (see the
    module docstring); create groups with ``Group.create``, ``Group.join`` or
    ``Group.external_join``."""

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
        # What the store holds of this object (storage_delta): None, nothing yet.
        self._stored_rest: bytes | None = None
        self._stored_trees: dict[int, SecretTree] | None = None

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
        self._epoch_stored = False

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
        check_has_secrets(self._status)
        return mls_exporter(self._cs, self._secrets.exporter_secret, label, context, length)

    def resumption_psk(self, epoch: int) -> bytes | None:
        """The resumption PSK of a recent epoch of this group (§8.6), if still kept."""
        return self._resumption.get(epoch)

    @property
    def leaf_count(self) -> int:
        """Number of leaves of the ratchet tree, blanks included (SFrame KID layout)."""
        return self._tree.n_leaves

    def _snapshot(self) -> GroupSnapshot:
        return GroupSnapshot(
            suite_id=self._cs.suite_id,
            config=self._config,
            epoch=self._epoch_state(),
            status=self._status,
            reinit=self._reinit,
            proposals=tuple(self._proposals.items()),
            past=tuple(self._past.items()),
            resumption=tuple(self._resumption.items()),
        )

    def to_bytes(self) -> bytes:
        """The whole member state as versioned CBOR (see :mod:`mls.group.snapshot`)."""
        return self._snapshot().to_bytes()

    @classmethod
    def from_bytes(
        cls,
        data: bytes,
        client: Client,
        *,
        identity: IdentityProvider | None = None,
        config: GroupConfig | None = None,
    ) -> Self:
        """Restore a group saved by :meth:`to_bytes` for ``client``. The stored options are
        restored except the ``external_proposal_policy`` (code, not state: it is the default,
        refuse, unless ``config`` is given, which then replaces the stored options)."""
        snap = GroupSnapshot.from_bytes(data, client.suite, config)
        return cls._restore(snap, client, identity)

    @classmethod
    def _restore(
        cls, snap: GroupSnapshot, client: Client, identity: IdentityProvider | None
    ) -> Self:
        group = cls(
            client=client, cs=client.suite, config=snap.config, epoch=snap.epoch, identity=identity
        )
        group._status = snap.status
        group._reinit = snap.reinit
        group._proposals = OrderedDict(snap.proposals)
        group._past = PastEpochs(snap.past)
        group._resumption = OrderedDict(snap.resumption)
        return group

    def storage_delta(self) -> GroupDelta:
        """What changed in the group's stored parts form since the last call (all of it the
        first time for a group created, joined or loaded by :meth:`from_bytes`): see
        :class:`~mls.group.snapshot.GroupDelta`. A received application message changes one
        secret-tree row; the epoch part changes once per epoch. The changes are handed out
        once: if storing them fails, reload the group from the store."""
        snap = self._snapshot()
        stored = self._stored_trees
        # Encode first: taking the changed rows clears them, so nothing may fail after it.
        rest = snap.rest_part()
        state = snap.epoch_part() if stored is None or not self._epoch_stored else None
        trees = dict(snap.secret_trees())
        secrets: dict[tuple[int, int], bytes | None] = {}
        for ep, tree in trees.items():
            rows = (
                tree.take_changed_rows()
                if stored is not None and stored.get(ep) is tree
                else tree.rows()
            )
            for node, row in rows.items():
                secrets[(ep, node)] = row
        # An epoch whose tree was replaced (or dropped) loses all its rows first.
        drop = (
            ()
            if stored is None
            else tuple(ep for ep, t in stored.items() if trees.get(ep) is not t)
        )
        delta = GroupDelta(
            group_id=self.group_id,
            epoch=self.epoch,
            full=stored is None,
            state=state,
            rest=rest if rest != self._stored_rest else None,
            secrets=secrets,
            drop_epochs=drop,
        )
        # The trees are held by reference (an id could be reused once a tree is freed); a
        # dropped epoch's tree is released at the next delta, which ChatClient takes at once.
        self._stored_rest, self._stored_trees, self._epoch_stored = rest, trees, True
        return delta

    def mark_unstored(self) -> None:
        """The store does not hold what the last deltas handed out (writing them failed and
        this object is kept): the next :meth:`storage_delta` is the whole state."""
        self._stored_rest = self._stored_trees = None
        self._epoch_stored = False

    @classmethod
    def from_parts(
        cls,
        state: bytes,
        rest: bytes,
        secrets: SecretRows,
        client: Client,
        *,
        identity: IdentityProvider | None = None,
        config: GroupConfig | None = None,
    ) -> Self:
        """Restore a group stored in the parts form (:meth:`storage_delta`); ``config`` as
        in :meth:`from_bytes`. The result has no changes to store."""
        snap = GroupSnapshot.from_parts(state, rest, secrets, client.suite, config)
        group = cls._restore(snap, client, identity)
        group._stored_rest, group._stored_trees = rest, dict(snap.secret_trees())
        group._epoch_stored = True
        return group

    def export_tree(self) -> bytes:
        """The ratchet tree in its §12.4.3.3 encoding (for out-of-band delivery)."""
        return self._tree.encode_tree()

    def __repr__(self) -> str:
        return (
            f"Group(group_id={self.group_id.hex()}, epoch={self.epoch}, "
            f"leaf={self.own_leaf_index}, members={self.member_count}, status={self._status.name})"
        )

    @property
    def self_remove_capable(self) -> bool:
        """Every member supports SelfRemove (draft-ietf-mls-extensions)."""
        return self_remove_capable(self._tree)
