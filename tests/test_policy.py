"""Who may do what (issue 11): the policy decisions RFC 9420 leaves to the application, each
forged through the public API or the wire, both ways where it is a choice.

Rows P-001 to P-020 of ``docs/validation.md``. A rejected input must raise the exact exception
class and leave the receiver's ``Group.to_bytes()`` unchanged (``reject`` from the validation
tests); an accepted one must let the group converge.
"""

from __future__ import annotations

from dataclasses import replace

import pytest

from mls.app import ChatClient, ChatConfig, MemoryStorage, MessageReceived, ProposalQueued
from mls.app.disappearing import DISAPPEARING_MESSAGES_EXTENSION
from mls.codec.buffer import Writer
from mls.constants import CredentialType, SenderType
from mls.credentials import Credential
from mls.crypto import get_suite
from mls.errors import (
    DuplicateIdentity,
    InvalidState,
    InvalidSuccessor,
    LifetimeError,
    LifetimeTooLong,
    MemberRemoved,
    RemovedSender,
    SizeLimitExceeded,
    UnauthorizedProposal,
    UnlistedExtension,
    UnsupportedCredential,
    UsageError,
    WrongEpoch,
)
from mls.extensions import Extension, ExternalSender, ExternalSenders, RequiredCapabilities
from mls.group import (
    ApplicationMessage,
    BasicIdentityProvider,
    Client,
    CommitMerged,
    Group,
    GroupConfig,
    ProposalReceived,
    default_capabilities,
)
from mls.group.config import (
    ExternalProposalRequest,
    allow_external_proposals,
    refuse_external_proposals,
)
from mls.group.external import external_proposal
from mls.messages.proposals import Add, Remove, Update
from mls.tree.nodes import Lifetime
from tests.forge import Forger, resign_key_package
from tests.harness import HARNESS_EXT, NOW, GroupHarness
from tests.test_validation import kp_with, reject, reject_join

OPEN = GroupConfig(external_proposal_policy=allow_external_proposals)


def _three(config: GroupConfig | None = None) -> GroupHarness:
    return GroupHarness.with_members(3, config=config or GroupConfig(private_handshake=False))


def _commit_all(h: GroupHarness, committer: int, **kw: object) -> CommitMerged:
    return h.commit(committer, **kw)


# == 1. authorization of proposals from outside the group (§12.1.8) ===========================


def test_new_member_proposal_refused_by_default() -> None:
    h = _three()
    outsider = Client.create(b"eve", 1)
    p = Group.new_member_proposal(outsider, h.members[0].group_info(), now=NOW)
    for g in h.members.values():
        reject(g, p, UnauthorizedProposal)
    # Nothing cached, nothing blocked: members still send, and a commit adds nobody.
    wire = h.members[0].protect(b"still here")
    assert isinstance(h.members[1].process(wire, now=NOW), ApplicationMessage)
    out = h.members[2].commit(now=NOW)
    assert out.welcome is None
    h.members[2].merge_pending_commit()
    h.deliver(out.commit, sender=2)
    assert h.members[0].member_count == 3
    h.assert_converged()


def _with_external_sender(config: GroupConfig) -> tuple[GroupHarness, bytes]:
    cs = get_suite(1)
    ssk, spk = cs.generate_signature_key_pair()
    server = ExternalSender(signature_key=spk, credential=Credential.basic(b"server"))
    creator = Client.create(b"alice", 1)
    g = Group.create(
        creator,
        b"ext",
        extensions=[ExternalSenders(senders=(server,)).to_extension()],
        config=config,
        now=NOW,
    )
    h = GroupHarness(members={0: g}, config=config)
    h.add([h.new_client("bob"), h.new_client("carol")], committer=0)
    return h, ssk


def test_external_sender_refused_by_default() -> None:
    h, ssk = _with_external_sender(GroupConfig())
    g = h.members[0]
    p = external_proposal(g.suite, ssk, 0, g.group_id, g.epoch, Remove(removed=2))
    for m in h.members.values():
        reject(m, p, UnauthorizedProposal)


