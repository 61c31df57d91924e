"""HPKE (RFC 9180) composed from pyca/cryptography's X25519/X448/ECDH, HMAC and AEADs.

Owns RFC 9180 §4 (labeled KDF, DHKEM Encap/Decap/AuthEncap/AuthDecap), §5 (key schedule for
the base, psk, auth and auth_psk modes, encryption context, single-shot APIs), §5.3 (Export),
§7.1 (DHKEM(P-256/P-384/P-521/X25519/X448): serialization, DeriveKeyPair, validation), §7.2
(HKDF-SHA256/384/512) and §7.3 (AES-128-GCM, AES-256-GCM, ChaCha20-Poly1305, export-only).

No primitive is implemented here: DH, HMAC and the AEADs are cryptography's. Ephemeral keys
are derived from caller-supplied input keying material (``ikm_e``, normally ``random(Nsk)``,
§4 "GenerateKeyPair = DeriveKeyPair(random(Nsk))"), so every operation is deterministic given
its inputs. :class:`NativeHpke` wraps cryptography's own single-shot HPKE (base mode, empty
AAD, OS randomness) as an optional faster path for the KEMs it supports.

Errors: a bad public key to encrypt to raises :class:`~mls.errors.InvalidKey`; anything wrong
on the receiving side (invalid ``enc``, all-zero DH output, bad tag) raises
:class:`~mls.errors.DecryptFailed`.
"""

from __future__ import annotations

import functools
import hashlib
from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import Any, Generic, TypeVar

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes, hmac
from cryptography.hazmat.primitives import hpke as native_hpke
from cryptography.hazmat.primitives.asymmetric import ec, x448, x25519
from cryptography.hazmat.primitives.ciphers.aead import AESGCM, ChaCha20Poly1305
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from mls.errors import (
    DecryptFailed,
    InvalidKey,
    MessageLimitReached,
    UnsupportedError,
    UsageError,
)

__all__ = [
    "MODE_AUTH",
    "MODE_AUTH_PSK",
    "MODE_BASE",
    "MODE_PSK",
    "Aead",
    "Context",
    "DhKem",
    "Hpke",
    "Kdf",
    "Kem",
    "OneStageKdf",
    "NativeHpke",
    "aead_by_id",
    "hpke_kdf_by_id",
    "hpke_suite",
    "kdf_by_id",
    "kem_by_id",
    "native_hpke_for",
]

# RFC 9180 §5, Table 1.
MODE_BASE = 0x00
MODE_PSK = 0x01
MODE_AUTH = 0x02
MODE_AUTH_PSK = 0x03

_VERSION_LABEL = b"HPKE-v1"

PrivT = TypeVar("PrivT")
PubT = TypeVar("PubT")


# ---------------------------------------------------------------------------------------------
# KDF (RFC 9180 §4, §7.2)


