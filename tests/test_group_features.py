"""End-to-end tests of the group features beyond add/update/remove (RFC 9420 §8.4, §11.2,
§11.3, §12.1.4-§12.1.8, §12.4.3.2, §15.3): external commits and resync, external senders,
new-member proposals, external and resumption PSKs, ReInit to another cipher suite, branching,
GroupContextExtensions with required capabilities, custom proposals, late messages, state
persistence."""

from __future__ import annotations

import pytest

from mls.constants import ResumptionPSKUsage
from mls.credentials import Credential
from mls.crypto import get_suite
from mls.errors import (
    InvalidExternalInit,
    InvalidGroupContextExtensions,
    InvalidPSK,
    InvalidSender,
    InvalidState,
    MissingRequiredCapability,
    UnknownSender,
    UnsupportedCapability,
    UsageError,
    WrongEpoch,
)
from mls.extensions import Extension, ExternalSender, ExternalSenders, RequiredCapabilities
from mls.group import (
    ApplicationMessage,
    Client,
    CommitMerged,
    Group,
    GroupConfig,
    GroupStatus,
    ProposalReceived,
    default_capabilities,
)
from mls.group.config import allow_external_proposals
from mls.group.external import external_proposal
from mls.messages.proposals import Add, CustomProposal, ReInit, Remove, Update
from tests.harness import NOW, GroupHarness

CUSTOM_EXT = 0xF0A1
CUSTOM_PROPOSAL = 0xF0B2


def _three(config: GroupConfig | None = None) -> GroupHarness:
    return GroupHarness.with_members(3, config=config)


def test_external_join_and_resync() -> None:
    h = _three()
    a = h.members[0]
    d = Client.create(b"dave", 1)
    gd, commit = Group.external_join(d, a.group_info(), now=NOW)
    events = h.deliver(commit, sender=None)
    assert all(isinstance(e, CommitMerged) and e.external for e in events.values())
    h.members[gd.own_leaf_index] = gd
    h.assert_converged()
    # Resync: dave lost his state and rejoins, removing his old leaf in the same commit.
    old_leaf = gd.own_leaf_index
    del h.members[old_leaf]
    gd2, commit = Group.external_join(d, a.group_info(), resync=True, now=NOW)
    events = h.deliver(commit, sender=None)
    merged = events[0]
    assert isinstance(merged, CommitMerged) and merged.removed == (old_leaf,)
    h.members[gd2.own_leaf_index] = gd2
    h.assert_converged()


def test_external_join_with_psk() -> None:
    h = _three()
    for g in h.members.values():
        g.client.add_external_psk(b"psk-id", b"shared secret")
    d = Client.create(b"dave", 1)
    d.add_external_psk(b"psk-id", b"shared secret")
    gd, commit = Group.external_join(d, h.members[0].group_info(), psks=[b"psk-id"], now=NOW)
    h.deliver(commit, sender=None)
    h.members[gd.own_leaf_index] = gd
    h.assert_converged()


def test_external_join_needs_external_pub() -> None:
    h = _three()
    d = Client.create(b"dave", 1)
    with pytest.raises(Exception) as info:
        Group.external_join(d, h.members[0].group_info(external_pub=False), now=NOW)
    assert type(info.value).__name__ == "InvalidGroupInfo"


def test_external_psk_commit_and_missing_psk() -> None:
    h = _three()
    for g in h.members.values():
        g.client.add_external_psk(b"team", b"k" * 32)
    h.commit(0, psks=[b"team"])
    h.assert_converged()
    # A member without the PSK rejects the commit and stays in its epoch.
    h.members[1].client.remove_external_psk(b"team")
    g0 = h.members[0]
    out = g0.commit(psks=[b"team"], now=NOW)
    before = h.members[1].to_bytes()
    with pytest.raises(InvalidPSK):
        h.members[1].process(out.commit, now=NOW)
    assert h.members[1].to_bytes() == before


def test_resumption_psk_commit() -> None:
    h = _three()
    h.commit(1)
    epoch = h.members[0].epoch - 1
    h.commit(0, resumption_psks=[(ResumptionPSKUsage.application, epoch)])
    h.assert_converged()


def test_resumption_psk_with_reinit_usage_in_a_proposal_is_rejected() -> None:
    h = _three()
    with pytest.raises(InvalidPSK):
        h.members[0].commit(resumption_psks=[(ResumptionPSKUsage.reinit, 0)], now=NOW)


