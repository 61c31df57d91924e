"""The public ratchet tree (RFC 9420 §4, §7.1, §7.7-§7.9, §12.1.1-§12.1.3, §12.4.3.3).

Owns the array representation of the tree, resolution and filtered direct paths (§4.1.1,
§4.1.2), adding, updating and removing leaves with extension and truncation (§7.7, §12.1.1-3),
unmerged-leaves bookkeeping, merging the public part of an UpdatePath (§7.5, §12.4.2), tree
hashes (§7.8), parent hashes (§7.9) and the ``ratchet_tree`` wire form (§12.4.3.3). TreeKEM
secrets live in :mod:`mls.tree.treekem`, whole-tree validation in :mod:`mls.tree.validation`.

Design
======

Storage. :class:`RatchetTree` keeps one Python list of nodes indexed by node index (leaves at
even indices, ``LeafNode | ParentNode | None``) whose length is always ``2 * n_leaves - 1`` for a
power of two ``n_leaves`` (§7.7: the tree is full; trailing blank leaves are only dropped on the
wire). Beside it, per node and index-aligned:

- ``_hashes``: the tree hash of the subtree under the node (§7.8), ``None`` until first needed.
  Filled lazily and memoised, so the first ``tree_hash()`` of a decoded tree costs one hash per
  node and later ones cost nothing.
- ``_leaves`` / ``_res``: the number of non-blank leaves under the node and the size of its
  resolution. They are kept exact eagerly (each change updates the O(log n) ancestors) and turn
  three otherwise linear searches into O(log n) descents: the leftmost blank leaf (Add), the
  rightmost non-blank leaf (truncation) and the skipping of empty subtrees in resolutions.
- ``_enc_index`` (encryption key -> node index) and ``_sig_index`` (signature key -> leaf index)
  answer the §7.3 / §12.2 uniqueness checks in O(1). An entry is trusted only after checking that
  the node it names still holds that key, so stale entries need no eager deletion.
- Counters of credential types in use and of leaves whose capabilities list each credential
  type, for the §7.3 "supported by all members" rule in O(1) per new leaf.

Copy-on-write. A commit never mutates the current tree. ``tree.diff()`` returns a
:class:`TreeDiff`: an overlay that records changed nodes by index (``dict``), its own
``n_leaves`` (after extension or truncation), recomputed hashes and counts for changed paths, and
a *dirty* set of nodes whose base hash is stale (a changed node and its ancestors). Reads fall
through to the base for everything the overlay does not hold. Proposals (add / update / remove)
and UpdatePaths are applied to the diff; its tree hash recomputes only dirty nodes, O(changes *
log n) hashes. ``diff.merge()`` writes the overlay into the base in place, O(changes), once the
commit is accepted; discarding the diff leaves the tree exactly as it was. A diff also remembers
the base version: merging a stale diff (the base moved on) is refused.

The only operations that cost O(n) are inherent to the protocol: extending a tree of n leaves
adds n blank leaves whose hashes (which include the leaf index, §7.8) must be computed once, and
decoding, encoding and validating a whole tree.

Subtree identity. With array indices, the subtree under node ``x`` at level ``k`` is the index
range ``[x - 2^k + 1, x + 2^k - 1]``, whatever the width of the tree. So the hash of a node
below the old width is unchanged by extension or truncation unless its own subtree changed; only
the new root and the new right half need computing. A diff that truncates and then extends again
(Remove then Add) must not read base nodes it has cut off: ``_base_limit`` (the smallest width the
diff has had) bounds which indices may fall through to the base.
"""

from __future__ import annotations

import struct
from collections import Counter
from collections.abc import Collection, Iterator, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, Final, Self

from mls.codec.buffer import ONE_BYTE_VARINTS, encode_varint
from mls.errors import (
    DecodeError,
    InvalidUpdatePath,
    TreeShapeError,
    UsageError,
)
from mls.tree.math import direct_path, left, level, node_width, right, root
from mls.tree.nodes import (
    LeafNode,
    Node,
    ParentNode,
    decode_ratchet_tree,
    encode_ratchet_tree,
)

if TYPE_CHECKING:
    from mls.crypto import CipherSuite

__all__ = [
    "RatchetTree",
    "TreeDiff",
    "TreeView",
    "in_subtree",
    "parent_hash_input",
]

_MISSING: Final = object()
_EMPTY_STAT: Final = (0, 0)


def _parent_of(x: int) -> int:
    """Parent of ``x`` in the infinite left-balanced array (the caller stops at the root)."""
    k = ((x ^ (x + 1)).bit_length()) - 1
    return (x | (1 << k)) ^ (((x >> (k + 1)) & 1) << (k + 1))


def in_subtree(x: int, top: int) -> bool:
    """True if node ``x`` lies in the subtree headed by ``top`` (or is ``top``)."""
    span = (1 << level(top)) - 1
    return top - span <= x <= top + span


def _opaque(data: bytes) -> bytes:
    n = len(data)
    # Hashes and keys are shorter than 64 bytes: a one-byte varint.
    return (ONE_BYTE_VARINTS[n] if n < 0x40 else encode_varint(n)) + data


