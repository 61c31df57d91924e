"""Leaving a group with SelfRemove (draft-ietf-mls-extensions, "SelfRemove Proposal"; issue 16).

Rows R-101 to R-115 of ``docs/validation.md``. Every refused input raises its exact exception
class and leaves the receiver's ``Group.to_bytes()`` unchanged (``reject``, ``reject_join``).
"""

from __future__ import annotations

import pytest

from mls.codec import decode
from mls.constants import WireFormat
from mls.credentials import Credential
from mls.crypto import get_suite
from mls.errors import (
    BadSignature,
    InvalidExternalInit,
    InvalidRemove,
    InvalidSelfRemove,
    InvalidSender,
    InvalidState,
    PathRequired,
    UnsupportedCapability,
    UnsupportedError,
    UsageError,
    WrongEpoch,
)
from mls.extensions import ExternalSender, ExternalSenders
from mls.framing.content import (
    AuthenticatedContent,
    FramedContent,
    FramedContentAuthData,
    Sender,
    sign_framed_content,
)
from mls.framing.message import MLSMessage
from mls.framing.public import PublicMessage
from mls.group import Client, Group, GroupConfig, ProposalReceived, default_capabilities
from mls.group.validation import ProposalEntry, validate_proposal_list
from mls.messages.proposals import (
    SELF_REMOVE_DRAFT_CODE_POINT,
    Remove,
    SelfRemove,
    decode_proposal,
    encode_proposal,
    set_self_remove_proposal_type,
)
from tests.forge import PRIVATE, Forger
from tests.harness import HARNESS_EXT, NOW, GroupHarness
from tests.test_validation import reject, reject_join

PUBLIC_ONLY = GroupConfig(private_handshake=False)
PRIVATE_HS = GroupConfig(private_handshake=True)


def _group(n: int = 4, config: GroupConfig = PRIVATE_HS) -> GroupHarness:
    return GroupHarness.with_members(n, config=config)


def _propose(h: GroupHarness, leaf: int) -> bytes:
    p = h.members[leaf].propose_self_remove()
    for ev in h.deliver(p, sender=leaf).values():
        assert isinstance(ev, ProposalReceived) and isinstance(ev.proposal, SelfRemove)
    return p


def _ref(h: GroupHarness, receiver: int) -> bytes:
    refs = h.members[receiver].pending_proposal_refs
    assert len(refs) == 1
    return refs[0]


# == the proposal and its effect ===============================================================


def test_codec_and_code_point() -> None:
    assert SelfRemove.proposal_type == SELF_REMOVE_DRAFT_CODE_POINT == 0x000A
    data = encode_proposal(SelfRemove())
    assert data == b"\x00\x0a"  # the type, then an empty struct
    assert decode_proposal(data) == SelfRemove()


def test_code_point_is_configurable() -> None:
    try:
        set_self_remove_proposal_type(0xF0A0)
        assert encode_proposal(SelfRemove()) == b"\xf0\xa0"
        assert 0xF0A0 in default_capabilities().proposals
        h = _group(3)
        _propose(h, 2)
        h.commit(0)
        assert sorted(h.members) == [0, 1]
        h.assert_converged()
    finally:
        set_self_remove_proposal_type(SELF_REMOVE_DRAFT_CODE_POINT)
    with pytest.raises(UsageError):
        set_self_remove_proposal_type(1)  # Add's
    with pytest.raises(UsageError):
        set_self_remove_proposal_type(0)


def test_member_leaves_and_the_next_commit_by_anyone_removes_it() -> None:
    h = _group(4)
    leaver = h.members[2]
    assert leaver.self_remove_capable
    p = _propose(h, 2)
    # Always a PublicMessage, whatever private_handshake says.
    assert decode(MLSMessage, p).wire_format == WireFormat.mls_public_message
    with pytest.raises(InvalidState):
        leaver.propose_self_remove()  # at most one per epoch
    merged = h.commit(3)
    assert merged.removed == (2,)
    assert leaver.status.name == "REMOVED" and h.removed == [leaver]
    h.assert_converged()
    assert h.members[0].member_count == 3


def test_own_self_remove_is_left_out_of_own_commit() -> None:
    """The leaver's own commit cannot carry its SelfRemove; it stays a member."""
    h = _group(3)
    _propose(h, 1)
    merged = h.commit(1)
    assert merged.removed == () and sorted(h.members) == [0, 1, 2]
    h.assert_converged()


