"""Handler for ``mlswg/treekem.json`` (RFC 9420 §7.4-§7.6, §12.4.2).

Per test-vectors.md "TreeKEM": build each listed member's private state from its leaf key and
path secrets and check it against the tree; then for every UpdatePath, merge it (parent hash
checked), let every other member decrypt it (path secret and commit secret), compare the tree
hash after; finally have the same sender create a fresh UpdatePath and check every other member
derives the same commit secret from it.
"""

from __future__ import annotations

from typing import Any

from mls.codec.wire import decode
from mls.conformance.core import CaseFailed, expect_eq, h
from mls.crypto import get_suite
from mls.schedule.group_context import GroupContext
from mls.tree.nodes import UpdatePath
from mls.tree.ratchet_tree import RatchetTree
from mls.tree.treekem import (
    TreePrivate,
    apply_update_path,
    decrypt_update_path,
    prepare_update_path,
)


def case_ids(data: Any) -> list[str]:
    return [f"{c['cipher_suite']}-{i}-leaves{len(c['leaves_private'])}" for i, c in enumerate(data)]


def check(case: Any) -> None:
    cs = get_suite(case["cipher_suite"])
    group_id = h(case["group_id"])
    tree = RatchetTree.decode(cs, h(case["ratchet_tree"]))

    def context(tree_hash: bytes) -> bytes:
        return GroupContext(
            cipher_suite=case["cipher_suite"],
            group_id=group_id,
            epoch=case["epoch"],
            tree_hash=tree_hash,
            confirmed_transcript_hash=h(case["confirmed_transcript_hash"]),
        ).to_bytes()

    privates: dict[int, TreePrivate] = {}
    signature_keys: dict[int, bytes] = {}
    for entry in case["leaves_private"]:
        i = entry["index"]
        leaf = tree.leaf(i)
        if leaf is None:
            raise CaseFailed(f"leaves_private names blank leaf {i}")
        state = TreePrivate.for_leaf(cs, i, h(entry["encryption_priv"]))
        for ps in entry["path_secrets"]:
            state = state.with_path_secret(cs, tree, ps["node"], h(ps["path_secret"]))
        state.check_consistent(tree)
        privates[i] = state
        signature_keys[i] = h(entry["signature_priv"])

    for k, up in enumerate(case["update_paths"]):
        sender = up["sender"]
        path = decode(UpdatePath, h(up["update_path"]))
        diff = tree.diff()
        apply_update_path(diff, sender, path)
        path.leaf_node.verify(cs, group_id, sender)
        expect_eq(f"update_paths[{k}].tree_hash_after", diff.tree_hash(), h(up["tree_hash_after"]))
        ctx = context(diff.tree_hash())
        for j, state in privates.items():
            if j == sender:
                continue
            result = decrypt_update_path(cs, diff, state, sender, path, ctx)
            want = up["path_secrets"][j]
            if want is None:
                raise CaseFailed(f"update_paths[{k}]: no path secret listed for leaf {j}")
            expect_eq(f"update_paths[{k}].path_secrets[{j}]", result.path_secret, h(want))
            expect_eq(
                f"update_paths[{k}].commit_secret (leaf {j})",
                result.commit_secret,
                h(up["commit_secret"]),
            )
            result.private.check_consistent(diff)

        # A fresh UpdatePath from the same sender, processed by every other member.
        template = tree.leaf(sender)
        assert template is not None
        fresh = tree.diff()
        prepared = prepare_update_path(
            cs, fresh, sender, template, signature_keys[sender], group_id
        )
        fresh_path = prepared.encrypt(cs, fresh, context(fresh.tree_hash()))
        prepared.private.check_consistent(fresh)
        receiver_view = tree.diff()
        apply_update_path(receiver_view, sender, fresh_path)
        expect_eq(
            f"update_paths[{k}] fresh tree hash", receiver_view.tree_hash(), fresh.tree_hash()
        )
        fresh_path.leaf_node.verify(cs, group_id, sender)
        ctx = context(receiver_view.tree_hash())
        for j, state in privates.items():
            if j == sender:
                continue
            result = decrypt_update_path(cs, receiver_view, state, sender, fresh_path, ctx)
            expect_eq(
                f"update_paths[{k}] fresh commit_secret (leaf {j})",
                result.commit_secret,
                prepared.commit_secret,
            )
