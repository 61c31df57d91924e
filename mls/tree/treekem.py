"""TreeKEM: path secrets, UpdatePath creation and processing, private tree state
(RFC 9420 §7.4-§7.6, §12.4.2, §12.4.3.1).

Owns :class:`TreePrivate` (the HPKE private keys a member is entitled to: its leaf and the nodes
of its direct path whose path secrets it received, §4.2), creating an UpdatePath
(:func:`prepare_update_path`, then :meth:`PreparedPath.encrypt` once the provisional
GroupContext is known), merging a received one (:func:`apply_update_path`) and decrypting it
(:func:`decrypt_update_path`), and setting the keys a joiner learns from a Welcome
(:meth:`TreePrivate.from_welcome`).

All of it works on a :class:`~mls.tree.ratchet_tree.TreeDiff`, touching only the sender's direct
path and the resolutions of its copath: O(log n) node visits plus one visit per ciphertext.

Key derivation (§7.4). The committer draws a fresh ``leaf_secret`` (Nh random bytes) and, as in
the §7.4 derivation figure::

    leaf_node_secret = DeriveSecret(leaf_secret, "node")   -> leaf HPKE key pair
    path_secret[0]   = DeriveSecret(leaf_secret, "path")
    path_secret[n]   = DeriveSecret(path_secret[n-1], "path")
    node_secret[n]   = DeriveSecret(path_secret[n], "node") -> DeriveKeyPair -> node key pair
    commit_secret    = DeriveSecret(path_secret[last], "path")          (§12.4.2)

``path_secret[n]`` belongs to the n-th node of the filtered direct path. Secrets are dropped as
soon as they are used (§7.5: delete path and node secrets after processing); a
:class:`PreparedPath` keeps the path secrets only as long as the committer needs them for its
Welcome (§12.4.3.1).
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Self

from mls.constants import LeafNodeSource
from mls.crypto.labels import decrypt_with_label, derive_secret, encrypt_with_label
from mls.errors import (
    DuplicateEncryptionKey,
    InvalidLeafNodeSource,
    InvalidUpdatePath,
    ParentHashMismatch,
    PathSecretMismatch,
    UsageError,
)
from mls.tree.math import direct_path, level
from mls.tree.nodes import HPKECiphertext, LeafNode, ParentNode, UpdatePath, UpdatePathNode
from mls.tree.ratchet_tree import in_subtree

if TYPE_CHECKING:
    from mls.crypto import CipherSuite
    from mls.tree.ratchet_tree import TreeDiff, TreeView

__all__ = [
    "PathResult",
    "PreparedPath",
    "TreePrivate",
    "apply_update_path",
    "common_ancestor",
    "decrypt_update_path",
    "node_key_pair",
    "prepare_update_path",
]

_UPDATE_PATH_LABEL = "UpdatePathNode"


def node_key_pair(cs: CipherSuite, path_secret: bytes) -> tuple[bytes, bytes]:
    """(private, public) HPKE key pair of a node from its path secret (§7.4)."""
    return cs.derive_key_pair(derive_secret(cs, path_secret, "node"))


def _next_path_secret(cs: CipherSuite, path_secret: bytes) -> bytes:
    return derive_secret(cs, path_secret, "path")


def common_ancestor(x: int, y: int) -> int:
    """The lowest node whose subtree holds both nodes ``x`` and ``y`` (Appendix C)."""
    lx, ly = level(x) + 1, level(y) + 1
    if lx <= ly and x >> ly == y >> ly:
        return y
    if ly <= lx and x >> lx == y >> lx:
        return x
    xn, yn, k = x, y, 0
    while xn != yn:
        xn, yn, k = xn >> 1, yn >> 1, k + 1
    return (xn << k) + (1 << (k - 1)) - 1


class TreePrivate:
    """The private keys of one member (§4.2): its leaf's and those of the nodes on its direct
    path it holds the secrets of. Immutable: every change returns a new object, so a staged
    commit never alters the state of the current epoch. Holds O(log n) entries."""

    __slots__ = ("_keys", "leaf_index")

    def __init__(self, leaf_index: int, keys: Mapping[int, tuple[bytes, bytes]]) -> None:
        """``keys`` maps node index to (private key, public key)."""
        self.leaf_index = leaf_index
        self._keys: dict[int, tuple[bytes, bytes]] = dict(keys)

    @classmethod
    def for_leaf(
        cls,
        cs: CipherSuite,
        leaf_index: int,
        private_key: bytes,
        public_key: bytes | None = None,
    ) -> Self:
        """The state of a member who knows only its leaf key (e.g. after an Add)."""
        if public_key is None:
            public_key = cs.hpke_public_key(private_key)
        return cls(leaf_index, {2 * leaf_index: (private_key, public_key)})

    @classmethod
    def from_welcome(
        cls,
        cs: CipherSuite,
        tree: TreeView,
        leaf_index: int,
        private_key: bytes,
        committer: int,
        path_secret: bytes | None,
    ) -> TreePrivate:
        """A joiner's state (§12.4.3.1): its leaf key plus, given the Welcome's path secret,
        the keys of the lowest common ancestor with the committer and of every non-blank node
        above it (each from the next path secret). PathSecretMismatch if a derived public key
        differs from the tree's."""
        leaf = tree.leaf(leaf_index)
        if leaf is None:
            raise UsageError(f"leaf {leaf_index} is blank")
        state = cls.for_leaf(cs, leaf_index, private_key, leaf.encryption_key)
        if path_secret is None:
            return state
        start = common_ancestor(2 * leaf_index, 2 * committer)
        return state.with_path_secret(cs, tree, start, path_secret, derive_up=True)

    # -- queries ------------------------------------------------------------------------------

    @property
    def nodes(self) -> frozenset[int]:
        """Node indices whose private key this state holds."""
        return frozenset(self._keys)

    def key_pairs(self) -> dict[int, tuple[bytes, bytes]]:
        """Node index -> (private key, public key), a copy (for persistence)."""
        return dict(self._keys)

    @property
    def leaf_private_key(self) -> bytes:
        return self._keys[2 * self.leaf_index][0]

    def private_key(self, x: int, public_key: bytes | None = None) -> bytes | None:
        """The private key of node ``x`` (``None`` if unknown, or if ``public_key`` is given
        and is not the public key this state holds for ``x``)."""
        entry = self._keys.get(x)
        if entry is None or (public_key is not None and entry[1] != public_key):
            return None
        return entry[0]

    def check_consistent(self, tree: TreeView) -> None:
        """PathSecretMismatch unless every key held is for a non-blank node with that public
        key (test-vectors.md, TreeKEM; §12.4.3.1)."""
        for x, (_, pk) in self._keys.items():
            node = tree.node(x) if x < tree.width else None
            if node is None or node.encryption_key != pk:
                raise PathSecretMismatch(f"private key for node {x} does not match the tree")

    # -- updates (each returns a new state) ---------------------------------------------------

    def with_path_secret(
        self,
        cs: CipherSuite,
        tree: TreeView,
        x: int,
        path_secret: bytes,
        *,
        derive_up: bool = False,
    ) -> TreePrivate:
        """Set the key of node ``x`` from its path secret; with ``derive_up``, also the keys of
        the non-blank nodes above it, each from the next path secret (they are the rest of the
        committer's filtered direct path). Every public key is checked against the tree."""
        keys = dict(self._keys)
        n = tree.n_leaves
        nodes = (
            [x, *(p for p in direct_path(x, n) if tree.node(p) is not None)] if derive_up else [x]
        )
        secret = path_secret
        for i, y in enumerate(nodes):
            node = tree.node(y)
            sk, pk = node_key_pair(cs, secret)
            if node is None or node.encryption_key != pk:
                raise PathSecretMismatch(f"path secret does not match the public key of node {y}")
            keys[y] = (sk, pk)
            if i + 1 < len(nodes):
                secret = _next_path_secret(cs, secret)
        return TreePrivate(self.leaf_index, keys)

    def with_leaf_key(self, private_key: bytes, public_key: bytes) -> TreePrivate:
        """This state with a new leaf key (our Update was committed, §12.1.2)."""
        keys = dict(self._keys)
        keys[2 * self.leaf_index] = (private_key, public_key)
        return TreePrivate(self.leaf_index, keys)

    def pruned(self, tree: TreeView) -> TreePrivate:
        """Drop keys of nodes that are blank, gone or hold another key in ``tree`` (after
        removes, updates and truncation: §7.5 asks to delete replaced key pairs)."""
        keep: dict[int, tuple[bytes, bytes]] = {}
        width = tree.width
        for x, entry in self._keys.items():
            if x < width:
                node = tree.node(x)
                if node is not None and node.encryption_key == entry[1]:
                    keep[x] = entry
        return TreePrivate(self.leaf_index, keep)

    def _replaced(
        self, cleared: Iterable[int], added: Mapping[int, tuple[bytes, bytes]]
    ) -> TreePrivate:
        keys = dict(self._keys)
        for x in cleared:
            keys.pop(x, None)
        keys.update(added)
        return TreePrivate(self.leaf_index, keys)

    def __repr__(self) -> str:
        return f"TreePrivate(leaf_index={self.leaf_index}, nodes={sorted(self._keys)})"