def test_external_sender_proposals() -> None:
    cs = get_suite(1)
    ssk, spk = cs.generate_signature_key_pair()
    server = ExternalSender(signature_key=spk, credential=Credential.basic(b"server"))
    ext = ExternalSenders(senders=(server,)).to_extension()
    creator = Client.create(b"alice", 1)
    # §12.1.8: external proposals are refused unless the application authorizes them.
    config = GroupConfig(external_proposal_policy=allow_external_proposals)
    g = Group.create(creator, b"ext-senders", extensions=[ext], config=config, now=NOW)
    h = GroupHarness(members={0: g}, config=config)
    h.add([h.new_client("bob"), h.new_client("carol")], committer=0)
    p = external_proposal(cs, ssk, 0, g.group_id, g.epoch, Remove(removed=2))
    for leaf, m in h.members.items():
        ev = m.process(p, now=NOW)
        assert isinstance(ev, ProposalReceived) and ev.sender.sender_type == 2, leaf
    h.commit(1)
    assert 2 not in h.members
    h.assert_converged()
    # An unknown external sender index, or an Update by an external sender, is rejected.
    bad = external_proposal(cs, ssk, 5, g.group_id, g.epoch, Remove(removed=1))
    with pytest.raises(UnknownSender):
        h.members[0].process(bad, now=NOW)
    with pytest.raises(UsageError):
        leaf = h.members[0].tree.leaf(0)
        assert leaf is not None
        external_proposal(cs, ssk, 0, g.group_id, g.epoch, Update(leaf_node=leaf))


def test_new_member_proposal() -> None:
    h = _three(GroupConfig(external_proposal_policy=allow_external_proposals))
    d = Client.create(b"dave", 1)
    p = Group.new_member_proposal(d, h.members[0].group_info(), now=NOW)
    for m in h.members.values():
        ev = m.process(p, now=NOW)
        assert isinstance(ev, ProposalReceived) and isinstance(ev.proposal, Add)
    out = h.members[2].commit(now=NOW)
    h.members[2].merge_pending_commit()
    h.deliver(out.commit, sender=2)
    assert out.welcome is not None
    gd = Group.join(d, out.welcome, ratchet_tree=h.members[2].export_tree(), now=NOW)
    h.members[gd.own_leaf_index] = gd
    h.assert_converged()


@pytest.mark.parametrize("new_suite", [3, 5])
def test_reinit_to_another_cipher_suite(new_suite: int) -> None:
    h = _three()
    a = h.members[0]
    out = a.commit(reinit=ReInit(group_id=b"reborn", version=1, cipher_suite=new_suite), now=NOW)
    a.merge_pending_commit()
    h.deliver(out.commit, sender=0)
    for g in h.members.values():
        assert g.status is GroupStatus.REINIT
        with pytest.raises(InvalidState):
            g.protect(b"no more messages in the old group")
    clients = {leaf: Client.create(f"member-{leaf}".encode(), new_suite) for leaf in h.members}
    kps = [clients[leaf].key_package(NOW) for leaf in (1, 2)]
    new, out = a.reinit_group(clients[0], kps, now=NOW)
    new.merge_pending_commit()
    assert out.welcome is not None and new.epoch == 1 and new.cipher_suite == new_suite
    joined = [
        h.members[leaf].join_reinit(clients[leaf], out.welcome, ratchet_tree=new.export_tree())
        for leaf in (1, 2)
    ]
    for j in joined:
        assert j.epoch_authenticator == new.epoch_authenticator
        assert j.group_id == b"reborn"
    m = joined[0].protect(b"hello from the new suite")
    ev = new.process(m, now=NOW)
    assert isinstance(ev, ApplicationMessage) and ev.data == b"hello from the new suite"


def test_reinit_must_be_alone() -> None:
    h = _three()
    with pytest.raises(Exception) as info:
        h.members[0].commit(
            remove=[2], reinit=ReInit(group_id=b"x", version=1, cipher_suite=1), now=NOW
        )
    assert type(info.value).__name__ == "InvalidReInit"


def test_branch() -> None:
    h = GroupHarness.with_members(4)
    a = h.members[0]
    b = h.members[1]
    kb = b.client.key_package(NOW)
    sub, out = a.branch(b"sub", [kb], now=NOW)
    sub.merge_pending_commit()
    assert out.welcome is not None
    sb = b.join_branch(b.client, out.welcome, ratchet_tree=sub.export_tree())
    assert sb.epoch == 1 and sb.epoch_authenticator == sub.epoch_authenticator
    # A non-member cannot join the branch as if it were one: it has no resumption PSK.
    outsider = Client.create(b"mallory", 1)
    sub2, out2 = a.branch(b"sub2", [outsider.key_package(NOW)], now=NOW)
    assert out2.welcome is not None
    with pytest.raises(InvalidPSK):
        Group.join(outsider, out2.welcome, ratchet_tree=sub2.export_tree())


def _client_with_ext(name: str) -> Client:
    return Client.create(
        name.encode(), 1, capabilities=default_capabilities(extensions=(CUSTOM_EXT,))
    )