def parent_hash_input(encryption_key: bytes, parent_hash: bytes, sibling_hash: bytes) -> bytes:
    """Encoded ParentHashInput (§7.9)::

    struct {
        HPKEPublicKey encryption_key;
        opaque parent_hash<V>;
        opaque original_sibling_tree_hash<V>;
    } ParentHashInput;
    """
    return _opaque(encryption_key) + _opaque(parent_hash) + _opaque(sibling_hash)


class TreeView:
    """Read-only operations shared by :class:`RatchetTree` and :class:`TreeDiff`.

    Node indices are array indices (Appendix C); leaf ``i`` is node ``2 * i``.
    """

    __slots__ = ()

    cs: CipherSuite

    # -- primitives supplied by the subclasses -------------------------------------------------

    @property
    def n_leaves(self) -> int:
        """Number of leaves (a power of two; blank leaves included)."""
        raise NotImplementedError

    def node(self, x: int) -> Node | None:
        """The node at index ``x`` (``None`` if blank). ``x`` must be below :attr:`width`."""
        raise NotImplementedError

    def _stat(self, x: int) -> tuple[int, int]:
        """(non-blank leaves under ``x``, size of the resolution of ``x``)."""
        raise NotImplementedError

    def _hash(self, x: int) -> bytes:
        """Tree hash of the subtree under ``x`` (§7.8), memoised."""
        raise NotImplementedError

    def _key_candidates(self, encryption_key: bytes) -> tuple[int, ...]:
        raise NotImplementedError

    def _sig_candidates(self, signature_key: bytes) -> Iterator[int]:
        raise NotImplementedError

    def credential_types_in_use(self) -> frozenset[int]:
        """Credential types of the current members' credentials (§7.3)."""
        raise NotImplementedError

    def credential_use_count(self, credential_type: int) -> int:
        """Number of members whose credential has this type. O(1)."""
        raise NotImplementedError

    def credential_support_count(self, credential_type: int) -> int:
        """Number of members whose capabilities list this credential type. O(1)."""
        raise NotImplementedError

    def credential_supported_by_all(self, credential_type: int) -> bool:
        """True if every member lists ``credential_type`` in its capabilities (§7.3)."""
        return self.credential_support_count(credential_type) >= self.member_count

    # -- shape --------------------------------------------------------------------------------

    @property
    def width(self) -> int:
        """Number of nodes, ``2 * n_leaves - 1``."""
        return node_width(self.n_leaves)

    @property
    def root_index(self) -> int:
        return root(self.n_leaves)

    @property
    def member_count(self) -> int:
        """Number of non-blank leaves."""
        return self._stat(self.root_index)[0]

    def leaf(self, leaf_index: int) -> LeafNode | None:
        """The LeafNode of leaf ``leaf_index``, ``None`` if blank; UsageError if out of range."""
        self._check_leaf_index(leaf_index)
        node = self.node(2 * leaf_index)
        assert node is None or isinstance(node, LeafNode)
        return node

    def parent_node(self, x: int) -> ParentNode | None:
        """The ParentNode at odd index ``x``, ``None`` if blank."""
        node = self.node(x)
        assert node is None or isinstance(node, ParentNode)
        return node

    def _check_leaf_index(self, leaf_index: int) -> None:
        if not 0 <= leaf_index < self.n_leaves:
            raise UsageError(f"leaf index {leaf_index} out of range (n_leaves={self.n_leaves})")

    def direct_path(self, leaf_index: int) -> list[int]:
        """Node indices of the direct path of leaf ``leaf_index``, leaf to root (§4.1.2)."""
        self._check_leaf_index(leaf_index)
        return direct_path(2 * leaf_index, self.n_leaves)

    def leftmost_blank_leaf(self) -> int | None:
        """Index of the leftmost blank leaf (where an Add goes, §12.1.1), or ``None``."""
        x = self.root_index
        if self._stat(x)[0] >= self.n_leaves:
            return None
        while x & 1:
            lx = left(x)
            x = lx if self._stat(lx)[0] < (1 << level(lx)) else right(x)
        return x >> 1

    def rightmost_member(self) -> int | None:
        """Index of the rightmost non-blank leaf, or ``None`` if every leaf is blank."""
        x = self.root_index
        if self._stat(x)[0] == 0:
            return None
        while x & 1:
            rx = right(x)
            x = rx if self._stat(rx)[0] > 0 else left(x)
        return x >> 1

    def iter_leaves(self) -> Iterator[tuple[int, LeafNode]]:
        """(leaf index, LeafNode) of every non-blank leaf, left to right. O(n)."""
        for i in range(self.n_leaves):
            node = self.node(2 * i)
            if node is not None:
                assert isinstance(node, LeafNode)
                yield i, node

    def iter_parents(self) -> Iterator[tuple[int, ParentNode]]:
        """(node index, ParentNode) of every non-blank parent node, left to right. O(n)."""
        for x in range(1, self.width, 2):
            node = self.node(x)
            if node is not None:
                assert isinstance(node, ParentNode)
                yield x, node

    # -- resolution and paths (§4.1.1, §4.1.2) ---------------------------------------------

    def resolution(self, x: int, exclude: Collection[int] = ()) -> list[int]:
        """Node indices of the resolution of node ``x`` (§4.1.1), left first.

        ``exclude`` holds leaf indices left out wherever they appear (new members of the current
        commit, §12.4.2). Subtrees whose resolution is empty are skipped without being walked.
        """
        out: list[int] = []
        stack = [x]
        while stack:
            y = stack.pop()
            node = self.node(y)
            if node is None:
                if y & 1 and self._stat(y)[1]:
                    stack.append(right(y))
                    stack.append(left(y))
                continue
            if isinstance(node, ParentNode):
                out.append(y)
                out.extend(2 * i for i in node.unmerged_leaves if i not in exclude)
            elif (y >> 1) not in exclude:
                out.append(y)
        return out

    def resolution_size(self, x: int) -> int:
        """Length of the resolution of ``x`` in O(1) (new members not excluded)."""
        return self._stat(x)[1]

    def filtered_direct_path(self, leaf_index: int) -> list[tuple[int, int]]:
        """(parent, copath child) pairs of the filtered direct path of a leaf, leaf to root.

        §4.1.2: a direct-path node is dropped when its child on the copath has an empty
        resolution (unmerged leaves count). New members of the commit are *not* excluded here;
        §12.4.2 excludes them only from the sets of ciphertexts.
        """
        self._check_leaf_index(leaf_index)
        x = 2 * leaf_index
        r = self.root_index
        stat = self._stat
        out: list[tuple[int, int]] = []
        k = 0  # level(x); the parent of a node at level k is at level k + 1 (Appendix C)
        while x != r:
            p = (x | (1 << k)) ^ (((x >> (k + 1)) & 1) << (k + 1))
            # The copath child: the other child of p, at level k.
            s = p + (1 << k) if x < p else p - (1 << k)
            if stat(s)[1]:
                out.append((p, s))
            x = p
            k += 1
        return out

    # -- hashes (§7.8, §7.9) ------------------------------------------------------------------

    def tree_hash(self) -> bytes:
        """The tree hash of the root (§7.8): what the GroupContext carries."""
        return self._hash(self.root_index)

    def tree_hash_of(self, x: int) -> bytes:
        """The tree hash of the subtree under node ``x``."""
        if not 0 <= x < self.width:
            raise UsageError(f"node index {x} out of range (width={self.width})")
        return self._hash(x)

    def _compute_hash(self, x: int) -> bytes:
        node = self.node(x)
        if x & 1 == 0:
            # LeafNodeHashInput: uint8 node_type = leaf, uint32 leaf_index, optional<LeafNode>.
            head = b"\x01" + (x >> 1).to_bytes(4, "big")
            if node is None:
                return self.cs.hash(head + b"\x00")
            assert isinstance(node, LeafNode)
            return self.cs.hash(head + b"\x01" + node.to_bytes())
        # ParentNodeHashInput: optional<ParentNode>, opaque left_hash<V>, opaque right_hash<V>.
        # The children of a node at level k are x -+ 2^(k-1) (Appendix C).
        half = 1 << (((x ^ (x + 1)).bit_length()) - 2)
        lh = self._hash(x - half)
        rh = self._hash(x + half)
        if node is None:
            body = b"\x02\x00"
        else:
            assert isinstance(node, ParentNode)
            body = b"\x02\x01" + node.to_bytes()
        return self.cs.hash(body + _opaque(lh) + _opaque(rh))

    def parent_hash(self, encryption_key: bytes, parent_hash: bytes, sibling_hash: bytes) -> bytes:
        """Hash of a ParentHashInput (§7.9)."""
        return self.cs.hash(parent_hash_input(encryption_key, parent_hash, sibling_hash))

    def original_sibling_tree_hash(self, s: int, unmerged_leaves: Collection[int]) -> bytes:
        """Tree hash of ``s`` with the given leaves blanked and removed from every unmerged
        list (§7.9: ``original_sibling_tree_hash`` of a parent P whose unmerged leaves these are).

        Only nodes on the paths from those leaves up to ``s`` are re-hashed (uncached, the tree is
        not modified); every other subtree contributes its cached hash. This assumes, as
        validated trees guarantee (§12.4.3.1), that a leaf is listed as unmerged only at its
        ancestors.
        """
        removed = {i for i in unmerged_leaves if in_subtree(2 * i, s)}
        if not removed:
            return self._hash(s)
        affected: set[int] = set()
        for i in removed:
            y = 2 * i
            while True:
                if y in affected:
                    break
                affected.add(y)
                if y == s:
                    break
                y = _parent_of(y)
        return self._masked_hash(s, affected, removed)

    def _masked_hash(self, x: int, affected: set[int], removed: set[int]) -> bytes:
        if x not in affected:
            return self._hash(x)
        if x & 1 == 0:
            # A removed leaf, blanked.
            return self.cs.hash(b"\x01" + (x >> 1).to_bytes(4, "big") + b"\x00")
        node = self.parent_node(x)
        lh = self._masked_hash(left(x), affected, removed)
        rh = self._masked_hash(right(x), affected, removed)
        if node is None:
            body = b"\x02\x00"
        else:
            kept = tuple(i for i in node.unmerged_leaves if i not in removed)
            if len(kept) != len(node.unmerged_leaves):
                node = replace(node, unmerged_leaves=kept)
            body = b"\x02\x01" + node.to_bytes()
        return self.cs.hash(body + _opaque(lh) + _opaque(rh))

    def parent_hash_of(self, p: int, s: int) -> bytes:
        """The parent hash of non-blank parent ``p`` with copath child ``s`` (§7.9)."""
        node = self.parent_node(p)
        if node is None:
            raise UsageError(f"node {p} is blank: it has no parent hash")
        osth = self.original_sibling_tree_hash(s, node.unmerged_leaves)
        return self.parent_hash(node.encryption_key, node.parent_hash, osth)

    def path_parent_hash(self, leaf_index: int) -> bytes:
        """The parent hash a commit LeafNode at ``leaf_index`` must carry in this tree (§7.9.1):
        that of the first node of its filtered direct path, or ``b""`` if the path is empty."""
        fdp = self.filtered_direct_path(leaf_index)
        if not fdp:
            return b""
        return self.parent_hash_of(*fdp[0])

    # -- key lookups (§7.3 uniqueness) -------------------------------------------------------

    def find_encryption_key(self, encryption_key: bytes) -> int | None:
        """Node index of a node holding this HPKE key, or ``None``. O(1)."""
        candidates = self._key_candidates(encryption_key)
        if not candidates:
            return None  # the common case: a new key
        width = self.width
        for x in candidates:
            if x < width:
                node = self.node(x)
                if node is not None and node.encryption_key == encryption_key:
                    return x
        return None

    def find_signature_key(self, signature_key: bytes) -> int | None:
        """Leaf index of a leaf holding this signature key, or ``None``. O(1)."""
        n = self.n_leaves
        for i in self._sig_candidates(signature_key):
            if i < n:
                node = self.node(2 * i)
                if isinstance(node, LeafNode) and node.signature_key == signature_key:
                    return i
        return None

    # -- wire form (§12.4.3.3) ----------------------------------------------------------------

    def to_nodes(self) -> list[Node | None]:
        """Nodes in array order without trailing blanks, as the ``ratchet_tree`` lists them."""
        nodes = [self.node(x) for x in range(self.width)]
        while nodes and nodes[-1] is None:
            nodes.pop()
        return nodes

    def encode_tree(self) -> bytes:
        """The encoded ``optional<Node> ratchet_tree<V>`` (§12.4.3.3)."""
        return encode_ratchet_tree(self.to_nodes())


