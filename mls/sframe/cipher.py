"""SFrame cipher suites, key derivation and frame encryption (RFC 9605 §4.4, §4.5).

- :data:`SUITES`: the cipher suite table of RFC 9605 §4.5 (suites 1-5) plus the AES-256-CTR
  suites 6-8 that the SFrame working group added to its test vectors after the RFC.
- :func:`derive_key_salt`: ``sframe_key`` and ``sframe_salt`` from a ``base_key`` and KID (§4.4.2).
- :class:`AesCtrHmac`: the encrypt-then-MAC AEAD built from AES-CTR and truncated HMAC (§4.5.1);
  :class:`AesGcm` for the GCM suites.
- :class:`FrameKey`: one KID's key and salt; encrypts and decrypts whole SFrame ciphertexts
  (header || AEAD output, with header || metadata as AAD; §4.4.3, §4.4.4).

Only pyca/cryptography primitives are used. The tag of the CTR construction is compared in constant
time (:func:`hmac.compare_digest`); this module is self-contained (it does not use the MLS crypto
provider) because SFrame suites are a separate registry from MLS cipher suites.
"""

from __future__ import annotations

import hmac as _stdlib_hmac
from dataclasses import dataclass, field
from typing import Protocol

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.hmac import HMAC
from cryptography.hazmat.primitives.kdf.hkdf import HKDFExpand

from mls.errors import DecryptFailed, UnknownKeyID, UnsupportedError, UsageError
from mls.sframe.header import MAX_VALUE, encode_header, parse_header


@dataclass(frozen=True, slots=True)
class SFrameSuite:
    """One row of the SFrame cipher suite table (RFC 9605 §4.5), sizes in bytes."""

    suite_id: int
    name: str
    hash_name: str  # "SHA256" or "SHA512": the hash of HKDF and, for CTR suites, of HMAC
    nh: int  # Hash.Nh
    nka: int  # AEAD.Nka: AES key size of the CTR construction (0 for GCM suites)
    nk: int  # AEAD.Nk: the AEAD key size (Nka + Nh for CTR suites)
    nn: int  # AEAD.Nn
    nt: int  # AEAD.Nt: the tag size

    @property
    def is_ctr_hmac(self) -> bool:
        return self.nka != 0

    def hash_algorithm(self) -> hashes.HashAlgorithm:
        return hashes.SHA256() if self.hash_name == "SHA256" else hashes.SHA512()


AES_128_CTR_HMAC_SHA256_80 = 1
AES_128_CTR_HMAC_SHA256_64 = 2
AES_128_CTR_HMAC_SHA256_32 = 3
AES_128_GCM_SHA256_128 = 4
AES_256_GCM_SHA512_128 = 5
# Not in RFC 9605: added to the SFrame WG test vectors in Sept 2025 (test-vectors-aes256.json).
AES_256_CTR_HMAC_SHA512_80 = 6
AES_256_CTR_HMAC_SHA512_64 = 7
AES_256_CTR_HMAC_SHA512_32 = 8

SUITES: dict[int, SFrameSuite] = {
    s.suite_id: s
    for s in (
        SFrameSuite(1, "AES_128_CTR_HMAC_SHA256_80", "SHA256", 32, 16, 48, 12, 10),
        SFrameSuite(2, "AES_128_CTR_HMAC_SHA256_64", "SHA256", 32, 16, 48, 12, 8),
        SFrameSuite(3, "AES_128_CTR_HMAC_SHA256_32", "SHA256", 32, 16, 48, 12, 4),
        SFrameSuite(4, "AES_128_GCM_SHA256_128", "SHA256", 32, 0, 16, 12, 16),
        SFrameSuite(5, "AES_256_GCM_SHA512_128", "SHA512", 64, 0, 32, 12, 16),
        SFrameSuite(6, "AES_256_CTR_HMAC_SHA512_80", "SHA512", 64, 32, 96, 12, 10),
        SFrameSuite(7, "AES_256_CTR_HMAC_SHA512_64", "SHA512", 64, 32, 96, 12, 8),
        SFrameSuite(8, "AES_256_CTR_HMAC_SHA512_32", "SHA512", 64, 32, 96, 12, 4),
    )
}


def get_suite(suite_id: int) -> SFrameSuite:
    """The SFrame cipher suite ``suite_id``; :class:`UnsupportedError` if we do not have it."""
    try:
        return SUITES[suite_id]
    except KeyError:
        raise UnsupportedError(f"unsupported SFrame cipher suite {suite_id:#06x}") from None


