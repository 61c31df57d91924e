"""Unit tests of the key schedule layer (RFC 9420 §8, §9): secret tree windows, replay,
deletion, storage, lazy derivation; EpochSecrets redaction; PSK and confirmation-tag edges.

Expected keys are recomputed here straight from the §9 derivation (root to leaf with "tree"
left/right, then the ratchet), independently of ``SecretTree``'s lazy walk and bookkeeping.
"""

from __future__ import annotations

import dataclasses

import pytest

from mls.constants import ContentType
from mls.crypto import CipherSuite, get_suite
from mls.crypto.labels import derive_tree_secret, expand_with_label
from mls.errors import (
    BadConfirmationTag,
    DecodeError,
    GenerationOutOfWindow,
    InvalidContentType,
    InvalidState,
    ReplayedMessage,
    UnknownSender,
)
from mls.schedule.key_schedule import (
    EpochSecrets,
    confirmation_tag,
    derive_epoch_secrets,
    verify_confirmation_tag,
)
from mls.schedule.psk import psk_secret
from mls.schedule.secret_tree import (
    DEFAULT_MAX_FORWARD_DISTANCE,
    DEFAULT_OUT_OF_ORDER_WINDOW,
    SecretTree,
)

APP = ContentType.application
HS = ContentType.commit


@pytest.fixture
def cs(suite_id: int) -> CipherSuite:
    return get_suite(suite_id)


def _secret(cs: CipherSuite, tag: int) -> bytes:
    return bytes([tag]) * cs.hash_len


def _path_secrets(cs: CipherSuite, root_secret: bytes, n_leaves: int, leaf: int) -> list[bytes]:
    """Tree secrets from the root down to ``leaf`` (inclusive), per §9 (n_leaves a power of 2)."""
    out = [root_secret]
    lo, hi = 0, n_leaves  # leaves covered by the current node
    secret = root_secret
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if leaf < mid:
            secret = expand_with_label(cs, secret, "tree", b"left", cs.hash_len)
            hi = mid
        else:
            secret = expand_with_label(cs, secret, "tree", b"right", cs.hash_len)
            lo = mid
        out.append(secret)
    return out


def _ratchet_secrets(cs: CipherSuite, leaf_secret: bytes, label: str, upto: int) -> list[bytes]:
    """``ratchet_secret_[0..upto]`` of one ratchet (§9.1)."""
    secrets = [expand_with_label(cs, leaf_secret, label, b"", cs.hash_len)]
    for j in range(upto):
        secrets.append(derive_tree_secret(cs, secrets[-1], "secret", j, cs.hash_len))
    return secrets


def _expected(
    cs: CipherSuite, root: bytes, n: int, leaf: int, label: str, gen: int
) -> tuple[bytes, bytes]:
    leaf_secret = _path_secrets(cs, root, n, leaf)[-1]
    rs = _ratchet_secrets(cs, leaf_secret, label, gen)[gen]
    return (
        derive_tree_secret(cs, rs, "key", gen, cs.aead_key_len),
        derive_tree_secret(cs, rs, "nonce", gen, cs.aead_nonce_len),
    )


# -- out-of-order window, replay, forward bound ------------------------------------------------


def test_out_of_order_within_window_yields_the_right_keys(cs: CipherSuite) -> None:
    root = _secret(cs, 1)
    tree = SecretTree(cs, root, 8)
    for g in (5, 2, 0, 4, 1, 3):
        assert tree.receive_key(6, APP, g) == _expected(cs, root, 8, 6, "application", g)
    # The handshake ratchet of the same leaf is independent.
    assert tree.receive_key(6, HS, 0) == _expected(cs, root, 8, 6, "handshake", 0)