# -- creating an UpdatePath (§7.4, §7.5, §12.4.2) -------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class PreparedPath:
    """A committer's new path, merged into the diff but not yet encrypted.

    After :func:`prepare_update_path` the diff holds the new leaf and path, so its
    ``tree_hash()`` is that of the provisional GroupContext (§12.4.2); pass the encoded context
    to :meth:`encrypt` to get the UpdatePath.
    """

    sender: int
    leaf_node: LeafNode
    path: tuple[tuple[int, int], ...]
    """(parent, copath child) of each filtered-direct-path node, leaf to root."""
    public_keys: tuple[bytes, ...]
    path_secrets: tuple[bytes, ...] = field(repr=False)
    commit_secret: bytes = field(repr=False)
    private: TreePrivate = field(repr=False)
    """The committer's private state for the new epoch."""

    def path_secret_for(self, x: int) -> bytes | None:
        """The path secret of node ``x`` if it is on the filtered direct path."""
        for (p, _), secret in zip(self.path, self.path_secrets, strict=True):
            if p == x:
                return secret
        return None

    def path_secret_for_joiner(self, joiner: int) -> bytes | None:
        """The path secret a Welcome carries for the new member at leaf ``joiner``: that of the
        lowest common ancestor of the committer and the joiner (§12.4.3.1)."""
        return self.path_secret_for(common_ancestor(2 * self.sender, 2 * joiner))

    def encrypt(
        self,
        cs: CipherSuite,
        tree: TreeView,
        group_context: bytes,
        exclude: Collection[int] = (),
    ) -> UpdatePath:
        """Encrypt each path secret to the resolution of its copath child (§12.4.2), with
        EncryptWithLabel(pk, "UpdatePathNode", group_context, path_secret). ``exclude`` holds
        the leaf indices of members added by this commit (they get the Welcome instead)."""
        out: list[UpdatePathNode] = []
        excluded = frozenset(exclude)
        for (_, s), pk, secret in zip(self.path, self.public_keys, self.path_secrets, strict=True):
            cts: list[HPKECiphertext] = []
            for r in tree.resolution(s, excluded):
                target = tree.node(r)
                assert target is not None
                kem_output, ciphertext = encrypt_with_label(
                    cs, target.encryption_key, _UPDATE_PATH_LABEL, group_context, secret
                )
                cts.append(HPKECiphertext(kem_output=kem_output, ciphertext=ciphertext))
            out.append(UpdatePathNode(encryption_key=pk, encrypted_path_secret=tuple(cts)))
        return UpdatePath(leaf_node=self.leaf_node, nodes=tuple(out))