# ---------------------------------------------------------------------------------------------
# Key derivation (RFC 9605 §4.4.2).

_KEY_LABEL = b"SFrame 1.0 Secret key "
_SALT_LABEL = b"SFrame 1.0 Secret salt "


def sframe_secret(suite: SFrameSuite, base_key: bytes) -> bytes:
    """``HKDF-Extract("", base_key)``: HMAC keyed with the (empty) salt, RFC 5869 §2.2."""
    h = HMAC(b"", suite.hash_algorithm())
    h.update(base_key)
    return h.finalize()


def _labels(suite: SFrameSuite, kid: int) -> tuple[bytes, bytes]:
    if not 0 <= kid <= MAX_VALUE:
        raise UsageError(f"SFrame KID must fit in 64 bits, got {kid}")
    # The KID is an 8-byte big-endian integer here, not its compressed header form (§4.4.2).
    tail = kid.to_bytes(8, "big") + suite.suite_id.to_bytes(2, "big")
    return _KEY_LABEL + tail, _SALT_LABEL + tail


def sframe_key_label(suite: SFrameSuite, kid: int) -> bytes:
    return _labels(suite, kid)[0]


def sframe_salt_label(suite: SFrameSuite, kid: int) -> bytes:
    return _labels(suite, kid)[1]


def _expand(suite: SFrameSuite, prk: bytes, info: bytes, length: int) -> bytes:
    return HKDFExpand(suite.hash_algorithm(), length, info).derive(prk)


def derive_key_salt(suite: SFrameSuite, kid: int, base_key: bytes) -> tuple[bytes, bytes]:
    """``(sframe_key, sframe_salt)`` for ``kid`` under ``base_key`` (RFC 9605 §4.4.2)."""
    secret = sframe_secret(suite, base_key)
    key_label, salt_label = _labels(suite, kid)
    return _expand(suite, secret, key_label, suite.nk), _expand(suite, secret, salt_label, suite.nn)


def frame_nonce(salt: bytes, ctr: int) -> bytes:
    """``xor(sframe_salt, encode_big_endian(CTR, AEAD.Nn))`` (RFC 9605 §4.4.3)."""
    n = len(salt)
    return (int.from_bytes(salt, "big") ^ ctr).to_bytes(n, "big")


# ---------------------------------------------------------------------------------------------
# AEADs (RFC 9605 §4.5).


class Aead(Protocol):
    """RFC 5116 interface: the tag is part of the ciphertext."""

    def seal(self, nonce: bytes, aad: bytes, plaintext: bytes) -> bytes: ...

    def open(self, nonce: bytes, aad: bytes, ciphertext: bytes) -> bytes: ...


def split_key(suite: SFrameSuite, key: bytes) -> tuple[bytes, bytes]:
    """``derive_subkeys`` (§4.5.1): ``enc_key`` = the first Nka bytes, ``auth_key`` = the rest."""
    if not suite.is_ctr_hmac:
        raise UsageError(f"{suite.name} is not an AES-CTR+HMAC suite")
    if len(key) != suite.nk:
        raise UsageError(f"{suite.name} key must be {suite.nk} bytes, got {len(key)}")
    return key[: suite.nka], key[suite.nka :]


