"""Labeled MLS crypto operations: the only doorway protocol code uses to the KDF, signatures,
HPKE and reference hashes.

Owns RFC 9420 §5.1.2 (SignWithLabel / VerifyWithLabel), §5.1.3 (EncryptWithLabel /
DecryptWithLabel), §5.2 (RefHash, MakeKeyPackageRef, MakeProposalRef), §8 (ExpandWithLabel,
DeriveSecret) and §9 (DeriveTreeSecret).

Labels are passed *without* the ``"MLS 1.0 "`` prefix, which these functions add, except for
:func:`ref_hash`, whose label is used verbatim as in §5.2 (``RefHash(label, value)``).
"""

from __future__ import annotations

from mls.codec.buffer import encode_varint
from mls.crypto.suites import CipherSuite
from mls.errors import UsageError

__all__ = [
    "decrypt_with_label",
    "encode_label",
    "encode_opaque",
    "derive_secret",
    "derive_tree_secret",
    "encrypt_with_label",
    "expand_with_label",
    "make_key_package_ref",
    "make_proposal_ref",
    "ref_hash",
    "sign_with_label",
    "tree_secret_heads",
    "verify_with_label",
]

_PREFIX = b"MLS 1.0 "

# opaque<V> encodings of "MLS 1.0 " + label, built once per distinct label (a few dozen).
_LABEL_CACHE: dict[str, bytes] = {}


def _label(label: str) -> bytes:
    enc = _LABEL_CACHE.get(label)
    if enc is None:
        full = _PREFIX + label.encode()
        enc = encode_varint(len(full)) + full
        # Exporter labels come from applications: bound the cache.
        if len(_LABEL_CACHE) < 1024:
            _LABEL_CACHE[label] = enc
    return enc


def _opaque(data: bytes) -> bytes:
    n = len(data)
    # RFC 9420 §2.1.2 varint length prefix; one byte in the common short case.
    return (bytes((n,)) if n < 0x40 else encode_varint(n)) + data


#: ``opaque<V>`` of ``"MLS 1.0 " + label`` and of any bytes, for callers that build a KDFLabel
#: head once (the per-message paths).
encode_label = _label
encode_opaque = _opaque


# Encoded KDFLabels with a short context ("left" / "right" of every secret-tree level, the
# empty context of the epoch secrets), built once each: a bounded set of constants.
_KDF_LABEL_CACHE: dict[tuple[str, bytes, int], bytes] = {}


def expand_with_label(
    cs: CipherSuite, secret: bytes, label: str, context: bytes, length: int
) -> bytes:
    """ExpandWithLabel (RFC 9420 §8): KDF.Expand(secret, KDFLabel, length)."""
    short = len(context) <= 8
    info = _KDF_LABEL_CACHE.get((label, context, length)) if short else None
    if info is None:
        if not 0 <= length <= 0xFFFF:
            # KDFLabel.length is a uint16 (§8).
            raise UsageError(f"ExpandWithLabel length {length} does not fit a uint16")
        info = length.to_bytes(2, "big") + _label(label) + _opaque(context)
        # Exporter labels come from applications: bound the cache.
        if short and len(_KDF_LABEL_CACHE) < 1024:
            _KDF_LABEL_CACHE[(label, context, length)] = info
    return cs.kdf_expand(secret, info, length)


def derive_secret(cs: CipherSuite, secret: bytes, label: str) -> bytes:
    """DeriveSecret (RFC 9420 §8): ExpandWithLabel(secret, label, "", KDF.Nh)."""
    nh = cs.hash_len
    info = nh.to_bytes(2, "big") + _label(label) + b"\x00"
    return cs.kdf_expand(secret, info, nh)


def derive_tree_secret(
    cs: CipherSuite, secret: bytes, label: str, generation: int, length: int
) -> bytes:
    """DeriveTreeSecret (RFC 9420 §9): ExpandWithLabel(secret, label, uint32 generation, L)."""
    info = length.to_bytes(2, "big") + _label(label) + b"\x04" + generation.to_bytes(4, "big")
    return cs.kdf_expand(secret, info, length)


def tree_secret_heads(key_len: int, nonce_len: int, hash_len: int) -> tuple[bytes, bytes, bytes]:
    """The constant part of the three DeriveTreeSecret KDFLabels of a ratchet step (§9.1),
    ``"key"``, ``"nonce"`` and ``"secret"``: each KDFLabel is its head followed by the uint32
    generation (context length 4). Built once per suite, since a step runs per message."""
    return tuple(  # type: ignore[return-value]
        n.to_bytes(2, "big") + _label(label) + b"\x04"
        for label, n in (("key", key_len), ("nonce", nonce_len), ("secret", hash_len))
    )


def _sign_content(label: str, content: bytes) -> bytes:
    # RFC 9420 §5.1.2 SignContent { opaque label<V>; opaque content<V>; }.
    return _label(label) + _opaque(content)


def sign_with_label(cs: CipherSuite, sk: bytes, label: str, content: bytes) -> bytes:
    """SignWithLabel (RFC 9420 §5.1.2)."""
    return cs.sign(sk, _sign_content(label, content))


def verify_with_label(
    cs: CipherSuite, pk: bytes, label: str, content: bytes, signature: bytes
) -> None:
    """VerifyWithLabel (RFC 9420 §5.1.2); raises BadSignature (InvalidKey for a bad key)."""
    cs.verify(pk, _sign_content(label, content), signature)


def encrypt_with_label(
    cs: CipherSuite, pk: bytes, label: str, context: bytes, plaintext: bytes
) -> tuple[bytes, bytes]:
    """EncryptWithLabel (RFC 9420 §5.1.3): SealBase(pk, EncryptContext, "", plaintext).

    Returns (kem_output, ciphertext).
    """
    return cs.hpke_seal(pk, _label(label) + _opaque(context), b"", plaintext)


def decrypt_with_label(
    cs: CipherSuite, sk: bytes, label: str, context: bytes, kem_output: bytes, ciphertext: bytes
) -> bytes:
    """DecryptWithLabel (RFC 9420 §5.1.3); raises DecryptFailed."""
    return cs.hpke_open(sk, kem_output, _label(label) + _opaque(context), b"", ciphertext)


def ref_hash(cs: CipherSuite, label: str, value: bytes) -> bytes:
    """RefHash (RFC 9420 §5.2): Hash(RefHashInput{label, value}); ``label`` used verbatim."""
    return cs.hash(_opaque(label.encode()) + _opaque(value))


def make_key_package_ref(cs: CipherSuite, key_package_bytes: bytes) -> bytes:
    """MakeKeyPackageRef (RFC 9420 §5.2) of an encoded KeyPackage."""
    return ref_hash(cs, "MLS 1.0 KeyPackage Reference", key_package_bytes)


def make_proposal_ref(cs: CipherSuite, authenticated_content_bytes: bytes) -> bytes:
    """MakeProposalRef (RFC 9420 §5.2) of an encoded AuthenticatedContent."""
    return ref_hash(cs, "MLS 1.0 Proposal Reference", authenticated_content_bytes)
