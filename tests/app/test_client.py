"""ChatClient: chat, restarts, own commits awaiting the delivery service, attribution."""

from __future__ import annotations

from pathlib import Path

import pytest

from mls.app import (
    ChatClient,
    GroupUpdated,
    Ignored,
    Joined,
    MemoryStorage,
    MessageReceived,
    StateChange,
    StoredMessage,
)
from mls.app.client import room_uri, user_uri
from mls.app.content import compute_message_id, edit, new_salt, text
from mls.errors import (
    DecodeError,
    InvalidContent,
    InvalidState,
    NoMatchingKeyPackage,
    PeerError,
    WrongGroup,
)

from .world import GROUP, World


@pytest.fixture(params=["memory", "sqlite"])
def world(request: pytest.FixtureRequest, tmp_path: Path) -> World:
    w = World(tmp_path)
    sqlite = request.param == "sqlite"
    for name in ("alice", "bob", "carol"):
        w.add(name, sqlite=sqlite)
    w.create("alice", ["bob", "carol"])
    return w


def agree(w: World, *names: str) -> None:
    auths = {w[n].group(GROUP).epoch_authenticator for n in names}
    epochs = {w[n].group(GROUP).epoch for n in names}
    assert len(auths) == 1 and len(epochs) == 1


def test_chat_reply_reaction_edit(world: World) -> None:
    w = world
    agree(w, "alice", "bob", "carol")
    hello = w.say("alice", "lunch at noon?")
    w.pump("bob", "carol")
    answer = w.say("bob", "yes", in_reply_to=hello.message_id)
    like = w["carol"].react(GROUP, "+1", to=hello.message_id, now=w.now)
    w.ds.send(GROUP, b"carol", like.data)
    fix = w["alice"].edit(GROUP, "lunch at 12:30?", replaces=hello.message_id, now=w.now)
    w.ds.send(GROUP, b"alice", fix.data)
    w.pump()
    views = [w[n].conversation(GROUP, now=w.now) for n in ("alice", "bob", "carol")]
    assert views[0] == views[1] == views[2]
    first, second = views[0]
    assert (first.sender, first.text, first.edited) == (b"alice", "lunch at 12:30?", True)
    assert first.reactions == ((b"carol", "+1"),)
    assert (second.message_id, second.in_reply_to) == (answer.message_id, hello.message_id)


def test_message_id_is_computed_over_the_authenticated_sender(world: World) -> None:
    w = world
    sent = w.say("alice", "hi")
    (ev,) = w.pump("bob")["bob"]
    assert isinstance(ev, MessageReceived)
    content = ev.content.to_cbor()
    expected = compute_message_id(
        content,
        ev.content.salt,
        user_uri(w["bob"].config.domain, b"alice"),
        room_uri(w["bob"].config.domain, GROUP),
    )
    assert ev.message.message_id == sent.message_id == expected


def test_content_claiming_another_sender_is_rejected(world: World) -> None:
    w = world
    forged = text("I am alice", salt=new_salt(), sender_uri=w["alice"].uri)
    sent = w["bob"].send(GROUP, forged, now=w.now)
    w.ds.send(GROUP, b"bob", sent.data)
    with pytest.raises(InvalidContent):
        w.pump("carol")
    assert w["carol"].messages(GROUP, now=w.now) == []
    # The message's ratchet key was spent and the inbox entry acknowledged: the next one works.
    w.say("bob", "sorry")
    w.pump("carol")
    assert w.texts("carol") == ["sorry"]


def test_edit_by_another_member_is_not_applied(world: World) -> None:
    w = world
    hello = w.say("alice", "original")
    w.pump()
    bad = w["bob"].send(
        GROUP, edit("vandalised", replaces=hello.message_id, salt=new_salt()), now=w.now
    )
    w.ds.send(GROUP, b"bob", bad.data)
    w.pump()
    assert w.texts("alice") == w.texts("carol") == ["original"]


@pytest.mark.parametrize("sqlite", [False, True])
def test_restart_restores_groups_messages_and_cursor(tmp_path: Path, sqlite: bool) -> None:
    w = World(tmp_path)
    for name in ("alice", "bob", "carol"):
        w.add(name, sqlite=sqlite)
    w.create("alice", ["bob", "carol"], timer=3600)
    w.say("alice", "one")
    w.pump()
    w.commit("carol")
    w.pump()
    w.say("bob", "two")
    w.pump()
    before = (w["bob"].group(GROUP).epoch_authenticator, w["bob"].cursor, w.texts("bob"))
    bob = w.reopen("bob")
    assert (bob.group(GROUP).epoch_authenticator, bob.cursor, w.texts("bob")) == before
    assert bob.timer(GROUP) == 3600 and bob.members(GROUP) == [b"alice", b"bob", b"carol"]
    w.say("bob", "three")
    w.pump()
    w.say("alice", "four")
    w.pump()
    w.commit("alice")
    w.pump()
    agree(w, "alice", "bob", "carol")
    assert w.texts("carol") == w.texts("bob") == ["one", "two", "three", "four"]


