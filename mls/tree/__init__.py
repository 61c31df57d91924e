"""The ratchet tree (RFC 9420 §4, §7): index math, nodes, public tree, TreeKEM, validation.

- :mod:`mls.tree.math`: Appendix C array index arithmetic.
- :mod:`mls.tree.nodes`: LeafNode, ParentNode, Capabilities, Lifetime, UpdatePath structs.
- :mod:`mls.tree.ratchet_tree`: :class:`RatchetTree` (one epoch's public tree) and
  :class:`TreeDiff` (copy-on-write changes for the next epoch), tree and parent hashes.
- :mod:`mls.tree.treekem`: :class:`TreePrivate` and UpdatePath creation / processing.
- :mod:`mls.tree.validation`: §7.3 leaf validation and a joiner's whole-tree checks.
"""

from __future__ import annotations

from mls.tree.ratchet_tree import RatchetTree, TreeDiff, TreeView
from mls.tree.treekem import (
    PathResult,
    PreparedPath,
    TreePrivate,
    apply_update_path,
    decrypt_update_path,
    prepare_update_path,
)
from mls.tree.validation import IdentityProvider, validate_leaf_node, validate_tree

__all__ = [
    "RatchetTree",
    "TreeDiff",
    "TreeView",
    "TreePrivate",
    "PreparedPath",
    "PathResult",
    "prepare_update_path",
    "apply_update_path",
    "decrypt_update_path",
    "IdentityProvider",
    "validate_leaf_node",
    "validate_tree",
]
