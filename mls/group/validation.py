"""Validation of leaf nodes, KeyPackages and proposal lists against a group
(RFC 9420 §7.3, §10.1, §12.1, §12.2).

Every check raises its own :mod:`mls.errors` leaf; the catalogue in ``docs/validation.md`` maps
each to its RFC section and its test. The checks read a :class:`~mls.tree.ratchet_tree.TreeView`
(the current tree or a staged diff) and never change it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from mls.codec import encode
from mls.constants import (
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
    BadSignature,
    DuplicateAdd,
    DuplicateEncryptionKey,
    DuplicateIdentity,
    DuplicateSignatureKey,
    InvalidExternalInit,
    InvalidGroupContextExtensions,
    InvalidKeyPackage,
    InvalidPSK,
    InvalidReInit,
    InvalidRemove,
    InvalidSelfRemove,
    InvalidSender,
    InvalidSuccessor,
    InvalidUpdate,
    MissingRequiredCapability,
    SizeLimitExceeded,
    UnlistedExtension,
    UnsupportedCapability,
    UnsupportedCredential,
)
from mls.extensions import Extension, ExternalSenders, RequiredCapabilities
from mls.framing.content import Sender
from mls.group.identity import BasicIdentityProvider, IdentityProvider, client_keys_of
from mls.messages.key_package import KeyPackage
from mls.messages.proposals import (
    Add,
    CustomProposal,
    ExternalInit,
    GroupContextExtensions,
    PreSharedKey,
    Proposal,
    ReInit,
    Remove,
    SelfRemove,
    Update,
)
from mls.tree.nodes import LeafNode
from mls.tree.ratchet_tree import TreeView
from mls.tree.validation import validate_leaf_node as tree_validate_leaf_node

__all__ = [
    "DEFAULT_EXTENSION_TYPES",
    "DEFAULT_PROPOSAL_TYPES",
    "EXTERNAL_SENDER_PROPOSALS",
    "BasicIdentityProvider",
    "Checks",
    "IdentityProvider",
    "ProposalEntry",
    "check_required_capabilities",
    "self_remove_capable",
    "validate_key_package",
    "validate_leaf_node",
    "validate_proposal",
    "validate_proposal_list",
]

# §7.2/§11.1: default types are supported by every client and need not be listed.
DEFAULT_EXTENSION_TYPES = frozenset(int(e) for e in ExtensionType)
DEFAULT_PROPOSAL_TYPES = frozenset(int(p) for p in ProposalType)

# §12.1.8: proposal types an `external` sender may send.
EXTERNAL_SENDER_PROPOSALS = frozenset(
    {
        ProposalType.add,
        ProposalType.remove,
        ProposalType.psk,
        ProposalType.reinit,
        ProposalType.group_context_extensions,
    }
)


@dataclass(frozen=True, slots=True, kw_only=True)
class Checks:
    """What validating a new leaf depends on besides the tree: the time, whether we create or
    received it, and the group's bounds (from :class:`~mls.group.config.GroupConfig`).

    Lifetimes are checked only with ``now`` (§7.3 makes the check on receipt advisory): strictly
    when we create a proposal or commit, and on receipt only against not-yet-valid leaves beyond
    ``lifetime_skew`` (a leaf may expire in transit, §7.3)."""

    now: int | None = None
    received: bool = False
    lifetime_skew: int = 0
    max_lifetime: int | None = None
    max_identity_length: int | None = None
    max_credential_length: int | None = None


NO_CHECKS = Checks()


def check_required_capabilities(leaf: LeafNode, extensions: Iterable[Extension]) -> None:
    """§7.3/§11.1: the leaf supports every type the group's required_capabilities lists."""
    req = RequiredCapabilities.find(extensions)
    if req is not None:
        _check_required(leaf, req)


def _check_required(leaf: LeafNode, req: RequiredCapabilities) -> None:
    caps = leaf.capabilities
    for t in req.extension_types:
        if t not in DEFAULT_EXTENSION_TYPES and t not in caps.extensions:
            raise MissingRequiredCapability(f"leaf lacks required extension type {t}")
    for t in req.proposal_types:
        if t not in DEFAULT_PROPOSAL_TYPES and t not in caps.proposals:
            raise MissingRequiredCapability(f"leaf lacks required proposal type {t}")
    for t in req.credential_types:
        if t not in caps.credentials:
            raise MissingRequiredCapability(f"leaf lacks required credential type {t}")