def test_generation_behind_the_window_is_rejected(cs: CipherSuite) -> None:
    tree = SecretTree(cs, _secret(cs, 2), 4, out_of_order_window=4)
    tree.receive_key(1, APP, 10)
    with pytest.raises(GenerationOutOfWindow):
        tree.receive_key(1, APP, 5)  # 10 - 5 > 4: never kept
    tree.receive_key(1, APP, 6)  # 10 - 6 == 4: kept
    tree.receive_key(1, APP, 20)  # moves the window: 7..9 fall out
    with pytest.raises(GenerationOutOfWindow):
        tree.receive_key(1, APP, 9)
    tree.receive_key(1, APP, 16)


def test_replayed_generation_is_rejected(cs: CipherSuite) -> None:
    tree = SecretTree(cs, _secret(cs, 3), 2)
    tree.receive_key(0, HS, 0)
    with pytest.raises(ReplayedMessage):
        tree.receive_key(0, HS, 0)
    tree.receive_key(0, HS, 3)
    tree.receive_key(0, HS, 1)
    for g in (1, 3):
        with pytest.raises(ReplayedMessage):
            tree.receive_key(0, HS, g)
    tree.receive_key(0, HS, 2)  # never consumed, still there


def test_forward_jump_bound(cs: CipherSuite) -> None:
    tree = SecretTree(cs, _secret(cs, 4), 2, max_forward_distance=10)
    with pytest.raises(GenerationOutOfWindow):
        tree.receive_key(1, APP, 11)
    with pytest.raises(GenerationOutOfWindow):
        tree.receive_key(1, APP, 0xFFFFFFFF)
    tree.receive_key(1, APP, 10)  # next expected becomes 11
    with pytest.raises(GenerationOutOfWindow):
        tree.receive_key(1, APP, 22)
    tree.receive_key(1, APP, 21)


def test_defaults_are_documented_values() -> None:
    assert DEFAULT_OUT_OF_ORDER_WINDOW == 256
    assert DEFAULT_MAX_FORWARD_DISTANCE == 1000


def test_default_forward_bound(cs: CipherSuite) -> None:
    tree = SecretTree(cs, _secret(cs, 5), 2)
    with pytest.raises(GenerationOutOfWindow):
        tree.receive_key(0, APP, DEFAULT_MAX_FORWARD_DISTANCE + 1)
    key = tree.receive_key(0, APP, DEFAULT_MAX_FORWARD_DISTANCE)
    assert key == _expected(cs, _secret(cs, 5), 2, 0, "application", DEFAULT_MAX_FORWARD_DISTANCE)
    # Only the window's worth of skipped keys is kept after a long jump.
    skipped = tree.stored_secret_count() - 1 - 2  # minus the sibling leaf and two ratchet secrets
    assert skipped == DEFAULT_OUT_OF_ORDER_WINDOW


def test_bad_inputs(cs: CipherSuite) -> None:
    tree = SecretTree(cs, _secret(cs, 6), 4)
    with pytest.raises(UnknownSender):
        tree.receive_key(4, APP, 0)
    with pytest.raises(InvalidContentType):
        tree.receive_key(0, 0, 0)
    with pytest.raises(InvalidState):
        tree.next_send_key(APP)  # no own leaf


# -- sending ------------------------------------------------------------------------------------


def test_sender_and_receiver_agree_and_own_keys_are_consumed(cs: CipherSuite) -> None:
    root = _secret(cs, 7)
    alice = SecretTree(cs, root, 4, own_leaf=2)
    bob = SecretTree(cs, root, 4, own_leaf=0)
    sent = [alice.next_send_key(APP) for _ in range(3)]
    assert [g for g, _, _ in sent] == [0, 1, 2]
    assert alice.next_send_key(HS)[0] == 0
    for g, key, nonce in reversed(sent):
        assert bob.receive_key(2, APP, g) == (key, nonce)
        assert (key, nonce) == _expected(cs, root, 4, 2, "application", g)
    # A sender's own key is consumed when sent: an echo of its own message cannot be decrypted.
    with pytest.raises(ReplayedMessage):
        alice.receive_key(2, APP, 1)