class AesCtrHmac:
    """AES-CTR encrypt-then-MAC with an HMAC tag truncated to Nt bytes (RFC 9605 §4.5.1).

    ``tag = truncate(HMAC(auth_key, len(aad) || len(ct) || Nt || nonce || aad || ct), Nt)`` with
    the three lengths as 8-byte big-endian integers, and the counter block ``nonce || 0x00000000``.
    """

    __slots__ = ("_aes", "_mac", "_nt", "_nt8")

    def __init__(self, suite: SFrameSuite, key: bytes) -> None:
        enc_key, auth_key = split_key(suite, key)
        self._aes = algorithms.AES(enc_key)
        # A keyed HMAC context that each frame copies, so the key schedule runs once per key.
        self._mac = HMAC(auth_key, suite.hash_algorithm())
        self._nt = suite.nt
        self._nt8 = suite.nt.to_bytes(8, "big")

    def _tag(self, nonce: bytes, aad: bytes, ct: bytes) -> bytes:
        mac = self._mac.copy()
        mac.update(len(aad).to_bytes(8, "big") + len(ct).to_bytes(8, "big") + self._nt8 + nonce)
        mac.update(aad)
        mac.update(ct)
        return mac.finalize()[: self._nt]

    def _ctr(self, nonce: bytes, data: bytes) -> bytes:
        ctx = Cipher(self._aes, modes.CTR(nonce + b"\x00\x00\x00\x00")).encryptor()
        return ctx.update(data) + ctx.finalize()

    def seal(self, nonce: bytes, aad: bytes, plaintext: bytes) -> bytes:
        ct = self._ctr(nonce, plaintext)
        return ct + self._tag(nonce, aad, ct)

    def open(self, nonce: bytes, aad: bytes, ciphertext: bytes) -> bytes:
        if len(ciphertext) < self._nt:
            raise DecryptFailed("SFrame ciphertext shorter than its tag")
        inner = ciphertext[: len(ciphertext) - self._nt]
        tag = ciphertext[len(ciphertext) - self._nt :]
        # Constant-time comparison, then decrypt only authenticated data (§4.5.1).
        if not _stdlib_hmac.compare_digest(self._tag(nonce, aad, inner), tag):
            raise DecryptFailed("SFrame authentication tag mismatch")
        return self._ctr(nonce, inner)


class AesGcm:
    """AES-GCM with a full 16-byte tag (suites 4 and 5)."""

    __slots__ = ("_aead",)

    def __init__(self, suite: SFrameSuite, key: bytes) -> None:
        if suite.is_ctr_hmac or len(key) != suite.nk:
            raise UsageError(f"{suite.name}: AES-GCM key must be {suite.nk} bytes")
        self._aead = AESGCM(key)

    def seal(self, nonce: bytes, aad: bytes, plaintext: bytes) -> bytes:
        return self._aead.encrypt(nonce, plaintext, aad)

    def open(self, nonce: bytes, aad: bytes, ciphertext: bytes) -> bytes:
        try:
            return self._aead.decrypt(nonce, ciphertext, aad)
        except InvalidTag:
            raise DecryptFailed("SFrame AES-GCM tag mismatch") from None


def make_aead(suite: SFrameSuite, key: bytes) -> Aead:
    return AesCtrHmac(suite, key) if suite.is_ctr_hmac else AesGcm(suite, key)


# ---------------------------------------------------------------------------------------------
# Frames (RFC 9605 §4.4.3, §4.4.4).


@dataclass(frozen=True, slots=True, kw_only=True)
class FrameKey:
    """The key context of one KID: ``sframe_key`` (inside ``aead``) and ``sframe_salt``.

    RFC 9605 §4.4.1: a key is used either to encrypt or to decrypt, never both; the call context
    (:mod:`mls.sframe.context`) keeps the two kinds apart.
    """

    suite: SFrameSuite
    kid: int
    salt: bytes = field(repr=False)
    aead: Aead = field(repr=False)
    _salt_int: int = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        # The nonce is computed per frame; keep the salt as an integer for the XOR.
        object.__setattr__(self, "_salt_int", int.from_bytes(self.salt, "big"))

    def _nonce(self, ctr: int) -> bytes:
        return (self._salt_int ^ ctr).to_bytes(self.suite.nn, "big")

    @classmethod
    def derive(cls, suite: SFrameSuite, kid: int, base_key: bytes) -> FrameKey:
        key, salt = derive_key_salt(suite, kid, base_key)
        return cls(suite=suite, kid=kid, salt=salt, aead=make_aead(suite, key))

    def encrypt(self, ctr: int, metadata: bytes, plaintext: bytes) -> bytes:
        """``header || AEAD.Encrypt(sframe_key, nonce, header || metadata, plaintext)``."""
        header = encode_header(self.kid, ctr)
        return header + self.aead.seal(self._nonce(ctr), header + metadata, plaintext)

    def open(self, header: bytes, ctr: int, body: bytes, metadata: bytes) -> bytes:
        """Decrypt ``body`` (the bytes after ``header``) of a frame whose KID is ours."""
        return self.aead.open(self._nonce(ctr), header + metadata, body)

    def decrypt(self, metadata: bytes, ciphertext: bytes) -> bytes:
        """Decrypt a whole SFrame ciphertext that must carry this key's KID."""
        kid, ctr, n = parse_header(ciphertext)
        if kid != self.kid:
            raise UnknownKeyID(f"SFrame KID {kid} is not this key's KID {self.kid}", kid=kid)
        return self.open(ciphertext[:n], ctr, ciphertext[n:], metadata)