def test_pending_remove_of_a_leaver_is_left_out() -> None:
    """A member's commit of both a SelfRemove and a Remove of the same leaf drops the Remove
    (the list would be invalid), by reference or by value."""
    h = _group(4)
    p = h.members[0].propose_remove(2)
    h.deliver(p, sender=0)
    _propose(h, 2)
    merged = h.commit(1, remove=[2])
    assert merged.removed == (2,)
    h.assert_converged()


def test_non_capable_group_falls_back_to_a_remove_proposal() -> None:
    h = _group(3)
    old = Client.create(
        b"old", 1, capabilities=default_capabilities(extensions=(HARNESS_EXT,), self_remove=False)
    )
    [leaf] = h.add([old], committer=0)
    g1 = h.members[1]
    assert not g1.self_remove_capable
    with pytest.raises(UnsupportedError, match="propose_remove"):
        g1.propose_self_remove()
    p = g1.propose_remove(g1.own_leaf_index)  # legal as a proposal (§12.2 forbids the commit)
    h.deliver(p, sender=1)
    with pytest.raises(UsageError):
        g1.commit(remove=[1], now=NOW)
    merged = h.commit(leaf)
    assert merged.removed == (1,) and 1 not in h.members
    h.assert_converged()


def test_non_capable_group_refuses_a_received_self_remove() -> None:
    h = _group(3, PUBLIC_ONLY)
    old = Client.create(
        b"old", 1, capabilities=default_capabilities(extensions=(HARNESS_EXT,), self_remove=False)
    )
    h.add([old], committer=0)
    p = Forger(h.members[1]).proposal(SelfRemove())
    reject(h.members[0], p, UnsupportedCapability)


# == receive-side validation (each forged) =====================================================


def test_self_remove_in_a_private_message_is_refused() -> None:
    h = _group(3)
    p = Forger(h.members[1]).proposal(SelfRemove(), wire_format=PRIVATE)
    reject(h.members[0], p, InvalidSelfRemove)


def test_self_remove_from_an_external_sender_is_refused() -> None:
    cs = get_suite(1)
    ssk, spk = cs.generate_signature_key_pair()
    server = ExternalSender(signature_key=spk, credential=Credential.basic(b"server"))
    h = _group(3, PUBLIC_ONLY)
    h.commit(0, extensions=[ExternalSenders(senders=(server,)).to_extension()])
    g = h.members[0]
    content = FramedContent(
        group_id=g.group_id, epoch=g.epoch, sender=Sender.external(0), content=SelfRemove()
    )
    wf = WireFormat.mls_public_message
    sig = sign_framed_content(cs, ssk, wf, content, None)
    auth = AuthenticatedContent(
        wire_format=wf, content=content, auth=FramedContentAuthData(signature=sig)
    )
    p = MLSMessage(body=PublicMessage.from_authenticated(auth, None)).to_bytes()
    reject(g, p, InvalidSender)
    f = Forger(h.members[1])
    for sender in (Sender.new_member_proposal(), Sender.new_member_commit()):
        reject(g, f.proposal(SelfRemove(), sender=sender), InvalidSender)


def test_second_self_remove_of_a_sender_in_one_epoch_is_refused() -> None:
    h = _group(3)
    _propose(h, 2)
    again = Forger(h.members[2]).proposal(SelfRemove(), authenticated_data=b"again")
    reject(h.members[0], again, InvalidSelfRemove)


def test_self_remove_by_value_is_refused() -> None:
    h = _group(3, PUBLIC_ONLY)
    c = Forger(h.members[1]).commit([SelfRemove()])
    reject(h.members[0], c, InvalidSelfRemove)


def test_self_remove_needs_a_path() -> None:
    h = _group(3, PUBLIC_ONLY)
    _propose(h, 2)
    c = Forger(h.members[1]).commit([_ref(h, 1)], path=False)
    reject(h.members[0], c, PathRequired)


def test_remove_of_a_self_removed_leaf_is_refused() -> None:
    h = _group(4, PUBLIC_ONLY)
    _propose(h, 2)
    c = Forger(h.members[1]).commit([_ref(h, 1), Remove(removed=2)])
    reject(h.members[0], c, InvalidSelfRemove)
    # The order in the list does not matter: SelfRemoves are processed first.
    c = Forger(h.members[1]).commit([Remove(removed=2), _ref(h, 1)])
    reject(h.members[0], c, InvalidSelfRemove)


def test_update_of_a_self_removed_leaf_is_refused() -> None:
    h = _group(4, PUBLIC_ONLY)
    u = h.members[2].propose_update()
    h.deliver(u, sender=2)
    _propose(h, 2)
    refs = h.members[1].pending_proposal_refs
    assert len(refs) == 2
    c = Forger(h.members[1]).commit(refs)
    reject(h.members[0], c, InvalidSelfRemove)


