"""Disappearing messages: the GroupContext timer, required support, and message expiry."""

from __future__ import annotations

from pathlib import Path

import pytest

from mls.app import DISAPPEARING_MESSAGES_EXTENSION, DisappearingMessages, MessageExpired
from mls.app.content import Expiration, new_salt, text
from mls.app.disappearing import MAX_TIMER, MIN_TIMER, message_expiry, timer_of, with_timer
from mls.codec import encode
from mls.errors import (
    InvalidGroupContextExtensions,
    MalformedExtension,
    MissingRequiredCapability,
    UnsupportedCapability,
    UsageError,
)
from mls.extensions import ApplicationId, Extension, RequiredCapabilities
from mls.framing.message import MLSMessage
from mls.group import Client, Group, GroupConfig, default_capabilities

from .world import GROUP, World

# -- the extension ---------------------------------------------------------------------------


def test_extension_type_is_private_use_and_encoding_is_uint32() -> None:
    assert 0xF000 <= DISAPPEARING_MESSAGES_EXTENSION <= 0xFFFF
    ext = DisappearingMessages(duration=3600).to_extension()
    assert ext.extension_type == DISAPPEARING_MESSAGES_EXTENSION
    assert ext.extension_data == (3600).to_bytes(4, "big")
    assert DisappearingMessages.from_extension(ext).duration == 3600


@pytest.mark.parametrize("seconds", [0, MIN_TIMER - 1, MAX_TIMER + 1])
def test_timer_range_is_5_seconds_to_24_hours(seconds: int) -> None:
    with pytest.raises(UsageError):
        DisappearingMessages(duration=seconds)
    raw = Extension(
        extension_type=DISAPPEARING_MESSAGES_EXTENSION, extension_data=seconds.to_bytes(4, "big")
    )
    with pytest.raises(MalformedExtension):
        DisappearingMessages.from_extension(raw)


@pytest.mark.parametrize("data", [b"", b"\x00\x00\x0e", b"\x00\x00\x0e\x10\x00", b"\x00" * 4])
def test_a_malformed_timer_from_a_peer_reads_as_the_shortest(data: bytes) -> None:
    raw = Extension(extension_type=DISAPPEARING_MESSAGES_EXTENSION, extension_data=data)
    assert timer_of([raw]) == MIN_TIMER
    assert timer_of([]) is None


def test_with_timer_keeps_other_extensions_and_requires_support() -> None:
    app = ApplicationId(application_id=b"x").to_extension()
    req = RequiredCapabilities(proposal_types=(7,)).to_extension()
    on = with_timer([app, req], 60)
    assert timer_of(on) == 60
    assert app in on
    got = RequiredCapabilities.find(on)
    assert got is not None
    assert got.proposal_types == (7,)
    assert got.extension_types == (DISAPPEARING_MESSAGES_EXTENSION,)
    off = with_timer(on, None)
    assert timer_of(off) is None and app in off
    assert RequiredCapabilities.find(off) == got  # support stays required when it is off


def test_message_expiry_rule() -> None:
    # The group timer bounds the life on the receiver's clock; the sender's expiry may shorten.
    assert message_expiry(timer=None, received_at=100, expires=None) is None
    assert message_expiry(timer=30, received_at=100, expires=None) == 130
    assert message_expiry(timer=30, received_at=100, expires=120) == 120
    assert message_expiry(timer=30, received_at=100, expires=10_000) == 130
    assert message_expiry(timer=None, received_at=100, expires=150) == 150
    assert message_expiry(timer=30, received_at=100, expires=10, relative=True) == 110
    assert message_expiry(timer=None, received_at=100, expires=50, relative=True) == 150


# -- in a group ------------------------------------------------------------------------------


@pytest.fixture
def world() -> World:
    w = World()
    for name in ("alice", "bob", "carol"):
        w.add(name)
    w.create("alice", ["bob", "carol"])
    return w