def validate_leaf_node(
    cs: CipherSuite,
    leaf: LeafNode,
    *,
    source: int,
    tree: TreeView,
    group_extensions: Sequence[Extension],
    identity: IdentityProvider,
    group_id: bytes | None = None,
    leaf_index: int | None = None,
    checks: Checks = NO_CHECKS,
    replaces: int | None = None,
) -> None:
    """Leaf node validation (§7.3) of a leaf about to enter ``tree``, with the group's
    required capabilities (see :func:`mls.tree.validation.validate_leaf_node`), its
    GroupContext extensions, its size bounds and, for a leaf replacing a member's (Update,
    commit path), the §5.3.1 successor rule."""
    check_credential_size(leaf.credential, checks)
    tree_validate_leaf_node(
        cs,
        leaf,
        tree,
        expected_source=source,
        group_id=group_id,
        leaf_index=leaf_index,
        replaces=replaces,
        required_capabilities=RequiredCapabilities.find(group_extensions),
        identity=identity,
        now=checks.now,
        lifetime_skew=checks.lifetime_skew if checks.received else None,
        max_lifetime=checks.max_lifetime,
    )
    # §5.3.1: a member's replaced leaf keeps who the member is (after the credential itself was
    # found valid).
    if replaces is not None and source != LeafNodeSource.key_package:
        old = tree.leaf(replaces) if replaces < tree.n_leaves else None
        if old is not None and not identity.valid_successor(old.credential, leaf.credential):
            raise InvalidSuccessor(f"the new credential of leaf {replaces} is not a successor")
    # RFC 9420 §13.4: a new member's capabilities "MUST indicate support for each extension in
    # the GroupContext"; so must an Update's or a commit's new leaf, as every extension in use
    # must be supported by all members.
    for ext in group_extensions:
        t = ext.extension_type
        if t not in DEFAULT_EXTENSION_TYPES and t not in leaf.capabilities.extensions:
            raise UnsupportedCapability(f"the leaf does not support group extension type {t:#06x}")


def check_credential_size(credential: Credential, checks: Checks) -> None:
    """The group's bounds on a peer's credential (a Basic identity; any credential's encoding)."""
    limit = checks.max_identity_length
    if limit is not None and len(credential.identity) > limit:
        raise SizeLimitExceeded(f"identity of {len(credential.identity)} bytes (limit {limit})")
    limit = checks.max_credential_length
    if limit is not None:
        size = len(credential.identity) + sum(len(c) for c in credential.certificates)
        size += len(credential.content)
        if size > limit:
            raise SizeLimitExceeded(f"credential of {size} bytes (limit {limit})")


def validate_key_package(
    cs: CipherSuite,
    kp: KeyPackage,
    *,
    version: int,
    tree: TreeView,
    group_extensions: Sequence[Extension],
    identity: IdentityProvider,
    checks: Checks = NO_CHECKS,
) -> None:
    """KeyPackage validation (§10.1) for adding to a group."""
    if kp.cipher_suite != cs.suite_id:
        raise InvalidKeyPackage(f"KeyPackage suite {kp.cipher_suite}, group uses {cs.suite_id}")
    if kp.version != version:
        raise InvalidKeyPackage(f"KeyPackage version {kp.version}, group uses {version}")
    try:
        kp.verify(cs)
    except BadSignature as exc:
        raise BadSignature("KeyPackage signature does not verify") from exc
    # RFC 9420 §12.2: an Add may re-add a client already in the group when the same commit
    # removes it. Judge the leaf as replacing that member; validate_proposal_list then raises
    # DuplicateAdd unless the commit removes it.
    holder = tree.find_signature_key(kp.leaf_node.signature_key)
    validate_leaf_node(
        cs,
        kp.leaf_node,
        source=LeafNodeSource.key_package,
        tree=tree,
        group_extensions=group_extensions,
        identity=identity,
        checks=checks,
        replaces=holder,
    )
    if kp.init_key == kp.leaf_node.encryption_key:
        raise InvalidKeyPackage("init_key equals the leaf encryption_key")
    # §10: "Extensions included in the extensions or leaf_node.extensions fields MUST be
    # included in the leaf_node.capabilities field" (the leaf's own are checked in §7.3).
    listed = kp.leaf_node.capabilities.extensions
    for ext in kp.extensions:
        t = ext.extension_type
        if t not in DEFAULT_EXTENSION_TYPES and t not in listed:
            raise UnlistedExtension(f"KeyPackage extension type {t:#06x} is not in capabilities")


