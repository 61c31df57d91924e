"""A multi-member harness: N clients in one group and an in-memory delivery service.

``GroupHarness`` plays the DS: it creates the group, adds members, and delivers handshake and
application messages to everyone else (h11 ``ConnectionPair`` style). ``assert_converged`` checks
that every member agrees on the epoch, tree hash, epoch authenticator and an exporter value.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field

from mls.group import Client, CommitMerged, Group, GroupConfig, default_capabilities

NOW = 1_750_000_000
#: A private-use GroupContext extension every harness client supports (for GCE tests).
HARNESS_EXT = 0xF00D
#: An external PSK every harness client holds.
TEAM_PSK = (b"team-psk", b"0123456789abcdef0123456789abcdef")
_ids = itertools.count()


@dataclass
class GroupHarness:
    suite: int = 1
    config: GroupConfig = field(default_factory=GroupConfig)
    members: dict[int, Group] = field(default_factory=dict)  # leaf index -> group
    removed: list[Group] = field(default_factory=list)

    @classmethod
    def with_members(
        cls, n: int, suite: int = 1, config: GroupConfig | None = None
    ) -> GroupHarness:
        h = cls(suite=suite, config=config or GroupConfig())
        creator = h.new_client("member-0")
        g = Group.create(creator, b"group-" + str(next(_ids)).encode(), config=h.config, now=NOW)
        h.members[0] = g
        if n > 1:
            h.add([h.new_client(f"member-{i}") for i in range(1, n)], committer=0)
        return h

    def new_client(self, name: str) -> Client:
        c = Client.create(
            name.encode(), self.suite, capabilities=default_capabilities(extensions=(HARNESS_EXT,))
        )
        c.add_external_psk(*TEAM_PSK)
        return c

    def any_member(self) -> Group:
        return next(iter(self.members.values()))

    def add(self, clients: list[Client], committer: int) -> list[int]:
        g = self.members[committer]
        kps = [c.key_package(NOW) for c in clients]
        out = g.commit(add=kps, now=NOW)
        merged = g.merge_pending_commit()
        self.deliver(out.commit, sender=committer)
        assert out.welcome is not None
        tree = g.export_tree()
        for c, leaf in zip(clients, merged.added, strict=True):
            joined = Group.join(c, out.welcome, ratchet_tree=tree, config=self.config, now=NOW)
            assert joined.own_leaf_index == leaf
            self.members[leaf] = joined
        return list(merged.added)

    def deliver(self, message: bytes, sender: int | None) -> dict[int, object]:
        """Deliver a handshake message to every member but the sender."""
        events: dict[int, object] = {}
        for leaf, g in list(self.members.items()):
            if leaf == sender:
                continue
            ev = g.process(message, now=NOW)
            events[leaf] = ev
            if isinstance(ev, CommitMerged) and ev.self_removed:
                self.removed.append(self.members.pop(leaf))
        return events

    def commit(self, committer: int, **kwargs: object) -> CommitMerged:
        g = self.members[committer]
        out = g.commit(now=NOW, **kwargs)  # type: ignore[arg-type]
        merged = g.merge_pending_commit()
        self.deliver(out.commit, sender=committer)
        return merged

    def assert_converged(self) -> None:
        groups = list(self.members.values())
        first = groups[0]
        want = (
            first.epoch,
            first.tree_hash,
            first.epoch_authenticator,
            first.export_secret("harness", b"", 32),
            first.member_count,
        )
        for g in groups[1:]:
            got = (
                g.epoch,
                g.tree_hash,
                g.epoch_authenticator,
                g.export_secret("harness", b"", 32),
                g.member_count,
            )
            assert got == want, f"member {g.own_leaf_index} diverged"
        assert first.member_count == len(groups)
