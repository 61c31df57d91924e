"""Ratchet tree, TreeKEM and tree validation (RFC 9420 §4, §7, §12.4.2, §12.4.3.1).

Trees are built by running the protocol operations (adds, removes, commits with UpdatePaths)
through :mod:`mls.tree.ratchet_tree` and :mod:`mls.tree.treekem`; every member checks it derives
the committer's commit secret, and the resulting trees must pass joiner validation. Forged trees
must fail with their own exception and leave the tree untouched. Cost tests count hash calls and
node accesses to show that a commit touches O(log n) nodes.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, replace
from typing import Any, cast

import pytest

from mls.constants import CredentialType, LeafNodeSource
from mls.credentials import Credential
from mls.crypto import CipherSuite, get_suite
from mls.errors import (
    BadSignature,
    DuplicateEncryptionKey,
    DuplicateSignatureKey,
    InvalidLeafNodeSource,
    InvalidUnmergedLeaves,
    InvalidUpdatePath,
    LifetimeError,
    MissingRequiredCapability,
    ParentHashMismatch,
    PathSecretMismatch,
    TreeHashMismatch,
    TreeShapeError,
    UnsupportedCredential,
    UnsupportedLeafExtension,
    UsageError,
)
from mls.extensions import Extension, RequiredCapabilities
from mls.schedule.group_context import GroupContext
from mls.tree.math import node_width, root
from mls.tree.nodes import Capabilities, LeafNode, Lifetime, Node, ParentNode, UpdatePath
from mls.tree.ratchet_tree import RatchetTree, TreeDiff
from mls.tree.treekem import (
    TreePrivate,
    apply_update_path,
    decrypt_update_path,
    node_key_pair,
    prepare_update_path,
)
from mls.tree.validation import validate_leaf_node, validate_tree, verify_parent_hashes

GROUP_ID = b"test group"


# -- a small protocol harness ------------------------------------------------------------------


@dataclass
class Client:
    sig_sk: bytes
    enc_sk: bytes
    leaf: LeafNode


def new_client(
    cs: CipherSuite,
    name: bytes,
    *,
    credential: Credential | None = None,
    credentials: tuple[int, ...] = (CredentialType.basic,),
) -> Client:
    sig_sk, sig_pk = cs.generate_signature_key_pair()
    enc_sk, enc_pk = cs.generate_key_pair()
    leaf = LeafNode(
        encryption_key=enc_pk,
        signature_key=sig_pk,
        credential=credential or Credential.basic(name),
        capabilities=Capabilities(
            versions=(1,), cipher_suites=(cs.suite_id,), credentials=credentials
        ),
        leaf_node_source=LeafNodeSource.key_package,
        lifetime=Lifetime(not_before=1000, not_after=2000),
    ).sign(cs, sig_sk)
    return Client(sig_sk, enc_sk, leaf)


class Group:
    """The public tree plus every member's private state, advanced commit by commit."""

    def __init__(self, cs: CipherSuite, creator: Client) -> None:
        self.cs = cs
        self.tree = RatchetTree.create(cs, creator.leaf)
        self.clients = {0: creator}
        self.private = {0: TreePrivate.for_leaf(cs, 0, creator.enc_sk)}
        self.epoch = 0

    def context(self, tree_hash: bytes) -> bytes:
        return GroupContext(
            cipher_suite=self.cs.suite_id,
            group_id=GROUP_ID,
            epoch=self.epoch + 1,
            tree_hash=tree_hash,
            confirmed_transcript_hash=b"\x00" * self.cs.hash_len,
        ).to_bytes()

    def _proposals(self, diff: TreeDiff, adds: list[Client], removes: list[int]) -> list[int]:
        for r in removes:
            diff.remove_leaf(r)
        return [diff.add_leaf(c.leaf) for c in adds]

    def commit(
        self, committer: int, adds: list[Client] | None = None, removes: list[int] | None = None
    ) -> UpdatePath:
        """A full commit: every remaining member processes it and must agree."""
        adds, removes = adds or [], removes or []
        cs = self.cs
        diff = self.tree.diff()
        new = self._proposals(diff, adds, removes)
        template = diff.leaf(committer)
        assert template is not None
        prepared = prepare_update_path(
            cs, diff, committer, template, self.clients[committer].sig_sk, GROUP_ID
        )
        ctx = self.context(diff.tree_hash())
        path = prepared.encrypt(cs, diff, ctx, exclude=new)
        privates = {committer: prepared.private}
        for j, state in self.private.items():
            if j == committer or j in removes:
                continue
            view = self.tree.diff()
            assert self._proposals(view, adds, removes) == new
            validate_leaf_node(
                cs,
                path.leaf_node,
                view,
                expected_source=LeafNodeSource.commit,
                group_id=GROUP_ID,
                leaf_index=committer,
                replaces=committer,
            )
            apply_update_path(view, committer, path)
            assert view.tree_hash() == diff.tree_hash()
            result = decrypt_update_path(cs, view, state, committer, path, ctx, exclude=new)
            assert result.commit_secret == prepared.commit_secret
            privates[j] = result.private
        for i, client in zip(new, adds, strict=True):
            privates[i] = TreePrivate.from_welcome(
                cs, diff, i, client.enc_sk, committer, prepared.path_secret_for_joiner(i)
            )
            self.clients[i] = client
        for r in removes:
            del self.clients[r]
        self.tree = diff.merge()
        self.private = privates
        self.epoch += 1
        for state in self.private.values():
            state.check_consistent(self.tree)
        validate_tree(cs, self.tree, group_id=GROUP_ID)
        return path

    def add_without_path(self, adds: list[Client]) -> None:
        """A partial commit (Adds only, no UpdatePath): new leaves become unmerged."""
        diff = self.tree.diff()
        for c in adds:
            i = diff.add_leaf(c.leaf)
            self.clients[i] = c
            self.private[i] = TreePrivate.for_leaf(self.cs, i, c.enc_sk)
        self.tree = diff.merge()
        self.epoch += 1