def test_sent_message_is_stored_before_it_is_returned(world: World) -> None:
    w = world
    w.say("alice", "first")
    w.reopen("alice")  # a crash right after the send: the send ratchet must not go back
    w.say("alice", "second")
    w.pump()
    assert w.texts("bob") == ["first", "second"]
    assert [m.outgoing for m in w["alice"].messages(GROUP, now=w.now)] == [True, True]


def test_redelivered_inbox_entries_are_ignored(world: World) -> None:
    w = world
    w.say("alice", "once")
    (entry,) = w.ds.fetch(b"bob", after=w["bob"].cursor)
    w["bob"].receive(entry.data, now=w.now, seq=entry.seq)
    again = w["bob"].receive(entry.data, now=w.now, seq=entry.seq)
    assert isinstance(again, Ignored)
    assert w.reopen("bob").cursor == entry.seq
    assert w.texts("bob") == ["once"]


class FailingStorage(MemoryStorage):
    """Fails the next ``apply`` once armed (a full disk, an I/O error)."""

    armed = False

    def apply(self, change: StateChange) -> None:
        if self.armed:
            self.armed = False
            raise OSError("disk full")
        super().apply(change)


def test_failed_save_reloads_state_so_the_message_can_be_retried() -> None:
    w = World()
    w.add("alice")
    storage = FailingStorage()
    bob = ChatClient.create(b"bob", storage)
    w.clients["bob"], w.storages["bob"] = bob, storage
    w.ds.publish_key_packages(b"bob", bob.publish_key_packages(1, now=w.now))
    w.create("alice", ["bob"])
    w.say("alice", "hello")
    (entry,) = w.ds.fetch(b"bob", after=bob.cursor)
    storage.armed = True
    with pytest.raises(OSError, match="disk full"):
        bob.receive(entry.data, now=w.now, seq=entry.seq)
    # Memory went back to the stored state: the ratchet key is still there to retry with.
    ev = bob.receive(entry.data, now=w.now, seq=entry.seq)
    assert isinstance(ev, MessageReceived) and bob.cursor == entry.seq


def test_competing_commits_one_wins_the_other_is_rolled_back(world: World) -> None:
    w = world
    epoch = w["alice"].group(GROUP).epoch
    out_bob = w["bob"].commit(GROUP, now=w.now)
    out_carol = w["carol"].commit(GROUP, now=w.now)
    assert w["carol"].has_unresolved_commit(GROUP)
    with pytest.raises(InvalidState):
        w["carol"].send_text(GROUP, "not now", now=w.now)
    assert w.ds.submit_commit(GROUP, b"bob", out_bob.commit)
    assert not w.ds.submit_commit(GROUP, b"carol", out_carol.commit)
    w["bob"].confirm_commit(GROUP, now=w.now)
    w["carol"].reject_commit(GROUP)
    assert w["carol"].group(GROUP).epoch == epoch
    w.pump()
    agree(w, "alice", "bob", "carol")
    w.say("carol", "back in sync")
    w.pump()
    assert w.texts("alice") == ["back in sync"]


def test_unresolved_commit_survives_a_crash_and_the_next_message_confirms_it(
    world: World,
) -> None:
    w = world
    w.add("dave")
    out = w["alice"].commit(GROUP, add=[w.ds.fetch_key_package(b"dave")], now=w.now)
    assert w.ds.submit_commit(GROUP, b"alice", out.commit, welcome=out.welcome, added=[b"dave"])
    alice = w.reopen("alice")  # crash before confirm_commit
    assert alice.has_unresolved_commit(GROUP)
    w.pump("bob", "carol", "dave")
    w.say("bob", "welcome dave")
    w.pump()
    assert not alice.has_unresolved_commit(GROUP)
    agree(w, "alice", "bob", "carol", "dave")
    assert w.texts("alice") == w.texts("dave") == ["welcome dave"]


def test_unresolved_commit_after_a_crash_is_rolled_back_by_the_winning_commit(
    world: World,
) -> None:
    w = world
    w["carol"].commit(GROUP, now=w.now)  # never reaches the delivery service
    carol = w.reopen("carol")
    assert carol.has_unresolved_commit(GROUP)
    ev = w.commit("bob")
    (got,) = w.pump()["carol"]
    assert isinstance(got, GroupUpdated) and got.epoch == ev.epoch
    assert not carol.has_unresolved_commit(GROUP)
    agree(w, "alice", "bob", "carol")


