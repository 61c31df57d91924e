"""Handler for ``mlswg/tree-validation.json`` (RFC 9420 §4.1.1, §7.8, §7.9.2, §12.4.3.1).

Per test-vectors.md "Tree Validation": the resolution and tree hash of every node match, and the
tree passes the joiner's validation (parent hashes, leaf signatures with ``group_id``, and the
other §7.3 / §12.4.3.1 checks).
"""

from __future__ import annotations

from typing import Any

from mls.conformance.core import expect_eq, h
from mls.crypto import get_suite
from mls.tree.ratchet_tree import RatchetTree
from mls.tree.validation import validate_tree


def case_ids(data: Any) -> list[str]:
    return [f"{c['cipher_suite']}-{i}-nodes{len(c['tree_hashes'])}" for i, c in enumerate(data)]


def check(case: Any) -> None:
    cs = get_suite(case["cipher_suite"])
    tree = RatchetTree.decode(cs, h(case["tree"]))
    expect_eq("node count", tree.width, len(case["tree_hashes"]))
    for x in range(tree.width):
        expect_eq(f"resolution[{x}]", tree.resolution(x), case["resolutions"][x])
        expect_eq(f"tree_hash[{x}]", tree.tree_hash_of(x), h(case["tree_hashes"][x]))
    validate_tree(
        cs, tree, group_id=h(case["group_id"]), tree_hash=h(case["tree_hashes"][tree.root_index])
    )
