"""``Group.storage_delta`` / ``Group.from_parts``: storage proportional to the change.

A store that applies every delta must hold exactly the member's state: after each step the
group restored from the store re-encodes to the live group's ``to_bytes()`` (so no consumed
secret stays in the store, §9.2), and a received application message changes one secret-tree
row and nothing else.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mls.errors import MLSError
from mls.group import Group, GroupConfig
from mls.group.snapshot import GroupDelta, StateError
from tests.harness import NOW, GroupHarness


@dataclass
class Store:
    """A parts-form store applying deltas as the SQLite store does."""

    state: bytes = b""
    rest: bytes = b""
    secrets: dict[tuple[int, int], bytes] = field(default_factory=dict)

    def apply(self, d: GroupDelta) -> None:
        if d.full:
            self.secrets.clear()
        for ep in d.drop_epochs:
            for key in [k for k in self.secrets if k[0] == ep]:
                del self.secrets[key]
        for key, row in d.secrets.items():
            if row is None:
                self.secrets.pop(key, None)
            else:
                self.secrets[key] = row
        if d.state is not None:
            self.state = d.state
        if d.rest is not None:
            self.rest = d.rest

    def load(self, g: Group) -> Group:
        return Group.from_parts(self.state, self.rest, self.secrets, g.client)


def _sync(stores: dict[int, Store], h: GroupHarness) -> dict[int, GroupDelta]:
    deltas = {}
    for leaf, g in h.members.items():
        store = stores.setdefault(leaf, Store())
        d = g.storage_delta()
        store.apply(d)
        deltas[leaf] = d
        restored = store.load(g)
        assert restored.to_bytes() == g.to_bytes()
        assert restored.storage_delta().secrets == {}
    return deltas


def test_a_received_message_writes_one_row() -> None:
    h = GroupHarness.with_members(8)
    stores: dict[int, Store] = {}
    first = _sync(stores, h)
    assert all(d.full and d.state is not None for d in first.values())
    msg = h.members[3].protect(b"hello")
    h.members[5].process(msg, now=NOW)
    h.members[3].protect(b"again")  # the sender's ratchet row moves too
    d = h.members[5].storage_delta()
    assert not d.full and d.state is None and d.rest is None
    # First message of leaf 3: its path is derived (root deleted, log2(8) siblings, the leaf).
    assert len(d.secrets) == 5
    h.members[5].process(h.members[3].protect(b"third"), now=NOW)
    d = h.members[5].storage_delta()
    assert list(d.secrets) == [(h.members[5].epoch, 6)] and d.state is None and d.rest is None
    # Nothing happened: nothing to write.
    d = h.members[5].storage_delta()
    assert d.secrets == {} and d.state is None and d.rest is None and d.drop_epochs == ()


def test_a_commit_rewrites_the_epoch_and_drops_old_epochs() -> None:
    h = GroupHarness.with_members(4, config=GroupConfig(past_epochs=1))
    stores: dict[int, Store] = {}
    _sync(stores, h)
    e0 = h.members[0].epoch
    h.commit(1)
    d = _sync(stores, h)[2]
    assert d.state is not None and d.rest is not None and d.drop_epochs == ()
    assert (e0 + 1, 3) in d.secrets  # the new epoch's root (4 leaves)
    h.commit(2)
    d = _sync(stores, h)[3]
    assert d.drop_epochs == (e0,)  # past_epochs=1: epoch e0's keys are deleted
    assert all(ep != e0 for ep, _ in stores[3].secrets)


def test_removed_member_keeps_no_secret_rows() -> None:
    h = GroupHarness.with_members(4)
    stores: dict[int, Store] = {}
    h.members[2].process(h.members[1].protect(b"x"), now=NOW)
    _sync(stores, h)
    victim = h.members[2]
    h.commit(0, remove=[2])
    assert victim in h.removed
    d = victim.storage_delta()
    stores[2].apply(d)
    assert victim.epoch in d.drop_epochs
    # Only the placeholder tree of a removed member (one all-zero root) is left.
    assert stores[2].load(victim).to_bytes() == victim.to_bytes()
    assert all(row[1:].strip(b"\x00") == b"\x20" for row in stores[2].secrets.values())


def test_rows_of_an_epoch_not_kept_are_refused() -> None:
    h = GroupHarness.with_members(2)
    store = Store()
    g = h.members[1]
    store.apply(g.storage_delta())
    bad = dict(store.secrets)
    bad[(g.epoch + 7, 0)] = next(iter(store.secrets.values()))
    with pytest.raises(StateError, match="does not keep"):
        Group.from_parts(store.state, store.rest, bad, g.client)
    with pytest.raises(StateError):
        Group.from_parts(store.rest, store.state, store.secrets, g.client)


@settings(max_examples=12, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.sampled_from(["send", "commit", "update", "late", "remove"]), st.integers(0, 9)
        ),
        min_size=1,
        max_size=10,
    )
)
def test_every_delta_restores_the_live_state(ops: list[tuple[str, int]]) -> None:
    h = GroupHarness.with_members(5, config=GroupConfig(past_epochs=2))
    stores: dict[int, Store] = {}
    _sync(stores, h)
    late: list[tuple[int, bytes]] = []
    for op, k in ops:
        leaves = sorted(h.members)
        who = leaves[k % len(leaves)]
        if op == "send":
            msg = h.members[who].protect(b"m%d" % k)
            for leaf, g in h.members.items():
                if leaf != who:
                    g.process(msg, now=NOW)
            late.append((who, h.members[who].protect(b"late")))
        elif op == "commit":
            h.commit(who)
        elif op == "update":
            prop = h.members[who].propose_update()
            h.deliver(prop, sender=who)
            h.commit(leaves[(k + 1) % len(leaves)])
        elif op == "late" and late:
            sender, msg = late.pop(0)
            for leaf, g in h.members.items():
                if leaf != sender:
                    try:
                        g.process(msg, now=NOW)
                    except MLSError:
                        pass  # past epochs not kept, or the sender was removed
        elif op == "remove" and len(leaves) > 2 and who != 0:
            h.commit(0, remove=[who])
            stores.pop(who, None)
        _sync(stores, h)
