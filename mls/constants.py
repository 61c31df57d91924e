"""IANA registries of RFC 9420 §17 as ``IntEnum``.

Wire fields stay plain ``int`` so that unknown (e.g. GREASE, §13.5) values pass through decode
and re-encode unchanged; compare them with these members (``IntEnum`` equals ``int``).
"""

from __future__ import annotations

from enum import IntEnum


class ProtocolVersion(IntEnum):
    reserved = 0
    mls10 = 1


class CipherSuiteId(IntEnum):
    """RFC 9420 §17.1."""

    MLS_128_DHKEMX25519_AES128GCM_SHA256_Ed25519 = 1
    MLS_128_DHKEMP256_AES128GCM_SHA256_P256 = 2
    MLS_128_DHKEMX25519_CHACHA20POLY1305_SHA256_Ed25519 = 3
    MLS_256_DHKEMX448_AES256GCM_SHA512_Ed448 = 4
    MLS_256_DHKEMP521_AES256GCM_SHA512_P521 = 5
    MLS_256_DHKEMX448_CHACHA20POLY1305_SHA512_Ed448 = 6
    MLS_256_DHKEMP384_AES256GCM_SHA384_P384 = 7


class ExtensionType(IntEnum):
    """RFC 9420 §17.3."""

    application_id = 1
    ratchet_tree = 2
    required_capabilities = 3
    external_pub = 4
    external_senders = 5


class ProposalType(IntEnum):
    """RFC 9420 §17.4."""

    add = 1
    update = 2
    remove = 3
    psk = 4
    reinit = 5
    external_init = 6
    group_context_extensions = 7


class CredentialType(IntEnum):
    """RFC 9420 §17.5."""

    basic = 1
    x509 = 2


class WireFormat(IntEnum):
    """RFC 9420 §17.2 (wire formats)."""

    mls_public_message = 1
    mls_private_message = 2
    mls_welcome = 3
    mls_group_info = 4
    mls_key_package = 5


class ContentType(IntEnum):
    """RFC 9420 §6."""

    application = 1
    proposal = 2
    commit = 3


class SenderType(IntEnum):
    """RFC 9420 §6."""

    member = 1
    external = 2
    new_member_proposal = 3
    new_member_commit = 4


class LeafNodeSource(IntEnum):
    """RFC 9420 §7.2."""

    key_package = 1
    update = 2
    commit = 3


class NodeType(IntEnum):
    """RFC 9420 §7.8."""

    leaf = 1
    parent = 2


class PSKType(IntEnum):
    """RFC 9420 §8.4."""

    external = 1
    resumption = 2


class ResumptionPSKUsage(IntEnum):
    """RFC 9420 §8.4."""

    application = 1
    reinit = 2
    branch = 3


def is_grease(value: int) -> bool:
    """True for the GREASE values of RFC 9420 §13.5 (0x0A0A, 0x1A1A, ..., 0xEAEA)."""
    return (value & 0x0F0F) == 0x0A0A and (value >> 12) == ((value >> 4) & 0xF) and value < 0xF000
