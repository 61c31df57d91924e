"""SFrame (RFC 9605): header codec, frame protection, MLS keying and the call context.

The official and project vectors run through the conformance handler (tests/kat); these tests
cover malformed input, tampering, replay, epoch changes with a grace period and removed members.
"""

from __future__ import annotations

import hashlib
import hmac
import tracemalloc
from dataclasses import dataclass

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mls.codec.wire import decode
from mls.errors import (
    DecodeError,
    DecryptFailed,
    InvalidState,
    MLSError,
    NonceSpaceExhausted,
    ReplayedMessage,
    TooManyKeyIDs,
    UnknownKeyID,
    UnknownSender,
    UnsupportedError,
    UsageError,
)
from mls.sframe import (
    SUITES,
    FrameKey,
    KidLayout,
    ReplayWindow,
    SFrameContext,
    SFrameHeader,
    encode_header,
    get_suite,
    index_bits,
    parse_header,
)
from mls.sframe.context import MAX_REPLAY_WINDOW
from mls.sframe.header import MAX_VALUE
from mls.sframe.keys import BASE_KEY_LABEL, EpochKeys

U64 = st.integers(min_value=0, max_value=MAX_VALUE)
ALL_SUITES = sorted(SUITES)


# ---------------------------------------------------------------------------------------------
# Header (RFC 9605 §4.3).