class RatchetTree(TreeView):
    """A ratchet tree: the accepted state of one epoch. Changed only by ``TreeDiff.merge``."""

    __slots__ = (
        "_cred_supported",
        "_cred_used",
        "_enc_index",
        "_hashed",
        "_hashes",
        "_leaves",
        "_n_leaves",
        "_nodes",
        "_res",
        "_sig_index",
        "_version",
        "cs",
    )

    def __init__(self, cs: CipherSuite, nodes: Sequence[Node | None]) -> None:
        """A tree over ``nodes`` given in array order, already extended to a full width.

        Use :meth:`from_nodes` / :meth:`decode` for received trees (they check the shape) and
        :meth:`create` for a new group.
        """
        n = (len(nodes) + 1) // 2
        if n == 0 or n & (n - 1) or len(nodes) != 2 * n - 1:
            raise TreeShapeError(f"{len(nodes)} nodes is not the width of a full tree")
        self.cs = cs
        self._nodes: list[Node | None] = list(nodes)
        self._n_leaves = n
        self._version = 0
        width = len(self._nodes)
        self._hashes: list[bytes | None] = [None] * width
        # False until the first hash is asked for: then all are computed in one bottom-up pass.
        self._hashed = False
        self._leaves: list[int] = [0] * width
        self._res: list[int] = [0] * width
        self._enc_index: dict[bytes, int] = {}
        self._sig_index: dict[bytes, int] = {}
        self._cred_used: Counter[int] = Counter()
        self._cred_supported: Counter[int] = Counter()
        leaves, res, nodes_ = self._leaves, self._res, self._nodes
        for x, node in enumerate(nodes_):
            if node is None:
                continue
            if x & 1 == 0:
                if not isinstance(node, LeafNode):
                    raise TreeShapeError(f"node {x} is a leaf position but holds a ParentNode")
                leaves[x] = 1
                res[x] = 1
                self._sig_index[node.signature_key] = x >> 1
                self._cred_used[node.credential.credential_type] += 1
                self._cred_supported.update(set(node.capabilities.credentials))
            elif not isinstance(node, ParentNode):
                raise TreeShapeError(f"node {x} is a parent position but holds a LeafNode")
            self._enc_index[node.encryption_key] = x
        # Parent statistics, level by level from the bottom.
        k = 1
        while (1 << k) <= width:
            step = 1 << (k + 1)
            half = 1 << (k - 1)
            for x in range((1 << k) - 1, width, step):
                lx, rx = x - half, x + half
                leaves[x] = leaves[lx] + leaves[rx]
                node = nodes_[x]
                if node is None:
                    res[x] = res[lx] + res[rx]
                else:
                    assert isinstance(node, ParentNode)
                    res[x] = 1 + len(node.unmerged_leaves)
            k += 1

    @classmethod
    def create(cls, cs: CipherSuite, leaf_node: LeafNode) -> Self:
        """The one-leaf tree of a new group (§11)."""
        return cls(cs, [leaf_node])

    @classmethod
    def from_nodes(cls, cs: CipherSuite, nodes: Sequence[Node | None]) -> Self:
        """A tree from the entries of a ``ratchet_tree`` (§12.4.3.3).

        The list must end in a non-blank node and hold LeafNodes at even and ParentNodes at odd
        positions (:class:`TreeShapeError` otherwise); it is extended with blanks to the
        smallest full width.
        """
        if not nodes:
            raise TreeShapeError("ratchet_tree is empty")
        if nodes[-1] is None:
            raise TreeShapeError("ratchet_tree ends in a blank node (§12.4.3.3)")
        if len(nodes) > node_width(1 << 32):
            raise TreeShapeError("ratchet_tree has more than 2^32 leaves")
        n = 1
        while node_width(n) < len(nodes):
            n *= 2
        full = list(nodes)
        full.extend([None] * (node_width(n) - len(nodes)))
        return cls(cs, full)

    @classmethod
    def decode(cls, cs: CipherSuite, data: bytes, *, max_leaves: int | None = None) -> Self:
        """Decode the ``ratchet_tree`` extension data (DecodeError / TreeShapeError;
        SizeLimitExceeded beyond ``max_leaves``)."""
        try:
            nodes = decode_ratchet_tree(data, None if max_leaves is None else 2 * max_leaves - 1)
        except DecodeError:
            raise
        except (ValueError, IndexError, KeyError, OverflowError, struct.error) as exc:
            raise DecodeError(f"cannot decode ratchet_tree: {type(exc).__name__}") from exc
        return cls.from_nodes(cs, nodes)

    def copy(self) -> RatchetTree:
        """An independent copy (O(n); not for the commit path, use :meth:`diff`)."""
        other = RatchetTree.__new__(RatchetTree)
        other.cs = self.cs
        other._nodes = list(self._nodes)
        other._n_leaves = self._n_leaves
        other._version = 0
        other._hashes = list(self._hashes)
        other._hashed = self._hashed
        other._leaves = list(self._leaves)
        other._res = list(self._res)
        other._enc_index = dict(self._enc_index)
        other._sig_index = dict(self._sig_index)
        other._cred_used = Counter(self._cred_used)
        other._cred_supported = Counter(self._cred_supported)
        return other

    def diff(self) -> TreeDiff:
        """A copy-on-write overlay for building the next epoch's tree."""
        return TreeDiff(self)

    # -- TreeView primitives ------------------------------------------------------------------

    @property
    def n_leaves(self) -> int:
        return self._n_leaves

    def node(self, x: int) -> Node | None:
        return self._nodes[x]

    def _stat(self, x: int) -> tuple[int, int]:
        return self._leaves[x], self._res[x]

    def _hash(self, x: int) -> bytes:
        h = self._hashes[x]
        if h is None:
            if not self._hashed:
                self._hash_all()
                h = self._hashes[x]
                assert h is not None
                return h
            h = self._compute_hash(x)
            self._hashes[x] = h
        return h

    def _hash_all(self) -> None:
        """Fill every missing tree hash (§7.8), level by level from the leaves: what the first
        hash of a decoded tree needs, without a recursive call per node."""
        hashes, nodes, width = self._hashes, self._nodes, len(self._nodes)
        h = self.cs.hash
        for x in range(0, width, 2):
            if hashes[x] is None:
                node = nodes[x]
                # LeafNodeHashInput: uint8 node_type = leaf, uint32 leaf_index, optional<LeafNode>
                head = b"\x01" + (x >> 1).to_bytes(4, "big")
                if node is None:
                    hashes[x] = h(head + b"\x00")
                else:
                    assert isinstance(node, LeafNode)
                    hashes[x] = h(head + b"\x01" + node.to_bytes())
        k = 1
        while (1 << k) <= width:
            half = 1 << (k - 1)
            for x in range((1 << k) - 1, width, 1 << (k + 1)):
                if hashes[x] is None:
                    lh, rh = hashes[x - half], hashes[x + half]
                    assert lh is not None and rh is not None
                    node = nodes[x]
                    if node is None:
                        body = b"\x02\x00"
                    else:
                        assert isinstance(node, ParentNode)
                        body = b"\x02\x01" + node.to_bytes()
                    hashes[x] = h(body + _opaque(lh) + _opaque(rh))
            k += 1
        self._hashed = True

    def _key_candidates(self, encryption_key: bytes) -> tuple[int, ...]:
        x = self._enc_index.get(encryption_key)
        return () if x is None else (x,)

    def _sig_candidates(self, signature_key: bytes) -> Iterator[int]:
        i = self._sig_index.get(signature_key)
        if i is not None:
            yield i

    def credential_types_in_use(self) -> frozenset[int]:
        return frozenset(t for t, c in self._cred_used.items() if c > 0)

    def credential_use_count(self, credential_type: int) -> int:
        return self._cred_used[credential_type]

    def credential_support_count(self, credential_type: int) -> int:
        return self._cred_supported[credential_type]

    # -- merge --------------------------------------------------------------------------------

    def _apply(self, diff: TreeDiff) -> None:
        if diff._base is not self:
            raise UsageError("this diff was made from another tree")
        if diff._version != self._version:
            raise UsageError("the tree changed since this diff was made")
        old_width = len(self._nodes)
        new_width = node_width(diff._n_leaves)
        limit = diff._base_limit
        nodes, hashes, leaves, res = self._nodes, self._hashes, self._leaves, self._res
        # Nodes the diff cut off (truncation): forget their keys, then resize the arrays.
        for x in range(limit, old_width):
            self._forget_keys(x, nodes[x])
        if new_width < old_width:
            del nodes[new_width:], hashes[new_width:], leaves[new_width:], res[new_width:]
        keep = min(old_width, new_width)
        for x in range(limit, keep):
            nodes[x] = None
            hashes[x] = None
            leaves[x] = 0
            res[x] = 0
        if new_width > old_width:
            grow = new_width - old_width
            nodes.extend([None] * grow)
            hashes.extend([None] * grow)
            leaves.extend([0] * grow)
            res.extend([0] * grow)
        for x, node in diff._changes.items():
            if x < limit:
                self._forget_keys(x, nodes[x])
            nodes[x] = node
            if node is not None:
                self._enc_index[node.encryption_key] = x
                if isinstance(node, LeafNode):
                    self._sig_index[node.signature_key] = x >> 1
        for x in diff._dirty:
            if x < new_width:
                hashes[x] = None
        for x, h in diff._hash_ov.items():
            hashes[x] = h
        for x, (nl, nr) in diff._stat_ov.items():
            leaves[x] = nl
            res[x] = nr
        self._cred_used.update(diff._d_cred_used)
        self._cred_supported.update(diff._d_cred_supported)
        self._cred_used = +self._cred_used
        self._cred_supported = +self._cred_supported
        self._n_leaves = diff._n_leaves
        self._version += 1

    def _forget_keys(self, x: int, node: Node | None) -> None:
        if node is None:
            return
        if self._enc_index.get(node.encryption_key) == x:
            del self._enc_index[node.encryption_key]
        if isinstance(node, LeafNode) and self._sig_index.get(node.signature_key) == x >> 1:
            del self._sig_index[node.signature_key]

    def __repr__(self) -> str:
        return f"RatchetTree(n_leaves={self._n_leaves}, members={self.member_count})"