def test_policy_sees_the_request_and_decides() -> None:
    seen: list[ExternalProposalRequest] = []

    def only_dave(request: ExternalProposalRequest) -> bool:
        seen.append(request)
        return (
            request.sender.sender_type == SenderType.new_member_proposal
            and isinstance(request.proposal, Add)
            and request.credential.identity == b"dave"
        )

    h = _three(GroupConfig(private_handshake=False, external_proposal_policy=only_dave))
    gi = h.members[0].group_info()
    eve = Group.new_member_proposal(Client.create(b"eve", 1), gi, now=NOW)
    reject(h.members[1], eve, UnauthorizedProposal)
    dave = Client.create(b"dave", 1)
    ok = Group.new_member_proposal(dave, gi, now=NOW)
    for m in h.members.values():
        assert isinstance(m.process(ok, now=NOW), ProposalReceived)
    assert seen[-1].context.group_id == h.members[0].group_id
    out = h.members[1].commit(now=NOW)
    h.members[1].merge_pending_commit()
    h.deliver(out.commit, sender=1)
    assert out.welcome is not None
    joined = Group.join(dave, out.welcome, ratchet_tree=h.members[1].export_tree(), now=NOW)
    h.members[joined.own_leaf_index] = joined
    h.assert_converged()


def test_commit_leaves_out_what_the_policy_no_longer_authorizes() -> None:
    h, ssk = _with_external_sender(OPEN)
    g = h.members[0]
    p = external_proposal(g.suite, ssk, 0, g.group_id, g.epoch, Remove(removed=2))
    for m in h.members.values():
        assert isinstance(m.process(p, now=NOW), ProposalReceived)
    # The application changes its mind: the cached proposal is dropped and blocks nothing.
    g.set_config(replace(g.config, external_proposal_policy=refuse_external_proposals))
    assert g.pending_proposal_refs == []
    g.protect(b"sending is allowed again")
    out = g.commit(now=NOW)
    assert g.member_count == 3
    g.clear_pending_commit()
    assert out.welcome is None


def test_chat_client_refuses_external_proposals() -> None:
    alice = ChatClient.create(b"alice", MemoryStorage())
    alice.create_group(b"room", now=NOW)
    gi = alice.group(b"room").group_info()
    eve = Client.create(
        b"eve", 1, capabilities=default_capabilities(extensions=(DISAPPEARING_MESSAGES_EXTENSION,))
    )
    p = Group.new_member_proposal(eve, gi, now=NOW)
    before = alice.group(b"room").to_bytes()
    with pytest.raises(UnauthorizedProposal):
        alice.receive(p, now=NOW)
    assert alice.group(b"room").to_bytes() == before


def test_chat_client_keeps_an_opted_in_policy_across_a_restart() -> None:
    config = ChatConfig(
        group_config=GroupConfig(
            ratchet_tree_extension=True, external_proposal_policy=allow_external_proposals
        )
    )
    storage = MemoryStorage()
    alice = ChatClient.create(b"alice", storage, config=config)
    alice.create_group(b"room", now=NOW)
    gi = alice.group(b"room").group_info()
    # The policy is code, not stored state: the reopened client applies its own config again.
    alice = ChatClient.open(storage, config=config)
    eve = Client.create(
        b"eve", 1, capabilities=default_capabilities(extensions=(DISAPPEARING_MESSAGES_EXTENSION,))
    )
    ev = alice.receive(Group.new_member_proposal(eve, gi, now=NOW), now=NOW)
    assert isinstance(ev, ProposalQueued)


# == 2. credential successors and unique identities (§5.3.1) ==================================


def test_update_must_keep_the_identity() -> None:
    h = _three()
    f = Forger(h.members[0])
    leaf = f.update_leaf(credential=Credential.basic(b"mallory"))
    reject(h.members[1], f.proposal(Update(leaf_node=leaf)), InvalidSuccessor)


def test_commit_path_leaf_must_keep_the_identity() -> None:
    h = _three()
    msg = Forger(h.members[0]).commit([], leaf_changes={"credential": Credential.basic(b"bob")})
    reject(h.members[1], msg, InvalidSuccessor)