@pytest.fixture
def cs(suite_id: int) -> CipherSuite:
    return get_suite(suite_id)


def build_group(cs: CipherSuite, n: int) -> Group:
    """Creator adds everyone with one full commit, then every other member commits once, so
    parent nodes are set from many leaves and carry real parent-hash chains."""
    g = Group(cs, new_client(cs, b"m0"))
    g.commit(0, adds=[new_client(cs, b"m%d" % i) for i in range(1, n)])
    for i in range(1, n, 3):
        g.commit(i)
    return g


def snapshot(tree: RatchetTree) -> tuple[bytes, bytes, list[Node | None]]:
    return tree.encode_tree(), tree.tree_hash(), [tree.node(x) for x in range(tree.width)]


# -- protocol runs -------------------------------------------------------------------------------


def test_group_lifecycle_keeps_tree_valid(cs: CipherSuite) -> None:
    g = build_group(cs, 7)
    g.commit(2, removes=[5])
    g.add_without_path([new_client(cs, b"late1"), new_client(cs, b"late2")])
    validate_tree(cs, g.tree, group_id=GROUP_ID)
    # Unmerged leaves are recorded at the non-blank ancestors of the new leaves.
    assert any(node.unmerged_leaves for _, node in g.tree.iter_parents())
    g.commit(3, adds=[new_client(cs, b"late3")])
    g.commit(6, removes=[0, 1])
    g.commit(4)
    assert sorted(g.clients) == sorted(i for i, _ in g.tree.iter_leaves())
    # The wire form round-trips and a decoded copy validates with the same tree hash.
    again = RatchetTree.decode(cs, g.tree.encode_tree())
    assert again.tree_hash() == g.tree.tree_hash()
    validate_tree(cs, again, group_id=GROUP_ID, tree_hash=g.tree.tree_hash())


def test_truncation_after_removing_the_last_members(cs: CipherSuite) -> None:
    g = build_group(cs, 5)  # 8 leaves, 5 members
    assert g.tree.n_leaves == 8
    g.commit(0, removes=[4])
    assert g.tree.n_leaves == 4
    g.commit(1, removes=[3, 2])
    assert g.tree.n_leaves == 2
    # Remove then Add in one commit: truncation, then extension over the cut-off nodes.
    g.commit(0, removes=[1], adds=[new_client(cs, b"x"), new_client(cs, b"y")])
    assert g.tree.n_leaves == 4
    assert [i for i, _ in g.tree.iter_leaves()] == [0, 1, 2]