@dataclass(frozen=True, slots=True)
class ProposalEntry:
    """A proposal to commit, with who sent it and its reference (None if by value)."""

    proposal: Proposal
    sender: Sender
    ref: bytes | None = None


def validate_proposal(
    cs: CipherSuite,
    proposal: Proposal,
    sender: Sender,
    *,
    tree: TreeView,
    version: int,
    group_id: bytes,
    group_extensions: Sequence[Extension],
    identity: IdentityProvider,
    checks: Checks = NO_CHECKS,
    in_commit: bool = False,
    wire_format: int | None = None,
) -> None:
    """The checks of one proposal on its own (§12.1), as on receipt of a Proposal message
    (carried in ``wire_format``, when known).

    ``in_commit``: the proposal is one of a commit's list, judged with the extensions the list
    sets (§12.3: "The new extensions MUST be used when evaluating other proposals in this list");
    a GroupContextExtensions is then checked against the tree the list produces (§12.1.7) by
    :meth:`~mls.group.group.Group` once the list is applied, not against the current members."""
    stype = sender.sender_type
    ptype = proposal.proposal_type
    if stype == SenderType.external and ptype not in EXTERNAL_SENDER_PROPOSALS:
        raise InvalidSender(f"an external sender cannot send proposal type {ptype} (§12.1.8)")
    if stype == SenderType.new_member_proposal and ptype != ProposalType.add:
        raise InvalidSender("a new_member_proposal sender can only propose Add (§12.1.8)")
    if isinstance(proposal, Add):
        validate_key_package(
            cs,
            proposal.key_package,
            version=version,
            tree=tree,
            group_extensions=group_extensions,
            identity=identity,
            checks=checks,
        )
    elif isinstance(proposal, Update):
        if stype != SenderType.member:
            raise InvalidSender("only members send Update proposals (§12.1.2)")
        old = tree.leaf(sender.index)
        if old is None:
            raise InvalidUpdate(f"Update from blank leaf {sender.index}")
        # RFC 9420 §7.3: an Update's encryption_key differs from the replaced leaf's. Checked
        # before the generic uniqueness check, which would report it as a duplicate key.
        if proposal.leaf_node.encryption_key == old.encryption_key:
            raise InvalidUpdate("Update keeps the old encryption key")
        validate_leaf_node(
            cs,
            proposal.leaf_node,
            source=LeafNodeSource.update,
            tree=tree,
            group_extensions=group_extensions,
            identity=identity,
            group_id=group_id,
            leaf_index=sender.index,
            replaces=sender.index,
            checks=checks,
        )
    elif isinstance(proposal, Remove):
        if not 0 <= proposal.removed < tree.n_leaves or tree.leaf(proposal.removed) is None:
            raise InvalidRemove(f"Remove of blank or unknown leaf {proposal.removed} (§12.1.3)")
    elif isinstance(proposal, PreSharedKey):
        validate_psk_id(cs, proposal)
    elif isinstance(proposal, ReInit):
        if proposal.version < version:
            raise InvalidReInit("ReInit to an older protocol version (§12.1.5)")
        if proposal.version != ProtocolVersion.mls10:
            raise InvalidReInit(f"ReInit to unknown version {proposal.version}")
    elif isinstance(proposal, ExternalInit):
        if stype != SenderType.new_member_commit:
            raise InvalidExternalInit("ExternalInit only in an external commit (§12.1.6)")
    elif isinstance(proposal, GroupContextExtensions):
        if in_commit:
            # Parsed here; member support is checked on the tree after the list (§12.1.7).
            ExternalSenders.find(proposal.extensions)
            RequiredCapabilities.find(proposal.extensions)
        else:
            validate_gce(proposal, tree)
    elif isinstance(proposal, SelfRemove):
        # draft-ietf-mls-extensions, "SelfRemove Proposal": from a member (never external), in
        # a PublicMessage (external joiners read it), by reference only, in a self-remove-
        # capable group.
        if in_commit:
            raise InvalidSelfRemove("a SelfRemove is committed by reference only")
        if stype != SenderType.member:
            raise InvalidSender("only members send SelfRemove proposals")
        if wire_format is not None and wire_format != WireFormat.mls_public_message:
            raise InvalidSelfRemove("a SelfRemove proposal must be sent as a PublicMessage")
        check_custom_supported(proposal.proposal_type, tree.iter_leaves())
    elif isinstance(proposal, CustomProposal):
        check_custom_supported(proposal.proposal_type, tree.iter_leaves())


