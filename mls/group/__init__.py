"""Layer L7: the group state machine (RFC 9420 §11-§16), sans-I/O.

``Client`` holds a signature identity and its KeyPackages; ``Group`` is one member's view of a
group. Local operations return bytes; ``Group.process`` returns one typed event.
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