def test_commit_rejects_tampered_update_path(cs: CipherSuite) -> None:
    g = build_group(cs, 4)
    before = g.tree.tree_hash()
    diff = g.tree.diff()
    template = diff.leaf(1)
    assert template is not None
    prepared = prepare_update_path(cs, diff, 1, template, g.clients[1].sig_sk, GROUP_ID)
    ctx = g.context(diff.tree_hash())
    path = prepared.encrypt(cs, diff, ctx)
    # One node too few.
    short = replace(path, nodes=path.nodes[:-1])
    with pytest.raises(InvalidUpdatePath):
        apply_update_path(g.tree.diff(), 1, short)
    # A public key that the sent path secret does not derive.
    other_pk = node_key_pair(cs, b"\x01" * cs.hash_len)[1]
    bad_nodes = (*path.nodes[:-1], replace(path.nodes[-1], encryption_key=other_pk))
    view = g.tree.diff()
    # The parent hash the leaf signed no longer matches the path.
    with pytest.raises(ParentHashMismatch):
        apply_update_path(view, 1, replace(path, nodes=bad_nodes))
    # A ciphertext missing from a node.
    view = g.tree.diff()
    apply_update_path(view, 1, path)
    missing = replace(path.nodes[0], encrypted_path_secret=())
    with pytest.raises(InvalidUpdatePath):
        decrypt_update_path(
            cs, view, g.private[0], 1, replace(path, nodes=(missing, *path.nodes[1:])), ctx
        )
    # A committer announcing a key its path secret does not derive, with the leaf re-signed
    # over the matching parent hash: only decryption notices.
    keys = [*prepared.public_keys[:-1], other_pk]
    ph = g.tree.diff().apply_path(1, keys)
    lying_leaf = replace(path.leaf_node, parent_hash=ph, signature=b"").sign(
        cs, g.clients[1].sig_sk, GROUP_ID, 1
    )
    lying = UpdatePath(leaf_node=lying_leaf, nodes=bad_nodes)
    view = g.tree.diff()
    apply_update_path(view, 1, lying)
    with pytest.raises(InvalidUpdatePath):
        decrypt_update_path(cs, view, g.private[0], 1, lying, ctx)
    # Nothing changed in the accepted tree, which still takes a valid commit.
    assert g.tree.tree_hash() == before
    g.commit(1)


# -- forged trees: each rejected with its own exception, the tree untouched ----------------------


def _leaves_only_tree(cs: CipherSuite, n: int) -> tuple[RatchetTree, list[Client]]:
    """Members added without UpdatePaths: no parent nodes, so no parent hashes to break."""
    clients = [new_client(cs, b"c%d" % i) for i in range(n)]
    g = Group(cs, clients[0])
    g.add_without_path(clients[1:])
    validate_tree(cs, g.tree, group_id=GROUP_ID)
    return g.tree, clients


def _forge(cs: CipherSuite, tree: RatchetTree, changes: dict[int, Node | None]) -> RatchetTree:
    nodes = [tree.node(x) for x in range(tree.width)]
    for x, node in changes.items():
        nodes[x] = node
    return RatchetTree(cs, nodes)


def _assert_rejected(
    cs: CipherSuite, tree: RatchetTree, error: type[Exception], **kwargs: Any
) -> None:
    before = snapshot(tree)
    with pytest.raises(error) as info:
        validate_tree(cs, tree, group_id=GROUP_ID, **kwargs)
    assert type(info.value) is error
    assert snapshot(tree) == before


def test_forged_parent_hash(cs: CipherSuite) -> None:
    tree = build_group(cs, 6).tree
    p, node = next(iter(tree.iter_parents()))
    forged = _forge(cs, tree, {p: replace(node, parent_hash=b"\x42" * cs.hash_len)})
    _assert_rejected(cs, forged, ParentHashMismatch)
    # A parent key swapped for one the attacker knows breaks the chain just the same.
    evil_pk = cs.generate_key_pair()[1]
    forged = _forge(cs, tree, {p: replace(node, encryption_key=evil_pk)})
    _assert_rejected(cs, forged, ParentHashMismatch)