def test_timer_change_is_agreed_by_the_group(world: World) -> None:
    w = world
    ev = w.commit("bob", timer=60)
    assert ev.timer == 60 and ev.timer_changed
    events = w.pump()
    for name in ("alice", "carol"):
        (got,) = events[name]
        assert getattr(got, "timer", None) == 60 and getattr(got, "timer_changed", False)
        assert getattr(got, "epoch", None) == ev.epoch
    assert {w[n].timer(GROUP) for n in ("alice", "bob", "carol")} == {60}
    # The timer is part of the GroupContext, so the epoch authenticators agree only if the
    # extension bytes do.
    assert len({w[n].group(GROUP).epoch_authenticator for n in ("alice", "bob", "carol")}) == 1
    w.commit("carol", timer=None)
    w.pump()
    assert {w[n].timer(GROUP) for n in ("alice", "bob", "carol")} == {None}
    w.say("alice", "forever")
    w.pump()
    w.now += 10 * MAX_TIMER
    assert w.texts("bob") == ["forever"]


def test_new_member_without_support_is_refused() -> None:
    w = World()
    w.add("alice")
    w.add("bob")
    w.create("alice", ["bob"])
    legacy = Client.create(b"legacy", 1, capabilities=default_capabilities())
    kp = MLSMessage(body=legacy.key_package(w.now)).to_bytes()
    epoch = w["alice"].group(GROUP).epoch
    with pytest.raises(MissingRequiredCapability):
        w["alice"].commit(GROUP, add=[kp], now=w.now)
    # Nothing changed: no commit is pending and the group still works.
    assert not w["alice"].has_unresolved_commit(GROUP)
    assert w["alice"].group(GROUP).epoch == epoch
    w.say("alice", "still fine")
    w.pump()
    assert w.texts("bob") == ["still fine"]


def test_turning_the_timer_on_is_refused_while_a_member_lacks_support() -> None:
    # A group made without the library's client (no required_capabilities): a member that does
    # not list the extension blocks the GroupContextExtensions proposal (§12.1.7).
    now = 1_700_000_000
    cfg = GroupConfig(ratchet_tree_extension=True)
    caps = default_capabilities(extensions=(DISAPPEARING_MESSAGES_EXTENSION,))
    alice = Client.create(b"alice", 1, capabilities=caps)
    legacy = Client.create(b"legacy", 1, capabilities=default_capabilities())
    group = Group.create(alice, b"g", config=cfg, now=now)
    group.commit(add=[legacy.key_package(now)], now=now)
    group.merge_pending_commit()
    with pytest.raises((UnsupportedCapability, InvalidGroupContextExtensions)):
        group.commit(extensions=with_timer(group.extensions, 30), now=now)
    assert timer_of(group.extensions) is None and not group.has_pending_commit


def test_expiry_at_the_exact_boundary(world: World) -> None:
    w = world
    w.commit("alice", timer=30)
    w.pump()
    sent_at = w.now
    sent = w.say("carol", "gone in 30 s")
    assert sent.expires_at == sent_at + 30
    w.pump("alice")
    # bob's delivery is delayed to exactly sent + 30: never surfaced, but its key is spent.
    w.now = sent_at + 29
    assert w.texts("alice") == ["gone in 30 s"]
    assert [m.expires_at for m in w["alice"].messages(GROUP, now=w.now)] == [sent_at + 30]
    w.now = sent_at + 30
    assert w.texts("alice") == []
    assert w.texts("carol") == []  # the sender's own copy disappears too
    (ev,) = w.pump("bob")["bob"]
    assert isinstance(ev, MessageExpired) and ev.expires_at == sent_at + 30
    assert w.texts("bob") == []
    # Expired rows are deleted, not just hidden.
    assert w.storages["alice"].messages(GROUP) == []
    assert w.storages["bob"].messages(GROUP) == []


def test_purge_deletes_expired_messages_without_being_asked_to_list_them(world: World) -> None:
    w = world
    w.commit("alice", timer=10)
    w.pump()
    start = w.now
    w.say("alice", "short")
    w.now += 5
    w.say("alice", "later")
    w.pump()  # bob receives both at start + 5
    assert len(w.storages["bob"].messages(GROUP)) == 2
    assert w["bob"].purge_expired(now=start + 9) == 0
    assert w["bob"].purge_expired(now=start + 10) == 1
    assert [m.expires_at for m in w.storages["bob"].messages(GROUP)] == [start + 15]


