"""The RFC 9420 §17.1 cipher suites and the :class:`CipherSuite` object protocol code uses.

A :class:`CipherSuite` bundles, for one suite id, the hash and HMAC (§5.1), HKDF (§8), the
AEAD (§9), HPKE (§5.1.3, RFC 9180) and the signature scheme (§5.1.2), together with the
provider's random number generator. Keys cross this API as bytes in the formats of the mlswg
test vectors. Protocol code should call :mod:`mls.crypto.labels` rather than ``kdf_*`` here.
"""

from __future__ import annotations

import functools
import hashlib
import hmac as _std_hmac
import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes, hmac

from mls.crypto import hpke as _hpke
from mls.crypto import signatures as _sig
from mls.crypto.counters import COUNTERS
from mls.errors import AuthError, DecryptFailed, InternalError, UsageError

__all__ = ["SUITES", "CipherSuite", "Rng", "SuiteParams"]

Rng = Callable[[int], bytes]
"""A source of randomness: ``rng(n)`` returns ``n`` uniformly random bytes."""


@dataclass(frozen=True, slots=True, kw_only=True)
class SuiteParams:
    """One cipher suite: a row of the RFC 9420 §17.1 table, or one registered in
    :mod:`mls.crypto.registry` (post-quantum suites, application-defined ones).

    ``derive`` selects the DeriveKeyPair of a post-quantum KEM: ``"hpke-pq"``
    (draft-ietf-hpke-pq) or ``"ts-mls-1"`` (the ts-mls 1.x compatibility profile).
    """

    suite_id: int
    name: str
    kem_id: int
    kdf_id: int
    aead_id: int
    hash_name: str
    signature: _sig.SignatureScheme[Any, Any]
    derive: str = "hpke-pq"
    note: str = ""


SUITES: dict[int, SuiteParams] = {
    p.suite_id: p
    for p in (
        SuiteParams(
            suite_id=1,
            name="MLS_128_DHKEMX25519_AES128GCM_SHA256_Ed25519",
            kem_id=0x0020,
            kdf_id=0x0001,
            aead_id=0x0001,
            hash_name="sha256",
            signature=_sig.ED25519,
        ),
        SuiteParams(
            suite_id=2,
            name="MLS_128_DHKEMP256_AES128GCM_SHA256_P256",
            kem_id=0x0010,
            kdf_id=0x0001,
            aead_id=0x0001,
            hash_name="sha256",
            signature=_sig.ECDSA_P256_SHA256,
        ),
        SuiteParams(
            suite_id=3,
            name="MLS_128_DHKEMX25519_CHACHA20POLY1305_SHA256_Ed25519",
            kem_id=0x0020,
            kdf_id=0x0001,
            aead_id=0x0003,
            hash_name="sha256",
            signature=_sig.ED25519,
        ),
        SuiteParams(
            suite_id=4,
            name="MLS_256_DHKEMX448_AES256GCM_SHA512_Ed448",
            kem_id=0x0021,
            kdf_id=0x0003,
            aead_id=0x0002,
            hash_name="sha512",
            signature=_sig.ED448,
        ),
        SuiteParams(
            suite_id=5,
            name="MLS_256_DHKEMP521_AES256GCM_SHA512_P521",
            kem_id=0x0012,
            kdf_id=0x0003,
            aead_id=0x0002,
            hash_name="sha512",
            signature=_sig.ECDSA_P521_SHA512,
        ),
        SuiteParams(
            suite_id=6,
            name="MLS_256_DHKEMX448_CHACHA20POLY1305_SHA512_Ed448",
            kem_id=0x0021,
            kdf_id=0x0003,
            aead_id=0x0003,
            hash_name="sha512",
            signature=_sig.ED448,
        ),
        SuiteParams(
            suite_id=7,
            name="MLS_256_DHKEMP384_AES256GCM_SHA384_P384",
            kem_id=0x0011,
            kdf_id=0x0002,
            aead_id=0x0002,
            hash_name="sha384",
            signature=_sig.ECDSA_P384_SHA384,
        ),
    )
}