def test_forged_tree_hash(cs: CipherSuite) -> None:
    tree = build_group(cs, 4).tree
    _assert_rejected(cs, tree, TreeHashMismatch, tree_hash=b"\x00" * cs.hash_len)


def test_forged_leaf_signature(cs: CipherSuite) -> None:
    tree, _ = _leaves_only_tree(cs, 3)
    leaf = tree.leaf(1)
    assert leaf is not None
    sig = bytearray(leaf.signature)
    sig[len(sig) // 2] ^= 1
    forged = _forge(cs, tree, {2: replace(leaf, signature=bytes(sig))})
    _assert_rejected(cs, forged, BadSignature)


def test_forged_duplicate_encryption_key(cs: CipherSuite) -> None:
    tree, clients = _leaves_only_tree(cs, 3)
    leaf0, leaf2 = tree.leaf(0), tree.leaf(2)
    assert leaf0 is not None and leaf2 is not None
    # Correctly re-signed by its owner: only the key reuse is wrong.
    dup = replace(leaf2, encryption_key=leaf0.encryption_key, signature=b"").sign(
        cs, clients[2].sig_sk
    )
    _assert_rejected(cs, _forge(cs, tree, {4: dup}), DuplicateEncryptionKey)


def test_forged_duplicate_signature_key(cs: CipherSuite) -> None:
    tree, clients = _leaves_only_tree(cs, 3)
    leaf0, leaf1 = tree.leaf(0), tree.leaf(1)
    assert leaf0 is not None and leaf1 is not None
    dup = replace(leaf1, signature_key=leaf0.signature_key, signature=b"").sign(
        cs, clients[0].sig_sk
    )
    _assert_rejected(cs, _forge(cs, tree, {2: dup}), DuplicateSignatureKey)


def test_forged_unsupported_credential_type(cs: CipherSuite) -> None:
    tree, _ = _leaves_only_tree(cs, 3)
    odd = new_client(
        cs,
        b"odd",
        credential=Credential.other(0xF0F0, b"custom"),
        credentials=(CredentialType.basic, 0xF0F0),
    )
    # The others do not list 0xF0F0, so the newcomer's credential is not supported by all.
    _assert_rejected(cs, _forge(cs, tree, {4: odd.leaf}), UnsupportedCredential)


def test_forged_unmerged_leaves(cs: CipherSuite) -> None:
    g = build_group(cs, 5)
    g.add_without_path([new_client(cs, b"new")])
    tree = g.tree
    validate_tree(cs, tree, group_id=GROUP_ID)
    p, node = next((p, n) for p, n in tree.iter_parents() if n.unmerged_leaves)
    listed = node.unmerged_leaves
    for wrong in (
        (*listed, listed[-1]),  # not strictly increasing
        (*listed, tree.n_leaves),  # not a leaf of the tree
        tuple(sorted({*listed, 0})) if 0 not in listed else (),  # a merged member
    ):
        if wrong:
            forged = _forge(cs, tree, {p: replace(node, unmerged_leaves=wrong)})
            _assert_rejected(cs, forged, InvalidUnmergedLeaves)


def test_decode_rejects_bad_shapes(cs: CipherSuite) -> None:
    client = new_client(cs, b"a")
    tree = RatchetTree.create(cs, client.leaf)
    parent = ParentNode(encryption_key=b"\x01" * 32)
    with pytest.raises(TreeShapeError):
        RatchetTree.from_nodes(cs, [client.leaf, None])  # trailing blank
    with pytest.raises(TreeShapeError):
        RatchetTree.from_nodes(cs, [])
    with pytest.raises(TreeShapeError):
        RatchetTree.from_nodes(cs, [client.leaf, client.leaf, client.leaf])  # leaf at odd index
    with pytest.raises(TreeShapeError):
        RatchetTree.from_nodes(cs, [parent])  # parent at even index
    # Trailing blanks are implied: three nodes become a four-leaf tree.
    b = new_client(cs, b"b")
    t = RatchetTree.from_nodes(cs, [client.leaf, None, b.leaf])
    assert (t.n_leaves, t.width) == (2, 3)
    t = RatchetTree.from_nodes(cs, [client.leaf, None, b.leaf, None, b.leaf])
    assert (t.n_leaves, t.width) == (4, 7)
    assert tree.encode_tree() == RatchetTree.decode(cs, tree.encode_tree()).encode_tree()


# -- single leaf validation (§7.3) --------------------------------------------------------------


def test_validate_leaf_node_rules(cs: CipherSuite) -> None:
    tree, clients = _leaves_only_tree(cs, 2)
    fresh = new_client(cs, b"fresh")

    def check(leaf: LeafNode, **kw: Any) -> None:
        validate_leaf_node(cs, leaf, tree, expected_source=LeafNodeSource.key_package, **kw)

    check(fresh.leaf, now=1500)
    with pytest.raises(LifetimeError):
        check(fresh.leaf, now=3000)
    with pytest.raises(InvalidLeafNodeSource):
        validate_leaf_node(cs, fresh.leaf, tree, expected_source=LeafNodeSource.update)
    with pytest.raises(MissingRequiredCapability):
        check(fresh.leaf, required_capabilities=RequiredCapabilities(extension_types=(0xAB,)))

    def resign(leaf: LeafNode, sk: bytes) -> LeafNode:
        return replace(leaf, signature=b"").sign(cs, sk)

    ext = resign(
        replace(fresh.leaf, extensions=(Extension(extension_type=0xAB, extension_data=b""),)),
        fresh.sig_sk,
    )
    with pytest.raises(UnsupportedLeafExtension):
        check(ext)
    listed = resign(
        replace(ext, capabilities=replace(ext.capabilities, extensions=(0xAB,))), fresh.sig_sk
    )
    check(listed, required_capabilities=RequiredCapabilities(extension_types=(0xAB,)))
    with pytest.raises(DuplicateEncryptionKey):
        check(clients[1].leaf)
    with pytest.raises(BadSignature):
        check(replace(fresh.leaf, signature=clients[1].leaf.signature))
    # An Update may keep the member's signature key but needs a new encryption key.
    upd = replace(
        clients[1].leaf,
        leaf_node_source=LeafNodeSource.update,
        lifetime=None,
        encryption_key=cs.generate_key_pair()[1],
        signature=b"",
    ).sign(cs, clients[1].sig_sk, GROUP_ID, 1)
    validate_leaf_node(
        cs,
        upd,
        tree,
        expected_source=LeafNodeSource.update,
        group_id=GROUP_ID,
        leaf_index=1,
        replaces=1,
    )
    with pytest.raises(DuplicateSignatureKey):
        validate_leaf_node(
            cs,
            upd,
            tree,
            expected_source=LeafNodeSource.update,
            group_id=GROUP_ID,
            leaf_index=1,
            replaces=None,
        )


# -- copy-on-write ------------------------------------------------------------------------------


def _fresh_copy(cs: CipherSuite, view: RatchetTree | TreeDiff) -> RatchetTree:
    """An uncached tree over the same nodes: an independent computation of every hash."""
    return RatchetTree(cs, [view.node(x) for x in range(view.width)])


def test_diff_leaves_base_untouched_and_merges_to_the_same_tree(cs: CipherSuite) -> None:
    g = build_group(cs, 6)
    tree = g.tree
    before = snapshot(tree)
    diff = tree.diff()
    diff.remove_leaf(5)
    diff.update_leaf(1, new_client(cs, b"u").leaf)
    diff.add_leaf(new_client(cs, b"n1").leaf)
    diff.add_leaf(new_client(cs, b"n2").leaf)
    assert snapshot(tree) == before
    expected = _fresh_copy(cs, diff)
    assert diff.tree_hash() == expected.tree_hash()
    other = tree.diff()
    merged = diff.merge()
    assert merged is tree
    assert merged.tree_hash() == expected.tree_hash()
    assert merged.encode_tree() == expected.encode_tree()
    with pytest.raises(UsageError):
        other.merge()  # made from the tree before the merge
    with pytest.raises(UsageError):
        diff.merge()


def _naive_leftmost_blank(tree: RatchetTree) -> int | None:
    return next((i for i in range(tree.n_leaves) if tree.node(2 * i) is None), None)


def test_random_operations_match_uncached_trees(cs: CipherSuite) -> None:
    """Random proposals over many epochs: the cached hashes, counts and key indexes of the
    incrementally maintained tree agree with a tree recomputed from scratch."""
    rng = random.Random(7)
    pool = [new_client(cs, b"p%d" % i) for i in range(40)]
    leaves = iter(pool)
    tree = RatchetTree.create(cs, next(leaves).leaf)
    keys: dict[bytes, int] = {}
    for _ in range(25):
        diff = tree.diff()
        members = [i for i, _ in diff.iter_leaves()]
        for r in rng.sample(members[1:], k=min(len(members) - 1, rng.randrange(3))):
            diff.remove_leaf(r)
        for _ in range(rng.randrange(4)):
            client = next(leaves, None)
            if client is not None:
                diff.add_leaf(client.leaf)
        if rng.random() < 0.7:
            sender = rng.choice([i for i, _ in diff.iter_leaves()])
            pks = [cs.generate_key_pair()[1] for _ in diff.filtered_direct_path(sender)]
            diff.apply_path(sender, pks)
        if rng.random() < 0.2:
            continue  # discarded diff
        diff_hash = diff.tree_hash()
        tree = diff.merge()
        fresh = _fresh_copy(cs, tree)
        assert tree.tree_hash() == diff_hash == fresh.tree_hash()
        for x in range(tree.width):
            assert tree.tree_hash_of(x) == fresh.tree_hash_of(x)
            assert tree.resolution(x) == fresh.resolution(x)
            assert tree.resolution_size(x) == len(fresh.resolution(x))
        assert tree.leftmost_blank_leaf() == _naive_leftmost_blank(fresh)
        assert tree.member_count == sum(1 for _ in fresh.iter_leaves())
        keys = {n.encryption_key: x for x in range(tree.width) if (n := tree.node(x))}
        for key, x in keys.items():
            assert tree.find_encryption_key(key) == x
        for i, leaf in tree.iter_leaves():
            assert tree.find_signature_key(leaf.signature_key) == i
        last = tree.rightmost_member()
        assert last is not None and (tree.n_leaves == 1 or last >= tree.n_leaves // 2)
    assert keys


# -- cost: O(log n) per commit ------------------------------------------------------------------


class CountingSuite:
    """Delegates to a CipherSuite and counts calls of ``hash`` (tree and parent hashes)."""

    def __init__(self, cs: CipherSuite) -> None:
        self._cs = cs
        self.hashes = 0

    def hash(self, data: bytes) -> bytes:
        self.hashes += 1
        return self._cs.hash(data)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._cs, name)


class CountingList(list):  # type: ignore[type-arg]
    """A node list that counts element reads and writes."""

    accesses = 0

    def __getitem__(self, index: Any) -> Any:
        CountingList.accesses += 1
        return super().__getitem__(index)

    def __setitem__(self, index: Any, value: Any) -> None:
        CountingList.accesses += 1
        super().__setitem__(index, value)

    def __iter__(self) -> Any:
        CountingList.accesses += len(self)
        return super().__iter__()


def _full_tree(cs: CipherSuite, k: int, signer: Client) -> tuple[RatchetTree, dict[int, bytes]]:
    """2^k members and every parent node set, each key derived from a known secret."""
    n = 1 << k
    nodes: list[Node | None] = []
    secrets: dict[int, bytes] = {}
    for x in range(node_width(n)):
        secret = x.to_bytes(4, "big") * 8
        secrets[x] = secret
        pk = node_key_pair(cs, secret)[1]
        if x & 1:
            nodes.append(ParentNode(encryption_key=pk))
        elif x == 0:
            nodes.append(replace(signer.leaf, encryption_key=pk))
        else:
            nodes.append(replace(signer.leaf, encryption_key=pk, signature_key=b"sig%d" % x))
    return RatchetTree(cs, nodes), secrets


def _private(
    cs: CipherSuite, tree: RatchetTree, leaf: int, secrets: dict[int, bytes]
) -> TreePrivate:
    keys = {x: node_key_pair(cs, secrets[x]) for x in [2 * leaf, *tree.direct_path(leaf)]}
    return TreePrivate(leaf, keys)


@pytest.mark.parametrize("k", [4, 6, 8])
def test_commit_rehashes_and_visits_o_log_n_nodes(cs: CipherSuite, k: int) -> None:
    counting = CountingSuite(cs)
    signer = new_client(cs, b"signer")
    tree, secrets = _full_tree(cast(CipherSuite, counting), k, signer)
    n = tree.n_leaves
    sender, receiver = 0, n - 1
    tree.tree_hash()  # warm the cache: one hash per node, once
    assert counting.hashes == node_width(n)
    receiver_state = _private(cs, tree, receiver, secrets)
    nodes = CountingList(tree._nodes)
    tree._nodes = nodes
    CountingList.accesses = 0
    counting.hashes = 0

    # The committer: a fresh path, the provisional tree hash, the encryption.
    diff = tree.diff()
    template = diff.leaf(sender)
    assert template is not None
    prepared = prepare_update_path(cs, diff, sender, template, signer.sig_sk, GROUP_ID)
    ctx = b"context" + diff.tree_hash()
    path = prepared.encrypt(cs, diff, ctx)
    sender_hashes = counting.hashes

    # A receiver: merge, tree hash, decrypt, then accept the commit.
    counting.hashes = 0
    view = tree.diff()
    apply_update_path(view, sender, path)
    assert view.tree_hash() == diff.tree_hash()
    result = decrypt_update_path(cs, view, receiver_state, sender, path, ctx)
    assert result.commit_secret == prepared.commit_secret
    view.merge()
    assert tree.tree_hash() == diff.tree_hash()
    receiver_hashes = counting.hashes

    # k parent hashes plus k + 1 re-hashed nodes on the path (the leaf and its k ancestors).
    assert sender_hashes <= 2 * k + 2
    assert receiver_hashes <= 2 * k + 2
    assert CountingList.accesses <= 20 * k
    assert len(path.nodes) == k and all(len(p.encrypted_path_secret) == 1 for p in path.nodes)
    assert root(n) in result.private.nodes


def test_external_commit_takes_the_leftmost_blank_leaf(cs: CipherSuite) -> None:
    g = build_group(cs, 4)
    g.commit(0, removes=[1])
    joiner = new_client(cs, b"ext")
    diff = g.tree.diff()
    slot = diff.add_external_leaf_slot()
    assert slot == 1
    prepared = prepare_update_path(cs, diff, slot, joiner.leaf, joiner.sig_sk, GROUP_ID)
    ctx = g.context(diff.tree_hash())
    path = prepared.encrypt(cs, diff, ctx)
    for j, state in g.private.items():
        view = g.tree.diff()
        assert view.add_external_leaf_slot() == slot
        validate_leaf_node(
            cs,
            path.leaf_node,
            view,
            expected_source=LeafNodeSource.commit,
            group_id=GROUP_ID,
            leaf_index=slot,
        )
        apply_update_path(view, slot, path)
        assert view.tree_hash() == diff.tree_hash()
        result = decrypt_update_path(cs, view, state, slot, path, ctx)
        assert result.commit_secret == prepared.commit_secret
        result.private.check_consistent(view)
        assert j != slot
    tree = diff.merge()
    prepared.private.check_consistent(tree)
    validate_tree(cs, tree, group_id=GROUP_ID)


def test_private_state_rejects_wrong_path_secret(cs: CipherSuite) -> None:
    g = build_group(cs, 4)
    state = g.private[1]
    p = g.tree.direct_path(1)[-1]
    with pytest.raises(PathSecretMismatch):
        state.with_path_secret(cs, g.tree, p, b"\x07" * cs.hash_len)
    forged = TreePrivate(1, {2: node_key_pair(cs, b"\x07" * cs.hash_len)})
    with pytest.raises(PathSecretMismatch):
        forged.check_consistent(g.tree)


# -- the RFC's worked examples (§4.1.1, §4.1.2) ----------------------------------------------------


def _dummy_leaf(tag: int) -> LeafNode:
    return LeafNode(
        encryption_key=b"enc%d" % tag,
        signature_key=b"sig%d" % tag,
        credential=Credential.basic(b"%d" % tag),
        capabilities=Capabilities(credentials=(CredentialType.basic,)),
        leaf_node_source=LeafNodeSource.update,
    )


def _example_tree(cs: CipherSuite, leaves: str, parents: dict[int, tuple[int, ...]]) -> RatchetTree:
    """Leaves given as a string ("AB__EFG_"), non-blank parents as {node: unmerged_leaves}."""
    nodes: list[Node | None] = []
    for x in range(2 * len(leaves) - 1):
        if x & 1:
            um = parents.get(x)
            nodes.append(
                None if um is None else ParentNode(encryption_key=b"p%d" % x, unmerged_leaves=um)
            )
        else:
            nodes.append(None if leaves[x // 2] == "_" else _dummy_leaf(x))
    return RatchetTree(cs, nodes)


def test_resolution_example_of_rfc_figure_8(cs: CipherSuite) -> None:
    # A B _ D E F _ H under X[B] (node 3) and Y (node 9); everything else blank.
    tree = _example_tree(cs, "AB_DEF_H", {3: (1,), 9: ()})
    assert tree.resolution(3) == [3, 2]  # X, B
    assert tree.resolution(4) == [] and tree.resolution(12) == []  # leaves 2 and 6
    assert tree.resolution(7) == [3, 2, 9, 14]  # X, B, Y, H
    assert [tree.resolution_size(x) for x in (3, 4, 7)] == [2, 0, 4]
    assert tree.resolution(7, exclude={1, 7}) == [3, 9]


def test_filtered_direct_path_example_of_rfc_figure_10(cs: CipherSuite) -> None:
    # W root (7); U (3), V (5), Z (13) blank; T (1), X (9), Y (11) set; leaves A B _ _ E F G _.
    tree = _example_tree(cs, "AB__EFG_", {1: (), 7: (), 9: (), 11: ()})
    T, U, W, X, Y, Z = 1, 3, 7, 9, 11, 13
    expected = {0: [T, W], 1: [T, W], 4: [X, Y, W], 5: [X, Y, W], 6: [Y, W]}
    for leaf, fdp in expected.items():
        assert [p for p, _ in tree.filtered_direct_path(leaf)] == fdp
    assert tree.direct_path(6) == [Z, Y, W] and tree.direct_path(0) == [T, U, W]


def test_remove_then_add_in_one_diff_does_not_resurrect_cut_nodes(cs: CipherSuite) -> None:
    # Two members under a non-blank root; removing leaf 1 truncates to one leaf, the Add
    # extends again: the old root and leaf must read as blank, not as the base's nodes.
    tree = _example_tree(cs, "AB", {1: ()})
    diff = tree.diff()
    diff.remove_leaf(1)
    assert diff.n_leaves == 1
    assert diff.add_leaf(_dummy_leaf(100)) == 1
    assert diff.node(1) is None
    assert diff.resolution(1) == [0, 2]
    fresh = _fresh_copy(cs, diff)
    assert diff.tree_hash() == fresh.tree_hash()
    merged = diff.merge()
    assert merged.node(1) is None and merged.tree_hash() == fresh.tree_hash()
    assert merged.find_encryption_key(b"p1") is None


def test_parent_hash_verification_is_linear(cs: CipherSuite) -> None:
    """One creator adds everyone with a full commit: its path is set, every other parent is
    blank, so resolutions are large. Node reads must grow like n, not n^2 or n log n^2."""
    reads = {}
    for n in (32, 128, 512):
        g = Group(cs, new_client(cs, b"creator"))
        g.commit(0, adds=[new_client(cs, b"m%d" % i) for i in range(1, n)])
        g.commit(n // 3)  # a second chain through other nodes
        tree = g.tree
        tree._nodes = CountingList(tree._nodes)
        CountingList.accesses = 0
        verify_parent_hashes(tree)
        reads[n] = CountingList.accesses
    assert reads[128] <= 5 * reads[32]
    assert reads[512] <= 5 * reads[128]
