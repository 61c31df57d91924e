"""Smoke tests of benchmarks/rekey.py and benchmarks/chat.py, and checks that the tree builders
are faithful.

No timing is asserted anywhere: machines differ. The benchmark's own targets are reported by
the benchmark, never tested here.
"""

from __future__ import annotations

import importlib.util
import json
import random
import subprocess
import sys
from pathlib import Path

import pytest

from mls.crypto import get_suite
from mls.group import Client, CommitMerged, Group, GroupConfig
from mls.tree.nodes import LeafNode, ParentNode
from mls.tree.ratchet_tree import RatchetTree, in_subtree
from mls.tree.treekem import TreePrivate, _resolution_key
from mls.tree.validation import validate_tree

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

from _builders import NOW, build_churned, build_full  # noqa: E402

OPS = {"commit", "process", "join", "protect", "unprotect"}
KEYS = {"shape", "n", "op", "median_ms", "min_ms", "max_ms", "floor_ms", "ratio", "bytes"}


def test_quick_run_writes_valid_json(tmp_path: Path) -> None:
    out, md = tmp_path / "rekey.json", tmp_path / "rekey.md"
    cmd = [sys.executable, str(ROOT / "benchmarks" / "rekey.py"), "--quick"]
    cmd += ["--json", str(out), "--md", str(md)]
    plot = importlib.util.find_spec("matplotlib") is not None
    if plot:
        cmd += ["--plot", str(tmp_path / "rekey.png")]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600, check=False)
    assert proc.returncode == 0, proc.stderr[-2000:]
    rows = json.loads(out.read_text())
    assert isinstance(rows, list) and rows
    seen = set()
    for row in rows:
        assert KEYS <= row.keys()
        assert row["op"] in OPS and row["shape"] in {"sparse", "full", "churned"}
        assert isinstance(row["n"], int) and row["n"] >= 2
        for k in ("median_ms", "min_ms", "max_ms", "floor_ms"):
            assert isinstance(row[k], (int, float)) and row[k] >= 0
        assert row["min_ms"] <= row["median_ms"] <= row["max_ms"]
        assert isinstance(row["bytes"], int) and row["bytes"] > 0
        seen.add((row["shape"], row["n"], row["op"]))
    assert len(seen) == len(rows)
    # Every shape and size has all five operations.
    for shape, n, _ in seen:
        assert {(shape, n, op) for op in OPS} <= seen
    assert "| shape | n | op |" in md.read_text()
    if plot:
        assert (tmp_path / "rekey.png").stat().st_size > 0


def _shape_of(tree: RatchetTree) -> list[object]:
    """What a tree's structure is, apart from its keys: per node blank, leaf source, or
    parent with its unmerged leaves."""
    out: list[object] = []
    for x in range(tree.width):
        node = tree.node(x)
        if node is None:
            out.append(None)
        elif isinstance(node, LeafNode):
            out.append(("leaf", node.leaf_node_source))
        else:
            assert isinstance(node, ParentNode)
            out.append(("parent", node.unmerged_leaves))
    return out


@pytest.mark.parametrize("n", [2, 5, 8, 11])
def test_full_builder_matches_real_commits(n: int) -> None:
    """build_full gives the tree shape and private-key coverage that real commits give:
    member 0 adds everyone without a path, then every even leaf commits, processed by all."""
    cs = get_suite(1)
    config = GroupConfig()
    creator = Client.create(b"member-0", cs)
    members = {0: Group.create(creator, b"real", config=config, now=NOW)}
    clients = [Client.create(f"member-{i}".encode(), cs) for i in range(1, n)]
    out = members[0].commit(add=[c.key_package(NOW) for c in clients], path=False, now=NOW)
    members[0].merge_pending_commit()
    assert out.welcome is not None
    tree = members[0].export_tree()
    for i, c in enumerate(clients, start=1):
        members[i] = Group.join(c, out.welcome, ratchet_tree=tree, config=config, now=NOW)
    for sender in range(0, n, 2):
        out = members[sender].commit(now=NOW)
        members[sender].merge_pending_commit()
        for i, g in members.items():
            if i != sender:
                assert isinstance(g.process(out.commit, now=NOW), CommitMerged)
    built = build_full(cs, n, config)
    real_c, real_p = members[0], members[n - 1]
    assert _shape_of(built.committer.tree) == _shape_of(real_c.tree)
    assert built.committer.epoch == real_c.epoch
    for b, r in ((built.committer, real_c), (built.processor, real_p)):
        assert b.own_leaf_index == r.own_leaf_index
        assert b._private.nodes == r._private.nodes
        validate_tree(cs, b.tree, group_id=b.group_id, tree_hash=b.tree_hash)
    # The built states work: a real commit of one is processed by the other.
    out = built.committer.commit(now=NOW)
    assert isinstance(built.processor.process(out.commit, now=NOW), CommitMerged)
    built.committer.merge_pending_commit()
    assert built.committer.epoch_authenticator == built.processor.epoch_authenticator


