"""Post-quantum primitives (mls.crypto.pq) and the suite code-point registry
(mls.crypto.registry): key formats, error mapping, DeriveKeyPair variants, profiles."""

from __future__ import annotations

import dataclasses
import hashlib
import os
from collections.abc import Iterator

import pytest

from mls.crypto import CryptoProvider, get_suite, pq, registry
from mls.crypto.hpke import KDF_SHAKE256, hpke_suite
from mls.crypto.suites import SuiteParams
from mls.errors import BadSignature, DecryptFailed, InvalidKey, UnsupportedError, UsageError

_WHY = pq.mlkem_unavailable() or pq.mldsa_unavailable()
if _WHY is not None and os.environ.get("CI") == "true":
    raise RuntimeError(f"CI=true but post-quantum primitives are unavailable: {_WHY}")
pytestmark = pytest.mark.skipif(
    _WHY is not None, reason=f"post-quantum primitives unavailable: {_WHY}"
)

KEMS = [
    pq.KEM_MLKEM768,
    pq.KEM_MLKEM1024,
    pq.KEM_XWING,
    pq.KEM_MLKEM768_P256,
    pq.KEM_MLKEM1024_P384,
]


@pytest.fixture
def ts_mls_profile() -> Iterator[None]:
    registry.use_profile("ts-mls-1")
    try:
        yield
    finally:
        registry.use_profile(registry.DEFAULT_PROFILE)


@pytest.mark.parametrize("kem", KEMS, ids=lambda k: k.name)
def test_kem_sizes_and_round_trip(kem: pq.MlKem | pq.XWing) -> None:
    sk, pk = kem.derive_key_pair(b"\x01" * 32)
    assert (len(sk), len(pk)) == (kem.n_sk, kem.n_pk)
    assert kem.derive_key_pair(b"\x01" * 32) == (sk, pk)  # deterministic
    assert kem.derive_key_pair(b"\x02" * 32)[0] != sk
    assert kem.public_key(sk) == pk
    ss, enc = kem.encap(pk, b"")
    assert (len(ss), len(enc)) == (32, kem.n_enc)
    assert kem.decap(enc, sk) == ss
    # Implicit rejection: a modified ciphertext decapsulates to another secret.
    assert kem.decap(bytes([enc[0] ^ 1]) + enc[1:], sk) != ss


@pytest.mark.parametrize("kem", KEMS, ids=lambda k: k.name)
def test_kem_rejects_malformed_inputs(kem: pq.MlKem | pq.XWing) -> None:
    sk, pk = kem.derive_key_pair(b"\x03" * 32)
    with pytest.raises(InvalidKey):
        kem.encap(pk[:-1], b"")
    with pytest.raises(InvalidKey):
        kem.public_key(sk + b"\x00")
    with pytest.raises(DecryptFailed):
        kem.decap(b"\x00" * (kem.n_enc - 1), sk)
    with pytest.raises(UnsupportedError):  # no AuthEncap/AuthDecap (draft-ietf-hpke-pq §6.4)
        kem.encap(pk, b"", sk_s=sk)
    with pytest.raises(UnsupportedError):
        kem.decap(b"\x00" * kem.n_enc, sk, pk_s=pk)


def test_mlkem_encapsulation_key_check() -> None:
    # FIPS 203 §7.2: a coefficient >= q (all-ones bytes) fails the modulus check.
    with pytest.raises(InvalidKey):
        pq.KEM_MLKEM768.encap(b"\xff" * 1184, b"")
    with pytest.raises(InvalidKey):
        pq.KEM_XWING.encap(b"\xff" * 1184 + bytes(32), b"")


def test_derive_key_pair_variants() -> None:
    ikm = bytes(range(64))
    # hpke-pq: SHAKE256.LabeledDerive with suite_id "KEM" || kem_id.
    sk, _ = pq.KEM_MLKEM768.derive_key_pair(ikm)
    assert sk == KDF_SHAKE256.labeled_derive(b"KEM\x00\x41", ikm, b"DeriveKeyPair", b"", 64)
    # ts-mls 1.x: the 64-byte ikm is the ML-KEM seed; X-Wing takes SHAKE256(ikm, 32).
    ts_mlkem = pq.kem_by_id(0x0041, pq.DERIVE_TS_MLS_1)
    assert ts_mlkem.derive_key_pair(ikm)[0] == ikm
    with pytest.raises(InvalidKey):
        ts_mlkem.derive_key_pair(ikm[:48])
    ts_xwing = pq.kem_by_id(0x647A, pq.DERIVE_TS_MLS_1)
    assert ts_xwing.derive_key_pair(ikm)[0] == hashlib.shake_256(ikm).digest(32)
    assert pq.KEM_XWING.derive_key_pair(ikm)[0] != hashlib.shake_256(ikm).digest(32)
    with pytest.raises(UnsupportedError):
        pq.XWing("unknown")
    with pytest.raises(UnsupportedError):  # ts-mls has no NIST-curve hybrids
        pq.kem_by_id(0x0050, pq.DERIVE_TS_MLS_1)


