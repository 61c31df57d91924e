"""Leaf-node and whole-tree validation (RFC 9420 §7.3, §7.9.2, §12.4.3.1).

Owns :class:`IdentityProvider` (the application's credential check, §5.3.1), single-LeafNode
validation for KeyPackages, Update proposals and UpdatePaths (:func:`validate_leaf_node`) and
the checks a joiner runs over a received tree (:func:`validate_tree`): tree hash, unmerged-leaves
consistency, parent-hash coverage, key uniqueness and every leaf's §7.3 rules.

Every check raises its own exception (see ``mls.errors``) and nothing here modifies the tree
(computing tree hashes only fills their cache).

Parent-hash coverage (§7.9.2) is checked bottom-up in time linear in the size of the tree plus
its unmerged-leaves lists. A node D can only be parent-hash valid with respect to its nearest
non-blank ancestor P: D must be in the resolution of P's child C on its side, and every other
member of that resolution must be one of P's unmerged leaves, so every node strictly between D
and P is blank. Hence for each non-blank P and each child C, the resolution of C (computed once)
yields at most one candidate D, the single entry that is not an unmerged leaf of P, and only
that candidate's parent hash is compared. Each blank node lies in the resolution walk of exactly
one P (its nearest non-blank ancestor), so all walks together visit each node once. Parents are
processed by increasing level, so a candidate parent D is known to be covered before P is
examined, and P must be reached by exactly one valid link.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterable
from itertools import pairwise
from typing import TYPE_CHECKING, Protocol

from mls.constants import ExtensionType, LeafNodeSource
from mls.errors import (
    DuplicateEncryptionKey,
    DuplicateSignatureKey,
    InvalidLeafNodeSource,
    InvalidUnmergedLeaves,
    LifetimeError,
    LifetimeTooLong,
    MissingRequiredCapability,
    ParentHashMismatch,
    TreeHashMismatch,
    UnsupportedCredential,
    UnsupportedLeafExtension,
)
from mls.tree.math import left, parent, right
from mls.tree.nodes import LeafNode, ParentNode
from mls.tree.ratchet_tree import in_subtree

if TYPE_CHECKING:
    from mls.credentials import Credential
    from mls.crypto import CipherSuite
    from mls.extensions import RequiredCapabilities
    from mls.tree.ratchet_tree import TreeView

__all__ = [
    "DEFAULT_EXTENSION_TYPES",
    "IdentityProvider",
    "check_unmerged_leaves",
    "check_unique_keys",
    "validate_leaf_node",
    "validate_tree",
    "verify_parent_hashes",
]

DEFAULT_EXTENSION_TYPES = frozenset(int(t) for t in ExtensionType)
"""§7.2: the default extension types, which capabilities need not (and must not) list."""


class IdentityProvider(Protocol):
    """The application's Authentication Service hook (§5.3.1).

    Decides whether a credential is acceptable and binds ``signature_key`` to it. Raise
    :class:`~mls.errors.InvalidCredential` to reject. ``now`` (seconds since the Unix epoch) is
    given by the caller, never read from a clock here; it is ``None`` when no time is known.
    """

    def validate_credential(
        self, credential: Credential, signature_key: bytes, *, now: int | None
    ) -> None: ...


# -- one LeafNode (§7.3) --------------------------------------------------------------------------


def _check_leaf_rules(
    leaf: LeafNode,
    *,
    required_capabilities: RequiredCapabilities | None,
    now: int | None,
    lifetime_skew: int | None = None,
    max_lifetime: int | None = None,
) -> None:
    """The rules of §7.3 that depend on the leaf alone (and the group's requirements)."""
    caps = leaf.capabilities
    # §7.2: the credential type used must be listed in the leaf's own capabilities.
    if leaf.credential.credential_type not in caps.credentials:
        raise UnsupportedCredential(
            f"credential type {leaf.credential.credential_type} is not in the leaf's capabilities"
        )
    if required_capabilities is not None:
        for t in required_capabilities.extension_types:
            if t not in caps.extensions and t not in DEFAULT_EXTENSION_TYPES:
                raise MissingRequiredCapability(f"required extension type {t} not supported")
        for t in required_capabilities.proposal_types:
            # Default proposal types (1-7) are implied (§7.2) and must not be listed.
            if t not in caps.proposals and not 1 <= t <= 7:
                raise MissingRequiredCapability(f"required proposal type {t} not supported")
        for t in required_capabilities.credential_types:
            if t not in caps.credentials:
                raise MissingRequiredCapability(f"required credential type {t} not supported")
    for ext in leaf.extensions:
        t = ext.extension_type
        if t not in DEFAULT_EXTENSION_TYPES and t not in caps.extensions:
            raise UnsupportedLeafExtension(
                f"leaf extension type {t:#06x} is not listed in its capabilities"
            )
    if now is not None and leaf.leaf_node_source == LeafNodeSource.key_package:
        _check_lifetime(leaf, now, lifetime_skew, max_lifetime)


def _check_lifetime(
    leaf: LeafNode, now: int, lifetime_skew: int | None, max_lifetime: int | None
) -> None:
    """§7.2, §7.3. ``lifetime_skew=None`` is the strict check of a leaf we are about to use
    (``not_before <= now <= not_after``). Otherwise the leaf was received: it may have expired in
    transit (§7.3, so expiry is not checked) and is refused only when it becomes valid more than
    ``lifetime_skew`` seconds after ``now`` (clock skew)."""
    lifetime = leaf.lifetime
    if lifetime is None:
        raise LifetimeError("a key_package LeafNode without a lifetime")
    if max_lifetime is not None and lifetime.not_after - lifetime.not_before > max_lifetime:
        raise LifetimeTooLong(
            f"total lifetime {lifetime.not_after - lifetime.not_before} s exceeds the maximum "
            f"{max_lifetime} s (§7.2)"
        )
    if lifetime_skew is None:
        if not lifetime.contains(now):
            raise LifetimeError("the LeafNode is outside its lifetime")
    elif lifetime.not_before > now + lifetime_skew:
        raise LifetimeError("the LeafNode is not valid yet")


def validate_leaf_node(
    cs: CipherSuite,
    leaf: LeafNode,
    tree: TreeView,
    *,
    expected_source: int,
    group_id: bytes | None = None,
    leaf_index: int | None = None,
    replaces: int | None = None,
    required_capabilities: RequiredCapabilities | None = None,
    identity: IdentityProvider | None = None,
    now: int | None = None,
    lifetime_skew: int | None = None,
    max_lifetime: int | None = None,
) -> None:
    """Validate a LeafNode received in a KeyPackage, an Update or an UpdatePath (§7.3) against
    the group's tree (the tree the leaf will join: for an Add or Update the current diff).

    - ``expected_source``: ``key_package`` (Add), ``update`` or ``commit``
      (InvalidLeafNodeSource);
    - ``group_id`` and ``leaf_index``: the signature context of update/commit leaves;
    - ``replaces``: the leaf index whose LeafNode this one replaces (Update, commit), excluded
      from the uniqueness and credential-support checks; its encryption key must still differ;
    - ``now``, ``lifetime_skew``, ``max_lifetime``: the lifetime checks of key_package leaves
      (see :func:`_check_lifetime`); none without ``now``.

    Raises InvalidCredential (via ``identity``), BadSignature, MissingRequiredCapability,
    UnsupportedCredential, UnsupportedLeafExtension, LifetimeError (only if ``now`` is given),
    DuplicateEncryptionKey or DuplicateSignatureKey. O(1) in the size of the tree.
    """
    if leaf.leaf_node_source != expected_source:
        raise InvalidLeafNodeSource(
            f"leaf_node_source is {leaf.leaf_node_source}, expected {expected_source}"
        )
    if identity is not None:
        identity.validate_credential(leaf.credential, leaf.signature_key, now=now)
    leaf.verify(cs, group_id, leaf_index)
    _check_leaf_rules(
        leaf,
        required_capabilities=required_capabilities,
        now=now,
        lifetime_skew=lifetime_skew,
        max_lifetime=max_lifetime,
    )

    # §7.3: the leaf's credential type must be supported by every (other) member, and the leaf
    # must support every credential type the other members use.
    old = tree.leaf(replaces) if replaces is not None else None
    others = tree.member_count - (1 if old is not None else 0)
    ctype = leaf.credential.credential_type
    support = tree.credential_support_count(ctype)
    if old is not None and ctype in old.capabilities.credentials:
        support -= 1
    if support < others:
        raise UnsupportedCredential(f"credential type {ctype} is not supported by every member")
    for t in tree.credential_types_in_use():
        users = tree.credential_use_count(t)
        if old is not None and old.credential.credential_type == t:
            users -= 1
        if users > 0 and t not in leaf.capabilities.credentials:
            raise UnsupportedCredential(f"the leaf does not support credential type {t} in use")

    # §7.3 uniqueness; for an Update the key must also differ from the replaced leaf's.
    if tree.find_encryption_key(leaf.encryption_key) is not None:
        raise DuplicateEncryptionKey("the LeafNode's encryption key is already in the tree")
    holder = tree.find_signature_key(leaf.signature_key)
    if holder is not None and holder != replaces:
        raise DuplicateSignatureKey(f"the signature key is already used by leaf {holder}")


# -- a whole tree (§12.4.3.1) ---------------------------------------------------------------------


def check_unmerged_leaves(tree: TreeView) -> None:
    """§7.1, §12.4.3.1: every parent's ``unmerged_leaves`` is strictly increasing and names
    non-blank leaves below it, each also unmerged at every non-blank node in between.
    Raises InvalidUnmergedLeaves."""
    n = tree.n_leaves
    for p, node in tree.iter_parents():
        unmerged = node.unmerged_leaves
        for a, b in pairwise(unmerged):
            if a >= b:
                raise InvalidUnmergedLeaves(f"unmerged_leaves of node {p} is not sorted")
        for i in unmerged:
            x = 2 * i
            if i >= n or not in_subtree(x, p) or tree.node(x) is None:
                raise InvalidUnmergedLeaves(
                    f"node {p} lists leaf {i}, which is not a non-blank leaf below it"
                )
            y = parent(x, n)
            while y != p:
                q = tree.node(y)
                if q is not None:
                    assert isinstance(q, ParentNode)
                    lst = q.unmerged_leaves
                    k = bisect_left(lst, i)
                    if k == len(lst) or lst[k] != i:
                        raise InvalidUnmergedLeaves(
                            f"leaf {i} is unmerged at node {p} but not at node {y} below it"
                        )
                y = parent(y, n)


def verify_parent_hashes(tree: TreeView) -> None:
    """§7.9.2: every non-blank parent node is covered by exactly one parent-hash chain from a
    leaf. Linear time (see the module docstring). Assumes :func:`check_unmerged_leaves`
    passed. Raises ParentHashMismatch."""
    width = tree.width
    k = 1
    while (1 << k) <= width:
        for p in range((1 << k) - 1, width, 1 << (k + 1)):
            node = tree.node(p)
            if node is None:
                continue
            assert isinstance(node, ParentNode)
            links = 0
            for c, s in ((left(p), right(p)), (right(p), left(p))):
                unmerged = {2 * i for i in node.unmerged_leaves if in_subtree(2 * i, c)}
                res = tree.resolution(c)
                if len(res) != len(unmerged) + 1:
                    continue
                rest = [d for d in res if d not in unmerged]
                if len(rest) != 1:
                    continue
                d_node = tree.node(rest[0])
                if isinstance(d_node, LeafNode):
                    if d_node.leaf_node_source != LeafNodeSource.commit:
                        continue
                    claimed = d_node.parent_hash
                else:
                    # A parent candidate sits lower, so it was already proven covered.
                    assert isinstance(d_node, ParentNode)
                    claimed = d_node.parent_hash
                if claimed == tree.parent_hash_of(p, s):
                    links += 1
            if links != 1:
                raise ParentHashMismatch(
                    f"parent node {p} is covered by {links} parent-hash chains, not exactly one"
                )
        k += 1


def check_unique_keys(tree: TreeView) -> None:
    """§7.3, §12.4.3.1: encryption keys are unique across all nodes, signature keys across
    leaves. Raises DuplicateEncryptionKey / DuplicateSignatureKey."""
    enc: dict[bytes, int] = {}
    sig: dict[bytes, int] = {}
    for x in range(tree.width):
        node = tree.node(x)
        if node is None:
            continue
        other = enc.setdefault(node.encryption_key, x)
        if other != x:
            raise DuplicateEncryptionKey(f"nodes {other} and {x} share an encryption key")
        if isinstance(node, LeafNode):
            holder = sig.setdefault(node.signature_key, x >> 1)
            if holder != x >> 1:
                raise DuplicateSignatureKey(f"leaves {holder} and {x >> 1} share a signature key")


def _check_credential_support(leaves: Iterable[tuple[int, LeafNode]]) -> None:
    items = list(leaves)
    in_use = {leaf.credential.credential_type for _, leaf in items}
    for i, leaf in items:
        missing = in_use.difference(leaf.capabilities.credentials)
        if missing:
            raise UnsupportedCredential(
                f"leaf {i} does not support credential types {sorted(missing)} used in the group"
            )


def validate_tree(
    cs: CipherSuite,
    tree: TreeView,
    *,
    group_id: bytes,
    tree_hash: bytes | None = None,
    required_capabilities: RequiredCapabilities | None = None,
    identity: IdentityProvider | None = None,
    now: int | None = None,
) -> None:
    """The ratchet-tree checks of a joiner (§12.4.3.1), cheapest first:

    1. the root tree hash equals ``tree_hash`` if given (TreeHashMismatch, §7.8);
    2. unmerged leaves are consistent (InvalidUnmergedLeaves);
    3. every non-blank parent is parent-hash valid (ParentHashMismatch, §7.9.2);
    4. encryption and signature keys are unique (DuplicateEncryptionKey, DuplicateSignatureKey);
    5. every leaf is valid (§7.3): credential (``identity``), signature (BadSignature; over
       ``group_id`` and the leaf index for update/commit leaves), required capabilities,
       credential types supported by all (UnsupportedCredential), listed extensions, lifetime
       if ``now`` is given (LifetimeError).

    Linear in the size of the tree (plus one signature verification per leaf).
    """
    if tree_hash is not None and tree.tree_hash() != tree_hash:
        raise TreeHashMismatch("the ratchet tree does not hash to the expected tree hash")
    check_unmerged_leaves(tree)
    verify_parent_hashes(tree)
    check_unique_keys(tree)
    leaves = list(tree.iter_leaves())
    _check_credential_support(leaves)
    for i, leaf in leaves:
        if identity is not None:
            identity.validate_credential(leaf.credential, leaf.signature_key, now=now)
        if leaf.leaf_node_source == LeafNodeSource.key_package:
            leaf.verify(cs)
        else:
            leaf.verify(cs, group_id, i)
        _check_leaf_rules(leaf, required_capabilities=required_capabilities, now=now)
