"""Layer L7: the group state machine (RFC 9420 §11-§16), sans-I/O.

``Client`` holds a signature identity and its KeyPackages; ``Group`` is one member's view of a
group. Local operations return bytes; ``Group.process`` returns one typed event.

Modules, lowest first (each imports only those before it; ``tests/test_layers.py``):

- ``config``, ``events``: options and the typed results.
- ``identity``: the Authentication Service hook (``IdentityProvider``, basic and X.509).
- ``validation``: the §7.3, §10.1, §12.1 and §12.2 checks.
- ``epoch``: the current epoch (``EpochState``), past epochs, the key schedule step (§8).
- ``proposal_list``: the proposal cache, one ``validate`` for every proposal, §12.3.
- ``snapshot``: stored state as plain values and versioned CBOR; the parts form (``GroupDelta``).
- ``client``: ``Client``.
- ``receive``: PrivateMessage/PublicMessage to ``VerifiedContent`` (§6).
- ``staged_commit``: a received commit, staged (§12.4.2).
- ``lifecycle``: what each status allows; ``merge_commit``, the step to the next epoch.
- ``incoming``: a message's group, status and epoch checks (§6, §15.3); received proposals.
- ``outgoing``: a member's proposals and commit list, signed and framed (§6.1, §12.1).
- ``external``: messages from outside the group (§12.1.8).
- ``commit_builder``: one commit builder for members and external joiners (§12.4.1, §12.4.3).
- ``join``: Welcome and external commit (§12.4.3.1, §12.4.3.2).
- ``creation``: a new group's first epoch; ReInit and branch (§11, §11.2, §11.3).
- ``member_state``: ``MemberState``, the state ``Group`` holds, its accessors and persistence.
- ``group``: ``Group`` (a ``MemberState``): the public operations.

Incoming messages::

    bytes -decode-> MLSMessage -incoming.unprotect_message (receive.unprotect_*)->
          VerifiedContent (+ accept) -Group._dispatch-> application | proposal | commit
          -staged_commit.stage_commit-> StagedCommit -accept(); lifecycle.merge_commit,
          Group._merge-> CommitMerged
"""

from __future__ import annotations

from mls.group.client import Client, KeyPackagePrivate, default_capabilities
from mls.group.config import GroupConfig
from mls.group.events import (
    ApplicationMessage,
    CommitMerged,
    CommitOutput,
    GroupEvent,
    ProposalReceived,
)
from mls.group.group import Group, GroupStatus
from mls.group.identity import BasicIdentityProvider, IdentityProvider

__all__ = [
    "ApplicationMessage",
    "BasicIdentityProvider",
    "Client",
    "CommitMerged",
    "CommitOutput",
    "Group",
    "GroupConfig",
    "GroupEvent",
    "GroupStatus",
    "IdentityProvider",
    "KeyPackagePrivate",
    "ProposalReceived",
    "default_capabilities",
]