class Kdf:
    """HKDF with one hash function; the labeled variants bind a ``suite_id``."""

    __slots__ = ("_zero_salt", "algorithm", "kdf_id", "name", "nh")

    def __init__(self, kdf_id: int, algorithm: hashes.HashAlgorithm) -> None:
        self.kdf_id = kdf_id
        self.algorithm = algorithm
        self.name = f"HKDF-{algorithm.name.upper()}"
        self.nh = algorithm.digest_size
        # RFC 5869 §2.2: an absent salt is a string of HashLen zeros.
        self._zero_salt = bytes(self.nh)

    def extract(self, salt: bytes, ikm: bytes) -> bytes:
        h = hmac.HMAC(salt or self._zero_salt, self.algorithm)
        h.update(ikm)
        return h.finalize()

    def expand(self, prk: bytes, info: bytes, length: int) -> bytes:
        nh = self.nh
        if length <= nh:
            # One block: T(1) = HMAC(PRK, info || 0x01) (RFC 5869 §2.3), the common case.
            if length <= 0:
                if length == 0:
                    return b""
                raise UsageError("negative HKDF output length")
            h = hmac.HMAC(prk, self.algorithm)
            h.update(info + b"\x01")
            out = h.finalize()
            return out if length == nh else out[:length]
        if length > 255 * nh:
            raise UsageError(f"HKDF-Expand output too long: {length} > {255 * nh}")
        blocks: list[bytes] = []
        t = b""
        for i in range(1, -(-length // nh) + 1):
            h = hmac.HMAC(prk, self.algorithm)
            h.update(t + info + bytes((i,)))
            t = h.finalize()
            blocks.append(t)
        return b"".join(blocks)[:length]

    def labeled_extract(self, suite_id: bytes, salt: bytes, label: bytes, ikm: bytes) -> bytes:
        # RFC 9180 §4: LabeledExtract(salt, label, ikm).
        return self.extract(salt, _VERSION_LABEL + suite_id + label + ikm)

    def labeled_expand(
        self, suite_id: bytes, prk: bytes, label: bytes, info: bytes, length: int
    ) -> bytes:
        # RFC 9180 §4: LabeledExpand(prk, label, info, L).
        labeled_info = length.to_bytes(2, "big") + _VERSION_LABEL + suite_id + label + info
        return self.expand(prk, labeled_info, length)


KDF_HKDF_SHA256 = Kdf(0x0001, hashes.SHA256())
KDF_HKDF_SHA384 = Kdf(0x0002, hashes.SHA384())
KDF_HKDF_SHA512 = Kdf(0x0003, hashes.SHA512())
_KDFS = {k.kdf_id: k for k in (KDF_HKDF_SHA256, KDF_HKDF_SHA384, KDF_HKDF_SHA512)}


def _length_prefixed(x: bytes) -> bytes:
    # draft-ietf-hpke-hpke §3: lengthPrefixed(x) = concat(I2OSP(len(x), 2), x).
    if len(x) > 0xFFFF:
        raise UsageError("HPKE: input longer than 65,535 bytes for a one-stage KDF")
    return len(x).to_bytes(2, "big") + x


class OneStageKdf:
    """A one-stage KDF (draft-ietf-hpke-hpke §4, draft-ietf-hpke-pq §5): SHAKE128/256.

    Only ``Derive`` exists, so it serves HPKE's key schedule and exporter, never MLS (which
    needs Extract and Expand, draft-ietf-mls-pq-ciphersuites §2).
    """

    __slots__ = ("_xof", "kdf_id", "name", "nh")

    def __init__(self, kdf_id: int, name: str, xof: Callable[[bytes], Any], nh: int):
        self.kdf_id = kdf_id
        self.name = name
        self.nh = nh
        self._xof = xof

    def derive(self, ikm: bytes, length: int) -> bytes:
        # draft-ietf-hpke-pq §5: SHAKE<SIZE>.Derive(ikm, L) = SHAKE<SIZE>(M = ikm, d = 8*L).
        out: bytes = self._xof(ikm).digest(length)
        return out

    def labeled_derive(
        self, suite_id: bytes, ikm: bytes, label: bytes, context: bytes, length: int
    ) -> bytes:
        # draft-ietf-hpke-hpke §4: LabeledDerive(ikm, label, context, L).
        labeled = (
            ikm
            + _VERSION_LABEL
            + suite_id
            + _length_prefixed(label)
            + length.to_bytes(2, "big")
            + context
        )
        return self.derive(labeled, length)


KDF_SHAKE128 = OneStageKdf(0x0010, "SHAKE128", hashlib.shake_128, 32)
KDF_SHAKE256 = OneStageKdf(0x0011, "SHAKE256", hashlib.shake_256, 64)
_ONE_STAGE_KDFS = {k.kdf_id: k for k in (KDF_SHAKE128, KDF_SHAKE256)}
# draft-ietf-hpke-pq §5: TurboSHAKE128/256 (0x0012, 0x0013); neither hashlib nor cryptography
# offers TurboSHAKE, so these are reported as unsupported.
_MISSING_KDFS = {0x0012: "TurboSHAKE128", 0x0013: "TurboSHAKE256"}


def kdf_by_id(kdf_id: int) -> Kdf:
    """A two-stage (HKDF) KDF, the kind MLS needs; raises UnsupportedError."""
    try:
        return _KDFS[kdf_id]
    except KeyError:
        raise UnsupportedError(f"HPKE KDF 0x{kdf_id:04x} is not implemented") from None


def hpke_kdf_by_id(kdf_id: int) -> Kdf | OneStageKdf:
    """Any HPKE KDF: HKDF (RFC 9180) or SHAKE (draft-ietf-hpke-pq); raises UnsupportedError."""
    one = _ONE_STAGE_KDFS.get(kdf_id)
    if one is not None:
        return one
    if kdf_id in _MISSING_KDFS:
        raise UnsupportedError(
            f"HPKE KDF 0x{kdf_id:04x} ({_MISSING_KDFS[kdf_id]}) is not available: neither "
            "hashlib nor cryptography implements TurboSHAKE"
        )
    return kdf_by_id(kdf_id)


# ---------------------------------------------------------------------------------------------
# AEAD (RFC 9180 §7.3)


class Aead:
    """One AEAD algorithm; ``cls is None`` is the export-only mode (0xFFFF)."""

    __slots__ = ("aead_id", "cls", "name", "nk", "nn", "nt")

    def __init__(
        self,
        aead_id: int,
        name: str,
        cls: type[AESGCM] | type[ChaCha20Poly1305] | None,
        nk: int,
        nn: int,
        nt: int,
    ) -> None:
        self.aead_id = aead_id
        self.name = name
        self.cls = cls
        self.nk = nk
        self.nn = nn
        self.nt = nt

    def new(self, key: bytes) -> AESGCM | ChaCha20Poly1305:
        if self.cls is None:
            raise UsageError("export-only HPKE context cannot seal or open (RFC 9180 §5.3)")
        if len(key) != self.nk:
            raise UsageError(f"{self.name} key must be {self.nk} bytes")
        return self.cls(key)


AEAD_AES_128_GCM = Aead(0x0001, "AES-128-GCM", AESGCM, 16, 12, 16)
AEAD_AES_256_GCM = Aead(0x0002, "AES-256-GCM", AESGCM, 32, 12, 16)
AEAD_CHACHA20_POLY1305 = Aead(0x0003, "ChaCha20Poly1305", ChaCha20Poly1305, 32, 12, 16)
AEAD_EXPORT_ONLY = Aead(0xFFFF, "Export-only", None, 0, 0, 0)
_AEADS = {
    a.aead_id: a
    for a in (AEAD_AES_128_GCM, AEAD_AES_256_GCM, AEAD_CHACHA20_POLY1305, AEAD_EXPORT_ONLY)
}


def aead_by_id(aead_id: int) -> Aead:
    try:
        return _AEADS[aead_id]
    except KeyError:
        raise UnsupportedError(f"HPKE AEAD 0x{aead_id:04x} is not implemented") from None


# ---------------------------------------------------------------------------------------------
# DHKEM (RFC 9180 §4.1, §7.1)


class Kem(ABC):
    """The HPKE KEM interface (RFC 9180 §4) over serialized keys.

    Implemented by :class:`DhKem` here and by the post-quantum KEMs of :mod:`mls.crypto.pq`.
    ``encap`` takes ``ikm_e`` (Nsk bytes) for the KEMs that derive their ephemeral key from it;
    ``sk_s``/``pk_s`` select AuthEncap/AuthDecap, which only DHKEMs have.
    """

    kem_id: int
    name: str
    n_secret: int
    n_enc: int
    n_pk: int
    n_sk: int
    suite_id: bytes
    load_public: Callable[[bytes], object]

    @abstractmethod
    def derive_key_pair(self, ikm: bytes) -> tuple[bytes, bytes]:
        """DeriveKeyPair(ikm): (SerializePrivateKey(sk), SerializePublicKey(pk))."""

    @abstractmethod
    def public_key(self, sk: bytes) -> bytes:
        """SerializePublicKey(pk(sk)); raises InvalidKey."""

    @abstractmethod
    def load_private(self, sk: bytes) -> object:
        """DeserializePrivateKey; raises InvalidKey."""

    @abstractmethod
    def encap(self, pk_r: bytes, ikm_e: bytes, sk_s: bytes | None = None) -> tuple[bytes, bytes]:
        """Encap (AuthEncap with ``sk_s``): (shared_secret, enc); raises InvalidKey."""

    @abstractmethod
    def decap(self, enc: bytes, sk_r: bytes, pk_s: bytes | None = None) -> bytes:
        """Decap (AuthDecap with ``pk_s``); raises DecryptFailed."""


class DhKem(Kem, Generic[PrivT, PubT]):
    """DHKEM(Group, KDF). Keys cross the API as serialized bytes (§7.1.1, §7.1.2)."""

    n_dh: int
    kdf: Kdf

    def __init__(self) -> None:
        # RFC 9180 §4.1: suite_id = concat("KEM", I2OSP(kem_id, 2)).
        self.suite_id = b"KEM" + self.kem_id.to_bytes(2, "big")
        # Loaded (validated) public keys by their encoding: the same recipient keys are
        # encrypted to again and again (TreeKEM copath nodes), and loading EC points is costly.
        self.load_public = functools.lru_cache(maxsize=4096)(self._load_public)

    # Group-specific hooks.

    @abstractmethod
    def _derive_private(self, ikm: bytes) -> tuple[PrivT, bytes]:
        """RFC 9180 §7.1.3 DeriveKeyPair: the private key object and SerializePrivateKey."""

    @abstractmethod
    def load_private(self, sk: bytes) -> PrivT:
        """DeserializePrivateKey; raises InvalidKey."""

    @abstractmethod
    def _load_public(self, pk: bytes) -> PubT:
        """DeserializePublicKey with the validation of §7.1.4; raises InvalidKey."""

    def _pub(self, pk: bytes) -> PubT:
        return self.load_public(pk)  # type: ignore[return-value]

    @abstractmethod
    def public_bytes(self, priv: PrivT) -> bytes:
        """SerializePublicKey(pk(sk))."""

    @abstractmethod
    def private_bytes(self, priv: PrivT) -> bytes:
        """SerializePrivateKey(sk)."""

    @abstractmethod
    def _dh(self, priv: PrivT, pub: PubT) -> bytes:
        """DH(sk, pk); raises InvalidKey when the result is invalid (§7.1.4)."""

    # Generic DHKEM.

    def derive_key_pair(self, ikm: bytes) -> tuple[bytes, bytes]:
        priv, sk = self._derive_private(ikm)
        return sk, self.public_bytes(priv)

    def public_key(self, sk: bytes) -> bytes:
        return self.public_bytes(self.load_private(sk))

    def _extract_and_expand(self, dh: bytes, kem_context: bytes) -> bytes:
        kdf, sid = self.kdf, self.suite_id
        eae_prk = kdf.labeled_extract(sid, b"", b"eae_prk", dh)
        return kdf.labeled_expand(sid, eae_prk, b"shared_secret", kem_context, self.n_secret)

    def encap(self, pk_r: bytes, ikm_e: bytes, sk_s: bytes | None = None) -> tuple[bytes, bytes]:
        """Encap (or AuthEncap when ``sk_s`` is given); returns (shared_secret, enc)."""
        pub_r = self._pub(pk_r)
        priv_e, _ = self._derive_private(ikm_e)
        enc = self.public_bytes(priv_e)
        dh = self._dh(priv_e, pub_r)
        kem_context = enc + pk_r
        if sk_s is not None:
            priv_s = self.load_private(sk_s)
            dh += self._dh(priv_s, pub_r)
            kem_context += self.public_bytes(priv_s)
        return self._extract_and_expand(dh, kem_context), enc

    def decap(self, enc: bytes, sk_r: bytes, pk_s: bytes | None = None) -> bytes:
        """Decap (or AuthDecap when ``pk_s`` is given); raises DecryptFailed."""
        priv_r = self.load_private(sk_r)
        try:
            # Ephemeral keys are used once: load them without filling the cache.
            pub_e = self._load_public(enc)
            dh = self._dh(priv_r, pub_e)
        except InvalidKey as exc:
            raise DecryptFailed(f"HPKE: invalid encapsulated key ({exc})") from None
        kem_context = enc + self.public_bytes(priv_r)
        if pk_s is not None:
            dh += self._dh(priv_r, self._pub(pk_s))
            kem_context += pk_s
        return self._extract_and_expand(dh, kem_context)


class XKem(DhKem[PrivT, PubT]):
    """DHKEM(X25519, HKDF-SHA256) and DHKEM(X448, HKDF-SHA512) (RFC 7748 curves)."""

    def __init__(
        self,
        kem_id: int,
        name: str,
        priv_cls: type[x25519.X25519PrivateKey] | type[x448.X448PrivateKey],
        pub_cls: type[x25519.X25519PublicKey] | type[x448.X448PublicKey],
        n_key: int,
        kdf: Kdf,
    ) -> None:
        self.kem_id = kem_id
        self.name = name
        self._priv_cls = priv_cls
        self._pub_cls = pub_cls
        self.n_secret = kdf.nh
        self.n_enc = self.n_pk = self.n_sk = self.n_dh = n_key
        self._zero = bytes(n_key)
        self.kdf = kdf
        super().__init__()

    def _derive_private(self, ikm: bytes) -> tuple[PrivT, bytes]:
        # RFC 9180 §7.1.3: sk = LabeledExpand(dkp_prk, "sk", "", Nsk).
        kdf, sid = self.kdf, self.suite_id
        dkp_prk = kdf.labeled_extract(sid, b"", b"dkp_prk", ikm)
        sk = kdf.labeled_expand(sid, dkp_prk, b"sk", b"", self.n_sk)
        return self.load_private(sk), sk

    def load_private(self, sk: bytes) -> PrivT:
        if len(sk) != self.n_sk:
            raise InvalidKey(f"{self.name} private key must be {self.n_sk} bytes")
        # cryptography clamps the scalar on use (RFC 9180 §7.1.2, RFC 7748 §5).
        return self._priv_cls.from_private_bytes(sk)  # type: ignore[return-value]

    def _load_public(self, pk: bytes) -> PubT:
        if len(pk) != self.n_pk:
            raise InvalidKey(f"{self.name} public key must be {self.n_pk} bytes")
        return self._pub_cls.from_public_bytes(pk)  # type: ignore[return-value]

    def public_bytes(self, priv: PrivT) -> bytes:
        return priv.public_key().public_bytes_raw()  # type: ignore[attr-defined, no-any-return]

    def private_bytes(self, priv: PrivT) -> bytes:
        return priv.private_bytes_raw()  # type: ignore[attr-defined, no-any-return]

    def _dh(self, priv: PrivT, pub: PubT) -> bytes:
        try:
            shared: bytes = priv.exchange(pub)  # type: ignore[attr-defined]
        except ValueError:
            # OpenSSL refuses an all-zero result (a low-order public key).
            raise InvalidKey(f"{self.name}: DH output is all zero") from None
        # RFC 9180 §7.1.4: the all-zero value MUST be rejected; check it ourselves too.
        if shared == self._zero:
            raise InvalidKey(f"{self.name}: DH output is all zero")
        return shared


_CURVE_ORDERS = {
    "secp256r1": 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551,
    "secp384r1": int(
        "ffffffffffffffffffffffffffffffffffffffffffffffffc7634d81f4372ddf581a0db248b0a77aecec196accc52973",
        16,
    ),
    "secp521r1": int(
        "01ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff"
        "fa51868783bf2f966b7fcc0148f709a5d03bb5c9b8899c47aebb6fb71e91386409",
        16,
    ),
}


def curve_order(curve: ec.EllipticCurve) -> int:
    """The order of the NIST curve's base point (RFC 9180 §7.1.3)."""
    return _CURVE_ORDERS[curve.name]


def load_ec_private(
    curve: ec.EllipticCurve, order: int, sk: bytes, name: str
) -> ec.EllipticCurvePrivateKey:
    """A NIST-curve private key from its big-endian scalar (RFC 9180 §7.1.2, SEC 1)."""
    d = int.from_bytes(sk, "big")
    # RFC 9180 §7.1.2: reject keys equivalent to 0 (mod order); SECG wants d < order.
    if not 0 < d < order:
        raise InvalidKey(f"{name} private key out of range")
    return ec.derive_private_key(d, curve)


def load_ec_public(
    curve: ec.EllipticCurve, pk: bytes, n_pk: int, name: str
) -> ec.EllipticCurvePublicKey:
    """A NIST-curve public key: only the uncompressed form (RFC 9180 §7.1.1, RFC 9420
    §5.1.1); cryptography checks the point is on the curve (§7.1.4 full validation)."""
    if len(pk) != n_pk or pk[0] != 0x04:
        raise InvalidKey(f"{name} public key must be an uncompressed point")
    try:
        return ec.EllipticCurvePublicKey.from_encoded_point(curve, pk)
    except ValueError:
        raise InvalidKey(f"{name} public key is not a valid point") from None


def ec_public_bytes(priv: ec.EllipticCurvePrivateKey) -> bytes:
    return priv.public_key().public_bytes(Encoding.X962, PublicFormat.UncompressedPoint)


class EcKem(DhKem[ec.EllipticCurvePrivateKey, ec.EllipticCurvePublicKey]):
    """DHKEM(P-256/P-384/P-521) with uncompressed points (RFC 9180 §7.1.1)."""

    def __init__(
        self, kem_id: int, name: str, curve: ec.EllipticCurve, n_sk: int, bitmask: int, kdf: Kdf
    ) -> None:
        self.kem_id = kem_id
        self.name = name
        self.curve = curve
        self.order = curve_order(curve)
        self.n_sk = self.n_dh = n_sk
        self.n_pk = self.n_enc = 1 + 2 * n_sk
        self.n_secret = kdf.nh
        self.bitmask = bitmask
        self.kdf = kdf
        super().__init__()

    def _derive_private(self, ikm: bytes) -> tuple[ec.EllipticCurvePrivateKey, bytes]:
        # RFC 9180 §7.1.3: rejection sampling of the scalar, top byte masked by `bitmask`.
        kdf, sid = self.kdf, self.suite_id
        dkp_prk = kdf.labeled_extract(sid, b"", b"dkp_prk", ikm)
        for counter in range(256):
            candidate = kdf.labeled_expand(sid, dkp_prk, b"candidate", bytes((counter,)), self.n_sk)
            sk = int.from_bytes(bytes((candidate[0] & self.bitmask,)) + candidate[1:], "big")
            if 0 < sk < self.order:
                return ec.derive_private_key(sk, self.curve), sk.to_bytes(self.n_sk, "big")
        raise InvalidKey(f"{self.name}: DeriveKeyPairError")  # pragma: no cover

    def load_private(self, sk: bytes) -> ec.EllipticCurvePrivateKey:
        if len(sk) != self.n_sk:
            raise InvalidKey(f"{self.name} private key must be {self.n_sk} bytes")
        return load_ec_private(self.curve, self.order, sk, self.name)

    def _load_public(self, pk: bytes) -> ec.EllipticCurvePublicKey:
        return load_ec_public(self.curve, pk, self.n_pk, self.name)

    def public_bytes(self, priv: ec.EllipticCurvePrivateKey) -> bytes:
        return ec_public_bytes(priv)

    def private_bytes(self, priv: ec.EllipticCurvePrivateKey) -> bytes:
        return priv.private_numbers().private_value.to_bytes(self.n_sk, "big")

    def _dh(self, priv: ec.EllipticCurvePrivateKey, pub: ec.EllipticCurvePublicKey) -> bytes:
        try:
            return priv.exchange(ec.ECDH(), pub)
        except ValueError:
            raise InvalidKey(f"{self.name}: ECDH failed") from None


KEM_P256 = EcKem(0x0010, "DHKEM(P-256, HKDF-SHA256)", ec.SECP256R1(), 32, 0xFF, KDF_HKDF_SHA256)
KEM_P384 = EcKem(0x0011, "DHKEM(P-384, HKDF-SHA384)", ec.SECP384R1(), 48, 0xFF, KDF_HKDF_SHA384)
KEM_P521 = EcKem(0x0012, "DHKEM(P-521, HKDF-SHA512)", ec.SECP521R1(), 66, 0x01, KDF_HKDF_SHA512)
KEM_X25519: XKem[x25519.X25519PrivateKey, x25519.X25519PublicKey] = XKem(
    0x0020,
    "DHKEM(X25519, HKDF-SHA256)",
    x25519.X25519PrivateKey,
    x25519.X25519PublicKey,
    32,
    KDF_HKDF_SHA256,
)
KEM_X448: XKem[x448.X448PrivateKey, x448.X448PublicKey] = XKem(
    0x0021,
    "DHKEM(X448, HKDF-SHA512)",
    x448.X448PrivateKey,
    x448.X448PublicKey,
    56,
    KDF_HKDF_SHA512,
)
_KEMS: dict[int, Kem] = {k.kem_id: k for k in (KEM_P256, KEM_P384, KEM_P521, KEM_X25519, KEM_X448)}


def kem_by_id(kem_id: int) -> Kem:
    """The KEM with this RFC 9180 / draft-ietf-hpke-pq id; raises UnsupportedError."""
    kem = _KEMS.get(kem_id)
    if kem is not None:
        return kem
    # The post-quantum KEMs live in their own module (imported lazily: it needs hashlib's
    # SHAKE and cryptography's ML-KEM, and reports clearly when those are missing).
    from mls.crypto import pq

    return pq.kem_by_id(kem_id)


# ---------------------------------------------------------------------------------------------
# Key schedule and context (RFC 9180 §5)


class Context:
    """An HPKE encryption context (RFC 9180 §5.2); its secrets never appear in ``repr``."""

    __slots__ = ("_aead", "_base_nonce", "_cipher", "_exporter_secret", "_hpke", "_key", "_seq")

    def __init__(self, hpke: Hpke, key: bytes, base_nonce: bytes, exporter_secret: bytes) -> None:
        self._hpke = hpke
        self._aead = hpke.aead
        self._key = key
        self._base_nonce = base_nonce
        self._exporter_secret = exporter_secret
        self._seq = 0
        self._cipher = None if hpke.aead.cls is None else hpke.aead.new(key)

    def __repr__(self) -> str:
        return f"<hpke.Context {self._hpke!r} seq={self._seq}>"

    @property
    def key(self) -> bytes:
        return self._key

    @property
    def base_nonce(self) -> bytes:
        return self._base_nonce

    @property
    def exporter_secret(self) -> bytes:
        return self._exporter_secret

    @property
    def seq(self) -> int:
        return self._seq

    def _nonce(self) -> bytes:
        nn = self._aead.nn
        if self._seq >= (1 << (8 * nn)) - 1:
            raise MessageLimitReached("HPKE sequence number overflow")
        return (int.from_bytes(self._base_nonce, "big") ^ self._seq).to_bytes(nn, "big")

    def seal(self, aad: bytes, plaintext: bytes) -> bytes:
        if self._cipher is None:
            raise UsageError("export-only HPKE context cannot seal (RFC 9180 §5.3)")
        ct = self._cipher.encrypt(self._nonce(), plaintext, aad)
        self._seq += 1
        return ct

    def open(self, aad: bytes, ciphertext: bytes) -> bytes:
        if self._cipher is None:
            raise UsageError("export-only HPKE context cannot open (RFC 9180 §5.3)")
        try:
            pt = self._cipher.decrypt(self._nonce(), ciphertext, aad)
        except InvalidTag:
            raise DecryptFailed("HPKE: AEAD open failed") from None
        self._seq += 1
        return pt

    def export(self, exporter_context: bytes, length: int) -> bytes:
        # RFC 9180 §5.3: LabeledExpand(exporter_secret, "sec", exporter_context, L); with a
        # one-stage KDF, LabeledDerive (draft-ietf-hpke-hpke §5.3).
        h = self._hpke
        if isinstance(h.kdf, OneStageKdf):
            return h.kdf.labeled_derive(
                h.suite_id, self._exporter_secret, b"sec", exporter_context, length
            )
        return h.kdf.labeled_expand(
            h.suite_id, self._exporter_secret, b"sec", exporter_context, length
        )


class Hpke:
    """One HPKE ciphersuite (KEM, KDF, AEAD) with all four modes of RFC 9180 §5."""

    def __init__(self, kem: Kem, kdf: Kdf | OneStageKdf, aead: Aead) -> None:
        self.kem = kem
        self.kdf = kdf
        self.aead = aead
        # RFC 9180 §5.1: suite_id = concat("HPKE", I2OSP(kem_id, 2), I2OSP(kdf_id, 2), ...).
        self.suite_id = (
            b"HPKE"
            + kem.kem_id.to_bytes(2, "big")
            + kdf.kdf_id.to_bytes(2, "big")
            + aead.aead_id.to_bytes(2, "big")
        )
        # psk_id_hash for the empty psk_id is a per-suite constant (base and auth modes).
        self._empty_psk_id_hash = (
            b""
            if isinstance(kdf, OneStageKdf)
            else kdf.labeled_extract(self.suite_id, b"", b"psk_id_hash", b"")
        )
        # MLS reuses one info (EncryptContext) for every recipient of an UpdatePath.
        self._info_hash = functools.lru_cache(maxsize=256)(self._info_hash_uncached)

    def __repr__(self) -> str:
        return f"Hpke({self.kem.name}, {self.kdf.name}, {self.aead.name})"

    def _info_hash_uncached(self, info: bytes) -> bytes:
        assert isinstance(self.kdf, Kdf)
        return self.kdf.labeled_extract(self.suite_id, b"", b"info_hash", info)

    def _combine_one_stage(
        self,
        kdf: OneStageKdf,
        mode: int,
        shared_secret: bytes,
        info: bytes,
        psk: bytes,
        psk_id: bytes,
    ) -> tuple[bytes, bytes, bytes, bytes]:
        # draft-ietf-hpke-hpke §5.1 CombineSecrets_OneStage.
        secrets = _length_prefixed(psk) + _length_prefixed(shared_secret)
        context = bytes((mode,)) + _length_prefixed(psk_id) + _length_prefixed(info)
        nk, nn = self.aead.nk, self.aead.nn
        secret = kdf.labeled_derive(self.suite_id, secrets, b"secret", context, nk + nn + kdf.nh)
        return context, secret[:nk], secret[nk : nk + nn], secret[nk + nn :]

    def key_schedule(
        self, mode: int, shared_secret: bytes, info: bytes, psk: bytes, psk_id: bytes
    ) -> tuple[bytes, bytes, bytes, bytes]:
        """RFC 9180 §5.1 KeySchedule: (key_schedule_context, key, base_nonce, exporter_secret)."""
        _verify_psk_inputs(mode, psk, psk_id)
        kdf, sid = self.kdf, self.suite_id
        if isinstance(kdf, OneStageKdf):
            return self._combine_one_stage(kdf, mode, shared_secret, info, psk, psk_id)
        psk_id_hash = (
            kdf.labeled_extract(sid, b"", b"psk_id_hash", psk_id)
            if psk_id
            else self._empty_psk_id_hash
        )
        context = bytes((mode,)) + psk_id_hash + self._info_hash(info)
        secret = kdf.labeled_extract(sid, shared_secret, b"secret", psk)
        key = kdf.labeled_expand(sid, secret, b"key", context, self.aead.nk)
        base_nonce = kdf.labeled_expand(sid, secret, b"base_nonce", context, self.aead.nn)
        exporter_secret = kdf.labeled_expand(sid, secret, b"exp", context, kdf.nh)
        return context, key, base_nonce, exporter_secret

    def setup_sender(
        self,
        mode: int,
        pk_r: bytes,
        info: bytes,
        ikm_e: bytes,
        *,
        psk: bytes = b"",
        psk_id: bytes = b"",
        sk_s: bytes | None = None,
    ) -> tuple[bytes, Context]:
        """SetupBaseS/SetupPSKS/SetupAuthS/SetupAuthPSKS; ``sk_s`` for the auth modes."""
        _check_auth(mode, sk_s)
        shared_secret, enc = self.kem.encap(pk_r, ikm_e, sk_s)
        _, key, nonce, exp = self.key_schedule(mode, shared_secret, info, psk, psk_id)
        return enc, Context(self, key, nonce, exp)

    def setup_receiver(
        self,
        mode: int,
        enc: bytes,
        sk_r: bytes,
        info: bytes,
        *,
        psk: bytes = b"",
        psk_id: bytes = b"",
        pk_s: bytes | None = None,
    ) -> Context:
        """SetupBaseR/SetupPSKR/SetupAuthR/SetupAuthPSKR; ``pk_s`` for the auth modes."""
        _check_auth(mode, pk_s)
        shared_secret = self.kem.decap(enc, sk_r, pk_s)
        _, key, nonce, exp = self.key_schedule(mode, shared_secret, info, psk, psk_id)
        return Context(self, key, nonce, exp)

    def _base_key_nonce(self, shared_secret: bytes, info: bytes) -> tuple[bytes, bytes]:
        # The single-shot base-mode path: the key schedule without the unused exporter secret.
        kdf, sid = self.kdf, self.suite_id
        if isinstance(kdf, OneStageKdf):
            _, key, nonce, _ = self._combine_one_stage(
                kdf, MODE_BASE, shared_secret, info, b"", b""
            )
            return key, nonce
        context = b"\x00" + self._empty_psk_id_hash + self._info_hash(info)
        secret = kdf.labeled_extract(sid, shared_secret, b"secret", b"")
        key = kdf.labeled_expand(sid, secret, b"key", context, self.aead.nk)
        nonce = kdf.labeled_expand(sid, secret, b"base_nonce", context, self.aead.nn)
        return key, nonce

    def seal_base(
        self, pk_r: bytes, info: bytes, aad: bytes, plaintext: bytes, ikm_e: bytes
    ) -> tuple[bytes, bytes]:
        """Single-shot SealBase (RFC 9180 §6.1): returns (enc, ciphertext)."""
        shared_secret, enc = self.kem.encap(pk_r, ikm_e)
        key, nonce = self._base_key_nonce(shared_secret, info)
        return enc, self.aead.new(key).encrypt(nonce, plaintext, aad)

    def open_base(
        self, enc: bytes, sk_r: bytes, info: bytes, aad: bytes, ciphertext: bytes
    ) -> bytes:
        """Single-shot OpenBase (RFC 9180 §6.1); raises DecryptFailed."""
        shared_secret = self.kem.decap(enc, sk_r)
        key, nonce = self._base_key_nonce(shared_secret, info)
        try:
            return self.aead.new(key).decrypt(nonce, ciphertext, aad)
        except InvalidTag:
            raise DecryptFailed("HPKE: AEAD open failed") from None


def _verify_psk_inputs(mode: int, psk: bytes, psk_id: bytes) -> None:
    # RFC 9180 §5.1 VerifyPSKInputs.
    got_psk = psk != b""
    if got_psk != (psk_id != b""):
        raise UsageError("HPKE: inconsistent PSK inputs")
    if got_psk and mode in (MODE_BASE, MODE_AUTH):
        raise UsageError("HPKE: PSK input provided when not needed")
    if not got_psk and mode in (MODE_PSK, MODE_AUTH_PSK):
        raise UsageError("HPKE: missing required PSK input")
    if mode not in (MODE_BASE, MODE_PSK, MODE_AUTH, MODE_AUTH_PSK):
        raise UsageError(f"HPKE: unknown mode {mode}")


def _check_auth(mode: int, key: bytes | None) -> None:
    if (key is not None) != (mode in (MODE_AUTH, MODE_AUTH_PSK)):
        raise UsageError("HPKE: a sender key is required exactly in the auth modes")


@functools.cache
def hpke_suite(kem_id: int, kdf_id: int, aead_id: int) -> Hpke:
    """The :class:`Hpke` for a (KEM, KDF, AEAD) triple; raises UnsupportedError."""
    return Hpke(kem_by_id(kem_id), hpke_kdf_by_id(kdf_id), aead_by_id(aead_id))


# ---------------------------------------------------------------------------------------------
# cryptography's native HPKE (base mode, empty AAD only)

_NATIVE_KEMS = {
    KEM_X25519.kem_id: native_hpke.KEM.X25519,
    KEM_P256.kem_id: native_hpke.KEM.P256,
    KEM_P384.kem_id: native_hpke.KEM.P384,
    KEM_P521.kem_id: native_hpke.KEM.P521,
}
_NATIVE_KDFS = {
    KDF_HKDF_SHA256.kdf_id: native_hpke.KDF.HKDF_SHA256,
    KDF_HKDF_SHA384.kdf_id: native_hpke.KDF.HKDF_SHA384,
    KDF_HKDF_SHA512.kdf_id: native_hpke.KDF.HKDF_SHA512,
}
_NATIVE_AEADS = {
    AEAD_AES_128_GCM.aead_id: native_hpke.AEAD.AES_128_GCM,
    AEAD_AES_256_GCM.aead_id: native_hpke.AEAD.AES_256_GCM,
    AEAD_CHACHA20_POLY1305.aead_id: native_hpke.AEAD.CHACHA20_POLY1305,
}


class NativeHpke:
    """cryptography's single-shot HPKE: base mode, empty AAD, ephemeral keys from the OS.

    It cannot take an injected RNG, so a provider with a deterministic RNG must not seal with
    it; opening involves no randomness and is always reproducible.
    """

    def __init__(self, hpke: Hpke) -> None:
        self.hpke = hpke
        self._n_enc = hpke.kem.n_enc
        self._suite = native_hpke.Suite(
            _NATIVE_KEMS[hpke.kem.kem_id],
            _NATIVE_KDFS[hpke.kdf.kdf_id],
            _NATIVE_AEADS[hpke.aead.aead_id],
        )

    def __repr__(self) -> str:
        return f"NativeHpke({self.hpke!r})"

    def seal(self, pk_r: bytes, info: bytes, plaintext: bytes) -> tuple[bytes, bytes]:
        """SealBase(pk_r, info, "", plaintext) -> (enc, ciphertext)."""
        pub = self.hpke.kem.load_public(pk_r)
        try:
            out = self._suite.encrypt(plaintext, pub, info)  # type: ignore[arg-type]
        except ValueError:
            # OpenSSL refuses an all-zero DH output (a low-order X25519 point, §7.1.4).
            raise InvalidKey(f"{self.hpke.kem.name}: DH output is all zero") from None
        n = self._n_enc
        return out[:n], out[n:]

    def open(self, enc: bytes, sk_r: bytes, info: bytes, ciphertext: bytes) -> bytes:
        """OpenBase(enc, sk_r, info, "", ciphertext); raises DecryptFailed."""
        priv = self.hpke.kem.load_private(sk_r)
        if len(enc) != self._n_enc:
            raise DecryptFailed("HPKE: invalid encapsulated key length")
        try:
            return self._suite.decrypt(enc + ciphertext, priv, info)  # type: ignore[arg-type]
        except (InvalidTag, ValueError):
            raise DecryptFailed("HPKE: open failed") from None


def native_hpke_for(hpke: Hpke) -> NativeHpke | None:
    """The native wrapper for ``hpke``, or None when cryptography does not offer its suite."""
    if (
        hpke.kem.kem_id in _NATIVE_KEMS
        and hpke.kdf.kdf_id in _NATIVE_KDFS
        and hpke.aead.aead_id in _NATIVE_AEADS
    ):
        return NativeHpke(hpke)
    return None