def self_remove_capable(tree: TreeView) -> bool:
    """Every member lists SelfRemove in its capabilities (draft-ietf-mls-extensions: a
    "self-remove-capable group"; the type read now, as it is configurable)."""
    t = SelfRemove.proposal_type
    return all(t in leaf.capabilities.proposals for _, leaf in tree.iter_leaves())


def validate_psk_id(cs: CipherSuite, proposal: PreSharedKey, *, allow_usage: int = 0) -> None:
    """§12.1.4: nonce of length Nh; no reinit/branch resumption PSK outside those flows."""
    psk = proposal.psk
    if len(psk.psk_nonce) != cs.hash_len:
        raise InvalidPSK(f"psk_nonce has {len(psk.psk_nonce)} bytes, expected {cs.hash_len}")
    if psk.psktype == PSKType.resumption:
        if psk.usage in (ResumptionPSKUsage.reinit, ResumptionPSKUsage.branch):
            if psk.usage != allow_usage:
                raise InvalidPSK("resumption PSK with usage reinit/branch in a proposal")
        elif psk.usage != ResumptionPSKUsage.application:
            raise InvalidPSK(f"unknown resumption PSK usage {psk.usage}")
    elif psk.psktype != PSKType.external:
        raise InvalidPSK(f"unknown PSK type {psk.psktype}")


def validate_gce(proposal: GroupContextExtensions, tree: TreeView) -> None:
    """§12.1.7: every current member supports the new required capabilities and every
    non-default extension type in the new GroupContext extensions."""
    # §12.1.8.1: the external_senders extension must parse (MalformedExtension), or no external
    # proposal could ever be verified in the new epoch. required_capabilities is parsed here too.
    ExternalSenders.find(proposal.extensions)
    req = RequiredCapabilities.find(proposal.extensions)
    custom = [
        e.extension_type
        for e in proposal.extensions
        if e.extension_type not in DEFAULT_EXTENSION_TYPES
    ]
    for _, leaf in tree.iter_leaves():
        if req is not None:
            try:
                _check_required(leaf, req)
            except MissingRequiredCapability as exc:
                raise InvalidGroupContextExtensions(str(exc)) from exc
        for t in custom:
            if t not in leaf.capabilities.extensions:
                raise UnsupportedCapability(f"a member does not support extension type {t}")


