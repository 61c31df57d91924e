"""Tree builders for benchmarks/rekey.py: groups of 2 to 65,536 members in three shapes.

Each builder returns a :class:`Built`: two real member states (``committer`` at leaf 0 and
``processor`` at the last leaf) of the same group in the same epoch, and the time it took.

``sparse``  Honest: ``Group.create`` by member 0, then add-only commits of 512 KeyPackages
            (``commit(add=kps, path=False)``). The processor is the last member added; it joins
            from the last Welcome with the tree out of band. Every parent node is blank.

``full``    Synthetic but equivalent (see :func:`build_full`): the state after member 0 created
            the group, added everyone in add-only commits, then every even leaf, left to right,
            sent an empty commit with a path. Every parent node a path can reach is set.

``churned`` Honest, from ``full``: member 0 commits the removal of 10% of the members (chosen
            at random, never the two instantiated ones; a Remove requires a path), then re-adds
            as many new members in add-only commits of 512 without paths. The processor
            processes every one of these commits. The tree then has blank direct paths and
            unmerged leaves.

Only the ``full`` builder reaches below ``Group``: it drives the tree layer directly and builds
the two ``Group`` objects with the private constructor ``Group(client=, cs=, config=,
epoch=EpochState.start(...))`` (private API; acceptable in a benchmark).
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Callable
from dataclasses import dataclass

from mls.codec import decode
from mls.constants import ExtensionType
from mls.crypto import CipherSuite
from mls.extensions import find_extension
from mls.framing.message import MLSMessage
from mls.group import BasicIdentityProvider, Client, CommitMerged, Group, GroupConfig
from mls.group.epoch import EpochState
from mls.messages.group_info import GroupInfo
from mls.schedule.group_context import GroupContext
from mls.schedule.key_schedule import confirmation_tag, derive_epoch_secrets
from mls.schedule.transcript import next_interim_transcript_hash
from mls.tree.math import direct_path, level
from mls.tree.nodes import Node
from mls.tree.ratchet_tree import RatchetTree
from mls.tree.treekem import PreparedPath, TreePrivate, common_ancestor, prepare_update_path
from mls.tree.validation import validate_tree

__all__ = [
    "BATCH",
    "NOW",
    "Built",
    "build_churned",
    "build_full",
    "build_sparse",
    "new_clients",
    "tree_from_group_info",
]

NOW = 1_750_000_000
"""The ``now`` every benchmark operation passes (seconds since the Unix epoch)."""

BATCH = 512
"""KeyPackages per add-only commit."""

Log = Callable[[str], None]


@dataclass
class Built:
    """Two instantiated members of one group in one epoch."""

    shape: str
    n: int
    committer: Group
    processor: Group
    build_s: float
    """Wall time of the builder, validation included."""
    validate_s: float = 0.0
    """Part of ``build_s`` spent in ``validate_tree`` and the private-state checks."""


def _quiet(_: str) -> None:
    pass


def new_clients(cs: CipherSuite, prefix: str, count: int, start: int = 0) -> list[Client]:
    """``count`` clients with fresh signature keys and one KeyPackage each."""
    clients = []
    for i in range(start, start + count):
        c = Client.create(f"{prefix}-{i}".encode(), cs)
        c.key_package(NOW)
        clients.append(c)
    return clients


def _kp(client: Client) -> bytes:
    """The single KeyPackage in ``client``'s pool, as an MLSMessage."""
    (ref,) = client.key_package_refs()
    entry = client.find_key_package(ref)
    assert entry is not None
    return MLSMessage(body=entry.key_package).to_bytes()


def tree_from_group_info(group_info: bytes) -> bytes:
    """The ``ratchet_tree`` extension of an encoded GroupInfo (what ``commit`` returns)."""
    gi = decode(MLSMessage, group_info).body
    assert isinstance(gi, GroupInfo)
    ext = find_extension(gi.extensions, ExtensionType.ratchet_tree)
    assert ext is not None
    return ext.extension_data


