"""A group's whole life in each post-quantum cipher suite (draft-ietf-mls-pq-ciphersuites).

Default run: one suite per KEM family (X-Wing, ML-KEM-768, ML-KEM-1024, see ``conftest.py``);
``--all-suites``: every suite the active profile supports. Each test checks convergence (epoch,
tree hash, epoch authenticator, an exporter value) and, where keys change, that the HPKE keys in
the tree have the suite's sizes.
"""

from __future__ import annotations

import json
import os

import pytest

from mls.constants import ResumptionPSKUsage
from mls.crypto import get_suite
from mls.errors import DecryptFailed, MLSError
from mls.group import ApplicationMessage, Client, CommitMerged, Group, GroupConfig, GroupStatus
from mls.messages.proposals import ReInit
from tests.harness import NOW, TEAM_PSK, GroupHarness


def _message(h: GroupHarness, sender: int, data: bytes) -> None:
    wire = h.members[sender].protect(data)
    for leaf, g in h.members.items():
        if leaf != sender:
            ev = g.process(wire, now=NOW)
            assert isinstance(ev, ApplicationMessage) and ev.data == data


def test_create_add_update_remove_and_messages(pq_suite_id: int) -> None:
    cs = get_suite(pq_suite_id)
    h = GroupHarness.with_members(4, suite=pq_suite_id)
    h.assert_converged()
    a = h.members[0]
    assert a.cipher_suite == pq_suite_id
    # Every leaf's encryption key is a key of the suite's KEM.
    tree = a.export_tree()
    assert len(tree) > 4 * cs.hpke_pk_len
    _message(h, 1, b"post-quantum hello")
    h.commit(2)  # empty commit with an UpdatePath (full path encryption in the PQ KEM)
    h.assert_converged()
    # An Update proposal committed by reference by another member.
    upd = h.members[3].propose_update()
    h.deliver(upd, sender=3)
    h.commit(0)
    h.assert_converged()
    h.commit(1, remove=[2])
    h.assert_converged()
    assert len(h.removed) == 1
    _message(h, 0, b"after the remove")
    # The removed member cannot read the new epoch's messages.
    with pytest.raises(MLSError):
        h.removed[0].process(h.members[0].protect(b"secret"), now=NOW)


def test_commit_without_path_and_welcome_with_tree_extension(pq_suite_id: int) -> None:
    config = GroupConfig(ratchet_tree_extension=True)
    h = GroupHarness.with_members(2, suite=pq_suite_id, config=config)
    a = h.members[0]
    joiner = h.new_client("late")
    out = a.commit(add=[joiner.key_package(NOW)], path=False, now=NOW)
    a.merge_pending_commit()
    h.deliver(out.commit, sender=0)
    assert out.welcome is not None
    g = Group.join(joiner, out.welcome, config=config, now=NOW)  # tree from the extension
    h.members[g.own_leaf_index] = g
    h.assert_converged()
    _message(h, g.own_leaf_index, b"joined without an out-of-band tree")


def test_external_join_with_psk(pq_suite_id: int) -> None:
    h = GroupHarness.with_members(3, suite=pq_suite_id)
    d = h.new_client("dave")
    # External commit: HPKE to external_pub in the PQ KEM, then the exporter-derived init secret.
    gd, commit = Group.external_join(d, h.members[0].group_info(), psks=[TEAM_PSK[0]], now=NOW)
    events = h.deliver(commit, sender=None)
    assert all(isinstance(e, CommitMerged) and e.external for e in events.values())
    h.members[gd.own_leaf_index] = gd
    h.assert_converged()
    _message(h, gd.own_leaf_index, b"external joiner speaks")


def test_external_and_resumption_psks(pq_suite_id: int) -> None:
    h = GroupHarness.with_members(3, suite=pq_suite_id)
    h.commit(0, psks=[TEAM_PSK[0]])
    h.assert_converged()
    epoch = h.members[0].epoch
    h.commit(1, resumption_psks=[(ResumptionPSKUsage.application, epoch)])
    h.assert_converged()


def test_reinit_from_suite_1(pq_suite_id: int) -> None:
    h = GroupHarness.with_members(3, suite=1)
    a = h.members[0]
    out = a.commit(
        reinit=ReInit(group_id=b"pq-" + a.group_id, version=1, cipher_suite=pq_suite_id), now=NOW
    )
    a.merge_pending_commit()
    h.deliver(out.commit, sender=0)
    assert all(g.status is GroupStatus.REINIT for g in h.members.values())
    # Same identities as in the old group (§12.4.3.1: every member comes along).
    clients = {leaf: Client.create(f"member-{leaf}".encode(), pq_suite_id) for leaf in h.members}
    kps = [clients[leaf].key_package(NOW) for leaf in (1, 2)]
    new, out = a.reinit_group(clients[0], kps, now=NOW)
    new.merge_pending_commit()
    assert out.welcome is not None and new.cipher_suite == pq_suite_id
    joined = [
        h.members[leaf].join_reinit(clients[leaf], out.welcome, ratchet_tree=new.export_tree())
        for leaf in (1, 2)
    ]
    for j in joined:
        assert j.epoch_authenticator == new.epoch_authenticator
    ev = new.process(joined[1].protect(b"in the PQ suite now"), now=NOW)
    assert isinstance(ev, ApplicationMessage) and ev.data == b"in the PQ suite now"