def validate_proposal_list(
    entries: Sequence[ProposalEntry],
    *,
    committer: int | None,
    external: bool,
    tree: TreeView,
    identity: IdentityProvider,
    client_index: Mapping[bytes, set[int]] | None = None,
) -> None:
    """Proposal list validation (§12.2). ``committer`` is the committer's leaf index (None for
    an external commit, whose leaf is not yet assigned). ``client_index`` maps the identity
    provider's client keys to the leaves holding them (see :func:`build_client_index`)."""
    if external:
        _validate_external_list(entries)
    updated_or_removed: set[int] = set()
    adds: list[LeafNode] = []
    psk_ids: set[bytes] = set()
    gce = 0
    removed: set[int] = set()
    # draft-ietf-mls-extensions: SelfRemoves are processed after Updates and before Removes; a
    # Remove or an Update of a leaf that a SelfRemove of the list removes is invalid.
    self_removed: set[int] = set()
    for e in entries:
        if isinstance(e.proposal, SelfRemove):
            leaf = e.sender.index
            if committer is not None and leaf == committer:
                raise InvalidSelfRemove("a commit cannot include the committer's own SelfRemove")
            if leaf in self_removed:
                raise InvalidSelfRemove(f"two SelfRemove proposals of leaf {leaf}")
            self_removed.add(leaf)
    removed |= self_removed
    for e in entries:
        p = e.proposal
        if isinstance(p, Update):
            if e.sender.sender_type == SenderType.member and e.sender.index == committer:
                raise InvalidUpdate("a commit cannot include an Update from the committer")
            leaf = e.sender.index
            if leaf in self_removed:
                raise InvalidSelfRemove(f"an Update of leaf {leaf}, which a SelfRemove removes")
            if leaf in updated_or_removed:
                raise InvalidUpdate(f"several Update/Remove proposals for leaf {leaf}")
            updated_or_removed.add(leaf)
        elif isinstance(p, Remove):
            if committer is not None and p.removed == committer:
                raise InvalidRemove("a commit cannot remove the committer")
            if p.removed in self_removed:
                raise InvalidSelfRemove(f"a Remove of leaf {p.removed}, which a SelfRemove removes")
            if p.removed in updated_or_removed:
                raise InvalidRemove(f"several Update/Remove proposals for leaf {p.removed}")
            updated_or_removed.add(p.removed)
            removed.add(p.removed)
        elif isinstance(p, Add):
            adds.append(p.key_package.leaf_node)
        elif isinstance(p, PreSharedKey):
            key = encode(p.psk)
            if key in psk_ids:
                raise InvalidPSK("two PreSharedKey proposals for the same PSK id")
            psk_ids.add(key)
        elif isinstance(p, GroupContextExtensions):
            gce += 1
            if gce > 1:
                raise InvalidGroupContextExtensions("several GroupContextExtensions proposals")
        elif isinstance(p, ReInit):
            if len(entries) != 1:
                raise InvalidReInit("a ReInit must be the only proposal of its commit")
        elif isinstance(p, ExternalInit):
            if not external:
                raise InvalidExternalInit("ExternalInit in a regular commit")
    # Duplicate Adds, and Adds of existing members not being removed (§12.2).
    client_keys = client_keys_of(identity)
    if client_keys is not None:
        # O(k): two leaves are the same client iff they share a client key.
        seen: set[bytes] = set()
        for a in adds:
            for key in client_keys(a):
                if key in seen:
                    raise DuplicateAdd("two Adds for the same client")
                seen.add(key)
        # §5.3.1: an Update must not take the identity of another member, nor of a joiner.
        for e in entries:
            if isinstance(e.proposal, Update):
                before = tree.leaf(e.sender.index)
                if before is not None and before.credential == e.proposal.leaf_node.credential:
                    continue  # unchanged, so still unique
                check_unique_client(
                    identity,
                    e.proposal.leaf_node,
                    tree=tree,
                    client_index=client_index,
                    own=e.sender.index,
                    removed=removed,
                )
                if not seen.isdisjoint(client_keys(e.proposal.leaf_node)):
                    raise DuplicateIdentity("an Update takes the identity of a joiner")
    else:
        for i, a in enumerate(adds):
            for b in adds[i + 1 :]:
                if identity.same_client(a, b):
                    raise DuplicateAdd("two Adds for the same client")
    for a in adds:
        holder = tree.find_signature_key(a.signature_key)
        if holder is not None and holder not in removed:
            raise DuplicateAdd(f"Add of a client already in the group at leaf {holder}")
        if client_index is not None and client_keys is not None:
            for key in client_keys(a):
                if client_index.get(key, set()) - removed:
                    raise DuplicateAdd("Add of a client already in the group")
    # RFC 9420 §12.2: the list is invalid if "after processing the Commit the ratchet tree is
    # invalid" (§7.3: unique keys). Each new leaf was checked against the current tree on its
    # own; the leaves this commit brings in (Adds, Updates) must not share keys either.
    enc_keys: set[bytes] = set()
    sig_keys: set[bytes] = set()
    for e in entries:
        p = e.proposal
        if isinstance(p, Update):
            new_leaf = p.leaf_node
        elif isinstance(p, Add):
            new_leaf = p.key_package.leaf_node
        else:
            continue
        if new_leaf.encryption_key in enc_keys:
            raise DuplicateEncryptionKey("two leaves of the commit share an encryption key")
        enc_keys.add(new_leaf.encryption_key)
        if new_leaf.signature_key in sig_keys:
            raise DuplicateSignatureKey("two leaves of the commit share a signature key")
        sig_keys.add(new_leaf.signature_key)