def _add_in_batches(
    committer: Group,
    clients: list[Client],
    processors: list[Group],
    config: GroupConfig,
    log: Log,
    *,
    join_last: bool = False,
) -> Group | None:
    """Add ``clients`` in add-only commits of BATCH, processed by ``processors``. With
    ``join_last``, the last client joins from the last Welcome and is returned."""
    joined = None
    for start in range(0, len(clients), BATCH):
        batch = clients[start : start + BATCH]
        out = committer.commit(add=[_kp(c) for c in batch], path=False, now=NOW)
        committer.merge_pending_commit()
        for p in processors:
            ev = p.process(out.commit, now=NOW)
            assert isinstance(ev, CommitMerged)
        if join_last and start + BATCH >= len(clients):
            assert out.welcome is not None
            joined = Group.join(
                batch[-1],
                out.welcome,
                ratchet_tree=committer.export_tree(),
                config=config,
                now=NOW,
            )
        log(f"  added {min(start + BATCH, len(clients))}/{len(clients)}")
    return joined


def build_sparse(cs: CipherSuite, n: int, config: GroupConfig, log: Log = _quiet) -> Built:
    """Member 0 creates the group and adds n-1 members in add-only commits of 512."""
    if n < 2:
        raise ValueError("a benchmark group has at least two members")
    t0 = time.perf_counter()
    creator = Client.create(b"member-0", cs)
    g = Group.create(creator, f"sparse-{n}".encode(), config=config, now=NOW)
    clients = new_clients(cs, "member", n - 1, start=1)
    processor = _add_in_batches(g, clients, [], config, log, join_last=True)
    assert processor is not None
    assert processor.own_leaf_index == n - 1 and g.member_count == n
    return Built("sparse", n, g, processor, time.perf_counter() - t0, validate_s=0.0)


