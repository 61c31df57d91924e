"""Post-quantum KEMs for HPKE and ML-DSA signatures, composed from pyca/cryptography.

- ML-KEM-768/1024 as HPKE KEMs 0x0041/0x0042 (draft-ietf-hpke-pq §3): the private key is the
  64-byte seed ``d || z``; ``DeriveKeyPair(ikm) = SHAKE256.LabeledDerive(ikm, "DeriveKeyPair",
  "", 64)`` with suite_id ``"KEM" || kem_id``.
- MLKEM768-X25519 = X-Wing, HPKE KEM 0x647a (draft-connolly-cfrg-xwing-kem, draft-ietf-hpke-pq
  §4): ML-KEM-768 and X25519 joined by the SHA3-256 combiner; 32-byte seed private keys.
- ML-DSA-44/65/87 (FIPS 204, draft-ietf-tls-mldsa): pure ML-DSA with the empty context;
  private keys are the 32-byte seed ``xi``, public keys the FIPS 204 encoding.

Nothing here implements a lattice or a curve: ML-KEM, ML-DSA and X25519 are cryptography's (and
so OpenSSL's), SHAKE256 and SHA3-256 are hashlib's (OpenSSL's). Where the installed
cryptography/OpenSSL lacks ML-KEM or ML-DSA, every use raises :class:`UnsupportedError` saying
why (:func:`mlkem_unavailable`, :func:`mldsa_unavailable`).

*Randomness.* cryptography offers no derandomized ML-KEM encapsulation (FIPS 203
``Encaps_internal``) and signs ML-DSA in the hedged mode, so encapsulation and signing draw from
OpenSSL's generator, not from the provider's injected ``rng``; key generation still goes through
``DeriveKeyPair(rng(Nsk))`` and is reproducible. ``ikm_e`` is accepted and ignored by
:meth:`MlKem.encap` and :meth:`XWing.encap` for that reason.

- MLKEM768-P256 (0x0050) and MLKEM1024-P384 (0x0051) (draft-ietf-hpke-pq §4): ML-KEM with a
  NIST curve, the generic hybrid construction (:class:`NistHybrid`).

Not offered: ML-KEM-512 (not in cryptography).
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Callable
from typing import Any

from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives.asymmetric import ec, x25519

from mls.crypto.hpke import KDF_SHAKE256, Kem, curve_order, ec_public_bytes, load_ec_public
from mls.crypto.signatures import SignatureScheme
from mls.errors import BadSignature, DecryptFailed, InvalidKey, UnsupportedError

__all__ = [
    "KEM_MLKEM768",
    "KEM_MLKEM1024",
    "KEM_MLKEM1024_P384",
    "KEM_MLKEM768_P256",
    "KEM_XWING",
    "MLDSA44",
    "MLDSA65",
    "MLDSA87",
    "MlDsaScheme",
    "MlKem",
    "NistHybrid",
    "XWing",
    "kem_by_id",
    "mldsa_unavailable",
    "mlkem_unavailable",
]

try:  # cryptography >= 47 has the modules; OpenSSL >= 3.5 (or AWS-LC) has the algorithms.
    from cryptography.hazmat.primitives.asymmetric import mldsa as _mldsa
    from cryptography.hazmat.primitives.asymmetric import mlkem as _mlkem
except ImportError:  # pragma: no cover - depends on the installed cryptography
    _mlkem = None  # type: ignore[assignment]
    _mldsa = None  # type: ignore[assignment]

# ---------------------------------------------------------------------------------------------
# Feature detection


@functools.cache
def mlkem_unavailable() -> str | None:
    """None when ML-KEM-768/1024 work here, else why not (for errors and test skips)."""
    import cryptography

    if _mlkem is None:  # pragma: no cover
        return f"cryptography {cryptography.__version__} has no ML-KEM (needs >= 47)"  # type: ignore[unreachable]
    try:
        _mlkem.MLKEM768PrivateKey.from_seed_bytes(bytes(64))
        _mlkem.MLKEM1024PrivateKey.from_seed_bytes(bytes(64))
    except UnsupportedAlgorithm:  # pragma: no cover
        return f"the OpenSSL under cryptography {cryptography.__version__} lacks ML-KEM"
    return None


@functools.cache
def mldsa_unavailable() -> str | None:
    """None when ML-DSA-44/65/87 work here, else why not."""
    import cryptography

    if _mldsa is None:  # pragma: no cover
        return f"cryptography {cryptography.__version__} has no ML-DSA (needs >= 47)"  # type: ignore[unreachable]
    try:
        _mldsa.MLDSA44PrivateKey.from_seed_bytes(bytes(32))
    except UnsupportedAlgorithm:  # pragma: no cover
        return f"the OpenSSL under cryptography {cryptography.__version__} lacks ML-DSA"
    return None


def _require_mlkem() -> None:
    why = mlkem_unavailable()
    if why is not None:  # pragma: no cover
        raise UnsupportedError(f"ML-KEM is unavailable: {why}")


def _require_mldsa() -> None:
    why = mldsa_unavailable()
    if why is not None:  # pragma: no cover
        raise UnsupportedError(f"ML-DSA is unavailable: {why}")


# ---------------------------------------------------------------------------------------------
# KEMs

# How a KEM turns DeriveKeyPair's ikm into its private key (the seed).
DERIVE_HPKE_PQ = "hpke-pq"  # draft-ietf-hpke-pq-04: SHAKE256.LabeledDerive
DERIVE_TS_MLS_1 = "ts-mls-1"  # ts-mls 1.x (@hpke): ML-KEM ikm as is, X-Wing SHAKE256(ikm, 32)


class _PqKem(Kem):
    """Shared parts: suite_id, seed derivation, the public key cache, no auth modes."""

    n_secret = 32

    def __init__(self, kem_id: int, name: str, n_sk: int, n_pk: int, n_enc: int, derive: str):
        if derive not in (DERIVE_HPKE_PQ, DERIVE_TS_MLS_1):
            raise UnsupportedError(f"unknown DeriveKeyPair variant {derive!r}")
        self.kem_id = kem_id
        self.name = name if derive == DERIVE_HPKE_PQ else f"{name} [{derive} DeriveKeyPair]"
        self.n_sk = n_sk
        self.n_pk = n_pk
        self.n_enc = n_enc
        self.derive = derive
        self.suite_id = b"KEM" + kem_id.to_bytes(2, "big")
        # Recipient keys are encrypted to many times (TreeKEM copath); public keys only.
        self.load_public = functools.lru_cache(maxsize=4096)(self._load_public)

    def __repr__(self) -> str:
        return f"<Kem {self.name}>"

    def _load_public(self, pk: bytes) -> Any:
        raise NotImplementedError

    def _seed(self, ikm: bytes) -> bytes:
        if self.derive == DERIVE_HPKE_PQ:
            # draft-ietf-hpke-pq §3, §4: SHAKE256.LabeledDerive(ikm, "DeriveKeyPair", "", Nsk).
            return KDF_SHAKE256.labeled_derive(self.suite_id, ikm, b"DeriveKeyPair", b"", self.n_sk)
        return self._ts_mls_seed(ikm)

    def _ts_mls_seed(self, ikm: bytes) -> bytes:
        raise NotImplementedError

    @staticmethod
    def _no_auth(key: bytes | None) -> None:
        if key is not None:
            # draft-ietf-hpke-pq §6.4: these KEMs have no AuthEncap/AuthDecap.
            raise UnsupportedError("post-quantum HPKE KEMs have no auth mode")


class MlKem(_PqKem):
    """ML-KEM-768 or ML-KEM-1024 as an HPKE KEM (draft-ietf-hpke-pq §3)."""

    def __init__(self, level: int, derive: str = DERIVE_HPKE_PQ) -> None:
        sizes = {768: (0x0041, 1184, 1088), 1024: (0x0042, 1568, 1568)}
        if level not in sizes:
            raise UnsupportedError(
                f"ML-KEM-{level} is not available: cryptography implements ML-KEM-768 and "
                "ML-KEM-1024 only"
            )
        kem_id, n_pk, n_enc = sizes[level]
        super().__init__(kem_id, f"ML-KEM-{level}", 64, n_pk, n_enc, derive)
        self.level = level

    def _classes(self) -> tuple[Any, Any]:
        _require_mlkem()
        if self.level == 768:
            return _mlkem.MLKEM768PrivateKey, _mlkem.MLKEM768PublicKey
        return _mlkem.MLKEM1024PrivateKey, _mlkem.MLKEM1024PublicKey

    def _ts_mls_seed(self, ikm: bytes) -> bytes:
        # ts-mls 1.x (@hpke/ml-kem) uses ikm itself as d || z and needs exactly 64 bytes.
        if len(ikm) != 64:
            raise InvalidKey(f"{self.name}: ikm must be 64 bytes (ts-mls DeriveKeyPair)")
        return ikm

    def load_private(self, sk: bytes) -> Any:
        if len(sk) != 64:
            raise InvalidKey(f"{self.name} private key must be the 64-byte seed")
        # KeyGen_internal(d, z) on every load: private keys are not cached (forward secrecy).
        return self._classes()[0].from_seed_bytes(sk)

    def _load_public(self, pk: bytes) -> Any:
        if len(pk) != self.n_pk:
            raise InvalidKey(f"{self.name} public key must be {self.n_pk} bytes")
        try:
            # FIPS 203 §7.2 encapsulation key check (coefficients reduced mod q).
            return self._classes()[1].from_public_bytes(pk)
        except ValueError:
            raise InvalidKey(f"{self.name} public key fails the FIPS 203 check") from None

    def derive_key_pair(self, ikm: bytes) -> tuple[bytes, bytes]:
        sk = self._seed(ikm)
        return sk, self.public_key(sk)

    def public_key(self, sk: bytes) -> bytes:
        return self.load_private(sk).public_key().public_bytes_raw()  # type: ignore[no-any-return]

    def encap(self, pk_r: bytes, ikm_e: bytes, sk_s: bytes | None = None) -> tuple[bytes, bytes]:
        self._no_auth(sk_s)
        ss, ct = self.load_public(pk_r).encapsulate()  # type: ignore[attr-defined]
        return ss, ct

    def decap(self, enc: bytes, sk_r: bytes, pk_s: bytes | None = None) -> bytes:
        self._no_auth(pk_s)
        if len(enc) != self.n_enc:
            raise DecryptFailed(f"HPKE: {self.name} ciphertext must be {self.n_enc} bytes")
        try:
            # Implicit rejection (FIPS 203): a bad ciphertext yields an unrelated secret, and
            # the AEAD open that follows fails.
            return self.load_private(sk_r).decapsulate(enc)  # type: ignore[no-any-return]
        except ValueError:
            raise DecryptFailed(f"HPKE: {self.name} decapsulation failed") from None


# draft-connolly-cfrg-xwing-kem §"Combiner": XWingLabel = "\./" || "/^\".
_XWING_LABEL = bytes.fromhex("5c2e2f2f5e5c")


class XWing(_PqKem):
    """X-Wing = MLKEM768-X25519 (draft-connolly-cfrg-xwing-kem, draft-ietf-hpke-pq §4)."""

    def __init__(self, derive: str = DERIVE_HPKE_PQ) -> None:
        super().__init__(0x647A, "MLKEM768-X25519 (X-Wing)", 32, 1216, 1120, derive)

    def _ts_mls_seed(self, ikm: bytes) -> bytes:
        # X-Wing §"Use in HPKE" (what ts-mls 1.x's @hpke/hybridkem-x-wing does).
        return hashlib.shake_256(ikm).digest(32)

    def expand(self, sk: bytes) -> tuple[Any, x25519.X25519PrivateKey, bytes, bytes]:
        """expandDecapsulationKey(sk): (ML-KEM key, X25519 key, pk_M, pk_X)."""
        _require_mlkem()
        if len(sk) != 32:
            raise InvalidKey(f"{self.name} private key must be 32 bytes")
        expanded = hashlib.shake_256(sk).digest(96)
        sk_m = _mlkem.MLKEM768PrivateKey.from_seed_bytes(expanded[:64])
        sk_x = x25519.X25519PrivateKey.from_private_bytes(expanded[64:])
        return (
            sk_m,
            sk_x,
            sk_m.public_key().public_bytes_raw(),
            sk_x.public_key().public_bytes_raw(),
        )

    def load_private(self, sk: bytes) -> Any:
        return self.expand(sk)

    def _load_public(self, pk: bytes) -> tuple[Any, x25519.X25519PublicKey, bytes]:
        _require_mlkem()
        if len(pk) != self.n_pk:
            raise InvalidKey(f"{self.name} public key must be {self.n_pk} bytes")
        try:
            pk_m = _mlkem.MLKEM768PublicKey.from_public_bytes(pk[:1184])
        except ValueError:
            raise InvalidKey(f"{self.name}: ML-KEM public key fails the FIPS 203 check") from None
        return pk_m, x25519.X25519PublicKey.from_public_bytes(pk[1184:]), pk[1184:]

    def derive_key_pair(self, ikm: bytes) -> tuple[bytes, bytes]:
        sk = self._seed(ikm)
        return sk, self.public_key(sk)

    def public_key(self, sk: bytes) -> bytes:
        _, _, pk_m, pk_x = self.expand(sk)
        return pk_m + pk_x

    @staticmethod
    def combiner(ss_m: bytes, ss_x: bytes, ct_x: bytes, pk_x: bytes) -> bytes:
        return hashlib.sha3_256(ss_m + ss_x + ct_x + pk_x + _XWING_LABEL).digest()

    def encap(self, pk_r: bytes, ikm_e: bytes, sk_s: bytes | None = None) -> tuple[bytes, bytes]:
        self._no_auth(sk_s)
        loaded: tuple[Any, x25519.X25519PublicKey, bytes] = self.load_public(pk_r)  # type: ignore[assignment]
        pub_m, pub_x, pk_x = loaded
        ek_x = x25519.X25519PrivateKey.generate()
        ct_x = ek_x.public_key().public_bytes_raw()
        try:
            ss_x = ek_x.exchange(pub_x)
        except ValueError:
            # OpenSSL refuses an all-zero X25519 output (a low-order pk_X): EncapError.
            raise InvalidKey(f"{self.name}: X25519 public key has low order") from None
        ss_m, ct_m = pub_m.encapsulate()
        return self.combiner(ss_m, ss_x, ct_x, pk_x), ct_m + ct_x

    def decap(self, enc: bytes, sk_r: bytes, pk_s: bytes | None = None) -> bytes:
        self._no_auth(pk_s)
        if len(enc) != self.n_enc:
            raise DecryptFailed(f"HPKE: {self.name} ciphertext must be {self.n_enc} bytes")
        sk_m, sk_x, _, pk_x = self.expand(sk_r)
        ct_x = enc[1088:]
        try:
            ss_m = sk_m.decapsulate(enc[:1088])
            ss_x = sk_x.exchange(x25519.X25519PublicKey.from_public_bytes(ct_x))
        except ValueError:
            # Only an all-zero X25519 output (a low-order ct_X, never sent by an honest
            # sender) gets here; X-Wing itself would go on, we refuse the ciphertext.
            raise DecryptFailed(f"HPKE: {self.name} decapsulation failed") from None
        return self.combiner(ss_m, ss_x, ct_x, pk_x)


class NistHybrid(_PqKem):
    """MLKEM768-P256 (0x0050) and MLKEM1024-P384 (0x0051) (draft-ietf-hpke-pq §4).

    The generic construction of draft-irtf-cfrg-hybrid-kems with the parameters of
    draft-irtf-cfrg-concrete-hybrid-kems, as consolidated in the filippo.io/hpke-pq reference
    and checked against the draft-ietf-hpke-pq-04 vectors: a 32-byte seed expands by
    ``SHAKE256(seed, 64 + Group.Nseed)`` into the ML-KEM seed and ``seed_T``; the curve scalar is
    the first chunk of ``seed_T`` in [1, n) (rejection sampling); the combiner is
    ``SHA3-256(ss_PQ || ss_T || ct_T || ek_T || Label)`` with ``ss_T`` the x-coordinate.
    """

    def __init__(self, level: int) -> None:
        if level == 768:
            curve: ec.EllipticCurve = ec.SECP256R1()
            kem_id, n_scalar, n_seed_t, label = 0x0050, 32, 128, b"MLKEM768-P256"
            self._mlkem = MlKem(768)
        else:
            curve = ec.SECP384R1()
            kem_id, n_scalar, n_seed_t, label = 0x0051, 48, 48, b"MLKEM1024-P384"
            self._mlkem = MlKem(1024)
        n_elem = 1 + 2 * n_scalar
        self._curve = curve
        self._order = curve_order(curve)
        self._n_scalar = n_scalar
        self._n_seed_t = n_seed_t
        self._n_elem = n_elem
        self._label = label
        self._nek = self._mlkem.n_pk
        self._nct = self._mlkem.n_enc
        name = label.decode()
        super().__init__(kem_id, name, 32, self._nek + n_elem, self._nct + n_elem, DERIVE_HPKE_PQ)

    def _random_scalar(self, seed_t: bytes) -> int:
        n = self._n_scalar
        for start in range(0, len(seed_t) - n + 1, n):
            d = int.from_bytes(seed_t[start : start + n], "big")
            if 0 < d < self._order:
                return d
        raise InvalidKey(f"{self.name}: rejection sampling failed")  # pragma: no cover

    def expand(self, sk: bytes) -> tuple[Any, ec.EllipticCurvePrivateKey, bytes, bytes]:
        """expandKey(seed): (ML-KEM key, curve key, ek_PQ, ek_T)."""
        if len(sk) != 32:
            raise InvalidKey(f"{self.name} private key must be 32 bytes")
        full = hashlib.shake_256(sk).digest(64 + self._n_seed_t)
        sk_m = self._mlkem.load_private(full[:64])
        sk_t = ec.derive_private_key(self._random_scalar(full[64:]), self._curve)
        return sk_m, sk_t, sk_m.public_key().public_bytes_raw(), ec_public_bytes(sk_t)

    def load_private(self, sk: bytes) -> Any:
        return self.expand(sk)

    def _load_public(self, pk: bytes) -> tuple[Any, ec.EllipticCurvePublicKey, bytes]:
        if len(pk) != self.n_pk:
            raise InvalidKey(f"{self.name} public key must be {self.n_pk} bytes")
        pub_m = self._mlkem.load_public(pk[: self._nek])
        ek_t = pk[self._nek :]
        return pub_m, load_ec_public(self._curve, ek_t, self._n_elem, self.name), ek_t

    def derive_key_pair(self, ikm: bytes) -> tuple[bytes, bytes]:
        sk = self._seed(ikm)
        return sk, self.public_key(sk)

    def public_key(self, sk: bytes) -> bytes:
        _, _, ek_m, ek_t = self.expand(sk)
        return ek_m + ek_t

    def _combine(self, ss_m: bytes, ss_t: bytes, ct_t: bytes, ek_t: bytes) -> bytes:
        return hashlib.sha3_256(ss_m + ss_t + ct_t + ek_t + self._label).digest()

    def encap(self, pk_r: bytes, ikm_e: bytes, sk_s: bytes | None = None) -> tuple[bytes, bytes]:
        self._no_auth(sk_s)
        loaded: tuple[Any, ec.EllipticCurvePublicKey, bytes] = self.load_public(pk_r)  # type: ignore[assignment]
        pub_m, pub_t, ek_t = loaded
        ss_m, ct_m = pub_m.encapsulate()
        eph = ec.generate_private_key(self._curve)  # RandomScalar(random(Group.Nseed))
        ct_t = ec_public_bytes(eph)
        ss_t = eph.exchange(ec.ECDH(), pub_t)
        return self._combine(ss_m, ss_t, ct_t, ek_t), ct_m + ct_t

    def decap(self, enc: bytes, sk_r: bytes, pk_s: bytes | None = None) -> bytes:
        self._no_auth(pk_s)
        if len(enc) != self.n_enc:
            raise DecryptFailed(f"HPKE: {self.name} ciphertext must be {self.n_enc} bytes")
        sk_m, sk_t, _, ek_t = self.expand(sk_r)
        ct_t = enc[self._nct :]
        try:
            point = load_ec_public(self._curve, ct_t, self._n_elem, self.name)
            ss_t = sk_t.exchange(ec.ECDH(), point)
        except (InvalidKey, ValueError):
            raise DecryptFailed(
                f"HPKE: {self.name}: invalid curve point in the ciphertext"
            ) from None
        ss_m = sk_m.decapsulate(enc[: self._nct])
        return self._combine(ss_m, ss_t, ct_t, ek_t)


KEM_MLKEM768 = MlKem(768)
KEM_MLKEM1024 = MlKem(1024)
KEM_XWING = XWing()
KEM_MLKEM768_P256 = NistHybrid(768)
KEM_MLKEM1024_P384 = NistHybrid(1024)
_KEMS: dict[int, Kem] = {
    k.kem_id: k
    for k in (KEM_MLKEM768, KEM_MLKEM1024, KEM_XWING, KEM_MLKEM768_P256, KEM_MLKEM1024_P384)
}
_MISSING_KEMS = {
    0x0040: "ML-KEM-512 is not implemented by cryptography (only ML-KEM-768 and ML-KEM-1024)",
}


def kem_by_id(kem_id: int, derive: str = DERIVE_HPKE_PQ) -> Kem:
    """The post-quantum HPKE KEM with this id; raises UnsupportedError."""
    if kem_id in _MISSING_KEMS:
        raise UnsupportedError(f"HPKE KEM 0x{kem_id:04x}: {_MISSING_KEMS[kem_id]}")
    kem = _KEMS.get(kem_id)
    if kem is None:
        raise UnsupportedError(f"HPKE KEM 0x{kem_id:04x} is not implemented")
    if derive == DERIVE_HPKE_PQ:
        return kem
    return _variant(kem_id, derive)


@functools.cache
def _variant(kem_id: int, derive: str) -> Kem:
    if kem_id == KEM_XWING.kem_id:
        return XWing(derive)
    if kem_id in (KEM_MLKEM768.kem_id, KEM_MLKEM1024.kem_id):
        return MlKem(768 if kem_id == KEM_MLKEM768.kem_id else 1024, derive)
    raise UnsupportedError(f"HPKE KEM 0x{kem_id:04x} has only the hpke-pq DeriveKeyPair")


# ---------------------------------------------------------------------------------------------
# ML-DSA (FIPS 204; TLS code points from draft-ietf-tls-mldsa §3)


class MlDsaScheme(SignatureScheme[Any, Any]):
    """Pure ML-DSA with the empty context; 32-byte seed private keys."""

    def __init__(self, scheme_id: int, name: str, level: int, pk_len: int, sig_len: int) -> None:
        self.scheme_id = scheme_id
        self.name = name
        self.level = level
        self.sk_len = 32
        self.pk_len = pk_len
        self.sig_len = sig_len
        super().__init__()

    def _classes(self) -> tuple[Any, Any]:
        _require_mldsa()
        return {
            44: (_mldsa.MLDSA44PrivateKey, _mldsa.MLDSA44PublicKey),
            65: (_mldsa.MLDSA65PrivateKey, _mldsa.MLDSA65PublicKey),
            87: (_mldsa.MLDSA87PrivateKey, _mldsa.MLDSA87PublicKey),
        }[self.level]

    def _load_private(self, sk: bytes) -> Any:
        if len(sk) != 32:
            raise InvalidKey(f"{self.name} private key must be the 32-byte seed")
        return self._classes()[0].from_seed_bytes(sk)

    def _load_public(self, pk: bytes) -> Any:
        if len(pk) != self.pk_len:
            raise InvalidKey(f"{self.name} public key must be {self.pk_len} bytes")
        try:
            return self._classes()[1].from_public_bytes(pk)
        except ValueError:
            raise InvalidKey(f"{self.name} public key is malformed") from None

    def public_bytes(self, priv: Any) -> bytes:
        return priv.public_key().public_bytes_raw()  # type: ignore[no-any-return]

    def generate(self, rng: Callable[[int], bytes]) -> tuple[bytes, bytes]:
        # FIPS 204 ML-DSA.KeyGen with xi = rng(32): reproducible under an injected rng.
        sk = rng(32)
        return sk, self.public_key(sk)

    def sign(self, sk: bytes, message: bytes) -> bytes:
        # Hedged signing (OpenSSL's randomness), empty context (draft-ietf-tls-mldsa §3).
        return self.load_private(sk).sign(message)  # type: ignore[no-any-return]

    def verify(self, pk: bytes, message: bytes, signature: bytes) -> None:
        pub = self.load_public(pk)
        if len(signature) != self.sig_len:
            raise BadSignature(f"{self.name} signature must be {self.sig_len} bytes")
        try:
            pub.verify(signature, message)
        except InvalidSignature:
            raise BadSignature(f"{self.name} signature does not verify") from None


MLDSA44 = MlDsaScheme(0x0904, "mldsa44", 44, 1312, 2420)
MLDSA65 = MlDsaScheme(0x0905, "mldsa65", 65, 1952, 3309)
MLDSA87 = MlDsaScheme(0x0906, "mldsa87", 87, 2592, 4627)