# -- two-phase receive --------------------------------------------------------------------------


def test_prepare_does_not_consume(cs: CipherSuite) -> None:
    tree = SecretTree(cs, _secret(cs, 8), 4)
    tree.receive_key(3, APP, 0)
    before = tree.to_bytes()
    pending = tree.prepare_receive(3, APP, 7)
    again = tree.prepare_receive(3, APP, 7)
    assert tree.to_bytes() == before  # a failed decryption leaves no trace
    assert (pending.key, pending.nonce) == (again.key, again.nonce)
    tree.confirm_receive(pending)
    with pytest.raises(ReplayedMessage):
        tree.confirm_receive(again)
    with pytest.raises(ReplayedMessage):
        tree.prepare_receive(3, APP, 7)


def test_stale_pending_keys_are_rederived(cs: CipherSuite) -> None:
    root = _secret(cs, 9)
    tree = SecretTree(cs, root, 4)
    far = tree.prepare_receive(1, HS, 9)
    near = tree.prepare_receive(1, HS, 4)
    tree.confirm_receive(far)  # 4 is now a kept skipped key
    tree.confirm_receive(near)
    far2 = tree.prepare_receive(1, HS, 12)
    tree.receive_key(1, HS, 10)
    tree.confirm_receive(far2)  # ratchet moved, but 12 is still ahead: derived again
    assert (far2.key, far2.nonce) == _expected(cs, root, 4, 1, "handshake", 12)
    for g in (4, 9, 10, 12):
        with pytest.raises(ReplayedMessage):
            tree.receive_key(1, HS, g)
    tree.receive_key(1, HS, 11)


# -- deletion and storage -----------------------------------------------------------------------


def test_consumed_key_cannot_be_recovered_from_stored_state(cs: CipherSuite) -> None:
    root = _secret(cs, 10)
    n, leaf = 8, 5
    tree = SecretTree(cs, root, n)
    consumed = tree.receive_key(leaf, APP, 1)
    tree.receive_key(leaf, APP, 3)  # keeps 0 and 2; 1 and 3 are consumed
    blob = tree.to_bytes()

    path = _path_secrets(cs, root, n, leaf)
    ratchet = _ratchet_secrets(cs, path[-1], "application", 4)
    # Nothing from which a consumed key can be derived is stored: no tree secret on the path
    # (root included), no ratchet secret up to generation 3, not the consumed key or nonce.
    for value in [*path, *ratchet[:4], *consumed]:
        assert value not in blob
    # What must stay is stored (so the search above can find a stored secret).
    assert ratchet[4] in blob
    assert _expected(cs, root, n, leaf, "application", 2)[0] in blob

    restored = SecretTree.from_bytes(cs, blob)
    for g in (1, 3):
        with pytest.raises(ReplayedMessage):
            restored.receive_key(leaf, APP, g)
    assert restored.receive_key(leaf, APP, 0) == _expected(cs, root, n, leaf, "application", 0)
    assert restored.receive_key(leaf, APP, 2) == _expected(cs, root, n, leaf, "application", 2)
    assert restored.receive_key(leaf, APP, 4) == _expected(cs, root, n, leaf, "application", 4)
    # Other leaves are still derivable from the stored siblings.
    assert restored.receive_key(0, HS, 0) == _expected(cs, root, n, 0, "handshake", 0)
    assert restored.to_bytes() != blob


def test_restore_keeps_settings_and_own_leaf(cs: CipherSuite) -> None:
    tree = SecretTree(cs, _secret(cs, 11), 4, own_leaf=1, out_of_order_window=3)
    tree.next_send_key(APP)
    restored = SecretTree.from_bytes(cs, tree.to_bytes())
    assert (restored.own_leaf, restored.out_of_order_window) == (1, 3)
    assert restored.max_forward_distance == DEFAULT_MAX_FORWARD_DISTANCE
    assert restored.next_send_key(APP)[0] == 1


