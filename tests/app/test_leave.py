"""ChatClient.leave (issue 16): SelfRemove where every member supports it, a self-Remove
proposal otherwise; the commit that removes the leaver deletes its group state (memory and
storage)."""

from __future__ import annotations

from pathlib import Path

import pytest

from mls.app import ChatClient, GroupUpdated, MemoryStorage
from mls.codec import decode
from mls.constants import WireFormat
from mls.errors import InvalidState, WrongGroup
from mls.framing.message import MLSMessage
from mls.framing.public import PublicMessage
from mls.group import default_capabilities
from mls.messages.proposals import Remove, SelfRemove
from tests.app.world import GROUP, World


def _proposal(data: bytes) -> object:
    body = decode(MLSMessage, data).body
    assert isinstance(body, PublicMessage)
    return body.content.content


@pytest.fixture(params=["memory", "sqlite"])
def world(request: pytest.FixtureRequest, tmp_path: Path) -> World:
    w = World(tmp_path)
    for name in ("alice", "bob", "carol"):
        w.add(name, sqlite=request.param == "sqlite")
    w.create("alice", ["bob", "carol"])
    return w


def _commit_removing(w: World, committer: str, leaver: str) -> GroupUpdated:
    c = w[committer]
    out = c.commit(GROUP, now=w.now)
    assert w.ds.submit_commit(GROUP, committer.encode(), out.commit, removed=[leaver.encode()])
    return c.confirm_commit(GROUP, now=w.now)


def test_leave_by_self_remove_deletes_the_group(world: World) -> None:
    w = world
    data = w["carol"].leave(GROUP)
    assert decode(MLSMessage, data).wire_format == WireFormat.mls_public_message
    assert isinstance(_proposal(data), SelfRemove)
    with pytest.raises(InvalidState):
        w["carol"].send_text(GROUP, "bye", now=w.now)  # pending proposals first
    w.ds.send(GROUP, b"carol", data)
    w.pump("bob")
    ev = _commit_removing(w, "bob", "carol")
    assert ev.removed == (b"carol",)
    (got,) = w.pump("carol")["carol"]
    assert isinstance(got, GroupUpdated) and got.self_removed
    assert GROUP not in w["carol"].group_ids()
    carol = w.reopen("carol")  # gone from storage too
    assert GROUP not in carol.group_ids()
    w.pump("alice")
    assert w["alice"].members(GROUP) == [b"alice", b"bob"]
    later = w.say("alice", "after carol left")
    with pytest.raises(WrongGroup):
        carol.receive(later.data, now=w.now)


def test_leave_falls_back_to_a_remove_proposal() -> None:
    w = World()
    for name in ("alice", "bob"):
        w.add(name)
    old = ChatClient.create(b"carol", MemoryStorage())
    # carol's client predates SelfRemove: the group is not self-remove-capable.
    mls_client = old.mls_client
    mls_client.capabilities = default_capabilities(
        extensions=mls_client.capabilities.extensions, self_remove=False
    )
    w.clients["carol"] = old
    w.storages["carol"] = MemoryStorage()
    w.ds.publish_key_packages(old.identity, old.publish_key_packages(2, now=w.now))
    w.create("alice", ["bob", "carol"])
    data = w["bob"].leave(GROUP)
    bob = w["bob"].group(GROUP)
    assert not bob.self_remove_capable
    (ref,) = bob.pending_proposal_refs
    p = bob._proposals[ref].proposal
    assert isinstance(p, Remove) and p.removed == bob.own_leaf_index
    w.ds.send(GROUP, b"bob", data)
    w.pump("carol")
    ev = _commit_removing(w, "carol", "bob")
    assert ev.removed == (b"bob",)
    w.pump("bob")
    assert GROUP not in w["bob"].group_ids()
