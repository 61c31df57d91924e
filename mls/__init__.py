"""mls: Messaging Layer Security (RFC 9420) in Python, sans-I/O.

The curated public API. Protocol structs live in the layer modules (``mls.messages``,
``mls.framing``, ``mls.tree``); SFrame in ``mls.sframe``; the chat application layer in ``mls.app``.
"""

from __future__ import annotations

from mls import errors
from mls.constants import CipherSuiteId, ExtensionType, ProposalType, ResumptionPSKUsage
from mls.credentials import Credential
from mls.crypto import CipherSuite, CryptoProvider, get_suite
from mls.errors import (
    AuthError,
    DecodeError,
    InternalError,
    MLSError,
    PeerError,
    UnsupportedError,
    UsageError,
    ValidationError,
)
from mls.extensions import Extension
from mls.group import (
    ApplicationMessage,
    BasicIdentityProvider,
    Client,
    CommitMerged,
    CommitOutput,
    Group,
    GroupConfig,
    GroupStatus,
    IdentityProvider,
    ProposalReceived,
    default_capabilities,
)

__version__ = "0.1.0"

__all__ = [
    # group
    "Client",
    "Group",
    "GroupConfig",
    "GroupStatus",
    "IdentityProvider",
    "BasicIdentityProvider",
    "default_capabilities",
    # events
    "ApplicationMessage",
    "CommitMerged",
    "CommitOutput",
    "ProposalReceived",
    # crypto and registries
    "CipherSuite",
    "CipherSuiteId",
    "CryptoProvider",
    "get_suite",
    "Credential",
    "Extension",
    "ExtensionType",
    "ProposalType",
    "ResumptionPSKUsage",
    # errors
    "errors",
    "MLSError",
    "PeerError",
    "DecodeError",
    "AuthError",
    "ValidationError",
    "UsageError",
    "UnsupportedError",
    "InternalError",
    "__version__",
]
