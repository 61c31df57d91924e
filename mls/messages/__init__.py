"""Handshake message structs (RFC 9420 §10, §12): KeyPackage, proposals, Commit, Welcome,
GroupInfo. Wire structs with their codecs and signatures only; no group state.
"""

from __future__ import annotations

from mls.messages.commit import Commit, HPKECiphertext, UpdatePath, UpdatePathNode
from mls.messages.group_info import GroupInfo
from mls.messages.key_package import KeyPackage
from mls.messages.proposals import (
    Add,
    CustomProposal,
    ExternalInit,
    GroupContextExtensions,
    PreSharedKey,
    PreSharedKeyID,
    Proposal,
    ProposalOrRef,
    ProposalOrRefType,
    ReInit,
    Remove,
    SelfRemove,
    Update,
    decode_proposal,
    encode_proposal,
    pull_proposal,
    push_proposal,
)
from mls.messages.welcome import EncryptedGroupSecrets, GroupSecrets, PathSecret, Welcome

__all__ = [
    "KeyPackage",
    "PreSharedKeyID",
    "Add",
    "Update",
    "Remove",
    "PreSharedKey",
    "ReInit",
    "ExternalInit",
    "GroupContextExtensions",
    "SelfRemove",
    "CustomProposal",
    "Proposal",
    "push_proposal",
    "pull_proposal",
    "encode_proposal",
    "decode_proposal",
    "ProposalOrRefType",
    "ProposalOrRef",
    "Commit",
    "UpdatePath",
    "UpdatePathNode",
    "HPKECiphertext",
    "PathSecret",
    "GroupSecrets",
    "EncryptedGroupSecrets",
    "Welcome",
    "GroupInfo",
]
