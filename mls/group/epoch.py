"""The epoch states of a member (RFC 9420 §8, §9, §15.3) and the key schedule step between them.

- :class:`EpochState`: the current epoch (GroupContext, tree, private keys, the epoch secrets a
  member keeps, secret tree, interim transcript hash, confirmation tag). ``EpochState.start``
  builds the secret tree and then drops what forward secrecy says must go (§9.2).
- :class:`GroupStatus`: operational, removed, or re-initialised.
- :class:`PastEpoch`, :class:`PastEpochs`: what is kept of earlier epochs to read late
  application messages.
- :func:`next_epoch`: transcript hashes, GroupContext, epoch secrets and confirmation tag of the
  epoch a commit starts (§8, §8.2), for the committer and every receiver alike.
- :func:`external_init` / :func:`external_init_secret`: the §8.3 ``init_secret`` of an external
  commit, on the joiner's and on the members' side.
"""

from __future__ import annotations

import enum
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field, replace

from mls.constants import ContentType
from mls.crypto import CipherSuite
from mls.errors import InvalidExternalInit, PeerError
from mls.extensions import Extension
from mls.framing.content import FramedContent
from mls.group.config import GroupConfig
from mls.messages.proposals import PreSharedKeyID
from mls.schedule.group_context import GroupContext
from mls.schedule.key_schedule import (
    EpochSecrets,
    confirmation_tag,
    derive_epoch_secrets,
    epoch_secrets_from_joiner,
    external_key_pair,
)
from mls.schedule.psk import psk_secret
from mls.schedule.secret_tree import SecretTree
from mls.schedule.transcript import (
    ConfirmedTranscriptHashInput,
    next_confirmed_transcript_hash,
    next_interim_transcript_hash,
)
from mls.tree.nodes import LeafNode
from mls.tree.ratchet_tree import RatchetTree
from mls.tree.treekem import TreePrivate

__all__ = [
    "REMOVED_SECRETS",
    "EpochState",
    "GroupStatus",
    "NextEpoch",
    "PastEpoch",
    "PastEpochs",
    "external_init",
    "external_init_secret",
    "next_epoch",
    "scrubbed",
]

_EXTERNAL_INIT_LABEL = b"MLS 1.0 external init secret"


class GroupStatus(enum.Enum):
    """Lifecycle of a member's group state."""

    OPERATIONAL = "operational"
    #: This member was removed by a commit (§12.4.2): it can send nothing any more.
    REMOVED = "removed"
    #: A commit with a ReInit was merged (§11.2): wait for the new group's Welcome.
    REINIT = "reinit"


def scrubbed(secrets: EpochSecrets) -> EpochSecrets:
    """The epoch secrets a member keeps once the epoch is set up (§9.2 forward secrecy):
    ``encryption_secret`` would re-derive every message key of the epoch, consumed ones
    included, and ``joiner_secret``/``welcome_secret`` lead to it; the secret tree holds what
    is still needed."""
    return replace(secrets, joiner_secret=b"", welcome_secret=b"", encryption_secret=b"")


