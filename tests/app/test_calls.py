"""Group calls: SFrame keyed from the MLS exporter (RFC 9605 §5.2) across epoch changes."""

from __future__ import annotations

from pathlib import Path

import pytest

from mls.app import GroupCall, GroupExporter
from mls.errors import (
    DecryptFailed,
    InvalidState,
    NonceSpaceExhausted,
    ReplayedMessage,
    UnknownKeyID,
    UsageError,
)
from mls.sframe import Exporter
from mls.sframe.cipher import FrameKey, get_suite
from mls.sframe.header import encode_header, parse_header

from .world import GROUP, World

GRACE = 2


@pytest.fixture
def world(tmp_path: Path) -> World:
    w = World(tmp_path)
    for name in ("alice", "bob", "carol"):
        w.add(name)
    w.create("alice", ["bob", "carol"])
    return w


def calls(w: World, *names: str) -> dict[str, GroupCall]:
    return {n: w[n].start_call(GROUP, now=w.now) for n in names}


def test_group_is_the_sframe_exporter(world: World) -> None:
    # GroupCall hands the Group itself to mls.sframe (mypy checks the Protocol in calls.py).
    group = world["bob"].group(GROUP)
    exporter: Exporter = group
    assert exporter.leaf_count == group.tree.n_leaves
    assert exporter.export_secret("x", b"c", 16) == group.export_secret("x", b"c", 16)


def test_group_exporter_satisfies_the_sframe_protocol(world: World) -> None:
    group = world["bob"].group(GROUP)
    exporter: Exporter = GroupExporter(group)
    assert exporter.epoch == group.epoch
    assert exporter.own_leaf_index == group.own_leaf_index
    assert exporter.leaf_count == group.tree.n_leaves == group.leaf_count
    assert exporter.export_secret("x", b"c", 16) == group.export_secret("x", b"c", 16)


def test_frames_use_the_exporter_base_key_and_a_kid_carrying_epoch_and_leaf(world: World) -> None:
    w = world
    c = calls(w, "alice", "bob")
    alice = w["alice"].group(GROUP)
    frame = c["alice"].encrypt(b"media", b"meta")
    kid, ctr, n = parse_header(frame)
    epoch_bits = w["alice"].config.sframe_epoch_bits
    s_bits = (alice.tree.n_leaves - 1).bit_length()
    assert kid & ((1 << epoch_bits) - 1) == alice.epoch % (1 << epoch_bits)
    assert (kid >> epoch_bits) & ((1 << s_bits) - 1) == alice.own_leaf_index
    assert kid >> (epoch_bits + s_bits) == c["alice"].context_id
    assert kid == c["alice"].kid
    # Independently: base_key = MLS-Exporter("SFrame 1.0 Base Key", "", Nk) (RFC 9605 §5.2).
    suite = get_suite(w["alice"].config.sframe_suite)
    base_key = w["bob"].group(GROUP).export_secret("SFrame 1.0 Base Key", b"", suite.nk)
    key = FrameKey.derive(suite, kid, base_key)
    assert key.open(frame[:n], ctr, frame[n:], b"meta") == b"media"
    got = c["bob"].decrypt(frame, b"meta", now=w.now)
    assert (got.plaintext, got.epoch, got.sender_index) == (b"media", alice.epoch, 0)


def test_epoch_change_switches_keys_with_a_grace_period(world: World) -> None:
    w = world
    c = calls(w, "alice", "bob", "carol")
    old_epoch = w["alice"].group(GROUP).epoch
    in_flight = [c["alice"].encrypt(f"old {i}".encode()) for i in range(2)]
    w.commit("carol")
    w.pump()
    new_epoch = w["alice"].group(GROUP).epoch
    assert new_epoch == old_epoch + 1
    assert {c[n].epoch for n in c} == {new_epoch}
    assert c["bob"].held_epochs == [old_epoch, new_epoch]
    fresh = c["alice"].encrypt(b"new")
    assert parse_header(fresh)[0] != parse_header(in_flight[0])[0]
    assert c["bob"].decrypt(fresh, now=w.now).epoch == new_epoch
    # A frame of the previous epoch still in flight decrypts during the grace period...
    assert c["bob"].decrypt(in_flight[0], now=w.now + GRACE - 1).epoch == old_epoch
    # ...and not once it is over.
    with pytest.raises(UnknownKeyID):
        c["bob"].decrypt(in_flight[1], now=w.now + GRACE)
    assert c["bob"].held_epochs == [new_epoch]