def prepare_update_path(
    cs: CipherSuite,
    diff: TreeDiff,
    sender: int,
    leaf_template: LeafNode,
    signature_private_key: bytes,
    group_id: bytes,
    *,
    leaf_secret: bytes | None = None,
) -> PreparedPath:
    """Refresh the sender's path in ``diff`` (§7.4, §7.5, §12.4.2) after the commit's proposals
    were applied to it (and, for an external commit, after ``diff.add_external_leaf_slot()``).

    The new LeafNode copies ``leaf_template`` (credential, capabilities, extensions, signature
    key) and gets a fresh encryption key, ``leaf_node_source = commit``, the parent hash of the
    new path (§7.9) and a signature over group_id and leaf index (§7.2). ``leaf_secret`` (Nh
    bytes) may be given for reproducible tests; it is drawn from the suite's RNG otherwise.
    """
    if leaf_secret is None:
        leaf_secret = cs.random(cs.hash_len)
    leaf_sk, leaf_pk = node_key_pair(cs, leaf_secret)
    fdp = diff.filtered_direct_path(sender)
    secrets: list[bytes] = []
    keys: dict[int, tuple[bytes, bytes]] = {}
    public_keys: list[bytes] = []
    secret = _next_path_secret(cs, leaf_secret)
    for p, _ in fdp:
        secrets.append(secret)
        sk, pk = node_key_pair(cs, secret)
        keys[p] = (sk, pk)
        public_keys.append(pk)
        secret = _next_path_secret(cs, secret)
    commit_secret = secret
    # set_leaf below refreshes the counts of the whole direct path, once.
    parent_hash = diff.apply_path(sender, public_keys, propagate=False)
    unsigned = replace(
        leaf_template,
        encryption_key=leaf_pk,
        leaf_node_source=LeafNodeSource.commit,
        lifetime=None,
        parent_hash=parent_hash,
        signature=b"",
    )
    leaf_node = unsigned.sign(cs, signature_private_key, group_id, sender)
    diff.set_leaf(sender, leaf_node)
    keys[2 * sender] = (leaf_sk, leaf_pk)
    return PreparedPath(
        sender=sender,
        leaf_node=leaf_node,
        path=tuple(fdp),
        public_keys=tuple(public_keys),
        path_secrets=tuple(secrets),
        commit_secret=commit_secret,
        private=TreePrivate(sender, keys),
    )