def test_committer_own_self_remove_is_refused() -> None:
    h = _group(3, PUBLIC_ONLY)
    _propose(h, 1)
    own_ref = h.members[1].pending_proposal_refs[0]
    c = Forger(h.members[1]).commit([own_ref])
    reject(h.members[0], c, InvalidSelfRemove)


def test_two_self_removes_of_one_sender_in_a_list_are_refused() -> None:
    sr = ProposalEntry(SelfRemove(), Sender.member(2), b"a")
    h = _group(3)
    g = h.members[0]
    with pytest.raises(InvalidSelfRemove):
        validate_proposal_list(
            [sr, ProposalEntry(SelfRemove(), Sender.member(2), b"b")],
            committer=0,
            external=False,
            tree=g.tree,
            identity=g._identity,
        )
    # A Remove of the committer is still its own error.
    with pytest.raises(InvalidRemove):
        validate_proposal_list(
            [sr, ProposalEntry(Remove(removed=0), Sender.member(1))],
            committer=0,
            external=False,
            tree=g.tree,
            identity=g._identity,
        )


def test_external_commit_may_reference_only_self_removes() -> None:
    h = _group(3, PUBLIC_ONLY)
    p = h.members[2].propose_remove(1)
    h.deliver(p, sender=2)
    f = Forger(h.members[0])
    ext, init = f.external_init()
    joiner = h.new_client("joiner")
    c = f.external_commit(joiner, [ext, _ref(h, 0)], init_secret=init)
    reject(h.members[1], c, InvalidExternalInit)


# == external joins ============================================================================


def test_burst_of_external_joins_while_members_leave() -> None:
    """Joiners racing on the hour: each takes the GroupInfo and the pending SelfRemoves of its
    epoch; one commit wins per epoch, the losers retry on the next one, and every leaver is
    removed by the first commit that follows its proposal."""
    h = _group(5)
    leavers = {1: _propose(h, 1), 3: _propose(h, 3)}
    joiners = [h.new_client(f"joiner-{i}") for i in range(3)]
    waiting = list(joiners)
    rounds = 0
    while waiting:
        rounds += 1
        gi = h.members[0].group_info()
        pending = list(leavers.values())
        attempts = [
            Group.external_join(c, gi, config=h.config, self_removes=pending, now=NOW)
            for c in waiting
        ]
        (winner, commit), losers = attempts[0], attempts[1:]
        events = h.deliver(commit, sender=None)
        assert all(getattr(events[m], "external", False) for m in h.members)
        for gone in leavers:
            assert gone not in h.members
        leavers.clear()
        h.members[winner.own_leaf_index] = winner
        for _, late in losers:  # built on the old epoch: refused, nothing changes
            reject(h.members[0], late, WrongEpoch)
        waiting = waiting[1:]
        if rounds == 1:
            leavers[2] = _propose(h, 2)  # someone leaves during the burst
    assert len(h.removed) == 3 and len(h.members) == 5
    h.assert_converged()


def test_external_join_validates_the_self_removes() -> None:
    h = _group(3, PUBLIC_ONLY)
    g = h.members[0]
    gi = g.group_info()
    joiner = h.new_client("joiner")
    f = Forger(h.members[2])
    cs = g.suite
    wrong_key, _ = cs.generate_signature_key_pair()
    cases = [
        (f.proposal(SelfRemove(), key=wrong_key), BadSignature),
        (f.proposal(SelfRemove(), epoch=g.epoch - 1), WrongEpoch),
        (f.proposal(Remove(removed=1)), InvalidSelfRemove),
        (f.proposal(SelfRemove(), wire_format=PRIVATE), InvalidSelfRemove),
        (f.public(f.authenticated(SelfRemove()), tag=bytes(cs.hash_len)), None),  # tag skipped
    ]
    for msg, exc in cases:
        if exc is None:
            joined, _ = Group.external_join(joiner, gi, config=h.config, self_removes=[msg])
            assert joined.member_count == 3  # joined, leaf 2 removed
            continue
        reject_join(
            joiner,
            lambda m=msg: Group.external_join(joiner, gi, config=h.config, self_removes=[m]),
            exc,
        )
    # Two of one sender in one external commit.
    a = f.proposal(SelfRemove())
    b = f.proposal(SelfRemove(), authenticated_data=b"b")
    reject_join(
        joiner,
        lambda: Group.external_join(joiner, gi, config=h.config, self_removes=[a, b]),
        InvalidSelfRemove,
    )