def test_unsupported_kems_say_why() -> None:
    with pytest.raises(UnsupportedError, match="ML-KEM-512"):
        hpke_suite(0x0040, 1, 1)


def test_nist_hybrid_rejects_bad_curve_points() -> None:
    kem = pq.KEM_MLKEM768_P256
    sk, pk = kem.derive_key_pair(b"\x05" * 32)
    _, enc = kem.encap(pk, b"")
    off_curve = enc[:1088] + b"\x04" + bytes(64)
    with pytest.raises(DecryptFailed):
        kem.decap(off_curve, sk)
    with pytest.raises(InvalidKey):
        kem.encap(pk[:1184] + b"\x04" + bytes(64), b"")


@pytest.mark.parametrize("scheme", [pq.MLDSA44, pq.MLDSA65, pq.MLDSA87], ids=lambda s: s.name)
def test_mldsa(scheme: pq.MlDsaScheme) -> None:
    draws = iter([b"\x07" * 32])
    sk, pk = scheme.generate(lambda n: next(draws))
    assert (len(sk), len(pk)) == (32, scheme.pk_len)
    assert scheme.public_key(b"\x07" * 32) == pk  # reproducible from the seed
    sig = scheme.sign(sk, b"message")
    assert len(sig) == scheme.sig_len
    scheme.verify(pk, b"message", sig)
    with pytest.raises(BadSignature):
        scheme.verify(pk, b"other message", sig)
    with pytest.raises(BadSignature):
        scheme.verify(pk, b"message", sig[:-1])
    with pytest.raises(BadSignature):
        scheme.verify(pk, b"message", bytes([sig[0] ^ 1]) + sig[1:])
    with pytest.raises(InvalidKey):
        scheme.verify(pk[:-1], b"message", sig)
    with pytest.raises(InvalidKey):
        scheme.sign(sk[:31], b"message")
    # Pure ML-DSA with the empty context (draft-ietf-tls-mldsa): a context changes everything.
    with pytest.raises(BadSignature):
        scheme.verify(pk, b"m", scheme.load_private(sk).sign(b"m", b"ctx"))


def test_openmls_profile_ids() -> None:
    names = {sid: registry.suite_params(sid).name for sid in registry.PROFILES["openmls"].suites}
    assert names == {
        0x004F: "MLS_128_MLKEM768X25519_AES128GCM_SHA256_Ed25519",
        0x004E: "MLS_128_MLKEM768X25519_AES256GCM_SHA384_Ed25519",
        0xF042: "MLS_128_MLKEM768_AES256GCM_SHA384_Ed25519",
        0x0050: "MLS_128_MLKEM768_AES256GCM_SHA384_P256",
        0x0042: "MLS_192_MLKEM1024_AES256GCM_SHA384_P384",
        0x0052: "MLS_128_MLKEM768X25519_CHACHA20POLY1305_SHA384_MLDSA44",
        0x0051: "MLS_192_MLKEM768_AES256GCM_SHA384_MLDSA65",
        0x0907: "MLS_256_MLKEM1024_AES256GCM_SHA384_MLDSA87",
    }
    cs = get_suite(0x0052)
    assert (cs.hpke.kem.kem_id, cs.hpke.kdf.kdf_id, cs.hpke.aead.aead_id) == (0x647A, 2, 3)
    assert cs.signature_scheme is pq.MLDSA44 and cs.hash_len == 48
    assert set(registry.pq_suite_ids()) == set(names)
    assert registry.supported_suites()[:7] == (1, 2, 3, 4, 5, 6, 7)


def test_ts_mls_profile(ts_mls_profile: None) -> None:
    assert registry.active_profile().name == "ts-mls-1"
    assert registry.pq_suite_ids() == tuple(range(79, 89))
    cs = get_suite(79)  # ML-KEM-768, HKDF-SHA512, AES-256-GCM, SHA-384, Ed25519
    assert cs.name == "MLS_256_MLKEM768_AES256GCM_SHA384_Ed25519"
    assert cs.hash_len == 64  # KDF.Nh of HKDF-SHA512
    assert len(cs.mac(b"k", b"d")) == 48  # HMAC with the suite hash, SHA-384
    assert len(cs.hash(b"d")) == 48
    # DeriveKeyPair of ts-mls: the 64-byte node secret is the ML-KEM seed itself.
    assert cs.derive_key_pair(bytes(64))[0] == bytes(64)
    for sid in (77, 78):
        with pytest.raises(UnsupportedError, match="ML-KEM-512"):
            get_suite(sid)
    with pytest.raises(UnsupportedError):
        get_suite(0x0907)  # an openmls id means nothing here