# -- receiving an UpdatePath (§12.4.2) -----------------------------------------------------------


def apply_update_path(diff: TreeDiff, sender: int, path: UpdatePath) -> list[tuple[int, int]]:
    """Merge a received UpdatePath's public part into ``diff`` (§12.4.2 "merge UpdatePath into
    the tree"), after the commit's proposals were applied to it.

    Checks that the new leaf has ``leaf_node_source = commit`` (InvalidLeafNodeSource), that no
    key of the path already appears in the tree or twice in the path (DuplicateEncryptionKey,
    §12.4.2), that the path has one node per filtered-direct-path node (InvalidUpdatePath) and
    that the leaf's parent hash is the one the merged path gives (ParentHashMismatch, §7.9.2).
    The rest of §7.3 leaf validation (signature, credential, capabilities) is
    :func:`mls.tree.validation.validate_leaf_node`'s job. On error discard ``diff``.

    Returns the sender's filtered direct path (:meth:`TreeDiff.filtered_direct_path`), which
    merging the path leaves as it was, for :func:`decrypt_update_path`.
    """
    leaf = path.leaf_node
    if leaf.leaf_node_source != LeafNodeSource.commit:
        raise InvalidLeafNodeSource("the UpdatePath leaf_node must have leaf_node_source commit")
    keys = [leaf.encryption_key, *(n.encryption_key for n in path.nodes)]
    if len(set(keys)) != len(keys):
        raise DuplicateEncryptionKey("an UpdatePath repeats an encryption key")
    for key in keys:
        if diff.find_encryption_key(key) is not None:
            raise DuplicateEncryptionKey("an UpdatePath key already appears in the tree")
    # The path's copath children are off the direct path, so merging leaves this unchanged.
    fdp = diff.filtered_direct_path(sender)
    # set_leaf refreshes the counts of the whole direct path, once.
    expected = diff.apply_path(sender, keys[1:], propagate=False, fdp=fdp)
    if leaf.parent_hash != expected:
        raise ParentHashMismatch("the committer's leaf parent_hash does not match its path")
    diff.set_leaf(sender, leaf)
    return fdp


@dataclass(frozen=True, slots=True, kw_only=True)
class PathResult:
    """What a member learns from a received UpdatePath."""

    commit_secret: bytes = field(repr=False)
    path_secret: bytes = field(repr=False)
    """The path secret decrypted (for the lowest common ancestor with the sender)."""
    node: int
    """The node ``path_secret`` belongs to."""
    private: TreePrivate = field(repr=False)
    """The member's private state for the new epoch."""