class CipherSuite:
    """The primitives of one MLS cipher suite, bound to a random number generator.

    Holds no secrets of its own: keys are passed in by the caller on every call.
    ``native_seal``/``native_open`` select cryptography's built-in HPKE for single-shot base
    mode with empty AAD (what MLS uses); the provider decides (see ``CryptoProvider``).
    """

    __slots__ = (
        "_aead",
        "_hash_ctor",
        "_hmac_alg",
        "_kdf",
        "_native",
        "_native_open",
        "_native_seal",
        "_rng",
        "_sig",
        "aead_key_len",
        "aead_nonce_len",
        "hash_len",
        "hpke",
        "hpke_enc_len",
        "hpke_pk_len",
        "hpke_sk_len",
        "kem",
        "name",
        "params",
        "signature_pk_len",
        "signature_sk_len",
        "suite_id",
    )

    def __init__(
        self,
        params: SuiteParams,
        rng: Rng = os.urandom,
        *,
        native_seal: bool = False,
        native_open: bool = False,
    ) -> None:
        self.params = params
        self.suite_id = params.suite_id
        self.name = params.name
        self._rng = rng
        self.hpke = _hpke_for(params.kem_id, params.kdf_id, params.aead_id, params.derive)
        self.kem = self.hpke.kem
        self._kdf = _hpke.kdf_by_id(params.kdf_id)  # MLS needs a two-stage KDF
        self._aead = self.hpke.aead
        self._sig = params.signature
        # hashlib and cryptography both call OpenSSL; hashlib's one-shot call is ~3x cheaper
        # per tree-hash node. HMAC stays on cryptography, which is the faster of the two.
        self._hash_ctor = getattr(hashlib, params.hash_name)
        # RFC 9420 §5.1: MAC is HMAC with the suite's hash (the KDF's hash may differ, as in
        # the ts-mls-1 profile: HKDF-SHA512 with SHA-384).
        self._hmac_alg = _HASHES[params.hash_name]
        self.hash_len = self._kdf.nh
        self.aead_key_len = self._aead.nk
        self.aead_nonce_len = self._aead.nn
        self.hpke_pk_len = self.kem.n_pk
        self.hpke_enc_len = self.kem.n_enc
        self.hpke_sk_len = self.kem.n_sk
        self.signature_sk_len = self._sig.sk_len
        self.signature_pk_len = self._sig.pk_len
        self._native = _hpke.native_hpke_for(self.hpke)
        self._native_seal = native_seal and self._native is not None
        self._native_open = native_open and self._native is not None

    def __repr__(self) -> str:
        paths = f"native_seal={self._native_seal}, native_open={self._native_open}"
        return f"<CipherSuite {self.suite_id} {self.name} {paths}>"

    @property
    def native_hpke(self) -> _hpke.NativeHpke | None:
        """cryptography's HPKE for this suite, if it offers it (used by tests and benchmarks)."""
        return self._native

    @property
    def signature_scheme(self) -> _sig.SignatureScheme[Any, Any]:
        return self._sig

    # Hash, MAC, KDF (RFC 9420 §5.1, §8).

    def hash(self, data: bytes) -> bytes:
        if COUNTERS.enabled:
            COUNTERS.hash += 1
            COUNTERS.hash_bytes += len(data)
        return self._hash_ctor(data).digest()  # type: ignore[no-any-return]

    def mac(self, key: bytes, data: bytes) -> bytes:
        if COUNTERS.enabled:
            COUNTERS.mac += 1
            COUNTERS.mac_bytes += len(data)
        h = hmac.HMAC(key, self._hmac_alg)
        h.update(data)
        return h.finalize()

    def verify_mac(self, key: bytes, data: bytes, tag: bytes, error: type[AuthError]) -> None:
        """Constant-time MAC check; raises ``error`` on mismatch."""
        if not _std_hmac.compare_digest(self.mac(key, data), tag):
            raise error("MAC does not verify")

    def kdf_extract(self, salt: bytes, ikm: bytes) -> bytes:
        if COUNTERS.enabled:
            COUNTERS.kdf_extract += 1
        return self._kdf.extract(salt, ikm)

    def kdf_expand(self, prk: bytes, info: bytes, length: int) -> bytes:
        if COUNTERS.enabled:
            COUNTERS.kdf_expand += 1
        return self._kdf.expand(prk, info, length)

    # AEAD (RFC 9420 §6.3, §9).

    def aead_seal(self, key: bytes, nonce: bytes, aad: bytes, plaintext: bytes) -> bytes:
        if len(nonce) != self._aead.nn:
            raise UsageError(f"AEAD nonce must be {self._aead.nn} bytes")
        if COUNTERS.enabled:
            COUNTERS.aead_seal += 1
            COUNTERS.aead_seal_bytes += len(plaintext)
        return self._aead.new(key).encrypt(nonce, plaintext, aad)

    def aead_open(self, key: bytes, nonce: bytes, aad: bytes, ciphertext: bytes) -> bytes:
        if len(nonce) != self._aead.nn:
            raise UsageError(f"AEAD nonce must be {self._aead.nn} bytes")
        if COUNTERS.enabled:
            COUNTERS.aead_open += 1
            COUNTERS.aead_open_bytes += len(ciphertext)
        cipher = self._aead.new(key)
        try:
            return cipher.decrypt(nonce, ciphertext, aad)
        except InvalidTag:
            raise DecryptFailed("AEAD decryption failed") from None

    def random(self, n: int) -> bytes:
        out = self._rng(n)
        if len(out) != n:
            raise InternalError(f"rng returned {len(out)} bytes instead of {n}")
        return out

    # HPKE (RFC 9420 §5.1.3, RFC 9180).

    def derive_key_pair(self, ikm: bytes) -> tuple[bytes, bytes]:
        """RFC 9180 DeriveKeyPair: (SerializePrivateKey(sk), SerializePublicKey(pk))."""
        if COUNTERS.enabled:
            COUNTERS.derive_key_pair += 1
        return self.kem.derive_key_pair(ikm)

    def generate_key_pair(self) -> tuple[bytes, bytes]:
        """RFC 9180 GenerateKeyPair = DeriveKeyPair(random(Nsk)) (§4)."""
        return self.derive_key_pair(self.random(self.kem.n_sk))

    def hpke_public_key(self, sk: bytes) -> bytes:
        return self.kem.public_key(sk)

    def hpke_seal(
        self, pk: bytes, info: bytes, aad: bytes, plaintext: bytes
    ) -> tuple[bytes, bytes]:
        """SealBase: (kem_output, ciphertext). Raises InvalidKey for a bad ``pk``."""
        if COUNTERS.enabled:
            COUNTERS.hpke_seal += 1
        if self._native_seal and not aad:
            return self._native.seal(pk, info, plaintext)  # type: ignore[union-attr]
        return self.hpke.seal_base(pk, info, aad, plaintext, self.random(self.kem.n_sk))

    def hpke_open(
        self, sk: bytes, kem_output: bytes, info: bytes, aad: bytes, ciphertext: bytes
    ) -> bytes:
        """OpenBase; raises DecryptFailed."""
        if COUNTERS.enabled:
            COUNTERS.hpke_open += 1
        if self._native_open and not aad:
            return self._native.open(kem_output, sk, info, ciphertext)  # type: ignore[union-attr]
        return self.hpke.open_base(kem_output, sk, info, aad, ciphertext)

    # Signatures (RFC 9420 §5.1.2).

    def generate_signature_key_pair(self) -> tuple[bytes, bytes]:
        return self._sig.generate(self.random)

    def signature_public_key(self, sk: bytes) -> bytes:
        return self._sig.public_key(sk)

    def sign(self, sk: bytes, message: bytes) -> bytes:
        if COUNTERS.enabled:
            COUNTERS.sign += 1
            COUNTERS.sign_bytes += len(message)
        return self._sig.sign(sk, message)

    def verify(self, pk: bytes, message: bytes, signature: bytes) -> None:
        """Raises BadSignature (InvalidKey if ``pk`` is malformed)."""
        if COUNTERS.enabled:
            COUNTERS.verify += 1
            COUNTERS.verify_bytes += len(message)
        self._sig.verify(pk, message, signature)


_HASHES: dict[str, hashes.HashAlgorithm] = {
    "sha256": hashes.SHA256(),
    "sha384": hashes.SHA384(),
    "sha512": hashes.SHA512(),
}


@functools.cache
def _hpke_for(kem_id: int, kdf_id: int, aead_id: int, derive: str) -> _hpke.Hpke:
    if derive == "hpke-pq":
        return _hpke.hpke_suite(kem_id, kdf_id, aead_id)
    from mls.crypto import pq

    return _hpke.Hpke(
        pq.kem_by_id(kem_id, derive), _hpke.kdf_by_id(kdf_id), _hpke.aead_by_id(aead_id)
    )


def suite_params(suite_id: int) -> SuiteParams:
    """The parameters of a suite id under the active registry (:mod:`mls.crypto.registry`)."""
    from mls.crypto import registry

    return registry.suite_params(suite_id)