def test_profile_switch_rebuilds_cached_suites(ts_mls_profile: None) -> None:
    provider = CryptoProvider()
    ts = provider.suite(80)
    assert "CHACHA20POLY1305" in ts.name
    registry.use_profile("openmls")
    assert provider.suite(80).name == "MLS_128_MLKEM768_AES256GCM_SHA384_P256"
    with pytest.raises(UsageError):
        registry.use_profile("nope")


def test_register_suite() -> None:
    params = dataclasses.replace(registry.DRAFT_SUITES["TBD1"], suite_id=0xF0F0)
    registry.register_suite(params)
    try:
        assert get_suite(0xF0F0).name == params.name
        assert 0xF0F0 in registry.supported_suites()
        with pytest.raises(UsageError):
            registry.register_suite(params)
        registry.register_suite(dataclasses.replace(params, name="renamed"), replace=True)
        assert get_suite(0xF0F0).name == "renamed"
    finally:
        registry.unregister_suite(0xF0F0)
    with pytest.raises(UnsupportedError):
        get_suite(0xF0F0)
    with pytest.raises(UsageError):
        registry.register_suite(dataclasses.replace(params, suite_id=1))
    with pytest.raises(UsageError):
        registry.draft_suite("TBD12", 0xF0F1)


@pytest.mark.parametrize("tbd", ["TBD3", "TBD4", "TBD5"])
def test_nist_hybrid_suites_by_registration(tbd: str) -> None:
    params = registry.draft_suite(tbd, 0xF0F1)
    registry.register_suite(params)
    try:
        cs = get_suite(0xF0F1)
        sk, pk = cs.generate_key_pair()
        enc, ct = cs.hpke_seal(pk, b"info", b"", b"pt")
        assert cs.hpke_open(sk, enc, b"info", b"", ct) == b"pt"
        ssk, spk = cs.generate_signature_key_pair()
        cs.verify(spk, b"m", cs.sign(ssk, b"m"))
    finally:
        registry.unregister_suite(0xF0F1)


def test_missing_primitives_are_reported(monkeypatch: pytest.MonkeyPatch) -> None:
    why = "the OpenSSL under cryptography 0.0 lacks ML-KEM"
    monkeypatch.setattr(pq, "mlkem_unavailable", lambda: why)
    with pytest.raises(UnsupportedError, match="lacks ML-KEM"):
        CryptoProvider().suite(0x004F)
    assert 0x004F not in registry.supported_suites()
    assert get_suite(1).suite_id == 1  # RFC suites are unaffected


def test_params_are_plain_data() -> None:
    p = registry.suite_params(0x004F)
    assert isinstance(p, SuiteParams) and p.derive == "hpke-pq"


def test_one_stage_kdf_key_schedule_psk_mode_and_export() -> None:
    from mls.crypto import hpke

    suite = hpke.hpke_suite(0x0020, 0x0011, 0x0003)  # DHKEM(X25519), SHAKE256, ChaCha20Poly1305
    assert isinstance(suite.kdf, hpke.OneStageKdf)
    sk, pk = suite.kem.derive_key_pair(b"\x09" * 32)
    psk, psk_id = b"p" * 32, b"id"
    enc, sender = suite.setup_sender(
        hpke.MODE_PSK, pk, b"info", b"\x0a" * 32, psk=psk, psk_id=psk_id
    )
    receiver = suite.setup_receiver(hpke.MODE_PSK, enc, sk, b"info", psk=psk, psk_id=psk_id)
    assert receiver.open(b"aad", sender.seal(b"aad", b"pt")) == b"pt"
    assert sender.export(b"ctx", 40) == receiver.export(b"ctx", 40) != sender.export(b"ctx2", 40)
    wrong = suite.setup_receiver(hpke.MODE_PSK, enc, sk, b"info", psk=b"q" * 32, psk_id=psk_id)
    with pytest.raises(DecryptFailed):
        wrong.open(b"aad", sender.seal(b"aad", b"pt"))
    # MLS needs Extract/Expand: a one-stage KDF is refused for a cipher suite.
    with pytest.raises(UnsupportedError):
        hpke.kdf_by_id(0x0011)
    with pytest.raises(UnsupportedError, match="TurboSHAKE"):
        hpke.hpke_kdf_by_id(0x0013)