def decrypt_update_path(
    cs: CipherSuite,
    diff: TreeDiff,
    private: TreePrivate,
    sender: int,
    path: UpdatePath,
    group_context: bytes,
    exclude: Collection[int] = (),
    *,
    fdp: Sequence[tuple[int, int]] | None = None,
) -> PathResult:
    """Decrypt a received UpdatePath already merged by :func:`apply_update_path` (§12.4.2).

    Checks that each node carries one ciphertext per member of its copath child's resolution
    minus the commit's new members ``exclude`` (InvalidUpdatePath), decrypts the one ciphertext
    addressed to a node this member holds the key of (DecryptFailed on failure), derives the
    path secrets above it and checks they give the public keys of the path (InvalidUpdatePath).
    ``fdp`` is the sender's filtered direct path if the caller has it (what
    :func:`apply_update_path` returns); it is computed otherwise.
    """
    me = private.leaf_index
    if me == sender:
        raise UsageError("the committer does not decrypt its own UpdatePath")
    if fdp is None:
        fdp = diff.filtered_direct_path(sender)
    if len(path.nodes) != len(fdp):
        raise InvalidUpdatePath(
            f"UpdatePath has {len(path.nodes)} nodes, filtered direct path has {len(fdp)}"
        )
    excluded = frozenset(exclude)
    new_members = [2 * i for i in excluded if diff.leaf(i) is not None]
    target = -1
    for i, (_, s) in enumerate(fdp):
        # Every non-blank leaf under S appears exactly once in its resolution, so the count
        # without the new members is a subtraction (O(log n), not a walk of S).
        expected = diff.resolution_size(s)
        if new_members:
            expected -= sum(1 for x in new_members if in_subtree(x, s))
        if len(path.nodes[i].encrypted_path_secret) != expected:
            raise InvalidUpdatePath(
                f"UpdatePath node {i} has {len(path.nodes[i].encrypted_path_secret)} "
                f"ciphertexts, the resolution has {expected} members"
            )
        if target < 0 and in_subtree(2 * me, s):
            target = i
    if target < 0:
        raise InvalidUpdatePath(f"leaf {me} is under no copath node of sender {sender}")
    s = fdp[target][1]
    sk, position = _resolution_key(diff, private, s, excluded, new_members)
    ct = path.nodes[target].encrypted_path_secret[position]
    secret = decrypt_with_label(
        cs, sk, _UPDATE_PATH_LABEL, group_context, ct.kem_output, ct.ciphertext
    )
    decrypted = secret
    added: dict[int, tuple[bytes, bytes]] = {}
    for k in range(target, len(fdp)):
        node_sk, node_pk = node_key_pair(cs, secret)
        if node_pk != path.nodes[k].encryption_key:
            raise InvalidUpdatePath(f"path secret for node {fdp[k][0]} gives another public key")
        added[fdp[k][0]] = (node_sk, node_pk)
        secret = _next_path_secret(cs, secret)
    # The sender's whole direct path was reset; keys blanked by the commit's proposals go too.
    new_private = private._replaced(direct_path(2 * sender, diff.n_leaves), added).pruned(diff)
    return PathResult(
        commit_secret=secret,
        path_secret=decrypted,
        node=fdp[target][0],
        private=new_private,
    )


def _resolution_key(
    tree: TreeView,
    private: TreePrivate,
    s: int,
    excluded: frozenset[int],
    new_members: list[int],
) -> tuple[bytes, int]:
    """The private key this member holds for a node of the resolution of ``s`` (minus the
    ``excluded`` leaves) and that node's position in it, which is the position of the
    ciphertext addressed to it (§12.4.2).

    The resolution lists subtrees left to right, so instead of building it (O(n) in a sparse
    tree) this descends from ``s`` towards our leaf, adding the resolution sizes of the left
    subtrees it passes, until the first non-blank node: the only node of the resolution on our
    direct path. Its key, or failing that our leaf's key as one of its unmerged leaves, is the
    one we hold. O(log n) plus the commit's new members.
    """
    me = private.leaf_index
    x = 2 * me
    y = s
    offset = 0
    while True:
        node = tree.node(y)
        if node is not None:
            break
        if y == x:
            raise InvalidUpdatePath(f"leaf {me} is blank in the tree")
        k = level(y)
        lx = y - (1 << (k - 1))
        if x <= y:
            y = lx
        else:
            # Every non-blank leaf under the left child appears once in its resolution.
            offset += tree.resolution_size(lx) - sum(1 for m in new_members if in_subtree(m, lx))
            y = y + (1 << (k - 1))
    sk = private.private_key(y, node.encryption_key)
    if sk is not None:
        return sk, offset
    if isinstance(node, ParentNode):
        unmerged = [i for i in node.unmerged_leaves if i not in excluded]
        leaf = tree.node(x)
        if me in unmerged and leaf is not None:
            sk = private.private_key(x, leaf.encryption_key)
            if sk is not None:
                return sk, offset + 1 + unmerged.index(me)
    raise InvalidUpdatePath(f"leaf {me} holds no key of the resolution of node {s}")
