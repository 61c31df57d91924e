"""Handler for ``mlswg/tree-operations.json`` (RFC 9420 §7.7, §7.8, §12.1.1-§12.1.3).

Per test-vectors.md "Tree Operations": check the tree hash before, apply the Add, Update or
Remove proposal from ``proposal_sender`` to a diff of the tree, merge it, and compare the encoded
tree and its tree hash with the expected ones.
"""

from __future__ import annotations

from typing import Any

from mls.conformance.core import CaseUnsupported, expect_eq, h
from mls.crypto import get_suite
from mls.messages.proposals import Add, Remove, Update, decode_proposal
from mls.tree.ratchet_tree import RatchetTree


def case_ids(data: Any) -> list[str]:
    names = {1: "add", 2: "update", 3: "remove"}
    return [
        f"{c['cipher_suite']}-{i}-{names.get(int(c['proposal'][:4], 16), 'other')}"
        for i, c in enumerate(data)
    ]


def check(case: Any) -> None:
    cs = get_suite(case["cipher_suite"])
    tree = RatchetTree.decode(cs, h(case["tree_before"]))
    expect_eq("tree_hash_before", tree.tree_hash(), h(case["tree_hash_before"]))
    proposal = decode_proposal(h(case["proposal"]))
    diff = tree.diff()
    if isinstance(proposal, Add):
        diff.add_leaf(proposal.key_package.leaf_node)
    elif isinstance(proposal, Update):
        diff.update_leaf(case["proposal_sender"], proposal.leaf_node)
    elif isinstance(proposal, Remove):
        diff.remove_leaf(proposal.removed)
    else:
        raise CaseUnsupported(f"proposal type {proposal.proposal_type} does not change the tree")
    # The diff alone must already give the result; then the merged tree must agree.
    expect_eq("tree_after (diff)", diff.encode_tree(), h(case["tree_after"]))
    expect_eq("tree_hash_after (diff)", diff.tree_hash(), h(case["tree_hash_after"]))
    merged = diff.merge()
    expect_eq("tree_after", merged.encode_tree(), h(case["tree_after"]))
    expect_eq("tree_hash_after", merged.tree_hash(), h(case["tree_hash_after"]))