def test_own_commit_switches_the_call_when_the_delivery_service_confirms(world: World) -> None:
    w = world
    c = calls(w, "alice", "bob")
    epoch = w["alice"].group(GROUP).epoch
    out = w["alice"].commit(GROUP, now=w.now)
    assert c["alice"].epoch == epoch  # not official yet: frames stay decryptable by everyone
    assert w.ds.submit_commit(GROUP, b"alice", out.commit)
    w["alice"].confirm_commit(GROUP, now=w.now)
    assert c["alice"].epoch == epoch + 1
    w.pump()
    frame = c["alice"].encrypt(b"x")
    assert c["bob"].decrypt(frame, now=w.now).epoch == epoch + 1


def test_removed_member_cannot_decrypt_frames_of_later_epochs(world: World) -> None:
    w = world
    c = calls(w, "alice", "bob", "carol")
    # A modified client of carol's that ignores the removal and keeps its keys.
    rogue = GroupCall(w["carol"].group(GROUP), now=w.now, session=77, grace_period=10**6)
    before = c["alice"].encrypt(b"before")
    assert rogue.decrypt(before, now=w.now).plaintext == b"before"
    w.commit("alice", remove=["carol"])
    w.pump()
    assert w["carol"].call(GROUP) is None and not c["carol"].active
    for i in range(3):  # several later epochs, including frames from different senders
        sender = ("alice", "bob")[i % 2]
        frame = c[sender].encrypt(f"after {i}".encode())
        with pytest.raises(UnknownKeyID):
            c["carol"].decrypt(frame, now=w.now)
        with pytest.raises((UnknownKeyID, DecryptFailed)):
            rogue.decrypt(frame, now=w.now)
        assert c["bob" if sender == "alice" else "alice"].decrypt(frame, now=w.now)
        w.commit(sender)
        w.pump()


def test_removed_member_cannot_decrypt_even_when_epoch_bits_wrap(world: World) -> None:
    # With E = 1 the KID's epoch bits repeat every 2 epochs: a kept old key then matches the
    # KID, and only the authentication tag stops the removed member.
    w = world
    rogue = GroupCall(
        w["carol"].group(GROUP), now=w.now, session=1, epoch_bits=1, grace_period=10**6
    )
    w.commit("alice", remove=["carol"])
    w.pump()
    w.commit("bob")
    w.pump()
    sender = GroupCall(w["alice"].group(GROUP), now=w.now, session=0, epoch_bits=1)
    frame = sender.encrypt(b"two epochs later")
    with pytest.raises(DecryptFailed):
        rogue.decrypt(frame, now=w.now)


def test_new_member_cannot_decrypt_frames_from_before_it_joined(world: World) -> None:
    w = world
    w.add("dave")
    c = calls(w, "alice")
    before = c["alice"].encrypt(b"before dave")
    w.commit("alice", add=["dave"])
    w.pump()
    dave = w["dave"].start_call(GROUP, now=w.now)
    with pytest.raises(UnknownKeyID):
        dave.decrypt(before, now=w.now)
    assert dave.decrypt(c["alice"].encrypt(b"hi dave"), now=w.now).plaintext == b"hi dave"


def test_replayed_and_tampered_frames_are_rejected(world: World) -> None:
    w = world
    c = calls(w, "alice", "bob")
    frames = [c["alice"].encrypt(f"f{i}".encode(), b"m") for i in range(4)]
    kid, ctr, n = parse_header(frames[1])
    body = frames[1][n:]
    forgeries = [
        bytes(frames[1][:-1]) + bytes([frames[1][-1] ^ 1]),  # tag
        frames[1][:n] + bytes([body[0] ^ 0x80]) + body[1:],  # ciphertext
        encode_header(kid, ctr + 1) + body,  # CTR (nonce) changed in the header
        frames[1][:n] + body[:-1],  # truncated
    ]
    for forged in forgeries:
        with pytest.raises(DecryptFailed):
            c["bob"].decrypt(forged, b"m", now=w.now)
    with pytest.raises(DecryptFailed):
        c["bob"].decrypt(frames[1], b"other metadata", now=w.now)
    # A frame claiming bob's own send KID (RFC 9605 §4.4.1: send keys never decrypt).
    with pytest.raises(UnknownKeyID):
        c["bob"].decrypt(encode_header(c["bob"].kid, 0) + body, b"m", now=w.now)
    # Forgeries moved nothing: the genuine frames still decrypt, out of order, once each.
    assert c["bob"].decrypt(frames[2], b"m", now=w.now).plaintext == b"f2"
    assert c["bob"].decrypt(frames[1], b"m", now=w.now).plaintext == b"f1"
    for f in (frames[1], frames[2]):
        with pytest.raises(ReplayedMessage):
            c["bob"].decrypt(f, b"m", now=w.now)
    assert c["bob"].decrypt(frames[0], b"m", now=w.now).ctr == 0


