"""Signature schemes of the RFC 9420 §17.1 cipher suites, on pyca/cryptography.

Owns the key formats of the mlswg test vectors (RFC 9420 §5.1.1 public keys; private keys as
in test-vectors.md): EdDSA keys are raw RFC 8032 strings (seed / public point); ECDSA public
keys are uncompressed SEC1 points and private keys big-endian scalars. ECDSA signatures are
DER ``ECDSA-Sig-Value`` as in TLS 1.3 (RFC 8446 §4.2.3), which RFC 9420 §5.1.2 refers to.
ECDSA signing is deterministic (RFC 6979), so it needs no randomness.
"""

from __future__ import annotations

import functools
from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import Generic, TypeVar

from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519

from mls.crypto.hpke import curve_order, ec_public_bytes, load_ec_private, load_ec_public
from mls.errors import BadSignature, InternalError, InvalidKey

__all__ = [
    "ED448",
    "ED25519",
    "ECDSA_P256_SHA256",
    "ECDSA_P384_SHA384",
    "ECDSA_P521_SHA512",
    "EcdsaScheme",
    "EdDsaScheme",
    "SignatureScheme",
]

PrivT = TypeVar("PrivT")
PubT = TypeVar("PubT")

# Signature private keys are long-lived (one per member), so keeping a few loaded avoids
# re-deriving the public point on every sign; verify keys are cached by their encoding.
_PRIVATE_CACHE = 64
_PUBLIC_CACHE = 4096


class SignatureScheme(ABC, Generic[PrivT, PubT]):
    """A TLS SignatureScheme restricted to the formats MLS uses."""

    scheme_id: int
    name: str
    sk_len: int
    pk_len: int

    def __init__(self) -> None:
        self.load_private = functools.lru_cache(maxsize=_PRIVATE_CACHE)(self._load_private)
        self.load_public = functools.lru_cache(maxsize=_PUBLIC_CACHE)(self._load_public)

    def __repr__(self) -> str:
        return f"<SignatureScheme {self.name}>"

    @abstractmethod
    def _load_private(self, sk: bytes) -> PrivT: ...

    @abstractmethod
    def _load_public(self, pk: bytes) -> PubT: ...

    @abstractmethod
    def public_bytes(self, priv: PrivT) -> bytes: ...

    @abstractmethod
    def generate(self, rng: Callable[[int], bytes]) -> tuple[bytes, bytes]:
        """A fresh (sk, pk) drawn from ``rng``."""

    @abstractmethod
    def sign(self, sk: bytes, message: bytes) -> bytes: ...

    @abstractmethod
    def verify(self, pk: bytes, message: bytes, signature: bytes) -> None:
        """Raises BadSignature (or InvalidKey for a malformed public key)."""

    def public_key(self, sk: bytes) -> bytes:
        return self.public_bytes(self.load_private(sk))


class EdDsaScheme(SignatureScheme[PrivT, PubT]):
    """Ed25519 / Ed448 (RFC 8032, pure EdDSA with an empty context)."""

    def __init__(
        self,
        scheme_id: int,
        name: str,
        priv_cls: type[ed25519.Ed25519PrivateKey] | type[ed448.Ed448PrivateKey],
        pub_cls: type[ed25519.Ed25519PublicKey] | type[ed448.Ed448PublicKey],
        key_len: int,
    ) -> None:
        self.scheme_id = scheme_id
        self.name = name
        self._priv_cls = priv_cls
        self._pub_cls = pub_cls
        self.sk_len = self.pk_len = key_len
        super().__init__()

    def _load_private(self, sk: bytes) -> PrivT:
        if len(sk) != self.sk_len:
            raise InvalidKey(f"{self.name} private key must be {self.sk_len} bytes")
        return self._priv_cls.from_private_bytes(sk)  # type: ignore[return-value]

    def _load_public(self, pk: bytes) -> PubT:
        if len(pk) != self.pk_len:
            raise InvalidKey(f"{self.name} public key must be {self.pk_len} bytes")
        try:
            return self._pub_cls.from_public_bytes(pk)  # type: ignore[return-value]
        except ValueError:
            raise InvalidKey(f"{self.name} public key is not a valid point") from None

    def public_bytes(self, priv: PrivT) -> bytes:
        return priv.public_key().public_bytes_raw()  # type: ignore[attr-defined, no-any-return]

    def generate(self, rng: Callable[[int], bytes]) -> tuple[bytes, bytes]:
        sk = rng(self.sk_len)
        return sk, self.public_key(sk)

    def sign(self, sk: bytes, message: bytes) -> bytes:
        return self.load_private(sk).sign(message)  # type: ignore[attr-defined, no-any-return]

    def verify(self, pk: bytes, message: bytes, signature: bytes) -> None:
        pub = self.load_public(pk)
        try:
            pub.verify(signature, message)  # type: ignore[attr-defined]
        except InvalidSignature:
            raise BadSignature(f"{self.name} signature does not verify") from None