def test_expiry_follows_the_timer_of_the_epoch_the_message_was_sent_in(world: World) -> None:
    w = world
    w.commit("alice", timer=60)
    w.pump()
    sent_at = w.now
    late = w.say("carol", "sent under the 60 s timer")
    w.pump("alice")
    w.commit("alice", timer=10)
    # bob processes the timer change first, then the late message of the previous epoch.
    inbox = w.ds.fetch(b"bob", after=w["bob"].cursor)
    commit_entry = next(e for e in inbox if e.data != late.data)
    w.now = sent_at + 20
    w["bob"].receive(commit_entry.data, now=w.now)
    assert w["bob"].timer(GROUP) == 10
    ev = w["bob"].receive(late.data, now=w.now)
    expires = getattr(getattr(ev, "message", None), "expires_at", None)
    assert expires == sent_at + 60  # not now + 10 (the new timer), not now + 60
    w.now = sent_at + 59
    assert w.texts("bob") == ["sent under the 60 s timer"]
    w.now = sent_at + 60
    assert w.texts("bob") == []


def test_a_sender_cannot_extend_a_message_beyond_the_group_timer(world: World) -> None:
    w = world
    w.commit("alice", timer=30)
    w.pump()
    # A modified sender bypassing ChatClient.send's limit: expires a day later.
    bob = w["bob"].group(GROUP)
    content = text("stay forever", salt=new_salt(), expires=Expiration.at(w.now + 86_400))
    data = bob.protect(content.to_cbor())
    ev = w["alice"].receive(data, now=w.now + 3)
    assert getattr(getattr(ev, "message", None), "expires_at", None) == w.now + 3 + 30


def test_a_sender_may_ask_for_a_shorter_life(world: World) -> None:
    w = world
    w.commit("alice", timer=300)
    w.pump()
    quick = text("quick", salt=new_salt(), expires=Expiration.at(w.now + 7))
    sent = w["bob"].send(GROUP, quick, now=w.now)
    assert sent.expires_at == w.now + 7
    w.ds.send(GROUP, b"bob", sent.data)
    w.pump()
    w.now += 7
    assert w.texts("alice") == []
    # With the timer off a message's own expiry is still honoured.
    w.commit("alice", timer=None)
    w.pump()
    note = text("note", salt=new_salt(), expires=Expiration.after_read(20))
    sent = w["carol"].send(GROUP, note, now=w.now)
    w.ds.send(GROUP, b"carol", sent.data)
    w.pump()
    w.now += 19
    assert w.texts("alice") == ["note"]
    w.now += 1
    assert w.texts("alice") == []


def test_timer_extension_bytes_are_in_the_group_context(world: World) -> None:
    w = world
    w.commit("alice", timer=45)
    exts = w["alice"].group(GROUP).extensions
    (timer_ext,) = [e for e in exts if e.extension_type == DISAPPEARING_MESSAGES_EXTENSION]
    assert timer_ext.extension_data == encode(DisappearingMessages(duration=45))
    req = RequiredCapabilities.find(exts)
    assert req is not None and DISAPPEARING_MESSAGES_EXTENSION in req.extension_types


def test_sqlite_deletes_expired_content_from_the_file(tmp_path: Path) -> None:
    w = World(tmp_path)
    w.add("alice")
    w.add("bob", sqlite=True)
    w.create("alice", ["bob"], timer=5)
    w.say("alice", "self-destructing note 0xC0FFEE")
    w.pump()
    path = tmp_path / "bob.sqlite3"
    assert b"self-destructing note 0xC0FFEE" in path.read_bytes()
    w.now += 5
    assert w["bob"].purge_expired(now=w.now) == 1
    assert b"self-destructing note 0xC0FFEE" not in path.read_bytes()
