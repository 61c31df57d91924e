"""Unit tests for mls.crypto (layer L1): suites, HPKE, signatures, labels, counters.

The official vectors (crypto-basics, RFC 9180) run through the conformance handlers; these
tests cover behaviour the vectors do not: injected randomness, failure paths, key validation,
redaction and the instrumentation hook. Crypto is cheap, so every suite runs here.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Callable

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives import hmac as c_hmac
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.kdf.hkdf import HKDFExpand
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from mls.crypto import (
    COUNTERS,
    CipherSuite,
    CryptoProvider,
    decrypt_with_label,
    derive_secret,
    derive_tree_secret,
    encrypt_with_label,
    expand_with_label,
    get_suite,
    hpke,
    make_key_package_ref,
    make_proposal_ref,
    ref_hash,
    sign_with_label,
    verify_with_label,
)
from mls.errors import (
    BadMembershipTag,
    BadSignature,
    DecryptFailed,
    InternalError,
    InvalidKey,
    MessageLimitReached,
    UnsupportedError,
    UsageError,
)

ALL_SUITES = [1, 2, 3, 4, 5, 6, 7]
NATIVE_SUITES = [1, 2, 3, 5, 7]  # cryptography's HPKE has no X448
HASHES = {1: "sha256", 2: "sha256", 3: "sha256", 4: "sha512", 5: "sha512", 6: "sha512", 7: "sha384"}


def seeded_rng(seed: int) -> Callable[[int], bytes]:
    r = random.Random(seed)
    return lambda n: r.randbytes(n)


def ours(sid: int, seed: int = 1) -> CipherSuite:
    return CryptoProvider(rng=seeded_rng(seed), native_hpke=False).suite(sid)


def flip(data: bytes, i: int = -1) -> bytes:
    b = bytearray(data)
    b[i] ^= 0x01
    return bytes(b)


# ---------------------------------------------------------------------------------------------
# Suites and providers


@pytest.mark.parametrize("sid", ALL_SUITES)
def test_suite_sizes(sid: int) -> None:
    cs = get_suite(sid)
    assert cs.suite_id == sid
    assert cs.hash_len == hashlib.new(HASHES[sid]).digest_size
    assert len(cs.hash(b"abc")) == cs.hash_len
    assert cs.hash(b"abc") == hashlib.new(HASHES[sid], b"abc").digest()
    sk, pk = cs.generate_key_pair()
    assert (len(sk), len(pk)) == (cs.hpke_sk_len, cs.hpke_pk_len)
    kem_output, _ = cs.hpke_seal(pk, b"", b"", b"x")
    assert len(kem_output) == cs.hpke_enc_len


@pytest.mark.parametrize("sid", [0, 8, 0x0A0A, 0xFFFF])
def test_unsupported_suite(sid: int) -> None:
    with pytest.raises(UnsupportedError):
        get_suite(sid)
    with pytest.raises(UnsupportedError):
        CryptoProvider().suite(sid)


def test_unsupported_hpke_algorithms() -> None:
    with pytest.raises(UnsupportedError):
        hpke.hpke_suite(0x0030, 1, 1)  # an early X-Wing id; X-Wing is 0x647a
    with pytest.raises(UnsupportedError):
        hpke.hpke_suite(0x0020, 0x0012, 1)  # TurboSHAKE128 is not available
    with pytest.raises(UnsupportedError):
        hpke.hpke_suite(0x0020, 1, 0x0004)


def test_provider_caches_suites() -> None:
    p = CryptoProvider()
    assert p.suite(1) is p.suite(1)
    assert get_suite(1) is get_suite(1)


@pytest.mark.parametrize("sid", ALL_SUITES)
def test_injected_rng_is_deterministic(sid: int) -> None:
    a, b, c = ours(sid, 7), ours(sid, 7), ours(sid, 8)
    assert a.random(16) == b.random(16) != c.random(16)
    assert a.generate_key_pair() == b.generate_key_pair() != c.generate_key_pair()
    sig_a, sig_b = a.generate_signature_key_pair(), b.generate_signature_key_pair()
    assert sig_a == sig_b != c.generate_signature_key_pair()
    _, pk = a.generate_key_pair()
    b.generate_key_pair()
    assert a.hpke_seal(pk, b"info", b"", b"pt") == b.hpke_seal(pk, b"info", b"", b"pt")
    # A custom rng switches the native (OS-randomness) seal off by default.
    d = CryptoProvider(rng=seeded_rng(3)).suite(sid)
    e = CryptoProvider(rng=seeded_rng(3)).suite(sid)
    assert d.hpke_seal(pk, b"i", b"", b"p") == e.hpke_seal(pk, b"i", b"", b"p")


def test_rng_wrong_length_is_a_bug() -> None:
    cs = CryptoProvider(rng=lambda n: bytes(n + 1)).suite(1)
    with pytest.raises(InternalError):
        cs.random(4)


@pytest.mark.parametrize("sid", [2, 5, 7])
def test_ecdsa_generation_rejects_bad_scalars(sid: int) -> None:
    # An rng stuck on 0xff.. (or on zero) only yields scalars outside [1, order).
    stuck = CryptoProvider(rng=lambda n: b"\xff" * n).suite(sid)
    with pytest.raises(InternalError):
        stuck.generate_signature_key_pair()
    zeros = CryptoProvider(rng=lambda n: bytes(n)).suite(sid)
    with pytest.raises(InternalError):
        zeros.generate_signature_key_pair()


# ---------------------------------------------------------------------------------------------
# Hash, MAC, KDF, AEAD


@pytest.mark.parametrize("sid", ALL_SUITES)
def test_mac_and_verify_mac(sid: int) -> None:
    cs = get_suite(sid)
    alg = (
        hashes.SHA256()
        if cs.hash_len == 32
        else (hashes.SHA384() if cs.hash_len == 48 else hashes.SHA512())
    )
    ref = c_hmac.HMAC(b"k", alg)
    ref.update(b"data")
    tag = ref.finalize()
    assert cs.mac(b"k", b"data") == tag
    cs.verify_mac(b"k", b"data", tag, BadMembershipTag)
    with pytest.raises(BadMembershipTag):
        cs.verify_mac(b"k", b"data", flip(tag), BadMembershipTag)
    with pytest.raises(BadMembershipTag):
        cs.verify_mac(b"k", b"data", tag[:-1], BadMembershipTag)


@pytest.mark.parametrize("sid", [1, 4, 7])
def test_kdf_expand_matches_cryptography_hkdf(sid: int) -> None:
    cs = get_suite(sid)
    alg = {1: hashes.SHA256(), 4: hashes.SHA512(), 7: hashes.SHA384()}[sid]
    prk = bytes(range(cs.hash_len))
    for length in (1, cs.hash_len - 1, cs.hash_len, cs.hash_len + 1, 3 * cs.hash_len + 5):
        want = HKDFExpand(alg, length, b"info").derive(prk)
        assert cs.kdf_expand(prk, b"info", length) == want
    assert cs.kdf_expand(prk, b"info", 0) == b""
    with pytest.raises(UsageError):
        cs.kdf_expand(prk, b"info", 255 * cs.hash_len + 1)


@pytest.mark.parametrize("sid", ALL_SUITES)
def test_aead_round_trip_and_tampering(sid: int) -> None:
    cs = ours(sid)
    key, nonce = cs.random(cs.aead_key_len), cs.random(cs.aead_nonce_len)
    ct = cs.aead_seal(key, nonce, b"aad", b"plaintext")
    assert len(ct) == len(b"plaintext") + 16
    assert cs.aead_open(key, nonce, b"aad", ct) == b"plaintext"
    for args in (
        (key, nonce, b"aad", flip(ct)),
        (key, nonce, b"aad", flip(ct, 0)),
        (key, nonce, b"AAD", ct),
        (flip(key), nonce, b"aad", ct),
        (key, flip(nonce), b"aad", ct),
        (key, nonce, b"aad", ct[:10]),
    ):
        with pytest.raises(DecryptFailed):
            cs.aead_open(*args)
    with pytest.raises(UsageError):
        # cryptography would take a 32-byte key as AES-256: the suite's Nk must be enforced.
        cs.aead_seal(bytes(48 - cs.aead_key_len), nonce, b"", b"")
    with pytest.raises(UsageError):
        cs.aead_seal(key, nonce[:-1], b"", b"")


# ---------------------------------------------------------------------------------------------
# HPKE


def _paths(sid: int) -> list[CipherSuite]:
    out = [ours(sid)]
    if sid in NATIVE_SUITES:
        out.append(CryptoProvider(native_hpke=True).suite(sid))
        out.append(get_suite(sid))  # default: native seal, our open
    return out


@pytest.mark.parametrize("sid", ALL_SUITES)
def test_hpke_round_trip_and_tampering(sid: int) -> None:
    for cs in _paths(sid):
        sk, pk = cs.generate_key_pair()
        assert cs.hpke_public_key(sk) == pk
        kem_output, ct = cs.hpke_seal(pk, b"info", b"", b"secret")
        assert cs.hpke_open(sk, kem_output, b"info", b"", ct) == b"secret"
        other_sk, _ = cs.generate_key_pair()
        for args in (
            (sk, kem_output, b"info", b"", flip(ct)),
            (sk, flip(kem_output, 5), b"info", b"", ct),
            (sk, kem_output[:-1], b"info", b"", ct),
            (sk, kem_output, b"infx", b"", ct),
            (sk, kem_output, b"info", b"aad", ct),
            (other_sk, kem_output, b"info", b"", ct),
        ):
            with pytest.raises(DecryptFailed):
                cs.hpke_open(*args)
        # A non-empty AAD (never used by MLS) always takes our path.
        kem_output, ct = cs.hpke_seal(pk, b"info", b"aad", b"secret")
        assert cs.hpke_open(sk, kem_output, b"info", b"aad", ct) == b"secret"


@pytest.mark.parametrize("sid", NATIVE_SUITES)
def test_hpke_paths_interoperate(sid: int) -> None:
    mine, native = ours(sid), CryptoProvider(native_hpke=True).suite(sid)
    sk, pk = mine.generate_key_pair()
    for a, b in ((mine, native), (native, mine)):
        kem_output, ct = a.hpke_seal(pk, b"info", b"", b"hello")
        assert b.hpke_open(sk, kem_output, b"info", b"", ct) == b"hello"


@pytest.mark.parametrize("sid", ALL_SUITES)
def test_hpke_invalid_public_keys(sid: int) -> None:
    for cs in _paths(sid):
        _, pk = cs.generate_key_pair()
        with pytest.raises(InvalidKey):
            cs.hpke_seal(pk[:-1], b"", b"", b"x")
        with pytest.raises(InvalidKey):
            cs.hpke_seal(pk + b"\x00", b"", b"", b"x")
        # RFC 9180 §7.1.4: the all-zero X25519/X448 output must be rejected; a P-curve
        # encoding of zeros is not a point at all.
        with pytest.raises(InvalidKey):
            cs.hpke_seal(bytes(len(pk)), b"", b"", b"x")


@pytest.mark.parametrize("sid", [2, 5, 7])
def test_hpke_rejects_off_curve_and_compressed_points(sid: int) -> None:
    cs = get_suite(sid)
    _, pk = cs.generate_key_pair()
    off_curve = pk[:-1] + bytes([pk[-1] ^ 1])
    with pytest.raises(InvalidKey):
        cs.hpke_seal(off_curve, b"", b"", b"x")
    curve = {2: ec.SECP256R1(), 5: ec.SECP521R1(), 7: ec.SECP384R1()}[sid]
    point = ec.EllipticCurvePublicKey.from_encoded_point(curve, pk)
    compressed = point.public_bytes(Encoding.X962, PublicFormat.CompressedPoint)
    with pytest.raises(InvalidKey):
        cs.hpke_seal(compressed, b"", b"", b"x")


@pytest.mark.parametrize("sid", [1, 4])
def test_hpke_low_order_points(sid: int) -> None:
    cs = ours(sid)
    sk, pk = cs.generate_key_pair()
    n = len(pk)
    # u = 0 and u = 1 are low-order points on both Montgomery curves: the DH output is zero.
    for low in (bytes(n), b"\x01" + bytes(n - 1)):
        with pytest.raises(InvalidKey):
            cs.hpke_seal(low, b"", b"", b"x")
        with pytest.raises(DecryptFailed):
            cs.hpke_open(sk, low, b"", b"", bytes(32))


@pytest.mark.parametrize("sid", ALL_SUITES)
def test_hpke_invalid_private_key(sid: int) -> None:
    cs = get_suite(sid)
    sk, pk = cs.generate_key_pair()
    kem_output, ct = cs.hpke_seal(pk, b"", b"", b"x")
    with pytest.raises(InvalidKey):
        cs.hpke_open(sk[:-1], kem_output, b"", b"", ct)
    with pytest.raises(InvalidKey):
        cs.hpke_public_key(sk + b"\x00")
    if sid in (2, 5, 7):
        with pytest.raises(InvalidKey):
            cs.hpke_public_key(bytes(len(sk)))  # zero scalar
        with pytest.raises(InvalidKey):
            cs.hpke_public_key(b"\xff" * len(sk))  # >= order


def _labeled_expand(
    alg: hashes.HashAlgorithm, suite_id: bytes, prk: bytes, label: bytes, info: bytes, length: int
) -> bytes:
    labeled = length.to_bytes(2, "big") + b"HPKE-v1" + suite_id + label + info
    return HKDFExpand(alg, length, labeled).derive(prk)


def test_p256_derive_key_pair_rejection_sampling(monkeypatch: pytest.MonkeyPatch) -> None:
    # With a pretend order of 2^255, every candidate with its top bit set is rejected, so
    # the loop must move on to the next counter (RFC 9180 §7.1.3).
    kem = hpke.KEM_P256
    fake_order = 1 << 255
    monkeypatch.setattr(kem, "order", fake_order)
    alg = hashes.SHA256()
    for seed in range(8):
        ikm = bytes([seed]) * 32
        h = c_hmac.HMAC(bytes(32), alg)
        h.update(b"HPKE-v1" + kem.suite_id + b"dkp_prk" + ikm)
        prk = h.finalize()
        counter = 0
        while True:
            cand = _labeled_expand(alg, kem.suite_id, prk, b"candidate", bytes([counter]), 32)
            if 0 < int.from_bytes(cand, "big") < fake_order:
                break
            counter += 1
        sk, pk = kem.derive_key_pair(ikm)
        assert sk == cand
        want = ec.derive_private_key(int.from_bytes(cand, "big"), ec.SECP256R1()).public_key()
        assert pk == want.public_bytes(Encoding.X962, PublicFormat.UncompressedPoint)


def test_hpke_psk_and_auth_modes() -> None:
    suite = hpke.hpke_suite(0x0020, 1, 1)
    kem = suite.kem
    sk_r, pk_r = kem.derive_key_pair(b"r" * 32)
    sk_s, pk_s = kem.derive_key_pair(b"s" * 32)
    psk, psk_id = b"p" * 32, b"id"
    enc, s_ctx = suite.setup_sender(
        hpke.MODE_AUTH_PSK, pk_r, b"info", b"e" * 32, psk=psk, psk_id=psk_id, sk_s=sk_s
    )
    r_ctx = suite.setup_receiver(
        hpke.MODE_AUTH_PSK, enc, sk_r, b"info", psk=psk, psk_id=psk_id, pk_s=pk_s
    )
    ct = s_ctx.seal(b"a", b"m1")
    assert r_ctx.open(b"a", ct) == b"m1"
    assert s_ctx.export(b"c", 40) == r_ctx.export(b"c", 40)
    wrong_sender = suite.setup_receiver(
        hpke.MODE_AUTH_PSK, enc, sk_r, b"info", psk=psk, psk_id=psk_id, pk_s=pk_r
    )
    with pytest.raises(DecryptFailed):
        wrong_sender.open(b"a", ct)
    # RFC 9180 §5.1 VerifyPSKInputs and the auth-mode key requirement.
    with pytest.raises(UsageError):
        suite.setup_sender(hpke.MODE_BASE, pk_r, b"", b"e" * 32, psk=psk, psk_id=psk_id)
    with pytest.raises(UsageError):
        suite.setup_sender(hpke.MODE_PSK, pk_r, b"", b"e" * 32)
    with pytest.raises(UsageError):
        suite.setup_sender(hpke.MODE_PSK, pk_r, b"", b"e" * 32, psk=psk)
    with pytest.raises(UsageError):
        suite.setup_sender(hpke.MODE_AUTH, pk_r, b"", b"e" * 32)
    with pytest.raises(UsageError):
        suite.setup_sender(hpke.MODE_BASE, pk_r, b"", b"e" * 32, sk_s=sk_s)


def test_hpke_context_sequence_and_limits() -> None:
    suite = hpke.hpke_suite(0x0020, 1, 1)
    sk_r, pk_r = suite.kem.derive_key_pair(b"r" * 32)
    enc, s = suite.setup_sender(hpke.MODE_BASE, pk_r, b"", b"e" * 32)
    r = suite.setup_receiver(hpke.MODE_BASE, enc, sk_r, b"")
    c0, c1 = s.seal(b"", b"m"), s.seal(b"", b"m")
    assert c0 != c1  # distinct nonces per sequence number
    with pytest.raises(DecryptFailed):
        r.open(b"", c1)  # out of order
    assert r.seq == 0  # a failed open does not advance
    assert r.open(b"", c0) == b"m" and r.open(b"", c1) == b"m"
    s._seq = (1 << 96) - 1
    with pytest.raises(MessageLimitReached):
        s.seal(b"", b"m")
    export_only = hpke.hpke_suite(0x0020, 1, 0xFFFF)
    _, ctx = export_only.setup_sender(hpke.MODE_BASE, pk_r, b"", b"e" * 32)
    assert len(ctx.export(b"x", 17)) == 17
    with pytest.raises(UsageError):
        ctx.seal(b"", b"m")


def test_secrets_not_in_repr() -> None:
    suite = hpke.hpke_suite(0x0020, 1, 1)
    sk_r, pk_r = suite.kem.derive_key_pair(b"r" * 32)
    _, ctx = suite.setup_sender(hpke.MODE_BASE, pk_r, b"", b"e" * 32)
    text = repr(ctx) + str(ctx)
    for secret in (ctx.key, ctx.base_nonce, ctx.exporter_secret, sk_r):
        assert secret.hex() not in text
        assert repr(secret) not in text
    for obj in (
        get_suite(1),
        CryptoProvider(rng=seeded_rng(1)),
        suite,
        COUNTERS,
        get_suite(1).signature_scheme,
        get_suite(1).native_hpke,
    ):
        text = repr(obj)
        assert sk_r.hex() not in text and ctx.key.hex() not in text


# ---------------------------------------------------------------------------------------------
# Signatures


@pytest.mark.parametrize("sid", ALL_SUITES)
def test_signatures(sid: int) -> None:
    cs = ours(sid)
    sk, pk = cs.generate_signature_key_pair()
    assert (len(sk), len(pk)) == (cs.signature_sk_len, cs.signature_pk_len)
    assert cs.signature_public_key(sk) == pk
    sig = cs.sign(sk, b"message")
    cs.verify(pk, b"message", sig)
    if sid in (2, 5, 7):
        assert sig[0] == 0x30  # DER SEQUENCE (RFC 9420 §5.1.2, RFC 8446)
        assert cs.sign(sk, b"message") == sig  # RFC 6979
    _, other_pk = cs.generate_signature_key_pair()
    for args in (
        (pk, b"messagf", sig),
        (pk, b"message", flip(sig)),
        (pk, b"message", flip(sig, 7)),
        (pk, b"message", sig[:-1]),
        (pk, b"message", b""),
        (other_pk, b"message", sig),
    ):
        with pytest.raises(BadSignature):
            cs.verify(*args)


@pytest.mark.parametrize("sid", ALL_SUITES)
def test_signature_invalid_keys(sid: int) -> None:
    cs = get_suite(sid)
    sk, pk = cs.generate_signature_key_pair()
    sig = cs.sign(sk, b"m")
    with pytest.raises(InvalidKey):
        cs.verify(pk[:-1], b"m", sig)
    with pytest.raises(InvalidKey):
        cs.sign(sk + b"\x00", b"m")
    if sid in (2, 5, 7):
        with pytest.raises(InvalidKey):
            cs.verify(pk[:-1] + bytes([pk[-1] ^ 1]), b"m", sig)  # not on the curve
        with pytest.raises(InvalidKey):
            cs.verify(b"\x02" + pk[1:], b"m", sig)
        with pytest.raises(InvalidKey):
            cs.signature_public_key(bytes(len(sk)))


# ---------------------------------------------------------------------------------------------
# Labels (RFC 9420 §5.1, §5.2, §8, §9), checked against hand-built structs.


def _opaque(data: bytes) -> bytes:
    n = len(data)
    if n < 64:
        return bytes([n]) + data
    assert n < 0x4000
    return (n | 0x4000).to_bytes(2, "big") + data


@pytest.mark.parametrize("sid", [1, 7])
@pytest.mark.parametrize("context_len", [0, 5, 63, 64, 300])
def test_expand_with_label_struct(sid: int, context_len: int) -> None:
    cs = get_suite(sid)
    alg = hashes.SHA256() if sid == 1 else hashes.SHA384()
    secret, context = bytes(cs.hash_len), bytes(range(256)) * 2
    context = context[:context_len]
    kdf_label = (42).to_bytes(2, "big") + _opaque(b"MLS 1.0 my label") + _opaque(context)
    want = HKDFExpand(alg, 42, kdf_label).derive(secret)
    assert expand_with_label(cs, secret, "my label", context, 42) == want


@pytest.mark.parametrize("sid", ALL_SUITES)
def test_derive_secret_and_tree_secret(sid: int) -> None:
    cs = get_suite(sid)
    s = bytes(range(cs.hash_len))
    assert derive_secret(cs, s, "epoch") == expand_with_label(cs, s, "epoch", b"", cs.hash_len)
    gen = 0x01020304
    assert derive_tree_secret(cs, s, "key", gen, 16) == expand_with_label(
        cs, s, "key", gen.to_bytes(4, "big"), 16
    )


@pytest.mark.parametrize("sid", ALL_SUITES)
def test_ref_hashes(sid: int) -> None:
    cs = get_suite(sid)
    value = b"v" * 100
    want = hashlib.new(HASHES[sid], _opaque(b"some label") + _opaque(value)).digest()
    assert ref_hash(cs, "some label", value) == want
    assert make_key_package_ref(cs, value) == ref_hash(cs, "MLS 1.0 KeyPackage Reference", value)
    assert make_proposal_ref(cs, value) == ref_hash(cs, "MLS 1.0 Proposal Reference", value)


@pytest.mark.parametrize("sid", ALL_SUITES)
def test_sign_and_encrypt_with_label(sid: int) -> None:
    cs = ours(sid)
    sk, pk = cs.generate_signature_key_pair()
    sig = sign_with_label(cs, sk, "LeafNodeTBS", b"content")
    cs.verify(pk, _opaque(b"MLS 1.0 LeafNodeTBS") + _opaque(b"content"), sig)
    verify_with_label(cs, pk, "LeafNodeTBS", b"content", sig)
    with pytest.raises(BadSignature):
        verify_with_label(cs, pk, "KeyPackageTBS", b"content", sig)
    with pytest.raises(BadSignature):
        verify_with_label(cs, pk, "LeafNodeTBS", b"contenu", sig)

    hsk, hpk = cs.generate_key_pair()
    kem_output, ct = encrypt_with_label(cs, hpk, "UpdatePathNode", b"ctx", b"path secret")
    info = _opaque(b"MLS 1.0 UpdatePathNode") + _opaque(b"ctx")
    assert cs.hpke_open(hsk, kem_output, info, b"", ct) == b"path secret"
    assert decrypt_with_label(cs, hsk, "UpdatePathNode", b"ctx", kem_output, ct) == b"path secret"
    with pytest.raises(DecryptFailed):
        decrypt_with_label(cs, hsk, "Welcome", b"ctx", kem_output, ct)
    with pytest.raises(DecryptFailed):
        decrypt_with_label(cs, hsk, "UpdatePathNode", b"ctx2", kem_output, ct)


# ---------------------------------------------------------------------------------------------
# Counters


def test_counters() -> None:
    cs = ours(1)
    COUNTERS.reset()
    assert not COUNTERS.enabled
    sk, pk = cs.generate_key_pair()
    assert COUNTERS.snapshot() == dict.fromkeys(COUNTERS.snapshot(), 0)
    COUNTERS.enabled = True
    try:
        sk, pk = cs.generate_key_pair()
        cs.derive_key_pair(b"x" * 32)
        kem_output, ct = encrypt_with_label(cs, pk, "L", b"", b"m")
        decrypt_with_label(cs, sk, "L", b"", kem_output, ct)
        ssk, spk = cs.generate_signature_key_pair()
        verify_with_label(cs, spk, "L", b"c", sign_with_label(cs, ssk, "L", b"c"))
        assert COUNTERS.snapshot() == {
            "hpke_seal": 1,
            "hpke_open": 1,
            "derive_key_pair": 2,
            "sign": 1,
            "verify": 1,
        }
    finally:
        COUNTERS.enabled = False
        COUNTERS.reset()