def test_update_keeping_the_identity_is_accepted() -> None:
    h = _three()
    f = Forger(h.members[0])
    ev = h.members[1].process(f.proposal(Update(leaf_node=f.update_leaf())), now=NOW)
    assert isinstance(ev, ProposalReceived)


def test_resync_must_keep_the_identity() -> None:
    h = _three()
    member = h.members[2].client
    # The same signature key (so §12.2 sees the same client) under another identity.
    twin = Client.create(
        b"mallory",
        1,
        signature_key_pair=(member.signature_private_key, member.signature_public_key),
        capabilities=member.capabilities,
    )
    f = Forger(h.members[0])
    ext, secret = f.external_init()
    msg = f.external_commit(twin, [ext, Remove(removed=2)], init_secret=secret)
    reject(h.members[1], msg, InvalidSuccessor)


class _Renaming(BasicIdentityProvider):
    """An application whose credentials may change names (e.g. a display-name credential)."""

    def valid_successor(self, old: Credential, new: Credential) -> bool:
        return old.credential_type == new.credential_type


def _renaming_group() -> dict[int, Group]:
    ident = _Renaming()
    config = GroupConfig(private_handshake=False)
    a = Client.create(b"alice", 1)
    b = Client.create(b"bob", 1)
    c = Client.create(b"carol", 1)
    g = Group.create(a, b"renaming", config=config, identity=ident, now=NOW)
    out = g.commit(add=[b.key_package(NOW), c.key_package(NOW)], now=NOW)
    g.merge_pending_commit()
    assert out.welcome is not None
    tree = g.export_tree()
    gb = Group.join(b, out.welcome, ratchet_tree=tree, config=config, identity=ident, now=NOW)
    return {0: g, 1: gb}


def test_update_cannot_take_another_members_identity() -> None:
    groups = _renaming_group()
    f = Forger(groups[0])
    # A rename is a valid successor for this application, but not to carol's name.
    fine = f.update_leaf(credential=Credential.basic(b"alice-2"))
    ev = groups[1].process(f.proposal(Update(leaf_node=fine)), now=NOW)
    assert isinstance(ev, ProposalReceived)
    taken = f.update_leaf(credential=Credential.basic(b"carol"))
    reject(groups[1], f.proposal(Update(leaf_node=taken)), DuplicateIdentity)


def test_path_leaf_cannot_take_another_members_identity() -> None:
    groups = _renaming_group()
    msg = Forger(groups[0]).commit([], leaf_changes={"credential": Credential.basic(b"carol")})
    reject(groups[1], msg, DuplicateIdentity)


def test_external_joiner_cannot_take_a_members_identity() -> None:
    h = _three()
    # Another key, a member's name: without resync it would be a second "member-1".
    impostor = Client.create(b"member-1", 1, capabilities=h.members[1].client.capabilities)
    msg = Forger(h.members[0]).external_commit(impostor)
    reject(h.members[1], msg, DuplicateIdentity)


# == 4, 5. lifetimes on receipt and at creation; maximum total lifetime (§7.2, §7.3) ===========


def _add_message(h: GroupHarness, kp: object) -> bytes:
    return Forger(h.members[0]).proposal(Add(key_package=kp))  # type: ignore[arg-type]


def _kp(h: GroupHarness, name: str, not_before: int, not_after: int) -> object:
    return kp_with(
        h.new_client(name), leaf={"lifetime": Lifetime(not_before=not_before, not_after=not_after)}
    )


def test_expired_key_package_is_accepted_on_receipt() -> None:
    h = _three()
    kp = _kp(h, "dave", NOW - 2000, NOW - 1000)
    assert isinstance(h.members[1].process(_add_message(h, kp), now=NOW), ProposalReceived)
    # By value in a commit too: the commit is not refused for an expiry.
    ev = h.members[1].process(Forger(h.members[0]).commit([Add(key_package=kp)]), now=NOW)  # type: ignore[arg-type]
    assert isinstance(ev, CommitMerged) and ev.added


