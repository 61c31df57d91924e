"""The secret tree's storage by rows (header + one row per node that holds a secret).

A store that applies every ``take_changed_rows()`` to a map must hold exactly the live tree:
restoring from the map gives the same ``to_bytes()`` (so no consumed key survives in the map,
§9.2), and forged rows are refused.
"""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mls.codec import Writer
from mls.constants import ContentType
from mls.crypto import get_suite
from mls.errors import DecodeError, MLSError
from mls.schedule.secret_tree import SecretTree

CS = get_suite(1)
APP, HS = ContentType.application, ContentType.commit


def _store(store: dict[int, bytes], changes: dict[int, bytes | None]) -> None:
    for node, row in changes.items():
        if row is None:
            store.pop(node, None)
        else:
            store[node] = row


def _root_secret() -> bytes:
    return bytes(range(CS.hash_len))


def test_new_tree_is_one_row() -> None:
    tree = SecretTree(CS, _root_secret(), 8, own_leaf=2)
    changes = tree.take_changed_rows()
    assert list(changes) == [7]  # the root of an 8-leaf tree
    assert tree.take_changed_rows() == {}


def test_first_message_rewrites_the_path_then_one_row() -> None:
    tree = SecretTree(CS, _root_secret(), 16, own_leaf=0)
    tree.take_changed_rows()
    tree.receive_key(5, APP, 0)
    first = tree.take_changed_rows()
    # The root is deleted, one off-path child per level is stored, the leaf holds ratchets.
    assert first[15] is None
    assert len([r for r in first.values() if r is not None]) == 4 + 1
    tree.receive_key(5, APP, 1)
    assert list(tree.take_changed_rows()) == [10]
    tree.next_send_key(APP)
    assert 0 in tree.take_changed_rows()  # own leaf 0 derived: its path too
    tree.next_send_key(APP)
    assert list(tree.take_changed_rows()) == [0]


@settings(max_examples=60, deadline=None)
@given(
    leaves=st.sampled_from([1, 2, 5, 8, 33]),
    ops=st.lists(
        st.tuples(st.integers(0, 40), st.sampled_from([APP, HS]), st.integers(0, 12)),
        max_size=25,
    ),
)
def test_rows_restore_the_live_tree(leaves: int, ops: list[tuple[int, int, int]]) -> None:
    tree = SecretTree(CS, _root_secret(), leaves, own_leaf=0, out_of_order_window=3)
    store: dict[int, bytes] = {}
    _store(store, tree.take_changed_rows())
    for leaf, ctype, gen in ops:
        try:
            if leaf == 0 and gen % 3 == 0:
                tree.next_send_key(ctype)
            else:
                tree.receive_key(leaf % leaves, ctype, gen)
        except MLSError:
            pass  # replays and out-of-window generations change nothing
        _store(store, tree.take_changed_rows())
        restored = SecretTree.from_rows(CS, tree.header(), store)
        assert restored.to_bytes() == tree.to_bytes()
        assert restored.take_changed_rows() == {}
    assert SecretTree.from_rows(CS, tree.header(), tree.rows()).to_bytes() == tree.to_bytes()


def test_decoded_tree_has_every_row_changed() -> None:
    tree = SecretTree(CS, _root_secret(), 8, own_leaf=1)
    tree.receive_key(3, APP, 2)
    again = SecretTree.from_bytes(CS, tree.to_bytes())
    assert again.take_changed_rows() == tree.rows()


def _node_row(secret: bytes) -> bytes:
    w = Writer()
    w.push_uint8(0)
    w.push_opaque(secret)
    return w.getvalue()


def test_forged_rows_are_refused() -> None:
    tree = SecretTree(CS, _root_secret(), 8, own_leaf=0)
    tree.receive_key(6, APP, 0)
    header, rows = tree.header(), tree.rows()
    secret = bytes(CS.hash_len)
    # A deleted ancestor brought back next to its descendants (a consumed key resurrected).
    with pytest.raises(DecodeError, match="ancestor"):
        SecretTree.from_rows(CS, header, {**rows, 7: _node_row(secret)})
    with pytest.raises(DecodeError, match="outside"):
        SecretTree.from_rows(CS, header, {15: _node_row(secret)})
    with pytest.raises(DecodeError, match="wrong length"):
        SecretTree.from_rows(CS, header, {7: _node_row(b"short")})
    with pytest.raises(DecodeError, match="kind"):
        SecretTree.from_rows(CS, header, {7: b"\x02"})
    leaf_row = rows[12]
    with pytest.raises(DecodeError, match="kind"):
        SecretTree.from_rows(CS, header, {13: leaf_row})  # leaf ratchets at an odd node
    with pytest.raises(DecodeError, match="trailing"):
        SecretTree.from_rows(CS, header, {7: _node_row(secret) + b"\x00"})
    with pytest.raises(DecodeError):
        SecretTree.from_rows(CS, header + b"\x00", {})
    other = get_suite(2)
    with pytest.raises(DecodeError, match="suite"):
        SecretTree.from_rows(other, header, {})
