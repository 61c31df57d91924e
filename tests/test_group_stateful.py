"""Group convergence under random operations (a Hypothesis RuleBasedStateMachine).

Groups of up to 12 members go through random adds, removes, empty commits (path updates),
Update/Remove/Add proposals committed by reference by another member, SelfRemoves (committed by
a member or an external joiner), and application messages
delivered in random order, some of them after the epoch moved on (late messages, §15.3). After
every step all members agree on epoch, tree hash, epoch authenticator and an exporter value;
removed members cannot decrypt new messages; every application message reaches every member of
its epoch exactly once (a second delivery is rejected as a replay).
"""

from __future__ import annotations

import os

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
)

from mls.constants import ResumptionPSKUsage
from mls.errors import MLSError, ReplayedMessage
from mls.extensions import Extension
from mls.group import ApplicationMessage, CommitMerged, Group, GroupConfig, ProposalReceived
from tests.harness import HARNESS_EXT, NOW, TEAM_PSK, GroupHarness

MAX_MEMBERS = 12
EXAMPLES = int(os.environ.get("MLS_STATEFUL_EXAMPLES", "25"))


class GroupMachine(RuleBasedStateMachine):
    h: GroupHarness

    def __init__(self) -> None:
        super().__init__()
        # Application messages in flight: (epoch, sender, data, recipients still to deliver to)
        self.inflight: list[tuple[int, int, bytes, bytes, set[int]]] = []
        self.delivered: list[tuple[bytes, int]] = []  # (wire message, recipient) for replays
        self.counter = 0

    @initialize(size=st.integers(1, 4), private=st.booleans())
    def setup(self, size: int, private: bool) -> None:
        self.h = GroupHarness.with_members(
            size,
            config=GroupConfig(
                private_handshake=private,
                past_epochs=1,
                # Application messages are delivered in any order here, also after the commit
                # that removed their sender (a DS that orders them would not).
                removed_sender_messages="flag",
            ),
        )

    # -- helpers ------------------------------------------------------------------------------

    def _leaves(self) -> list[int]:
        return sorted(self.h.members)

    def _before_epoch_change(self) -> None:
        # Late messages are kept for one past epoch: deliver whatever would fall out of it.
        epoch = self.h.any_member().epoch
        for item in list(self.inflight):
            if item[0] < epoch:
                self._deliver_all(item)

    def _deliver_all(self, item: tuple[int, int, bytes, bytes, set[int]]) -> None:
        epoch, sender, data, msg, recipients = item
        for leaf in sorted(recipients):
            g = self.h.members.get(leaf)
            if g is None:
                continue
            ev = g.process(msg, now=NOW)
            assert isinstance(ev, ApplicationMessage)
            assert ev.data == data and ev.sender == sender and ev.epoch == epoch
            self.delivered.append((msg, leaf))
        recipients.clear()
        self.inflight.remove(item)

    # -- rules --------------------------------------------------------------------------------

    @precondition(lambda self: len(self.h.members) < MAX_MEMBERS)
    @rule(data=st.data(), count=st.integers(1, 3))
    def add_members(self, data: st.DataObject, count: int) -> None:
        count = min(count, MAX_MEMBERS - len(self.h.members))
        committer = data.draw(st.sampled_from(self._leaves()))
        self._before_epoch_change()
        self.counter += 1
        clients = [self.h.new_client(f"c{self.counter}-{i}") for i in range(count)]
        self.h.add(clients, committer=committer)

    @precondition(lambda self: len(self.h.members) > 1)
    @rule(data=st.data())
    def remove_member(self, data: st.DataObject) -> None:
        leaves = self._leaves()
        committer = data.draw(st.sampled_from(leaves))
        victim = data.draw(st.sampled_from([x for x in leaves if x != committer]))
        self._before_epoch_change()
        victim_group = self.h.members[victim]
        self.h.commit(committer, remove=[victim])
        assert victim not in self.h.members
        # The removed member cannot read what the group says next.
        sender = self.h.members[committer]
        msg = sender.protect(b"after removal")
        with pytest.raises(MLSError):
            victim_group.process(msg, now=NOW)
        for leaf, g in self.h.members.items():
            if leaf != committer:
                assert isinstance(g.process(msg, now=NOW), ApplicationMessage)

    @rule(data=st.data())
    def empty_commit(self, data: st.DataObject) -> None:
        committer = data.draw(st.sampled_from(self._leaves()))
        self._before_epoch_change()
        self.h.commit(committer)

    @rule(data=st.data(), kind=st.sampled_from(["update", "remove", "add"]), path=st.booleans())
    def proposal_by_reference(self, data: st.DataObject, kind: str, path: bool) -> None:
        leaves = self._leaves()
        if kind == "remove" and len(leaves) < 3:
            return
        if kind == "add" and len(leaves) >= MAX_MEMBERS:
            return
        proposer = data.draw(st.sampled_from(leaves))
        committer = data.draw(st.sampled_from([x for x in leaves if x != proposer] or leaves))
        if committer == proposer:
            return
        self._before_epoch_change()
        g = self.h.members[proposer]
        joiner = None
        if kind == "update":
            msg = g.propose_update()
        elif kind == "remove":
            victim = data.draw(
                st.sampled_from([x for x in leaves if x not in (proposer, committer)])
            )
            msg = g.propose_remove(victim)
        else:
            self.counter += 1
            joiner = self.h.new_client(f"p{self.counter}")
            msg = g.propose_add(joiner.key_package(NOW), now=NOW)
        for leaf, other in self.h.members.items():
            if leaf != proposer:
                assert isinstance(other.process(msg, now=NOW), ProposalReceived)
        cg = self.h.members[committer]
        out = cg.commit(path=None if (kind != "add" or path) else False, now=NOW)
        merged = cg.merge_pending_commit()
        self.h.deliver(out.commit, sender=committer)
        if joiner is not None:
            from mls.group import Group

            assert out.welcome is not None
            self.h.members[merged.added[0]] = Group.join(
                joiner, out.welcome, ratchet_tree=cg.export_tree(), config=self.h.config, now=NOW
            )

    @precondition(lambda self: len(self.h.members) < MAX_MEMBERS)
    @rule(data=st.data(), with_tree=st.booleans())
    def external_join(self, data: st.DataObject, with_tree: bool) -> None:
        publisher = self.h.members[data.draw(st.sampled_from(self._leaves()))]
        self._before_epoch_change()
        self.counter += 1
        joiner = self.h.new_client(f"x{self.counter}")
        tree = None if with_tree else publisher.export_tree()
        g, commit = Group.external_join(
            joiner,
            publisher.group_info(with_tree=with_tree),
            ratchet_tree=tree,
            config=self.h.config,
            now=NOW,
        )
        events = self.h.deliver(commit, sender=None)
        assert all(isinstance(e, CommitMerged) and e.external for e in events.values())
        self.h.members[g.own_leaf_index] = g

    @precondition(lambda self: len(self.h.members) > 1)
    @rule(data=st.data(), external=st.booleans())
    def self_remove(self, data: st.DataObject, external: bool) -> None:
        """A member leaves by SelfRemove (draft-ietf-mls-extensions); the next commit, by a
        member or an external joiner given the pending proposal, removes it."""
        leaves = self._leaves()
        leaver = data.draw(st.sampled_from(leaves))
        self._before_epoch_change()
        msg = self.h.members[leaver].propose_self_remove()
        for item in self.inflight:
            item[4].discard(leaver)  # a joiner may take its leaf in the same commit
        for leaf, other in self.h.members.items():
            if leaf != leaver:
                assert isinstance(other.process(msg, now=NOW), ProposalReceived)
        if external:
            publisher = self.h.members[data.draw(st.sampled_from(leaves))]
            self.counter += 1
            g, commit = Group.external_join(
                self.h.new_client(f"s{self.counter}"),
                publisher.group_info(),
                config=self.h.config,
                now=NOW,
                self_removes=[msg],
            )
            events = self.h.deliver(commit, sender=None)
            assert all(
                isinstance(e, CommitMerged) and e.removed == (leaver,) for e in events.values()
            )
            self.h.members[g.own_leaf_index] = g
        else:
            committer = data.draw(st.sampled_from([x for x in leaves if x != leaver]))
            assert self.h.commit(committer).removed == (leaver,)
        gone = self.h.removed[-1]
        assert gone.own_leaf_index == leaver and gone.status.name == "REMOVED"

    @rule(data=st.data(), kind=st.sampled_from(["external", "resumption", "both"]))
    def psk_commit(self, data: st.DataObject, kind: str) -> None:
        committer = data.draw(st.sampled_from(self._leaves()))
        g = self.h.members[committer]
        self._before_epoch_change()
        psks = [TEAM_PSK[0]] if kind in ("external", "both") else []
        res = []
        if kind in ("resumption", "both") and g.epoch > 0:
            # Every member has kept the resumption PSK of the previous epoch unless it joined
            # in this very epoch; use the current epoch's, which everyone holds.
            res = [(ResumptionPSKUsage.application, g.epoch)]
        self.h.commit(committer, psks=psks, resumption_psks=res)

    @rule(data=st.data(), value=st.binary(max_size=8))
    def group_context_extensions(self, data: st.DataObject, value: bytes) -> None:
        committer = data.draw(st.sampled_from(self._leaves()))
        self._before_epoch_change()
        ext = Extension(extension_type=HARNESS_EXT, extension_data=value)
        merged = self.h.commit(committer, extensions=[ext])
        assert merged.extensions_changed or self.h.members[committer].extensions == (ext,)
        for g in self.h.members.values():
            assert g.extensions == (ext,)

    @rule(data=st.data(), size=st.integers(0, 300))
    def send_message(self, data: st.DataObject, size: int) -> None:
        sender = data.draw(st.sampled_from(self._leaves()))
        self.counter += 1
        body = f"m{self.counter}".encode() + bytes(size)
        g = self.h.members[sender]
        msg = g.protect(body)
        recipients = {x for x in self.h.members if x != sender}
        self.inflight.append((g.epoch, sender, body, msg, recipients))

    @precondition(lambda self: bool(self.inflight))
    @rule(data=st.data())
    def deliver_one(self, data: st.DataObject) -> None:
        item = data.draw(st.sampled_from(self.inflight))
        epoch, sender, body, msg, recipients = item
        live = sorted(r for r in recipients if r in self.h.members)
        if not live:
            self.inflight.remove(item)
            return
        leaf = data.draw(st.sampled_from(live))
        ev = self.h.members[leaf].process(msg, now=NOW)
        assert isinstance(ev, ApplicationMessage)
        assert ev.data == body and ev.sender == sender and ev.epoch == epoch
        recipients.discard(leaf)
        self.delivered.append((msg, leaf))
        if not recipients:
            self.inflight.remove(item)

    @precondition(lambda self: bool(self.delivered))
    @rule(data=st.data())
    def replay(self, data: st.DataObject) -> None:
        msg, leaf = data.draw(st.sampled_from(self.delivered[-20:]))
        g = self.h.members.get(leaf)
        if g is None:
            return
        before = g.to_bytes()
        with pytest.raises(MLSError) as info:
            g.process(msg, now=NOW)
        # Same epoch: the key is gone (replay); older: its epoch keys may be gone too.
        assert isinstance(info.value, MLSError)
        if isinstance(info.value, ReplayedMessage):
            pass
        assert g.to_bytes() == before

    @invariant()
    def converged(self) -> None:
        if hasattr(self, "h"):
            self.h.assert_converged()


GroupMachine.TestCase.settings = settings(
    max_examples=EXAMPLES,
    stateful_step_count=20,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
TestGroupConvergence = GroupMachine.TestCase