def check_credential_support(tree: TreeView, leaf_index: int) -> None:
    """§7.3 on the tree after a commit: every member supports the credential type of the leaf
    at ``leaf_index``, and it supports every credential type in use."""
    leaf = tree.leaf(leaf_index)
    if leaf is None:
        return
    ctype = leaf.credential.credential_type
    if tree.credential_support_count(ctype) < tree.member_count:
        raise UnsupportedCredential(
            f"credential type {ctype} of leaf {leaf_index} is not "
            "supported by every member after the commit"
        )
    for t in tree.credential_types_in_use():
        if t not in leaf.capabilities.credentials:
            raise UnsupportedCredential(
                f"leaf {leaf_index} does not support credential type {t} in use after the commit"
            )


def check_unique_client(
    identity: IdentityProvider,
    leaf: LeafNode,
    *,
    tree: TreeView,
    client_index: Mapping[bytes, set[int]] | None,
    own: int | None,
    removed: Iterable[int] = (),
) -> None:
    """§5.3.1, §12.2: a leaf entering the tree in place of ``own`` (an Update, a commit's path
    leaf; ``None`` for an external joiner) is not the same client as any other member, except
    members removed by the same commit. O(1) with a client index, else O(n)."""
    gone = set(removed)
    if own is not None:
        gone.add(own)
    client_keys = client_keys_of(identity)
    if client_keys is not None and client_index is not None:
        for key in client_keys(leaf):
            if client_index.get(key, set()) - gone:
                raise DuplicateIdentity("the leaf names the same client as another member")
        return
    for i, other in tree.iter_leaves():
        if i not in gone and identity.same_client(leaf, other):
            raise DuplicateIdentity(f"the leaf names the same client as leaf {i}")


def _validate_external_list(entries: Sequence[ProposalEntry]) -> None:
    inits = sum(1 for e in entries if isinstance(e.proposal, ExternalInit))
    if inits != 1:
        raise InvalidExternalInit(f"an external commit needs exactly one ExternalInit, has {inits}")
    removes = 0
    for e in entries:
        p = e.proposal
        if isinstance(p, SelfRemove):
            # draft-ietf-mls-extensions: the one proposal an external commit takes by
            # reference (and only so; by value is refused with the proposal itself).
            continue
        if isinstance(p, Remove):
            removes += 1
            if removes > 1:
                raise InvalidExternalInit("an external commit has at most one Remove")
        elif not isinstance(p, ExternalInit | PreSharedKey):
            raise InvalidExternalInit(
                f"proposal type {p.proposal_type} is not allowed in an external commit"
            )
        if e.ref is not None:
            raise InvalidExternalInit("an external commit cannot include proposals by reference")


def check_custom_supported(
    proposal_type: int, leaves: Iterable[tuple[int, LeafNode]], skip: Iterable[int] = ()
) -> None:
    """§12.2: a non-default proposal type must be supported by every member that will process
    the commit (members added or removed by it need not support it)."""
    skipped = set(skip)
    for i, leaf in leaves:
        if i not in skipped and proposal_type not in leaf.capabilities.proposals:
            raise UnsupportedCapability(
                f"member {i} does not support proposal type {proposal_type:#06x}"
            )


def build_client_index(identity: IdentityProvider, tree: TreeView) -> dict[bytes, set[int]] | None:
    """Client key -> leaves holding it, for providers that define client keys (else None)."""
    client_keys = client_keys_of(identity)
    if client_keys is None:
        return None
    index: dict[bytes, set[int]] = {}
    for i, leaf in tree.iter_leaves():
        for key in client_keys(leaf):
            index.setdefault(key, set()).add(i)
    return index


def update_client_index(
    index: dict[bytes, set[int]],
    identity: IdentityProvider,
    changed: Mapping[int, LeafNode | None],
    tree: TreeView,
) -> None:
    """Update ``index`` for leaves a commit changed (``changed`` maps each to its old leaf)."""
    client_keys = client_keys_of(identity)
    if client_keys is None:
        return
    for i, old in changed.items():
        if old is not None:
            for key in client_keys(old):
                holders = index.get(key)
                if holders is not None:
                    holders.discard(i)
                    if not holders:
                        del index[key]
        new = tree.leaf(i) if i < tree.n_leaves else None
        if new is not None:
            for key in client_keys(new):
                index.setdefault(key, set()).add(i)