def build_full(cs: CipherSuite, n: int, config: GroupConfig, log: Log = _quiet) -> Built:
    """The state after add-only commits of everyone and an empty commit (with a path) by
    every even leaf in turn, left to right; see benchmarks/README.md for why it is exact.

    1. Every member is a real ``Client`` with a real KeyPackage. The tree the add-only
       commits leave is the list of their LeafNodes with all parent nodes blank (an Add with
       no path touches no parent node while the parents are blank, §12.1.1), so the builder
       starts from ``RatchetTree.from_nodes`` of exactly that list.
    2. For each committing leaf L in turn, the builder runs the committer's own tree code of
       ``Group.commit``: ``tree.diff()``, ``prepare_update_path`` (fresh leaf secret, path
       secrets, DeriveKeyPair of every node, parent hashes computed over the tree as it is at
       that point, the new commit LeafNode signed with L's real signature key), then
       ``diff.merge()``. Only the HPKE encryption of the path secrets is skipped: ciphertexts
       are not part of the tree or of any member's state.
    3. The two members that are instantiated update their private keys exactly as
       ``decrypt_update_path`` would: drop the keys of L's direct path, then take the keys of
       L's filtered direct path from the lowest common ancestor up (the path secrets they
       would decrypt; taken from the committer's derivation instead of re-derived), pruned to
       the tree. The committer itself takes the new keys of its own path.
    4. The epoch: GroupContext at epoch = number of commits, the tree hash of the built tree,
       a random confirmed transcript hash (a hash output), and epoch secrets from the last
       commit's real commit_secret and a random init_secret (the previous epoch's, unknown).
    5. Checks: ``validate_tree`` (what a joiner runs), each member's private keys match the
       tree and cover every non-blank node of its direct path (the §4.2 tree invariant of a
       member that processed every commit). The benchmark then proves the states work: the
       processor decrypts the committer's real commits.
    """
    if n < 2:
        raise ValueError("a benchmark group has at least two members")
    t0 = time.perf_counter()
    group_id = f"full-{n}".encode()
    clients = new_clients(cs, "member", n)
    log(f"  {n} clients and KeyPackages: {time.perf_counter() - t0:.1f} s")
    nodes: list[Node | None] = []
    for c in clients:
        (ref,) = c.key_package_refs()
        entry = c.find_key_package(ref)
        assert entry is not None
        nodes.append(entry.key_package.leaf_node)
        nodes.append(None)
    nodes.pop()
    tree = RatchetTree.from_nodes(cs, nodes)
    del nodes
    # The instantiated members' private keys: node index -> (sk, pk), starting from the leaf.
    me_c, me_p = 0, n - 1
    tracked: dict[int, dict[int, tuple[bytes, bytes]]] = {}
    for m in (me_c, me_p):
        (ref,) = clients[m].key_package_refs()
        entry = clients[m].find_key_package(ref)
        assert entry is not None
        leaf = entry.key_package.leaf_node
        tracked[m] = {2 * m: (entry.encryption_private_key, leaf.encryption_key)}
        clients[m].consume_key_package(ref)  # as Group.create / Group.join do
    committers = list(range(0, n, 2))
    last: PreparedPath | None = None
    t1 = time.perf_counter()
    for k, sender in enumerate(committers):
        diff = tree.diff()
        template = diff.leaf(sender)
        assert template is not None
        last = prepare_update_path(
            cs, diff, sender, template, clients[sender].signature_private_key, group_id
        )
        fdp = [p for p, _ in last.path]
        for m, keys in tracked.items():
            if m == sender:
                keys.clear()
                for x in last.private.nodes:
                    node = diff.node(x)
                    sk = last.private.private_key(x)
                    assert node is not None and sk is not None
                    keys[x] = (sk, node.encryption_key)
                continue
            lca_level = level(common_ancestor(2 * m, 2 * sender))
            for x in direct_path(2 * sender, diff.n_leaves):
                keys.pop(x, None)
            for p in fdp:
                if level(p) >= lca_level:
                    node = diff.node(p)
                    sk = last.private.private_key(p)
                    assert node is not None and sk is not None
                    keys[p] = (sk, node.encryption_key)
        tree = diff.merge()
        if (k + 1) % 4096 == 0:
            log(f"  path commits {k + 1}/{len(committers)}: {time.perf_counter() - t1:.1f} s")
    assert last is not None
    # Group.create, the add-only commits, then one commit per committing leaf.
    epoch = math.ceil((n - 1) / BATCH) + len(committers)
    ctx = GroupContext(
        cipher_suite=cs.suite_id,
        group_id=group_id,
        epoch=epoch,
        tree_hash=tree.tree_hash(),
        confirmed_transcript_hash=cs.random(cs.hash_len),
        extensions=(),
    )
    secrets = derive_epoch_secrets(
        cs,
        init_secret=cs.random(cs.hash_len),
        commit_secret=last.commit_secret,
        psk_secret=None,
        group_context=ctx.to_bytes(),
    )
    tag = confirmation_tag(cs, secrets.confirmation_key, ctx.confirmed_transcript_hash)
    interim = next_interim_transcript_hash(cs, ctx.confirmed_transcript_hash, tag)
    t2 = time.perf_counter()
    validate_tree(
        cs, tree, group_id=group_id, tree_hash=ctx.tree_hash, identity=BasicIdentityProvider()
    )
    privates = {}
    for m, keys in tracked.items():
        private = TreePrivate(m, keys).pruned(tree)
        private.check_consistent(tree)
        want = {2 * m} | {p for p in direct_path(2 * m, tree.n_leaves) if tree.node(p)}
        assert private.nodes == want, f"member {m} misses keys of its direct path"
        privates[m] = private
    validate_s = time.perf_counter() - t2
    groups = []
    for m, t in ((me_c, tree), (me_p, tree.copy())):
        epoch_state = EpochState.start(
            cs,
            config,
            context=ctx,
            tree=t,
            private=privates[m],
            secrets=secrets,
            interim_transcript_hash=interim,
            confirmation_tag=tag,
        )
        groups.append(Group(client=clients[m], cs=cs, config=config, epoch=epoch_state))
    return Built("full", n, groups[0], groups[1], time.perf_counter() - t0, validate_s)


def build_churned(
    cs: CipherSuite,
    n: int,
    config: GroupConfig,
    log: Log = _quiet,
    full: Built | None = None,
) -> Built:
    """A ``full`` group (built here, or ``full``, whose members are then changed in place)
    after the committer removed 10% of the members (one commit, with its required path) and
    re-added as many new members in add-only commits of 512."""
    t0 = time.perf_counter()
    base = full if full is not None else build_full(cs, n, config, log)
    c, p = base.committer, base.processor
    keep = {c.own_leaf_index, p.own_leaf_index}
    candidates = [i for i in range(n) if i not in keep]
    k = min(len(candidates), max(1, round(n / 10)))
    removed = sorted(random.Random(n).sample(candidates, k))
    if removed:
        out = c.commit(remove=removed, now=NOW)
        c.merge_pending_commit()
        ev = p.process(out.commit, now=NOW)
        assert isinstance(ev, CommitMerged) and ev.removed == tuple(removed)
        log(f"  removed {k}")
        _add_in_batches(c, new_clients(cs, "rejoin", k), [p], config, log)
    assert c.member_count == n and c.tree_hash == p.tree_hash
    build_s = time.perf_counter() - t0 + (base.build_s if full is not None else 0.0)
    return Built("churned", n, c, p, build_s, base.validate_s)
