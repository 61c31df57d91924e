"""What a member sends, built from explicit inputs (RFC 9420 §6.1, §12.1, §12.4).

:class:`~mls.group.group.Group` keeps the state and the public ``propose_*``/``commit``
methods; the steps that need only values of the current epoch are here: signing and framing a
member's content, the proposals a local request stands for (each checked as a local request:
misuse is a :class:`~mls.errors.UsageError`), and the argument bundle every proposal check takes
(:class:`~mls.group.proposal_list.ProposalContext`, :class:`~mls.group.validation.Checks`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace

from mls.codec import decode
from mls.constants import LeafNodeSource, WireFormat
from mls.crypto import CipherSuite
from mls.errors import DecodeError, InvalidState, UnsupportedError, UsageError
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
from mls.framing.protection import encrypt_private_message, public_message_from
from mls.framing.public import PublicMessage
from mls.group.config import GroupConfig
from mls.group.identity import IdentityProvider
from mls.group.proposal_list import (
    CachedProposal,
    ProposalContext,
    external_psk_id,
    own_self_remove,
    resolve_psk,
)
from mls.group.validation import Checks, self_remove_capable
from mls.messages.key_package import KeyPackage
from mls.messages.proposals import (
    Add,
    GroupContextExtensions,
    PreSharedKey,
    PreSharedKeyID,
    Proposal,
    ReInit,
    Remove,
    Update,
)
from mls.schedule.group_context import GroupContext
from mls.schedule.key_schedule import EpochSecrets
from mls.schedule.secret_tree import SecretTree
from mls.tree.nodes import LeafNode
from mls.tree.ratchet_tree import RatchetTree

__all__ = [
    "check_removable",
    "check_self_remove",
    "checks_for",
    "commit_proposals",
    "frame",
    "member_proposal",
    "parse_key_package",
    "proposal_context",
    "sign_member",
    "update_proposal",
]

#: Looks up an external PSK the client holds (``Client.external_psk``).
ExternalPSKs = Callable[[bytes], bytes | None]


def checks_for(config: GroupConfig, now: int | None, *, received: bool) -> Checks:
    """The bounds of ``config`` as the checks take them; ``received`` for a message of another
    member (§7.3: lifetimes are checked on KeyPackages, not on received leaves)."""
    return Checks(
        now=now,
        received=received,
        lifetime_skew=config.lifetime_skew,
        max_lifetime=config.max_lifetime,
        max_identity_length=config.max_identity_length,
        max_credential_length=config.max_credential_length,
    )


def proposal_context(
    cs: CipherSuite,
    context: GroupContext,
    tree: RatchetTree,
    *,
    identity: IdentityProvider,
    config: GroupConfig,
    client_index: Callable[[], dict[bytes, set[int]] | None],
    external: ExternalPSKs,
    resumption: Mapping[int, bytes],
    linked: tuple[PreSharedKeyID, bytes] | None = None,
) -> ProposalContext:
    """An epoch as proposal validation sees it; ``linked`` is the ReInit/branch PSK of a new
    group's first commit (§11.2, §11.3)."""
    return ProposalContext(
        cs=cs,
        context=context,
        tree=tree,
        identity=identity,
        config=config,
        client_index=client_index,
        resolve_psk=lambda pid: resolve_psk(
            pid,
            external=external,
            group_id=context.group_id,
            resumption=resumption,
            linked=linked,
        ),
    )


def parse_key_package(key_package: bytes | KeyPackage) -> KeyPackage:
    """A KeyPackage given as itself or as an MLSMessage (§10)."""
    if isinstance(key_package, KeyPackage):
        return key_package
    msg = decode(MLSMessage, key_package)
    if not isinstance(msg.body, KeyPackage):
        raise DecodeError("expected an MLSMessage carrying a KeyPackage")
    return msg.body


def check_removable(
    tree: RatchetTree, leaf_index: int, *, own_leaf: int, proposal: bool = False
) -> None:
    # A local request to remove a blank, unknown or (by commit) our own leaf is misuse.
    if not 0 <= leaf_index < tree.n_leaves or tree.leaf(leaf_index) is None:
        raise UsageError(f"leaf {leaf_index} is not a member")
    if leaf_index == own_leaf and not proposal:
        raise UsageError("a member cannot remove itself by commit (§12.2); ask another member")