class TreeDiff(TreeView):
    """Pending changes over a :class:`RatchetTree`; the base is untouched until :meth:`merge`.

    Apply proposals in RFC order (§12.3: updates, removes, then adds), then an UpdatePath, read
    ``tree_hash()`` for the provisional GroupContext, and ``merge()`` once the commit is accepted.
    """

    __slots__ = (
        "_base",
        "_base_limit",
        "_changes",
        "_d_cred_supported",
        "_d_cred_used",
        "_dirty",
        "_enc_new",
        "_hash_ov",
        "_merged",
        "_n_leaves",
        "_sig_new",
        "_stat_ov",
        "_version",
        "cs",
    )

    def __init__(self, base: RatchetTree) -> None:
        self.cs = base.cs
        self._base = base
        self._version = base._version
        self._n_leaves = base.n_leaves
        self._base_limit = base.width
        self._changes: dict[int, Node | None] = {}
        self._dirty: set[int] = set()
        self._hash_ov: dict[int, bytes] = {}
        self._stat_ov: dict[int, tuple[int, int]] = {}
        self._enc_new: dict[bytes, int] = {}
        self._sig_new: dict[bytes, int] = {}
        self._d_cred_used: Counter[int] = Counter()
        self._d_cred_supported: Counter[int] = Counter()
        self._merged = False

    @property
    def base(self) -> RatchetTree:
        return self._base

    @property
    def changed_nodes(self) -> frozenset[int]:
        """Indices of the nodes this diff has set (blanked or replaced)."""
        return frozenset(self._changes)

    # -- TreeView primitives ------------------------------------------------------------------

    @property
    def n_leaves(self) -> int:
        return self._n_leaves

    def node(self, x: int) -> Node | None:
        v = self._changes.get(x, _MISSING)
        if v is not _MISSING:
            return v  # type: ignore[return-value]
        if x < self._base_limit:
            return self._base._nodes[x]
        return None

    def _stat(self, x: int) -> tuple[int, int]:
        s = self._stat_ov.get(x)
        if s is not None:
            return s
        if x < self._base_limit:
            return self._base._leaves[x], self._base._res[x]
        return _EMPTY_STAT

    def _hash(self, x: int) -> bytes:
        h = self._hash_ov.get(x)
        if h is not None:
            return h
        if x < self._base_limit and x not in self._dirty:
            return self._base._hash(x)
        h = self._compute_hash(x)
        self._hash_ov[x] = h
        return h

    def _key_candidates(self, encryption_key: bytes) -> tuple[int, ...]:
        x = self._enc_new.get(encryption_key)
        y = self._base._enc_index.get(encryption_key)
        if x is None:
            return () if y is None else (y,)
        return (x,) if y is None else (x, y)

    def _sig_candidates(self, signature_key: bytes) -> Iterator[int]:
        i = self._sig_new.get(signature_key)
        if i is not None:
            yield i
        i = self._base._sig_index.get(signature_key)
        if i is not None:
            yield i

    def credential_types_in_use(self) -> frozenset[int]:
        used = self._base._cred_used.copy()
        used.update(self._d_cred_used)
        return frozenset(t for t, c in used.items() if c > 0)

    def credential_use_count(self, credential_type: int) -> int:
        return self._base._cred_used[credential_type] + self._d_cred_used[credential_type]

    def credential_support_count(self, credential_type: int) -> int:
        return self._base._cred_supported[credential_type] + self._d_cred_supported[credential_type]

    # -- low-level change ---------------------------------------------------------------------

    def _set(self, x: int, node: Node | None, *, propagate: bool = True) -> None:
        """Set node ``x``; refresh counts and invalidate hashes on ``x`` and its ancestors.

        With ``propagate=False`` the caller changes several nodes of one path and then calls
        :meth:`_propagate` once from the lowest of them: O(log n) instead of O(log^2 n).
        """
        if self._merged:
            raise UsageError("this diff was already merged")
        if x & 1 == 0:
            # A leaf: the credential counters follow the member it held and the new one.
            old = self.node(x)
            self._changes[x] = node
            if old is not None:
                assert isinstance(old, LeafNode)
                self._d_cred_used[old.credential.credential_type] -= 1
                self._d_cred_supported.subtract(set(old.capabilities.credentials))
            if node is not None:
                assert isinstance(node, LeafNode)
                self._d_cred_used[node.credential.credential_type] += 1
                self._d_cred_supported.update(set(node.capabilities.credentials))
                self._sig_new[node.signature_key] = x >> 1
        else:
            self._changes[x] = node
        if node is not None:
            self._enc_new[node.encryption_key] = x
        if propagate:
            self._propagate(x)

    def _propagate(self, x: int) -> None:
        """Refresh the counts of ``x`` and its ancestors, bottom-up, and mark their hashes
        dirty. Every node changed without propagation must lie on this path."""
        r = self.root_index
        dirty, hash_ov, stat_ov = self._dirty, self._hash_ov, self._stat_ov
        changes, base, limit = self._changes, self._base, self._base_limit
        base_nodes, base_leaves, base_res = base._nodes, base._leaves, base._res
        y = x
        k = ((y ^ (y + 1)).bit_length()) - 1  # level(y)
        while True:
            dirty.add(y)
            hash_ov.pop(y, None)
            # _compute_stat(y), inlined: this loop runs for every node of every path.
            node = changes.get(y, _MISSING)
            if node is _MISSING:
                node = base_nodes[y] if y < limit else None
            if k == 0:
                st = _EMPTY_STAT if node is None else (1, 1)
            else:
                half = 1 << (k - 1)
                lx, rx = y - half, y + half
                ls = stat_ov.get(lx)
                if ls is None:
                    ls = (base_leaves[lx], base_res[lx]) if lx < limit else _EMPTY_STAT
                rs = stat_ov.get(rx)
                if rs is None:
                    rs = (base_leaves[rx], base_res[rx]) if rx < limit else _EMPTY_STAT
                if node is None:
                    st = (ls[0] + rs[0], ls[1] + rs[1])
                else:
                    assert isinstance(node, ParentNode)
                    st = (ls[0] + rs[0], 1 + len(node.unmerged_leaves))
            stat_ov[y] = st
            if y == r:
                break
            # Parent at level k + 1 (Appendix C), as _parent_of.
            y = (y | (1 << k)) ^ (((y >> (k + 1)) & 1) << (k + 1))
            k += 1

    def _compute_stat(self, x: int) -> tuple[int, int]:
        node = self.node(x)
        if x & 1 == 0:
            return _EMPTY_STAT if node is None else (1, 1)
        ls = self._stat(left(x))
        rs = self._stat(right(x))
        if node is None:
            return ls[0] + rs[0], ls[1] + rs[1]
        assert isinstance(node, ParentNode)
        return ls[0] + rs[0], 1 + len(node.unmerged_leaves)

    def _extend(self) -> None:
        """Double the number of leaves (§7.7): the old tree becomes the left subtree of a new
        blank root whose right subtree is all blank."""
        old_root = self.root_index
        self._n_leaves *= 2
        new_root = self.root_index
        # The new nodes lie at or beyond the old width >= _base_limit: they read as blank.
        self._stat_ov[new_root] = self._stat(old_root)
        self._hash_ov.pop(new_root, None)

    def _truncate(self) -> None:
        """Drop right subtrees with no non-blank leaf (§7.7, §12.1.3)."""
        n = self._n_leaves
        while n > 1 and self._stat(right(root(n)))[0] == 0:
            n //= 2
        if n == self._n_leaves:
            return
        width = node_width(n)
        self._n_leaves = n
        self._base_limit = min(self._base_limit, width)
        self._changes = {x: v for x, v in self._changes.items() if x < width}
        self._hash_ov = {x: v for x, v in self._hash_ov.items() if x < width}
        self._stat_ov = {x: v for x, v in self._stat_ov.items() if x < width}
        self._dirty = {x for x in self._dirty if x < width}

    # -- proposals (§12.1) --------------------------------------------------------------------

    def add_leaf(self, leaf_node: LeafNode) -> int:
        """Add a member (§12.1.1) at the leftmost blank leaf, extending the tree if there is
        none; the new leaf becomes unmerged at every non-blank node of its direct path.
        Returns its leaf index."""
        i = self.leftmost_blank_leaf()
        if i is None:
            i = self._n_leaves
            self._extend()
        x = 2 * i
        for p in direct_path(x, self._n_leaves):
            node = self.node(p)
            if node is not None:
                assert isinstance(node, ParentNode)
                unmerged = tuple(sorted((*node.unmerged_leaves, i)))
                self._set(p, replace(node, unmerged_leaves=unmerged), propagate=False)
        self._set(x, leaf_node)
        return i

    def update_leaf(self, leaf_index: int, leaf_node: LeafNode) -> None:
        """Replace a member's LeafNode and blank its direct path (§12.1.2)."""
        if self.leaf(leaf_index) is None:
            raise UsageError(f"leaf {leaf_index} is blank")
        self._blank_direct_path(leaf_index)
        self._set(2 * leaf_index, leaf_node)

    def remove_leaf(self, leaf_index: int) -> None:
        """Blank a leaf and its direct path, then truncate (§12.1.3)."""
        if self.leaf(leaf_index) is None:
            raise UsageError(f"leaf {leaf_index} is blank")
        self._blank_direct_path(leaf_index)
        self._set(2 * leaf_index, None)
        self._truncate()

    def _blank_direct_path(
        self, leaf_index: int, *, propagate: bool = True, skip: Collection[int] = ()
    ) -> None:
        """Blank the parents on the leaf's direct path, except those in ``skip`` (which the
        caller sets next: setting a parent node does not depend on what it held)."""
        path = direct_path(2 * leaf_index, self._n_leaves)
        changed = False
        for p in path:
            if p not in skip and self.node(p) is not None:
                self._set(p, None, propagate=False)
                changed = True
        if changed and propagate:
            self._propagate(path[0])

    def set_leaf(self, leaf_index: int, leaf_node: LeafNode) -> None:
        """Set a leaf without touching its path (the commit leaf after :meth:`apply_path`)."""
        self._check_leaf_index(leaf_index)
        self._set(2 * leaf_index, leaf_node)

    def add_external_leaf_slot(self) -> int:
        """The leaf an external committer takes (§12.4.3.2): the leftmost blank leaf, after
        extending the tree if there is none. The leaf stays blank until :meth:`set_leaf`."""
        i = self.leftmost_blank_leaf()
        if i is None:
            i = self._n_leaves
            self._extend()
        return i

    # -- UpdatePath (§7.5, §7.9, §12.4.2) ----------------------------------------------------

    def apply_path(
        self,
        leaf_index: int,
        public_keys: Sequence[bytes],
        *,
        propagate: bool = True,
        fdp: Sequence[tuple[int, int]] | None = None,
    ) -> bytes:
        """Merge the public keys of an UpdatePath sent from ``leaf_index`` (§12.4.2).

        Blanks the sender's direct path, then sets each node of its filtered direct path to a
        ParentNode with the given key, no unmerged leaves and the parent hash of the next node
        up (§7.9, computed root-down). Returns the parent hash the sender's new LeafNode must
        carry. The leaf itself is left for :meth:`set_leaf`. Raises InvalidUpdatePath if the
        number of keys does not match the filtered direct path.

        With ``propagate=False`` the counts and hash marks of the path are left for the
        :meth:`set_leaf` that must follow (it refreshes the whole direct path once): no other
        read of the diff may come between. ``fdp`` is the leaf's filtered direct path if the
        caller has it.
        """
        if fdp is None:
            fdp = self.filtered_direct_path(leaf_index)
        if len(public_keys) != len(fdp):
            raise InvalidUpdatePath(
                f"UpdatePath has {len(public_keys)} nodes, filtered direct path has {len(fdp)}"
            )
        self._blank_direct_path(leaf_index, propagate=propagate, skip={p for p, _ in fdp})
        ph = b""
        for (p, s), pk in zip(reversed(fdp), reversed(public_keys), strict=True):
            # P's unmerged leaves become empty, so its original sibling tree hash is simply the
            # current tree hash of S (§7.9). S is off the path being changed, so its hash does
            # not depend on the counts refreshed below.
            node = ParentNode(encryption_key=pk, parent_hash=ph, unmerged_leaves=())
            self._set(p, node, propagate=False)
            ph = self.parent_hash(pk, ph, self._hash(s))
        if fdp and propagate:
            self._propagate(fdp[0][0])
        return ph

    # -- merge --------------------------------------------------------------------------------

    def merge(self) -> RatchetTree:
        """Write this diff into its base tree in place (O(changes)) and return the base.

        Call only once the commit is accepted. The diff is unusable afterwards, and so is any
        other diff made from the same base before this merge.
        """
        if self._merged:
            raise UsageError("this diff was already merged")
        self._base._apply(self)
        self._merged = True
        return self._base

    def __repr__(self) -> str:
        return f"TreeDiff(n_leaves={self._n_leaves}, changed={len(self._changes)})"
