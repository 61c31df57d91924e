"""Array-based tree index arithmetic (RFC 9420 §4.1, Appendix C).

Plain integer functions over *node indices*: leaves sit at even indices, parents at odd ones,
and the level of a node is the number of trailing one bits of its index. ``n_leaves`` is the
number of leaves of the (complete, left-balanced) tree and must be a power of two, as the array
form of §7 always is. Valid for up to 2^32 leaves.
"""

from __future__ import annotations

__all__ = [
    "copath",
    "direct_path",
    "is_leaf",
    "leaf_to_node",
    "left",
    "level",
    "log2",
    "node_to_leaf",
    "node_width",
    "parent",
    "right",
    "root",
    "sibling",
]


def log2(x: int) -> int:
    """Floor of log2(x); 0 for x == 0 (Appendix C)."""
    return x.bit_length() - 1 if x > 0 else 0


def level(x: int) -> int:
    """Level of node ``x``: its count of trailing one bits (leaves are level 0)."""
    return ((x ^ (x + 1)).bit_length()) - 1


def is_leaf(x: int) -> bool:
    return x & 1 == 0


def leaf_to_node(leaf_index: int) -> int:
    return 2 * leaf_index


def node_to_leaf(x: int) -> int:
    return x >> 1


def node_width(n_leaves: int) -> int:
    """Number of nodes in a tree with ``n_leaves`` leaves."""
    return 0 if n_leaves == 0 else 2 * (n_leaves - 1) + 1


def root(n_leaves: int) -> int:
    return (1 << log2(node_width(n_leaves))) - 1


def left(x: int) -> int:
    k = level(x)
    if k == 0:
        raise ValueError("leaf node has no children")
    return x ^ (0x01 << (k - 1))


def right(x: int) -> int:
    k = level(x)
    if k == 0:
        raise ValueError("leaf node has no children")
    return x ^ (0x03 << (k - 1))


def parent(x: int, n_leaves: int) -> int:
    if x == root(n_leaves):
        raise ValueError("root node has no parent")
    k = level(x)
    b = (x >> (k + 1)) & 0x01
    return (x | (1 << k)) ^ (b << (k + 1))


def sibling(x: int, n_leaves: int) -> int:
    p = parent(x, n_leaves)
    return right(p) if x < p else left(p)


def direct_path(x: int, n_leaves: int) -> list[int]:
    """Parents of ``x`` from its parent up to and including the root (§4.1.2)."""
    r = root(n_leaves)
    d: list[int] = []
    k = level(x)
    while x != r:
        # The parent of a node at level k is at level k + 1.
        x = (x | (1 << k)) ^ (((x >> (k + 1)) & 0x01) << (k + 1))
        k += 1
        d.append(x)
    return d


def copath(x: int, n_leaves: int) -> list[int]:
    """Siblings of ``x`` and of each node of its direct path except the root (§4.1.2)."""
    r = root(n_leaves)
    if x == r:
        return []
    path = [x, *direct_path(x, n_leaves)]
    path.pop()
    return [sibling(y, n_leaves) for y in path]