#: What a removed member keeps of its epoch secrets: nothing (§12.4.2).
REMOVED_SECRETS = EpochSecrets(
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


@dataclass(frozen=True, slots=True)
class EpochState:
    """A member's current epoch. The secret tree is the one mutable part (its ratchets advance
    as messages are sent and read); everything else changes only by replacing the state."""

    context: GroupContext
    tree: RatchetTree
    private: TreePrivate
    #: Scrubbed (see :func:`scrubbed`), except inside :meth:`start`.
    secrets: EpochSecrets = field(repr=False)
    secret_tree: SecretTree = field(repr=False)
    interim_transcript_hash: bytes
    confirmation_tag: bytes

    @classmethod
    def start(
        cls,
        cs: CipherSuite,
        config: GroupConfig,
        *,
        context: GroupContext,
        tree: RatchetTree,
        private: TreePrivate,
        secrets: EpochSecrets,
        interim_transcript_hash: bytes,
        confirmation_tag: bytes,
    ) -> EpochState:
        """Enter an epoch from its full secrets (create, join, merge): build the secret tree
        (§9), then keep only the scrubbed secrets."""
        secret_tree = SecretTree(
            cs,
            secrets.encryption_secret,
            tree.n_leaves,
            own_leaf=private.leaf_index,
            out_of_order_window=config.out_of_order_window,
            max_forward_distance=config.max_forward_distance,
        )
        return cls(
            context=context,
            tree=tree,
            private=private,
            secrets=scrubbed(secrets),
            secret_tree=secret_tree,
            interim_transcript_hash=interim_transcript_hash,
            confirmation_tag=confirmation_tag,
        )

    @classmethod
    def first(
        cls,
        cs: CipherSuite,
        config: GroupConfig,
        *,
        group_id: bytes,
        extensions: tuple[Extension, ...],
        tree: RatchetTree,
        private: TreePrivate,
    ) -> EpochState:
        """Epoch 0 of a new one-member group (§11)."""
        ctx = GroupContext(
            cipher_suite=cs.suite_id,
            group_id=group_id,
            epoch=0,
            tree_hash=tree.tree_hash(),
            confirmed_transcript_hash=b"",
            extensions=extensions,
        )
        # §11: the first epoch secret is fresh randomness; deriving it from a random joiner
        # secret gives the same distribution and reuses the one schedule code path.
        secrets = epoch_secrets_from_joiner(cs, cs.random(cs.hash_len), None, ctx.to_bytes())
        tag = confirmation_tag(cs, secrets.confirmation_key, b"")
        interim = next_interim_transcript_hash(cs, b"", tag)
        return cls.start(
            cs,
            config,
            context=ctx,
            tree=tree,
            private=private,
            secrets=secrets,
            interim_transcript_hash=interim,
            confirmation_tag=tag,
        )

    def forgotten(self, cs: CipherSuite) -> EpochState:
        """This epoch without a single secret (§12.4.2: a removed member "SHOULD promptly delete
        its group state and secret tree"); the public context and tree stay for inspection."""
        return replace(
            self,
            private=TreePrivate(self.private.leaf_index, {}),
            secrets=REMOVED_SECRETS,
            secret_tree=SecretTree(cs, bytes(cs.hash_len), 1),
        )


@dataclass(slots=True)
class PastEpoch:
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

    def expired(self, now: int | None, grace: int) -> bool:
        """Past its grace period (``GroupConfig.past_epoch_grace``) at ``now``."""
        return now is not None and self.retired_at is not None and now > self.retired_at + grace

    def note_commit(self, old_leaves: dict[int, LeafNode | None], removed: Sequence[int]) -> None:
        """A later commit changed ``old_leaves`` (leaf -> node before it) and removed
        ``removed``: remember the leaves as they were in this epoch, and the first generation
        a removed leaf could not have sent before its removal."""
        for leaf, node in old_leaves.items():
            self.leaves.setdefault(leaf, node)
        for leaf in removed:
            self.removed_limits.setdefault(
                leaf, self.secret_tree.next_generation(leaf, ContentType.application)
            )


class PastEpochs(OrderedDict[int, PastEpoch]):
    """The past epochs kept for late application messages (§15.3), oldest first."""

    def retire(
        self,
        epoch: int,
        past: PastEpoch,
        *,
        old_leaves: dict[int, LeafNode | None],
        removed: Sequence[int],
        config: GroupConfig,
        now: int | None,
    ) -> None:
        """Keep ``past`` (the epoch a commit just ended), note what the commit changed in
        every kept epoch, and drop what is beyond ``config.past_epochs`` or its grace period
        (§9.2: then the keys are deleted)."""
        self[epoch] = past
        for kept in self.values():
            kept.note_commit(old_leaves, removed)
        while len(self) > config.past_epochs:
            self.popitem(last=False)
        for ep in [ep for ep, p in self.items() if p.expired(now, config.past_epoch_grace)]:
            del self[ep]


@dataclass(frozen=True, slots=True)
class NextEpoch:
    """The epoch a commit starts, from the committer's or a receiver's computation (§8)."""

    context: GroupContext
    secrets: EpochSecrets = field(repr=False)
    confirmation_tag: bytes
    interim_transcript_hash: bytes


def next_epoch(
    cs: CipherSuite,
    *,
    interim_transcript_hash: bytes,
    wire_format: int,
    content: FramedContent,
    signature: bytes,
    context: GroupContext,
    commit_secret: bytes | None,
    psks: Sequence[tuple[PreSharedKeyID, bytes]],
    init_secret: bytes,
) -> NextEpoch:
    """Transcript hash, new GroupContext (``context`` with the new confirmed transcript hash),
    epoch secrets, confirmation tag and interim hash for a commit (§8, §8.2)."""
    confirmed = next_confirmed_transcript_hash(
        cs,
        interim_transcript_hash,
        ConfirmedTranscriptHashInput(wire_format=wire_format, content=content, signature=signature),
    )
    new_ctx = replace(context, confirmed_transcript_hash=confirmed)
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
    return NextEpoch(
        context=new_ctx, secrets=secrets, confirmation_tag=tag, interim_transcript_hash=interim
    )


def external_init(cs: CipherSuite, external_pub: bytes) -> tuple[bytes, bytes]:
    """§8.3, the joiner's side: (kem_output, init_secret) from the group's ``external_pub``."""
    enc, hctx = cs.hpke.setup_sender(0, external_pub, b"", cs.random(cs.hpke_sk_len))
    return enc, hctx.export(_EXTERNAL_INIT_LABEL, cs.hash_len)


def external_init_secret(cs: CipherSuite, external_secret: bytes, kem_output: bytes) -> bytes:
    """§8.3, the members' side: init_secret from the joiner's ExternalInit kem_output."""
    sk, _ = external_key_pair(cs, external_secret)
    try:
        ctx = cs.hpke.setup_receiver(0, kem_output, sk, b"")
    except PeerError as exc:
        raise InvalidExternalInit("ExternalInit kem_output does not decapsulate") from exc
    return ctx.export(_EXTERNAL_INIT_LABEL, cs.hash_len)