class EcdsaScheme(SignatureScheme[ec.EllipticCurvePrivateKey, ec.EllipticCurvePublicKey]):
    """ECDSA over a NIST curve with its matching SHA-2 hash, DER signatures."""

    def __init__(
        self,
        scheme_id: int,
        name: str,
        curve: ec.EllipticCurve,
        hash_alg: hashes.HashAlgorithm,
        sk_len: int,
        top_mask: int,
    ) -> None:
        self.scheme_id = scheme_id
        self.name = name
        self.curve = curve
        self.order = curve_order(curve)
        self.sk_len = sk_len
        self.pk_len = 1 + 2 * sk_len
        self._top_mask = top_mask
        self._verify_alg = ec.ECDSA(hash_alg)
        # RFC 6979 deterministic nonces when OpenSSL offers them (>= 3.2), else random ones.
        try:
            probe = ec.derive_private_key(1, curve)
            probe.sign(b"", ec.ECDSA(hash_alg, deterministic_signing=True))
            self._sign_alg = ec.ECDSA(hash_alg, deterministic_signing=True)
        except UnsupportedAlgorithm:  # pragma: no cover
            self._sign_alg = self._verify_alg
        super().__init__()

    def _load_private(self, sk: bytes) -> ec.EllipticCurvePrivateKey:
        # The scalar is a big-endian integer; some encoders drop leading zero bytes (e.g. the
        # official P-521 vectors), so a shorter string denotes the same key. Longer is invalid.
        if not 0 < len(sk) <= self.sk_len:
            raise InvalidKey(f"{self.name} private key must be {self.sk_len} bytes")
        return load_ec_private(self.curve, self.order, sk, self.name)

    def _load_public(self, pk: bytes) -> ec.EllipticCurvePublicKey:
        return load_ec_public(self.curve, pk, self.pk_len, self.name)

    def public_bytes(self, priv: ec.EllipticCurvePrivateKey) -> bytes:
        return ec_public_bytes(priv)

    def generate(self, rng: Callable[[int], bytes]) -> tuple[bytes, bytes]:
        # Rejection sampling of a scalar in [1, order), as in RFC 9180 §7.1.3.
        for _ in range(256):
            raw = rng(self.sk_len)
            d = int.from_bytes(bytes((raw[0] & self._top_mask,)) + raw[1:], "big")
            if 0 < d < self.order:
                sk = d.to_bytes(self.sk_len, "big")
                return sk, self.public_key(sk)
        raise InternalError("the random number generator keeps returning invalid scalars")

    def sign(self, sk: bytes, message: bytes) -> bytes:
        return self.load_private(sk).sign(message, self._sign_alg)

    def verify(self, pk: bytes, message: bytes, signature: bytes) -> None:
        pub = self.load_public(pk)
        try:
            pub.verify(signature, message, self._verify_alg)
        except InvalidSignature:
            raise BadSignature(f"{self.name} signature does not verify") from None


# TLS SignatureScheme code points (RFC 8446 §4.2.3), as named in RFC 9420 §17.1.
ED25519: EdDsaScheme[ed25519.Ed25519PrivateKey, ed25519.Ed25519PublicKey] = EdDsaScheme(
    0x0807, "ed25519", ed25519.Ed25519PrivateKey, ed25519.Ed25519PublicKey, 32
)
ED448: EdDsaScheme[ed448.Ed448PrivateKey, ed448.Ed448PublicKey] = EdDsaScheme(
    0x0808, "ed448", ed448.Ed448PrivateKey, ed448.Ed448PublicKey, 57
)
ECDSA_P256_SHA256 = EcdsaScheme(
    0x0403, "ecdsa_secp256r1_sha256", ec.SECP256R1(), hashes.SHA256(), 32, 0xFF
)
ECDSA_P384_SHA384 = EcdsaScheme(
    0x0503, "ecdsa_secp384r1_sha384", ec.SECP384R1(), hashes.SHA384(), 48, 0xFF
)
ECDSA_P521_SHA512 = EcdsaScheme(
    0x0603, "ecdsa_secp521r1_sha512", ec.SECP521R1(), hashes.SHA512(), 66, 0x01
)