@given(U64, U64)
def test_header_round_trip(kid: int, ctr: int) -> None:
    data = encode_header(kid, ctr)
    assert parse_header(data + b"payload") == (kid, ctr, len(data))
    assert SFrameHeader.from_bytes(data) == SFrameHeader(kid=kid, ctr=ctr)
    assert decode(SFrameHeader, data) == SFrameHeader(kid=kid, ctr=ctr)
    # Minimal length: 1 config byte plus the big-endian bytes of each value >= 8.
    size = 1 + sum((v.bit_length() + 7) // 8 for v in (kid, ctr) if v >= 8)
    assert len(data) == size


@given(st.binary(max_size=24))
def test_header_arbitrary_bytes_only_decode_error(data: bytes) -> None:
    try:
        kid, ctr, n = parse_header(data)
    except DecodeError:
        return
    # Whatever parses is the one canonical header of its values.
    assert encode_header(kid, ctr) == data[:n]


@given(st.binary(max_size=24))
def test_header_struct_decode_only_decode_error(data: bytes) -> None:
    try:
        hdr = decode(SFrameHeader, data)
    except DecodeError:
        return
    assert hdr.to_bytes() == data


@pytest.mark.parametrize(
    "data",
    [
        b"",  # no config byte
        bytes([0x80]),  # extended KID of 1 byte, missing
        bytes([0x08]),  # extended CTR of 1 byte, missing
        bytes([0xF0]) + bytes(7),  # 8-byte KID, only 7 present
        bytes([0x0F, 1, 2, 3]),  # 8-byte CTR, only 3 present
        bytes([0x80, 0x07]),  # KID 7 must sit in the config byte
        bytes([0x08, 0x00]),  # CTR 0 in extended form
        bytes([0x90, 0x00, 0xFF]),  # KID 255 with a leading zero byte
        bytes([0x09, 0x00, 0x08]),  # CTR 8 in two bytes
    ],
)
def test_header_malformed(data: bytes) -> None:
    with pytest.raises(DecodeError):
        parse_header(data)


def test_header_trailing_bytes_rejected_by_from_bytes() -> None:
    with pytest.raises(DecodeError):
        SFrameHeader.from_bytes(encode_header(1, 2) + b"\x00")


@pytest.mark.parametrize("bad", [-1, 1 << 64])
def test_header_values_out_of_range(bad: int) -> None:
    with pytest.raises(UsageError):
        encode_header(bad, 0)
    with pytest.raises(UsageError):
        encode_header(0, bad)
    with pytest.raises(UsageError):
        SFrameHeader(kid=bad, ctr=0)


# ---------------------------------------------------------------------------------------------
# Frames (RFC 9605 §4.4, §4.5).


def test_unknown_suite() -> None:
    with pytest.raises(UnsupportedError):
        get_suite(0)
    with pytest.raises(UnsupportedError):
        SFrameContext(0xF000)


@pytest.mark.parametrize("sframe_suite", ALL_SUITES)
def test_frame_round_trip_and_tampering(sframe_suite: int) -> None:
    suite = get_suite(sframe_suite)
    key = FrameKey.derive(suite, 0x1234, bytes(range(suite.nk)))
    pt, meta = b"a media frame" * 5, b"rtp header extension"
    ct = key.encrypt(300, meta, pt)
    assert len(ct) == len(encode_header(0x1234, 300)) + len(pt) + suite.nt
    assert key.decrypt(meta, ct) == pt
    _, _, hlen = parse_header(ct)
    for pos in range(len(ct)):
        bad = bytearray(ct)
        bad[pos] ^= 0x40
        # A changed header byte may change the KID or break the header; anything else must fail
        # authentication. Nothing may decrypt.
        expected: type[MLSError] = DecryptFailed if pos >= hlen else MLSError
        with pytest.raises(expected):
            key.decrypt(meta, bytes(bad))
    with pytest.raises(DecryptFailed):
        key.decrypt(meta + b"!", ct)
    with pytest.raises(DecryptFailed):
        key.decrypt(meta, ct[:-1])
    with pytest.raises(DecryptFailed):
        key.decrypt(meta, ct[:hlen])  # no tag at all
    other = FrameKey.derive(suite, 0x1234, bytes(suite.nk))
    with pytest.raises(DecryptFailed):
        other.decrypt(meta, ct)


@pytest.mark.parametrize("sframe_suite", ALL_SUITES)
def test_frame_key_rejects_other_kid(sframe_suite: int) -> None:
    suite = get_suite(sframe_suite)
    a = FrameKey.derive(suite, 1, bytes(suite.nk))
    b = FrameKey.derive(suite, 2, bytes(suite.nk))
    with pytest.raises(UnknownKeyID):
        b.decrypt(b"", a.encrypt(0, b"", b"x"))


def test_secrets_not_in_repr() -> None:
    suite = get_suite(1)
    base = bytes([0xAB]) * suite.nk
    key = FrameKey.derive(suite, 9, base)
    assert key.salt.hex() not in repr(key)
    keys = EpochKeys.from_exporter(FakeExporter(b"s" * 32, 1, 0, 2), suite, epoch_bits=4)
    assert keys.base_key.hex() not in repr(keys)


# ---------------------------------------------------------------------------------------------
# MLS keying (RFC 9605 §5.2).


@pytest.mark.parametrize(
    ("leaf_count", "bits"), [(1, 0), (2, 1), (3, 2), (4, 2), (64, 6), (65, 7), (50000, 16)]
)
def test_index_bits(leaf_count: int, bits: int) -> None:
    assert index_bits(leaf_count) == bits


@pytest.mark.parametrize(
    ("epoch", "index", "context", "kid"),
    # The example sequence of RFC 9605 §5.2 (E = 4, S = 6).
    [
        (14, 3, 0, 0x3E),
        (14, 7, 0, 0x7E),
        (14, 20, 0, 0x14E),
        (15, 3, 0, 0x3F),
        (15, 5, 0, 0x5F),
        (16, 2, 2, 0x820),
        (16, 2, 3, 0xC20),
        (17, 33, 0, 0x211),
        (17, 51, 0, 0x331),
    ],
)
def test_kid_layout_rfc_example(epoch: int, index: int, context: int, kid: int) -> None:
    layout = KidLayout(epoch_bits=4, index_bits=6)
    assert layout.kid(epoch=epoch, sender_index=index, context_id=context) == kid
    parts = layout.parse(kid)
    assert (parts.context_id, parts.sender_index, parts.epoch_low) == (context, index, epoch % 16)


def test_kid_layout_limits() -> None:
    layout = KidLayout(epoch_bits=8, index_bits=16)
    with pytest.raises(UsageError):
        layout.kid(epoch=0, sender_index=1 << 16)
    with pytest.raises(UsageError):
        layout.kid(epoch=0, sender_index=0, context_id=1 << 40)
    top = layout.kid(epoch=255, sender_index=(1 << 16) - 1, context_id=(1 << 40) - 1)
    assert top == MAX_VALUE
    with pytest.raises(UsageError):
        KidLayout(epoch_bits=33, index_bits=32)


@dataclass
class FakeExporter:
    """An MLS exporter stand-in: a per-epoch secret and HMAC-SHA256 as the export function."""

    secret: bytes
    epoch: int
    own_leaf_index: int
    leaf_count: int

    def export_secret(self, label: str, context: bytes, length: int) -> bytes:
        assert (label, context) == (BASE_KEY_LABEL, b"")
        out = b""
        while len(out) < length:
            out += hmac.new(self.secret, label.encode() + bytes([len(out)]), "sha256").digest()
        return out[:length]


class Group:
    """Per-epoch secrets of a fake MLS group, handing out exporters to its members."""

    def __init__(self, name: str, leaf_count: int) -> None:
        self.name = name
        self.leaf_count = leaf_count

    def exporter(self, epoch: int, leaf: int) -> FakeExporter:
        secret = hashlib.sha256(f"{self.name}/{epoch}".encode()).digest()
        return FakeExporter(secret, epoch, leaf, self.leaf_count)


def members(
    n: int, epoch: int = 1, *, suite: int = 4, grace: int = 0, epoch_bits: int = 4
) -> tuple[Group, list[SFrameContext]]:
    group = Group("g", n)
    ctxs = []
    for leaf in range(n):
        ctx = SFrameContext(suite, epoch_bits=epoch_bits, grace_period=grace)
        ctx.epoch_changed(group.exporter(epoch, leaf), now=0)
        ctxs.append(ctx)
    return group, ctxs


@pytest.mark.parametrize("sframe_suite", ALL_SUITES)
def test_context_exchange(sframe_suite: int) -> None:
    _, (a, b, c) = members(3, suite=sframe_suite)
    f0 = a.encrypt(b"hello", b"meta")
    f1 = a.encrypt(b"again", b"meta", context_id=7)
    for rx in (b, c):
        got = rx.decrypt(f0, b"meta", now=1)
        assert (got.plaintext, got.sender_index, got.context_id, got.ctr, got.epoch) == (
            b"hello",
            0,
            0,
            0,
            1,
        )
        assert got.kid == a.own_kid()
        got = rx.decrypt(f1, b"meta", now=1)
        assert (got.plaintext, got.context_id, got.kid) == (b"again", 7, a.own_kid(7))
    # A member never decrypts its own frames: its KIDs are send-only (RFC 9605 §4.4.1).
    with pytest.raises(UnknownKeyID):
        a.decrypt(f0, b"meta", now=1)


def test_context_rejects_foreign_and_unknown_kids() -> None:
    group, (a, _) = members(2)
    # A valid KID of this epoch under a key from outside the group.
    layout = KidLayout(epoch_bits=4, index_bits=1)
    stranger = FrameKey.derive(get_suite(4), layout.kid(epoch=1, sender_index=1), b"\x00" * 16)
    with pytest.raises(DecryptFailed):
        a.decrypt(stranger.encrypt(0, b"", b"x"), now=0)
    # Epoch bits that name no held epoch.
    future = SFrameContext(4)
    future.epoch_changed(group.exporter(2, 1), now=0)
    with pytest.raises(UnknownKeyID):
        a.decrypt(future.encrypt(b"x"), now=0)
    # Index beyond the leaf count of the epoch (three-leaf group: S = 2, index 3 unused).
    big = Group("g3", 3)
    x = SFrameContext(4)
    x.epoch_changed(big.exporter(1, 0), now=0)
    keys = EpochKeys.from_exporter(big.exporter(1, 0), get_suite(4), epoch_bits=4)
    forged = FrameKey.derive(get_suite(4), keys.layout.kid(epoch=1, sender_index=3), keys.base_key)
    with pytest.raises(UnknownKeyID) as info:
        x.decrypt(forged.encrypt(0, b"", b"x"), now=0)
    assert isinstance(info.value, UnknownSender)
    assert info.value.kid == keys.layout.kid(epoch=1, sender_index=3)


def test_context_replay_window() -> None:
    _, (a, b) = members(2)
    frames = [a.encrypt(bytes([i])) for i in range(200)]
    assert b.decrypt(frames[5], now=0).plaintext == b"\x05"
    with pytest.raises(ReplayedMessage):
        b.decrypt(frames[5], now=0)
    # Reordering inside the window is fine; each CTR is accepted once.
    assert b.decrypt(frames[150], now=0).ctr == 150
    assert b.decrypt(frames[40], now=0).ctr == 40
    with pytest.raises(ReplayedMessage):
        b.decrypt(frames[40], now=0)
    # 150 - 128 = 22: CTR 22 is too old for the default window of 128 counters.
    with pytest.raises(ReplayedMessage):
        b.decrypt(frames[22], now=0)
    assert b.decrypt(frames[23], now=0).ctr == 23


def test_context_forgery_does_not_move_state() -> None:
    _, (a, b) = members(2)
    frames = [a.encrypt(bytes([i])) for i in range(3)]
    forged = bytearray(a.encrypt(b"z"))  # CTR 3
    forged[-1] ^= 1
    with pytest.raises(DecryptFailed):
        b.decrypt(bytes(forged), now=0)
    for i in (2, 0, 1):  # still all acceptable, in any order
        assert b.decrypt(frames[i], now=0).plaintext == bytes([i])
    # A forged frame with a huge CTR does not push the window past the genuine frames.
    kid = a.own_kid()
    fake = encode_header(kid, MAX_VALUE) + b"\x00" * 40
    with pytest.raises(DecryptFailed):
        b.decrypt(fake, now=0)
    assert b.decrypt(a.encrypt(b"next"), now=0).ctr == 4


def test_replay_window_unit() -> None:
    w = ReplayWindow(4)
    for ctr in (10, 8, 9, 7):
        w.check(ctr)
        w.commit(ctr)
    for ctr in (10, 9, 8, 7, 6, 0):
        with pytest.raises(ReplayedMessage):
            w.check(ctr)
    w.check(11)
    w.commit(100)  # a jump clears the old bitmap
    w.check(99)
    with pytest.raises(ReplayedMessage):
        w.check(96)
    with pytest.raises(UsageError):
        ReplayWindow(0)


def test_epoch_change_with_grace_period() -> None:
    group, (a, b) = members(2, grace=50)
    in_flight = [a.encrypt(b"old-%d" % i) for i in range(3)]
    for leaf, ctx in enumerate((a, b)):
        ctx.epoch_changed(group.exporter(2, leaf), now=100)
    assert a.epoch == 2 and b.held_epochs == [1, 2]
    new = a.encrypt(b"new")
    assert parse_header(new)[0] & 0xF == 2  # new frames use the new epoch
    assert b.decrypt(new, now=120).epoch == 2
    assert b.decrypt(in_flight[0], now=120).plaintext == b"old-0"
    assert b.decrypt(in_flight[1], now=149).epoch == 1
    # Grace over: the old epoch's keys are gone.
    with pytest.raises(UnknownKeyID):
        b.decrypt(in_flight[2], now=150)
    assert b.held_epochs == [2]


def test_epoch_change_without_grace_drops_old_keys() -> None:
    group, (a, b) = members(2)
    old = a.encrypt(b"old")
    b.epoch_changed(group.exporter(2, 1), now=10)
    with pytest.raises(UnknownKeyID):
        b.decrypt(old, now=10)


def test_epoch_low_bits_collision_evicts_old_epoch() -> None:
    # E = 1: epoch 3 shares its low bit with epoch 1, which must go at once (RFC 9605 §5.2).
    group, (a, b) = members(2, grace=1000, epoch_bits=1)
    from_1 = a.encrypt(b"one")
    for e in (2, 3):
        a.epoch_changed(group.exporter(e, 0), now=e)
        b.epoch_changed(group.exporter(e, 1), now=e)
    assert b.held_epochs == [2, 3]
    # The KID of the epoch-1 frame now names epoch 3, whose key does not open it.
    with pytest.raises(DecryptFailed):
        b.decrypt(from_1, now=3)


def test_epoch_must_advance() -> None:
    group, (a, _) = members(2)
    with pytest.raises(InvalidState):
        a.epoch_changed(group.exporter(1, 0), now=1)  # same epoch: CTRs would restart
    with pytest.raises(InvalidState):
        a.epoch_changed(group.exporter(0, 0), now=1)
    with pytest.raises(InvalidState):
        SFrameContext(1).encrypt(b"x")


def test_ctr_exhaustion() -> None:
    _, (a, b) = members(2)
    a.encrypt(b"first")
    sender = a._current.senders[0]  # type: ignore[union-attr]
    sender.next_ctr = MAX_VALUE
    last = a.encrypt(b"last")
    assert parse_header(last)[1] == MAX_VALUE
    assert b.decrypt(last, now=0).ctr == MAX_VALUE
    state = a.receive_windows(), b.receive_windows(), sender.next_ctr
    with pytest.raises(NonceSpaceExhausted) as info:
        a.encrypt(b"one too many")
    assert type(info.value) is NonceSpaceExhausted and isinstance(info.value, InvalidState)
    assert "commit" in str(info.value)
    assert (a.receive_windows(), b.receive_windows(), sender.next_ctr) == state
    # Only that KID is spent: another context of the same member still sends.
    assert b.decrypt(a.encrypt(b"other stream", context_id=1), now=0).ctr == 0


def test_removed_member_cannot_decrypt_new_epochs() -> None:
    # Epoch 5: members 0, 1 and 2. Epoch 6: member 2 is removed and gets no new exporter.
    group, (a, b, removed) = members(3, epoch=5, grace=100, epoch_bits=1)
    before = a.encrypt(b"before removal")
    assert removed.decrypt(before, now=0).plaintext == b"before removal"
    for e, now in ((6, 10), (7, 20)):
        a.epoch_changed(group.exporter(e, 0), now=now)
        b.epoch_changed(group.exporter(e, 1), now=now)
        a.encrypt(b"CTR 0")  # the removed member saw CTR 0 of this KID in epoch 5
        frame = a.encrypt(b"after removal, epoch %d" % e)
        assert b.decrypt(frame, now=now).plaintext.endswith(b"%d" % e)
        # Epoch 6: the KID's epoch bit names no epoch the removed member holds. Epoch 7: the bit
        # matches its stale epoch 5, but that key cannot authenticate the frame.
        expected = UnknownKeyID if e == 6 else DecryptFailed
        with pytest.raises(expected):
            removed.decrypt(frame, now=now)
    removed.leave()
    with pytest.raises(UnknownKeyID):
        removed.decrypt(before, now=30)


def test_failed_decrypt_leaves_context_usable() -> None:
    _, (a, b) = members(2)
    good = a.encrypt(b"payload", b"m")
    with pytest.raises(DecryptFailed):
        b.decrypt(good, b"wrong metadata", now=0)
    with pytest.raises(DecodeError):
        b.decrypt(b"\x80", now=0)
    assert b.decrypt(good, b"m", now=0).plaintext == b"payload"


@given(st.binary(max_size=64))
def test_context_decrypt_arbitrary_bytes(data: bytes) -> None:
    _, (_, b) = members(2)
    with pytest.raises((DecodeError, UnknownKeyID, DecryptFailed)):
        b.decrypt(data, now=0)


# ---------------------------------------------------------------------------------------------
# Issue 11 item 12: memory stays bounded whatever CTR and KID values authentic frames carry.
# Every member holds the epoch's base_key (RFC 9605 §7.2), so "insider" frames below are genuine:
# built with the public EpochKeys/FrameKey API from the same exporter the group uses.


def insider_key(group: Group, epoch: int, sender: int, context_id: int = 0) -> FrameKey:
    keys = EpochKeys.from_exporter(group.exporter(epoch, sender), get_suite(4), epoch_bits=4)
    return keys.frame_key(keys.kid(sender, context_id))


def peak_bytes(fn: object) -> int:
    assert callable(fn)
    tracemalloc.start()
    try:
        fn()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


@pytest.mark.parametrize("jump", [1 << 40, 1 << 62, MAX_VALUE], ids=["2^40", "2^62", "2^64-1"])
def test_huge_ctr_jump_costs_o_window_memory(jump: int) -> None:
    group, (a, b) = members(2)
    for i in range(3):
        assert b.decrypt(a.encrypt(bytes([i])), now=0).ctr == i
    frame = insider_key(group, 1, 0).encrypt(jump, b"", b"far ahead")
    # Before the fix the window shifted its bitmap by the jump: 2^40 bits, a MemoryError.
    peak = peak_bytes(lambda: b.decrypt(frame, now=0))
    assert peak < 64 * 1024, peak
    ((kid, (size, top, bits)),) = b.receive_windows().items()
    assert (kid, size, top, bits) == (a.own_kid(), 128, jump, 1)
    # The window moved to the jump: the sender's own earlier counters are now too old, the replay
    # is refused, and neither refusal changes the window.
    state = b.receive_windows()
    for old in (a.encrypt(b"late"), frame):
        with pytest.raises(ReplayedMessage):
            b.decrypt(old, now=0)
    assert b.receive_windows() == state
    if jump < MAX_VALUE:
        assert (
            b.decrypt(insider_key(group, 1, 0).encrypt(jump + 1, b"", b"n"), now=0).ctr == jump + 1
        )


def test_replay_window_jump_is_bounded_by_its_size() -> None:
    w = ReplayWindow(MAX_REPLAY_WINDOW)
    w.commit(5)
    peak = peak_bytes(lambda: w.commit(1 << 62))
    assert peak < 4 * MAX_REPLAY_WINDOW // 8 + 4096, peak
    assert w.state() == (MAX_REPLAY_WINDOW, 1 << 62, 1)
    # A jump just inside the window keeps the old bit at the far end; one more step drops it.
    w.commit((1 << 62) + MAX_REPLAY_WINDOW - 1)
    assert w.state()[2] == 1 | (1 << (MAX_REPLAY_WINDOW - 1))
    w.commit((1 << 62) + MAX_REPLAY_WINDOW)
    assert w.state()[2] == 0b11
    for size in (0, MAX_REPLAY_WINDOW + 1, 1 << 40):
        with pytest.raises(UsageError):
            ReplayWindow(size)
    with pytest.raises(UsageError):
        SFrameContext(4, replay_window=1 << 40)


def test_forged_huge_ctr_leaves_the_window_identical() -> None:
    _, (a, b) = members(2)
    b.decrypt(a.encrypt(b"0"), now=0)
    state = b.receive_windows()
    for ctr in (1 << 40, 1 << 62, MAX_VALUE):
        with pytest.raises(DecryptFailed):
            b.decrypt(encode_header(a.own_kid(), ctr) + bytes(32), now=0)
    assert b.receive_windows() == state
    assert b.decrypt(a.encrypt(b"1"), now=0).ctr == 1


def test_receive_contexts_per_epoch_are_capped() -> None:
    group = Group("g", 2)
    b = SFrameContext(4, max_receivers=3)
    b.epoch_changed(group.exporter(1, 1), now=0)
    # A member mints authentic frames under fresh context ids (any 60-bit value is a valid KID).
    frames = [insider_key(group, 1, 0, ctx).encrypt(0, b"", b"x") for ctx in range(6)]
    for f in frames[:3]:
        b.decrypt(f, now=0)
    state = b.receive_windows()
    assert len(state) == 3
    for f in frames[3:]:
        with pytest.raises(TooManyKeyIDs) as info:
            b.decrypt(f, now=0)
        assert type(info.value) is TooManyKeyIDs and isinstance(info.value, UnknownKeyID)
        assert info.value.kid == parse_header(f)[0]
    assert b.receive_windows() == state
    # Known KIDs keep working; the replay check still holds for them.
    assert b.decrypt(insider_key(group, 1, 0, 2).encrypt(1, b"", b"y"), now=0).ctr == 1
    with pytest.raises(ReplayedMessage):
        b.decrypt(frames[0], now=0)
    # The cap is per epoch: the next epoch starts empty.
    b.epoch_changed(group.exporter(2, 1), now=1)
    assert b.decrypt(insider_key(group, 2, 0, 5).encrypt(0, b"", b"z"), now=1).context_id == 5
    with pytest.raises(UsageError):
        SFrameContext(4, max_receivers=0)