def test_expired_key_package_is_refused_at_creation() -> None:
    h = _three()
    kp = _kp(h, "dave", NOW - 2000, NOW - 1000)
    g = h.members[0]
    before = g.to_bytes()
    with pytest.raises(LifetimeError):
        g.propose_add(kp, now=NOW)  # type: ignore[arg-type]
    with pytest.raises(LifetimeError):
        g.commit(add=[kp], now=NOW)  # type: ignore[list-item]
    assert g.to_bytes() == before


def test_not_yet_valid_within_the_skew_is_accepted() -> None:
    h = _three()
    kp = _kp(h, "dave", NOW + 100, NOW + 5000)
    assert isinstance(h.members[1].process(_add_message(h, kp), now=NOW), ProposalReceived)


def test_lifetime_skew_is_configurable() -> None:
    h = _three(GroupConfig(private_handshake=False, lifetime_skew=0))
    kp = _kp(h, "dave", NOW + 100, NOW + 5000)
    reject(h.members[1], _add_message(h, kp), LifetimeError)


def test_total_lifetime_over_the_maximum_is_refused() -> None:
    h = _three()
    kp = _kp(h, "dave", NOW - 10, NOW + 400 * 86400)
    reject(h.members[1], _add_message(h, kp), LifetimeTooLong)
    with pytest.raises(LifetimeTooLong):
        h.members[0].propose_add(kp, now=NOW)  # type: ignore[arg-type]


def test_maximum_total_lifetime_is_configurable() -> None:
    h = _three(GroupConfig(private_handshake=False, max_lifetime=500 * 86400))
    kp = _kp(h, "dave", NOW - 10, NOW + 400 * 86400)
    assert isinstance(h.members[1].process(_add_message(h, kp), now=NOW), ProposalReceived)


# == 6. KeyPackage extensions are listed in the leaf's capabilities (§10) =====================


def test_unlisted_key_package_extension_is_refused() -> None:
    h = _three()
    c = h.new_client("dave")
    kp = resign_key_package(
        c.suite,
        c.key_package(NOW),
        c.signature_private_key,
        extensions=(Extension(extension_type=0xF3F3, extension_data=b"x"),),
    )
    reject(h.members[1], _add_message(h, kp), UnlistedExtension)
    with pytest.raises(UnlistedExtension):
        h.members[0].propose_add(kp, now=NOW)


def test_client_does_not_build_an_unlisted_extension() -> None:
    c = Client.create(b"dave", 1)
    ext = Extension(extension_type=0xF3F3, extension_data=b"x")
    with pytest.raises(UsageError):
        c.key_package(NOW, extensions=(ext,))
    listed = Client.create(b"erin", 1, capabilities=default_capabilities(extensions=(0xF3F3,)))
    assert listed.key_package(NOW, extensions=(ext,)).extensions == (ext,)


# == 7. the tree after the commit is valid (§12.2, §7.3) =====================================


def _x509_and_basic_only(h: GroupHarness) -> tuple[object, object]:
    caps = default_capabilities()
    x509 = Client.create(b"xena", 1, credential=Credential.x509((b"a certificate",)))
    basic_only = Client.create(
        b"bo", 1, capabilities=replace(caps, credentials=(CredentialType.basic,))
    )
    return x509.key_package(NOW), basic_only.key_package(NOW)


def test_commit_bringing_incompatible_credentials_is_refused() -> None:
    h = _three()
    a, b = _x509_and_basic_only(h)
    # Each joiner is fine against the current tree alone; together the new tree is invalid.
    msg = Forger(h.members[0]).commit([Add(key_package=a), Add(key_package=b)])  # type: ignore[arg-type]
    reject(h.members[1], msg, UnsupportedCredential)
    g = h.members[2]
    before = g.to_bytes()
    with pytest.raises(UnsupportedCredential):
        g.commit(add=[a, b], now=NOW)  # type: ignore[list-item]
    assert g.to_bytes() == before and not g.has_pending_commit


# == 8. proposals evaluated with the list's new extensions (§12.3, §12.1.7) ===================