def test_sframe_keys_from_the_exporter(pq_suite_id: int) -> None:
    from mls.app.calls import GroupCall

    h = GroupHarness.with_members(2, suite=pq_suite_id)
    alice = GroupCall(h.members[0], now=0, session=0)
    bob = GroupCall(h.members[1], now=0, session=0)
    frame = alice.encrypt(b"media")
    assert bob.decrypt(frame, now=0).plaintext == b"media"
    h.commit(1)
    alice.epoch_changed(h.members[0], now=1)
    bob.epoch_changed(h.members[1], now=1)
    assert alice.decrypt(bob.encrypt(b"next epoch"), now=1).plaintext == b"next epoch"


def test_tampered_path_ciphertext_is_refused(pq_suite_id: int) -> None:
    """A KEM ciphertext altered in flight fails to open (implicit rejection then the AEAD)."""
    cs = get_suite(pq_suite_id)
    sk, pk = cs.generate_key_pair()
    enc, ct = cs.hpke_seal(pk, b"info", b"", b"path secret")
    bad = bytes([enc[0] ^ 1]) + enc[1:]
    with pytest.raises(DecryptFailed):
        cs.hpke_open(sk, bad, b"info", b"", ct)
    with pytest.raises(DecryptFailed):
        cs.hpke_open(sk, enc[:-1], b"info", b"", ct)


def test_state_roundtrip(pq_suite_id: int) -> None:
    h = GroupHarness.with_members(2, suite=pq_suite_id)
    b = h.members[1]
    restored = Group.from_bytes(b.to_bytes(), b.client)
    h.members[1] = restored
    h.commit(0)
    h.assert_converged()


@pytest.mark.parametrize("sid", [81, 83, 87], ids=["mlkem1024", "xwing", "xwing-mldsa87"])
def test_ts_mls_profile_group(sid: int) -> None:
    """The ts-mls-1 compatibility profile (HKDF-SHA512, its DeriveKeyPair) runs a group too."""
    from mls.crypto import pq, registry

    why = pq.mlkem_unavailable() or pq.mldsa_unavailable()
    if why is not None:
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI=true but post-quantum primitives are unavailable: {why}")
        pytest.skip(f"post-quantum primitives unavailable: {why}")
    registry.use_profile("ts-mls-1")
    try:
        h = GroupHarness.with_members(3, suite=sid)
        h.commit(1)
        h.commit(0, remove=[2])
        h.assert_converged()
        _message(h, 1, b"ts-mls profile")
        assert h.members[0].suite.hash_len == 64  # HKDF-SHA512 node secrets
    finally:
        registry.use_profile(registry.DEFAULT_PROFILE)


def test_interop_hello_lists_pq_suites_of_the_profile() -> None:
    import subprocess
    import sys

    from mls.crypto import pq

    if pq.mlkem_unavailable() or pq.mldsa_unavailable():
        pytest.skip("post-quantum primitives unavailable")
    for profile, pq_ids in (
        ("openmls", [0x0042, 0x004E, 0x004F, 0x0050, 0x0051, 0x0052, 0x0907, 0xF042]),
        ("ts-mls-1", list(range(79, 89))),
    ):
        out = subprocess.run(
            [sys.executable, "-m", "mls", "interop", "--suite-profile", profile],
            input='{"op": "hello"}\n',
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        ).stdout
        assert json.loads(out)["suites"] == [1, 2, 3, 4, 5, 6, 7, *pq_ids]


@pytest.mark.parametrize("tbd", ["TBD3", "TBD4", "TBD5"])
def test_nist_hybrid_suites_group(tbd: str) -> None:
    """MLKEM768-P256 / MLKEM1024-P384 suites have no id in any profile (OpenMLS lacks them):
    registered under a private-use id, they run a group like the others."""
    from mls.crypto import pq, registry

    why = pq.mlkem_unavailable()
    if why is not None:
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI=true but ML-KEM is unavailable: {why}")
        pytest.skip(f"ML-KEM unavailable: {why}")
    sid = 0xFF00 + int(tbd[3:])
    registry.register_suite(registry.draft_suite(tbd, sid))
    try:
        h = GroupHarness.with_members(3, suite=sid)
        h.commit(2)
        h.commit(0, remove=[1])
        d = h.new_client("dave")
        gd, commit = Group.external_join(d, h.members[0].group_info(), now=NOW)
        h.deliver(commit, sender=None)
        h.members[gd.own_leaf_index] = gd
        h.assert_converged()
        _message(h, gd.own_leaf_index, tbd.encode())
    finally:
        registry.unregister_suite(sid)