def test_group_context_extensions_required_capabilities() -> None:
    creator = _client_with_ext("alice")
    g = Group.create(creator, b"gce", now=NOW)
    h = GroupHarness(members={0: g})
    h.add([_client_with_ext("bob")], committer=0)
    req = RequiredCapabilities(
        extension_types=(CUSTOM_EXT,), proposal_types=(), credential_types=()
    )
    new_exts = [req.to_extension(), Extension(extension_type=CUSTOM_EXT, extension_data=b"\x05")]
    merged = h.commit(0, extensions=new_exts)
    assert merged.extensions_changed
    h.assert_converged()
    assert h.members[1].extensions == tuple(new_exts)
    # A joiner without the required extension is refused.
    plain = Client.create(b"carol", 1)
    with pytest.raises(MissingRequiredCapability):
        g.commit(add=[plain.key_package(NOW)], now=NOW)
    # A GroupContextExtensions that a member does not support is refused.
    h.add([_client_with_ext("dave")], committer=0)
    other = RequiredCapabilities(extension_types=(0xF0F0,), proposal_types=(), credential_types=())
    with pytest.raises(InvalidGroupContextExtensions):
        g.commit(extensions=[other.to_extension()], now=NOW)


def test_custom_proposal_needs_support_of_every_member() -> None:
    caps = default_capabilities(proposals=(CUSTOM_PROPOSAL,))
    alice = Client.create(b"alice", 1, capabilities=caps)
    g = Group.create(alice, b"custom", now=NOW)
    h = GroupHarness(members={0: g})
    h.add([Client.create(b"bob", 1, capabilities=caps)], committer=0)
    merged = h.commit(0, proposals=[CustomProposal(proposal_type=CUSTOM_PROPOSAL, data=b"x")])
    assert merged.epoch == g.epoch
    h.assert_converged()
    h.add([Client.create(b"carol", 1)], committer=0)
    with pytest.raises(UnsupportedCapability):
        g.commit(proposals=[CustomProposal(proposal_type=CUSTOM_PROPOSAL, data=b"x")], now=NOW)


def test_late_application_message_within_past_epochs() -> None:
    h = _three(GroupConfig(past_epochs=1))
    late = h.members[1].protect(b"sent before the commit")
    too_late = h.members[2].protect(b"two epochs ago")
    h.commit(0)
    ev = h.members[0].process(late, now=NOW)
    assert isinstance(ev, ApplicationMessage) and ev.epoch == h.members[0].epoch - 1
    h.commit(0)
    with pytest.raises(WrongEpoch):
        h.members[0].process(too_late, now=NOW)


def test_late_messages_disabled() -> None:
    h = _three(GroupConfig(past_epochs=0))
    late = h.members[1].protect(b"late")
    h.commit(0)
    with pytest.raises(WrongEpoch):
        h.members[2].process(late, now=NOW)


def test_external_commit_from_member_sender_type_is_rejected() -> None:
    # An ExternalInit inside a regular commit (§12.2).
    h = _three()
    from mls.messages.proposals import ExternalInit

    with pytest.raises((InvalidExternalInit, InvalidSender)):
        h.members[0].commit(proposals=[ExternalInit(kem_output=b"\x00" * 32)], now=NOW)


@pytest.mark.parametrize("private", [True, False])
def test_state_roundtrip_mid_conversation(private: bool) -> None:
    h = _three(GroupConfig(private_handshake=private))
    msgs = [h.members[1].protect(f"m{i}".encode()) for i in range(3)]
    g = h.members[0]
    assert isinstance(g.process(msgs[1], now=NOW), ApplicationMessage)
    saved = g.to_bytes()
    restored = Group.from_bytes(saved, Client.from_bytes(g.client.to_bytes()))
    assert restored.to_bytes() == saved
    # The consumed key is gone in the restored state too; the others still decrypt.
    with pytest.raises(Exception) as info:
        restored.process(msgs[1], now=NOW)
    assert type(info.value).__name__ in ("ReplayedMessage",)
    for m in (msgs[0], msgs[2]):
        assert isinstance(restored.process(m, now=NOW), ApplicationMessage)
    h.members[0] = restored
    h.commit(2)
    h.assert_converged()


@pytest.mark.parametrize("private", [True, False])
def test_old_group_refuses_handshakes_after_reinit(private: bool) -> None:
    # §11.2: after the ReInit commit the old group is not used any more.
    from mls.errors import GroupReinitialized

    h = _three(GroupConfig(private_handshake=private))
    a, b = h.members[0], h.members[1]
    late = b.protect(b"sent before the ReInit")
    out = a.commit(reinit=ReInit(group_id=b"next", version=1, cipher_suite=1), now=NOW)
    a.merge_pending_commit()
    h.deliver(out.commit, sender=0)
    # Any handshake message for the old group is refused, here the ReInit commit once more.
    stale = h.members[2]
    before = stale.to_bytes()
    assert stale.status is GroupStatus.REINIT
    with pytest.raises(GroupReinitialized):
        stale.process(out.commit, now=NOW)
    assert stale.to_bytes() == before
    # A late application message of the old epoch still reads.
    assert isinstance(a.process(late, now=NOW), ApplicationMessage)


def test_resumption_psk_proposal_by_reference() -> None:
    h = _three()
    g = h.members[0]
    proposal = g.propose_resumption_psk(g.epoch)
    events = [h.members[i].process(proposal, now=NOW) for i in (1, 2)]
    assert all(isinstance(e, ProposalReceived) for e in events)
    h.commit(1)
    h.assert_converged()
    with pytest.raises(UsageError):
        g.propose_resumption_psk(10_000)