def test_gce_with_a_remove_of_the_member_that_lacks_support() -> None:
    h = _three()
    # A fourth member that does not support HARNESS_EXT.
    lacking = Client.create(b"old-phone", 1)
    h.add([lacking], committer=0)
    req = RequiredCapabilities(extension_types=(HARNESS_EXT,)).to_extension()
    # RFC-valid: the GCE is judged on the tree after the Remove (§12.1.7).
    merged = _commit_all(h, 1, remove=[3], extensions=[req])
    assert merged.removed == (3,)
    h.assert_converged()


def test_gce_dropping_a_requirement_with_an_add_that_lacks_it() -> None:
    h = _three()
    req = RequiredCapabilities(extension_types=(HARNESS_EXT,)).to_extension()
    _commit_all(h, 0, extensions=[req])
    phone = Client.create(b"old-phone", 1)
    # The Add is judged with the new (empty) extensions, which no longer require HARNESS_EXT.
    g = h.members[1]
    out = g.commit(add=[phone.key_package(NOW)], extensions=[], now=NOW)
    assert g.merge_pending_commit().added == (3,)
    h.deliver(out.commit, sender=1)
    assert out.welcome is not None
    h.members[3] = Group.join(phone, out.welcome, ratchet_tree=g.export_tree(), now=NOW)
    h.assert_converged()


# == 9. late messages: time-bounded past epochs, removed senders (§9.2, §12.4.2, §15.3) =========


def test_past_epoch_expires_after_the_grace_period() -> None:
    h = _three(GroupConfig(private_handshake=False, past_epoch_grace=60))
    late = h.members[2].protect(b"sent in epoch 1")
    also_late = h.members[2].protect(b"also sent in epoch 1")
    _commit_all(h, 0)
    # Within the grace (the harness merged at NOW).
    assert isinstance(h.members[1].process(late, now=NOW + 60), ApplicationMessage)
    g = h.members[1]
    before = g.to_bytes()
    with pytest.raises(WrongEpoch):
        g.process(also_late, now=NOW + 61)
    assert g.to_bytes() == before


def _removed_sender_case(mode: str) -> tuple[GroupHarness, Group, bytes, bytes]:
    config = GroupConfig(private_handshake=False, removed_sender_messages=mode)  # type: ignore[arg-type]
    h = _three(config)
    leaving = h.members[2]
    seen = leaving.protect(b"before the removal")
    assert isinstance(h.members[1].process(seen, now=NOW), ApplicationMessage)
    in_flight = leaving.protect(b"in flight")
    # What the removed member keeps if it ignores the commit (or never receives it).
    kept = Group.from_bytes(leaving.to_bytes(), leaving.client)
    _commit_all(h, 0, remove=[2])
    assert 2 not in h.members
    after = kept.protect(b"written after being removed")
    return h, leaving, in_flight, after


def test_removed_member_cannot_keep_posting_into_its_last_epoch() -> None:
    h, _, in_flight, after = _removed_sender_case("refuse")
    # Both are beyond what we had seen from leaf 2 when we processed its removal.
    reject(h.members[1], after, RemovedSender)
    reject(h.members[1], in_flight, RemovedSender)


def test_removed_sender_messages_can_be_flagged() -> None:
    h, _, in_flight, after = _removed_sender_case("flag")
    for wire in (in_flight, after):
        ev = h.members[1].process(wire, now=NOW)
        assert isinstance(ev, ApplicationMessage) and ev.sender_removed


def test_late_message_of_a_staying_member_is_not_flagged() -> None:
    h = _three()
    late = h.members[1].protect(b"late")
    _commit_all(h, 0, remove=[2])
    ev = h.members[0].process(late, now=NOW)
    assert isinstance(ev, ApplicationMessage) and not ev.sender_removed and ev.generation == 0


# == 10. a removed member deletes its group state (§12.4.2) ===================================