def test_corrupt_state_raises_decode_error(cs: CipherSuite) -> None:
    tree = SecretTree(cs, _secret(cs, 12), 4)
    tree.receive_key(2, APP, 3)
    blob = tree.to_bytes()
    for cut in range(len(blob)):
        with pytest.raises(DecodeError):
            SecretTree.from_bytes(cs, blob[:cut])
    with pytest.raises(DecodeError):
        SecretTree.from_bytes(cs, blob + b"\x00")
    other = get_suite(2 if cs.suite_id != 2 else 1)
    with pytest.raises(DecodeError):
        SecretTree.from_bytes(other, blob)


def test_tree_is_derived_lazily_and_parents_deleted(cs: CipherSuite) -> None:
    n = 1 << 16  # a 50,000-member group lives in a 65,536-leaf tree
    root = _secret(cs, 13)
    tree = SecretTree(cs, root, n)
    assert tree.stored_secret_count() == 1
    assert tree.receive_key(40000, APP, 0) == _expected(cs, root, n, 40000, "application", 0)
    # One stored sibling per level, plus the leaf's two ratchet secrets; the root is gone.
    assert tree.stored_secret_count() == 16 + 2
    assert root not in tree.to_bytes()
    tree.receive_key(40001, APP, 0)  # the sibling leaf: its secret was already stored
    assert tree.stored_secret_count() == 15 + 2 + 2


def test_single_leaf_tree(cs: CipherSuite) -> None:
    root = _secret(cs, 14)
    tree = SecretTree(cs, root, 1, own_leaf=0)
    g, key, nonce = tree.next_send_key(HS)
    assert (g, (key, nonce)) == (0, _expected(cs, root, 1, 0, "handshake", 0))


# -- key schedule -------------------------------------------------------------------------------


def test_epoch_secrets_are_not_in_repr(cs: CipherSuite) -> None:
    secrets = derive_epoch_secrets(
        cs, init_secret=_secret(cs, 15), commit_secret=None, psk_secret=None, group_context=b"gc"
    )
    text = repr(secrets) + str(secrets)
    for f in dataclasses.fields(EpochSecrets):
        value: bytes = getattr(secrets, f.name)
        assert len(value) == cs.hash_len
        assert value.hex() not in text and repr(value) not in text
    tree = SecretTree(cs, secrets.encryption_secret, 2, own_leaf=0)
    pending = tree.prepare_receive(1, APP, 0)
    for text in (repr(tree), repr(pending)):
        assert pending.key.hex() not in text and repr(pending.key) not in text
        assert repr(secrets.encryption_secret) not in text


def test_zero_inputs_mean_all_zero(cs: CipherSuite) -> None:
    zero = bytes(cs.hash_len)
    assert psk_secret(cs, []) == zero
    a = derive_epoch_secrets(
        cs, init_secret=_secret(cs, 16), commit_secret=None, psk_secret=None, group_context=b"x"
    )
    b = derive_epoch_secrets(
        cs, init_secret=_secret(cs, 16), commit_secret=zero, psk_secret=zero, group_context=b"x"
    )
    assert a == b
    c = derive_epoch_secrets(
        cs, init_secret=_secret(cs, 16), commit_secret=zero, psk_secret=zero, group_context=b"y"
    )
    assert c.joiner_secret != a.joiner_secret


def test_confirmation_tag_verification(cs: CipherSuite) -> None:
    key, cth = _secret(cs, 17), b"confirmed"
    tag = confirmation_tag(cs, key, cth)
    verify_confirmation_tag(cs, key, cth, tag)
    with pytest.raises(BadConfirmationTag):
        verify_confirmation_tag(cs, key, cth, bytes([tag[0] ^ 1]) + tag[1:])
    with pytest.raises(BadConfirmationTag):
        verify_confirmation_tag(cs, key, b"other", tag)