def test_late_message_is_attributed_to_its_sender_when_the_leaf_was_reused(
    world: World,
) -> None:
    w = world
    w.add("dave")
    carol_leaf = w["carol"].group(GROUP).own_leaf_index
    late = w.say("carol", "sent before my removal")
    seen = w.say("carol", "and this one")
    # bob gets the commit first; dave takes carol's blank leaf in the same commit.
    w.commit("alice", add=["dave"], remove=["carol"])
    inbox = w.ds.fetch(b"bob", after=w["bob"].cursor)
    commit_entry = next(e for e in inbox if e.data not in (late.data, seen.data))
    # bob had seen a later generation of carol's before the removal, so the late one was
    # written before it (RFC 9420 §12.4.2; GroupConfig.removed_sender_messages).
    w["bob"].receive(seen.data, now=w.now)
    w["bob"].receive(commit_entry.data, now=w.now)
    w.pump("dave")
    assert w["dave"].group(GROUP).own_leaf_index == carol_leaf
    ev = w["bob"].receive(late.data, now=w.now)
    assert isinstance(ev, MessageReceived)
    assert ev.message.sender == b"carol" and ev.message.sender_leaf == carol_leaf


def test_removed_member_stops_and_later_messages_are_refused(world: World) -> None:
    w = world
    ev = w.commit("alice", remove=["carol"])
    assert ev.removed == (b"carol",)
    (got,) = w.pump("carol")["carol"]
    assert isinstance(got, GroupUpdated) and got.self_removed
    with pytest.raises(InvalidState):
        w["carol"].send_text(GROUP, "still here?", now=w.now)
    w.pump("bob")
    w.commit("bob")
    # A message of an epoch after the removal never decrypts for carol.
    sent = w["bob"].send_text(GROUP, "carol cannot read this", now=w.now)
    with pytest.raises(PeerError):
        w["carol"].receive(sent.data, now=w.now)
    assert w.texts("carol") == []


def test_messages_for_unknown_groups_and_foreign_welcomes(world: World) -> None:
    w = world
    w.add("dave")
    w.add("erin")
    stranger = ChatClient.create(b"stranger", MemoryStorage())
    stranger.create_group(b"other", now=w.now)
    foreign = stranger.send_text(b"other", "hi", now=w.now)
    with pytest.raises(WrongGroup):
        w["dave"].receive(foreign.data, now=w.now)
    out = w["alice"].commit(GROUP, add=[w.ds.fetch_key_package(b"dave")], now=w.now)
    assert out.welcome is not None
    with pytest.raises(NoMatchingKeyPackage):
        w["erin"].receive(out.welcome, now=w.now)
    assert w.ds.submit_commit(GROUP, b"alice", out.commit, welcome=out.welcome, added=[b"dave"])
    w["alice"].confirm_commit(GROUP, now=w.now)
    (joined,) = w.pump("dave")["dave"]
    assert isinstance(joined, Joined) and joined.members == (b"alice", b"bob", b"carol", b"dave")


def test_stored_message_expired_flag() -> None:
    m = StoredMessage(
        group_id=b"g",
        message_id=b"m",
        sender=b"s",
        sender_leaf=0,
        epoch=1,
        received_at=10,
        expires_at=20,
        outgoing=False,
        content=b"",
    )
    assert not m.expired(19) and m.expired(20)


def test_refused_inbox_entries_are_acknowledged(world: World) -> None:
    w = world
    bob = w["bob"]
    start = bob.cursor
    with pytest.raises(DecodeError):
        bob.receive(b"\x00\x01garbage", now=w.now, seq=start + 1)
    stranger = ChatClient.create(b"stranger", MemoryStorage())
    stranger.create_group(b"other", now=w.now)
    foreign = stranger.send_text(b"other", "hi", now=w.now)
    with pytest.raises(WrongGroup):
        bob.receive(foreign.data, now=w.now, seq=start + 2)
    # Stored: a restart does not fetch them again.
    assert w.reopen("bob").cursor == start + 2


def test_welcome_for_a_group_id_we_are_in_is_refused() -> None:
    # RFC 9420 §12.4.3.1: "verify that the group_id is unique among the groups that the client
    # is currently participating in". Mallory builds another group under the same group_id.
    from mls.errors import InvalidWelcome
    from mls.group import Client, Group

    w = World()
    w.add("alice")
    bob = w.add("bob")
    w.create("alice", ["bob"])
    w.pump()
    mallory = Client.create(b"mallory", 1)
    rogue = Group.create(mallory, GROUP, now=w.now)
    out = rogue.commit(add=[bob.publish_key_packages(1, now=w.now)[0]], now=w.now)
    rogue.merge_pending_commit()
    assert out.welcome is not None
    refs_before = bob.mls_client.key_package_refs()
    with pytest.raises(InvalidWelcome):
        bob.join(out.welcome, now=w.now, ratchet_tree=rogue.export_tree())
    assert bob.mls_client.key_package_refs() == refs_before  # the KeyPackage is not spent
    assert bob.group(GROUP).epoch == 1