def test_each_call_session_sends_under_a_fresh_kid_across_restarts(world: World) -> None:
    w = world
    bob = calls(w, "bob")["bob"]
    first = calls(w, "alice")["alice"]
    f1 = first.encrypt(b"session 1")
    w["alice"].end_call(GROUP)
    w.reopen("alice")  # a crash and a restart within the same epoch
    second = w["alice"].start_call(GROUP, now=w.now)
    f2 = second.encrypt(b"session 2")
    (k1, c1, _), (k2, c2, _) = parse_header(f1), parse_header(f2)
    assert (c1, c2) == (0, 0) and k1 != k2  # same CTR, different KID: no (key, nonce) reuse
    assert second.context_id != first.context_id
    assert bob.decrypt(f1, now=w.now).plaintext == b"session 1"
    assert bob.decrypt(f2, now=w.now).plaintext == b"session 2"


def test_call_parameters_are_checked(world: World) -> None:
    with pytest.raises(UsageError):
        GroupCall(world["alice"].group(GROUP), now=0, session=1, epoch_bits=17)
    with pytest.raises(UsageError):
        GroupCall(world["alice"].group(GROUP), now=0, session=-1)


# Issue 11 item 13: RFC 9605 §9.1, each (base_key, KID, CTR) at most once. Session numbers used to
# be reduced mod 2^16, so the 65,537th call session of one epoch sent under the KID of the first,
# with CTRs from 0 again under the same base_key: AES-GCM nonce reuse.


def test_65537th_call_session_of_an_epoch_reuses_no_kid_ctr(world: World) -> None:
    w = world
    bob = calls(w, "bob")["bob"]
    # Carol's sessions, numbered as her client would number them (she starts no other call here).
    group = w["carol"].group(GROUP)
    # The first session and the sessions that used to wrap onto it (2^16 + 1) or onto session 0.
    sessions = [1, 2, 1 << 16, (1 << 16) + 1, (1 << 16) + 2, (1 << 32) + 1]
    seen: set[tuple[int, int]] = set()
    for session in sessions:
        call = GroupCall(group, now=w.now, session=session)
        assert call.context_id == session and call.epoch == group.epoch
        for i in range(2):
            frame = call.encrypt(b"s%d f%d" % (session, i))
            kid, ctr, _ = parse_header(frame)
            assert ctr == i and (kid, ctr) not in seen
            seen.add((kid, ctr))
            got = bob.decrypt(frame, now=w.now)
            assert (got.context_id, got.plaintext) == (session, b"s%d f%d" % (session, i))
        call.leave()
    assert len(seen) == 2 * len(sessions)
    # The client hands out the persisted counter itself as the session: restarts never repeat it.
    first = w["alice"].start_call(GROUP, now=w.now).context_id
    w["alice"].end_call(GROUP)
    w.reopen("alice")
    assert w["alice"].start_call(GROUP, now=w.now).context_id == first + 1


def test_session_beyond_the_kid_context_bits_is_refused(world: World) -> None:
    w = world
    group = w["alice"].group(GROUP)  # a session alice's client will never hand out (too large)
    # Three leaves: S = 2; E = 8 (the default) leaves 64 - 2 - 8 = 54 context bits.
    assert (group.tree.n_leaves - 1).bit_length() == 2
    with pytest.raises(NonceSpaceExhausted) as info:
        GroupCall(group, now=w.now, session=1 << 54)
    assert type(info.value) is NonceSpaceExhausted and isinstance(info.value, InvalidState)
    # The largest session that fits sends; once the tree grows (S = 3) it no longer fits, and the
    # call refuses to send rather than truncate the session onto another session's KID.
    edge = GroupCall(group, now=w.now, session=(1 << 54) - 1)
    bob = calls(w, "bob")["bob"]
    assert bob.decrypt(edge.encrypt(b"fits"), now=w.now).context_id == (1 << 54) - 1
    w.add("dave")
    w.add("erin")
    w.commit("alice", add=["dave", "erin"])
    w.pump()
    assert (group.tree.n_leaves - 1).bit_length() == 3
    edge.epoch_changed(group, now=w.now)
    with pytest.raises(NonceSpaceExhausted):
        edge.encrypt(b"would need 55 bits")
    assert edge.epoch == group.epoch
    # Receiving still works, and the member's next (persisted) session sends normally.
    assert edge.decrypt(bob.encrypt(b"to edge"), now=w.now).plaintext == b"to edge"
    fresh = w["carol"].start_call(GROUP, now=w.now)
    assert bob.decrypt(fresh.encrypt(b"ok"), now=w.now).plaintext == b"ok"