def test_removed_member_deletes_its_secrets() -> None:
    h = _three()
    leaving = h.members[2]
    secrets = [leaving._secrets.exporter_secret, leaving._secrets.sender_data_secret]
    late = h.members[1].protect(b"late")
    _commit_all(h, 0, remove=[2])
    assert leaving in h.removed
    stored = leaving.to_bytes()
    for s in secrets:
        assert s not in stored
    with pytest.raises(InvalidState):
        leaving.export_secret("label", b"", 32)
    with pytest.raises(MemberRemoved):  # the last epoch's keys are gone too
        leaving.process(late, now=NOW)
    reloaded = Group.from_bytes(stored, leaving.client)
    with pytest.raises(InvalidState):
        reloaded.protect(b"x")


# == 14. size bounds ===========================================================================


def test_oversized_identity_is_refused() -> None:
    h = _three()
    big = h.new_client("x" * 22_000)
    kp = big.key_package(NOW)
    reject(h.members[1], _add_message(h, kp), SizeLimitExceeded)
    with pytest.raises(SizeLimitExceeded):
        h.members[0].commit(add=[kp], now=NOW)
    assert not h.members[0].has_pending_commit


def test_oversized_group_id_is_refused_by_a_joiner() -> None:
    wide = GroupConfig(max_group_id_length=4096)
    alice = Client.create(b"alice", 1)
    bob = Client.create(b"bob", 1)
    g = Group.create(alice, b"g" * 1000, config=wide, now=NOW)
    out = g.commit(add=[bob.key_package(NOW)], now=NOW)
    assert out.welcome is not None
    welcome = out.welcome
    reject_join(
        bob,
        lambda: Group.join(bob, welcome, ratchet_tree=g.export_tree(), now=NOW),
        SizeLimitExceeded,
    )
    with pytest.raises(UsageError):
        Group.create(alice, b"g" * 1000, now=NOW)


def test_huge_mostly_blank_tree_is_refused_before_decoding() -> None:
    h = _three()
    gi = h.members[0].group_info(with_tree=False)
    w = Writer()
    w.push_opaque(b"\x00" * (2 * 1024 * 1024))  # 2 MiB of blank nodes
    eve = Client.create(b"eve", 1)
    reject_join(
        eve,
        lambda: Group.external_join(eve, gi, ratchet_tree=w.getvalue(), now=NOW),
        SizeLimitExceeded,
    )


def test_tree_bound_is_configurable() -> None:
    h = _three()
    gi = h.members[0].group_info(with_tree=False)
    eve = Client.create(b"eve", 1)
    tree = h.members[0].export_tree()
    small = GroupConfig(max_tree_leaves=2)
    with pytest.raises(SizeLimitExceeded):
        Group.external_join(eve, gi, ratchet_tree=tree, config=small, now=NOW)
    g, _ = Group.external_join(eve, gi, ratchet_tree=tree, now=NOW)
    assert g.member_count == 4


def test_exporter_label_must_be_text() -> None:
    h = _three()
    with pytest.raises(UsageError):
        h.members[0].export_secret("bad \ud800 label", b"", 32)


def test_chat_client_reports_a_flagged_late_message() -> None:
    config = ChatConfig(
        group_config=GroupConfig(ratchet_tree_extension=True, removed_sender_messages="flag")
    )
    alice, bob, carol = (
        ChatClient.create(name, MemoryStorage(), config=config)
        for name in (b"alice", b"bob", b"carol")
    )
    alice.create_group(b"room", now=NOW)
    kps = [c.publish_key_packages(1, now=NOW)[0] for c in (bob, carol)]
    out = alice.commit(b"room", add=kps, now=NOW)
    alice.confirm_commit(b"room", now=NOW)
    assert out.welcome is not None
    for c in (bob, carol):
        c.receive(out.welcome, now=NOW)
    late = carol.send_text(b"room", "sent before the removal arrived", now=NOW).data
    removal = alice.commit(b"room", remove=[b"carol"], now=NOW)
    alice.confirm_commit(b"room", now=NOW)
    bob.receive(removal.commit, now=NOW)
    ev = bob.receive(late, now=NOW)
    assert isinstance(ev, MessageReceived) and ev.sender_removed