def check_self_remove(
    tree: RatchetTree, store: Mapping[bytes, CachedProposal], own_leaf: int
) -> None:
    """We may propose SelfRemove (draft-ietf-mls-extensions): every member supports it, and we
    have not sent one this epoch."""
    if not self_remove_capable(tree):
        raise UnsupportedError(
            "not every member supports SelfRemove: propose_remove(own_leaf_index) instead"
        )
    if any(own_self_remove(c, own_leaf) for c in store.values()):
        raise InvalidState("a SelfRemove was already sent this epoch")


def update_proposal(
    cs: CipherSuite, old: LeafNode, signature_private_key: bytes, group_id: bytes, leaf: int
) -> tuple[Update, bytes]:
    """An Update of our leaf ``old`` with a fresh encryption key (§12.1.2), and that key's
    private half."""
    sk, pk = cs.generate_key_pair()
    node = replace(
        old,
        encryption_key=pk,
        leaf_node_source=LeafNodeSource.update,
        lifetime=None,
        parent_hash=None,
        signature=b"",
    ).sign(cs, signature_private_key, group_id, leaf)
    return Update(leaf_node=node), sk


def commit_proposals(
    cs: CipherSuite,
    tree: RatchetTree,
    group_id: bytes,
    *,
    own_leaf: int,
    external: ExternalPSKs,
    proposals: Sequence[Proposal],
    add: Sequence[bytes | KeyPackage],
    remove: Sequence[int],
    psks: Sequence[bytes],
    resumption_psks: Sequence[tuple[int, int]],
    extensions: Sequence[Extension] | None,
    reinit: ReInit | None,
) -> list[Proposal]:
    """The proposals a commit carries by value for the arguments of ``Group.commit`` (§12.4),
    in this order: ``proposals``, Adds, Removes, external then resumption PSKs (fresh nonces,
    §8.4), extensions, ReInit."""
    by_value: list[Proposal] = list(proposals)
    by_value += [Add(key_package=parse_key_package(k)) for k in add]
    for i in remove:
        check_removable(tree, i, own_leaf=own_leaf)
    by_value += [Remove(removed=i) for i in remove]
    by_value += [PreSharedKey(psk=external_psk_id(cs, external, p)) for p in psks]
    for usage, ep in resumption_psks:
        pid = PreSharedKeyID.resumption(usage, group_id, ep, cs.random(cs.hash_len))
        by_value.append(PreSharedKey(psk=pid))
    if extensions is not None:
        by_value.append(GroupContextExtensions(extensions=tuple(extensions)))
    if reinit is not None:
        by_value.append(reinit)
    return by_value


def sign_member(
    cs: CipherSuite,
    signature_private_key: bytes,
    content: FramedContent,
    context: GroupContext,
    *,
    private: bool,
) -> AuthenticatedContent:
    """Sign a member's content with the current GroupContext (§6.1)."""
    wf = WireFormat.mls_private_message if private else WireFormat.mls_public_message
    sig = sign_framed_content(cs, signature_private_key, wf, content, context)
    return AuthenticatedContent(
        wire_format=wf, content=content, auth=FramedContentAuthData(signature=sig)
    )


def frame(
    cs: CipherSuite,
    auth: AuthenticatedContent,
    *,
    secret_tree: SecretTree,
    secrets: EpochSecrets,
    context: GroupContext,
    padding: int,
) -> bytes:
    """Signed content as an MLSMessage: a PrivateMessage (§6.3, ratcheting ``secret_tree``) or
    a PublicMessage with the membership tag (§6.2), as its wire format says."""
    if auth.wire_format == WireFormat.mls_private_message:
        body: PublicMessage | PrivateMessage = encrypt_private_message(
            cs, auth, secret_tree, secrets.sender_data_secret, padding=padding
        )
    else:
        body = public_message_from(cs, auth, secrets.membership_key, context)
    return MLSMessage(body=body).to_bytes()


def member_proposal(
    cs: CipherSuite,
    signature_private_key: bytes,
    context: GroupContext,
    own_leaf: int,
    proposal: Proposal,
    *,
    private: bool,
    wrap: Callable[[AuthenticatedContent], bytes],
) -> tuple[bytes, bytes]:
    """A member's proposal in the epoch of ``context``, signed and framed (§12.1): its
    ProposalRef (§5.2) and the message (``wrap``: see :func:`frame`)."""
    content = FramedContent(
        group_id=context.group_id,
        epoch=context.epoch,
        sender=Sender.member(own_leaf),
        content=proposal,
    )
    auth = sign_member(cs, signature_private_key, content, context, private=private)
    data = wrap(auth)
    return auth.proposal_ref(cs), data