def test_resolution_key_matches_resolution_walk() -> None:
    """The O(log n) position of a member's ciphertext (treekem._resolution_key) is its index
    in the resolution, on a tree with blanks and unmerged leaves, with and without leaves
    excluded (the commit's new members)."""
    cs = get_suite(1)
    built = build_churned(cs, 48, GroupConfig())
    tree = built.committer.tree
    rng = random.Random(7)
    members = [i for i, _ in tree.iter_leaves()]
    checked = 0
    for excluded_count in (0, 3):
        excluded = frozenset(rng.sample(members, excluded_count))
        new_members = [2 * i for i in excluded]
        for m in members:
            if m in excluded:
                continue
            keys = {}
            for x in (2 * m, *tree.direct_path(m)):
                node = tree.node(x)
                if node is not None:
                    keys[x] = (x.to_bytes(4, "big"), node.encryption_key)
            private = TreePrivate(m, keys)
            for sender in members:
                if sender == m:
                    continue
                for _, s in tree.filtered_direct_path(sender):
                    if not in_subtree(2 * m, s):
                        continue
                    res = tree.resolution(s, excluded)
                    want = next((pos, keys[r][0]) for pos, r in enumerate(res) if r in keys)
                    got = _resolution_key(tree, private, s, excluded, new_members)
                    assert (got[1], got[0]) == want
                    checked += 1
    assert checked > 100


CHAT_KEYS = {
    "n",
    "messages",
    "median_ms",
    "msgs_per_s",
    "bytes_per_msg",
    "floor_ms",
    "unprotect_ms",
    "txn_ms",
    "ratio",
    "open_ms",
    "first_ms",
    "state_bytes",
}


def test_chat_benchmark_runs(tmp_path: Path) -> None:
    """benchmarks/chat.py at tiny sizes: every row is complete and its numbers are sane."""
    out, md = tmp_path / "chat.json", tmp_path / "chat.md"
    cmd = [sys.executable, str(ROOT / "benchmarks" / "chat.py"), "--sizes", "3,8"]
    cmd += ["--messages", "4", "--restarts", "1", "--dir", str(tmp_path / "db")]
    cmd += ["--json", str(out), "--md", str(md)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600, check=False)
    assert proc.returncode == 0, proc.stderr[-2000:]
    rows = json.loads(out.read_text())["rows"]
    assert [r["n"] for r in rows] == [3, 8]
    for row in rows:
        assert CHAT_KEYS <= row.keys()
        assert row["messages"] == 4 and row["restarts"] == 1
        for k in ("median_ms", "msgs_per_s", "floor_ms", "unprotect_ms", "txn_ms", "ratio"):
            assert row[k] > 0, k
        assert row["min_ms"] <= row["median_ms"] <= row["max_ms"]
        assert row["floor_ms"] == pytest.approx(row["unprotect_ms"] + row["txn_ms"])
        assert row["open_ms"] > 0 and row["first_ms"] > 0
        assert row["state_bytes"] > 0 and row["db_bytes"] > 0
        if sys.platform == "linux":
            # Each received message is stored: at least one page of the file is written.
            assert row["bytes_per_msg"] >= 512 and row["floor_bytes"] >= 512
    # The client's state grows with the group.
    assert rows[1]["state_bytes"] > rows[0]["state_bytes"]
    text = md.read_text()
    assert "| n | msgs |" in text and "receive <= 2x floor" in text
