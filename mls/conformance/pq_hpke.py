"""Handlers for ``pq/hpke-pq/test-vectors.json`` (draft-ietf-hpke-pq-04) and
``pq/xwing/test-vectors.json`` (draft-connolly-cfrg-xwing-kem).

HPKE-PQ, per case: DeriveKeyPair(ikmR) == (skRm, pkRm) (SHAKE256.LabeledDerive), Decap(enc) ==
shared_secret, the key schedule (HKDF two-stage, or SHAKE one-stage CombineSecrets) == key,
base_nonce, exporter_secret, every encryption sealed and opened in sequence, every export; then a
fresh Encap/Decap round trip, and where cryptography's own HPKE has the KEM (ML-KEM-768/1024,
MLKEM768-X25519, MLKEM1024-P384), its open of our seal and our open of its seal. The sender side
from ``ikmE`` is not reproduced: cryptography has no derandomized ML-KEM encapsulation.
ML-KEM-512 and the TurboSHAKE KDFs are reported unsupported with the reason.

X-Wing, per case: the public key from the seed and Decapsulate(ct) == ss (Encapsulate from
``eseed`` needs the derandomized ML-KEM Encaps, as above).
"""

from __future__ import annotations

from typing import Any

from cryptography.hazmat.primitives import hpke as native_hpke
from cryptography.hazmat.primitives.asymmetric import x25519

from mls.conformance.core import CaseFailed, CaseUnsupported, expect_eq, h
from mls.crypto import pq
from mls.crypto.hpke import MODE_BASE, Context, Hpke, hpke_suite
from mls.errors import DecryptFailed, UnsupportedError

_NATIVE_KEMS: dict[int, Any] = {
    0x0041: native_hpke.KEM.MLKEM768,
    0x0042: native_hpke.KEM.MLKEM1024,
    0x647A: native_hpke.KEM.MLKEM768_X25519,
    0x0051: native_hpke.KEM.MLKEM1024_P384,
}
_NATIVE_KDFS: dict[int, Any] = {
    0x0001: native_hpke.KDF.HKDF_SHA256,
    0x0002: native_hpke.KDF.HKDF_SHA384,
    0x0003: native_hpke.KDF.HKDF_SHA512,
    0x0010: native_hpke.KDF.SHAKE128,
    0x0011: native_hpke.KDF.SHAKE256,
}
_NATIVE_AEADS: dict[int, Any] = {
    0x0001: native_hpke.AEAD.AES_128_GCM,
    0x0002: native_hpke.AEAD.AES_256_GCM,
    0x0003: native_hpke.AEAD.CHACHA20_POLY1305,
}


def case_ids(data: Any) -> list[str]:
    if data and "seed" in data[0]:
        return [f"xwing-#{i}" for i in range(len(data))]
    return [
        f"kem0x{e['kem_id']:04x}-kdf0x{e['kdf_id']:04x}-aead0x{e['aead_id']:04x}-#{i}"
        for i, e in enumerate(data)
    ]


def check(case: Any) -> None:
    why = pq.mlkem_unavailable()
    if why is not None:  # pragma: no cover - depends on the installed OpenSSL
        raise CaseUnsupported(why)
    if "seed" in case:
        _check_xwing(case)
        return
    try:
        suite = hpke_suite(case["kem_id"], case["kdf_id"], case["aead_id"])
    except UnsupportedError as exc:
        raise CaseUnsupported(str(exc)) from None
    if case["mode"] != MODE_BASE:
        raise CaseFailed(f"unexpected mode {case['mode']} (the PQ KEMs have base mode only)")
    _check_case(suite, case)
    _check_native(suite, case)


def _check_xwing(case: Any) -> None:
    kem = pq.KEM_XWING
    sk = h(case["seed"])
    expect_eq("sk", sk, h(case["sk"]))
    expect_eq("pk", kem.public_key(sk), h(case["pk"]))
    expect_eq("ss = Decapsulate(ct, sk)", kem.decap(h(case["ct"]), sk), h(case["ss"]))


def _check_case(suite: Hpke, case: Any) -> None:
    sk_r, pk_r = suite.kem.derive_key_pair(h(case["ikmR"]))
    expect_eq("DeriveKeyPair(ikmR).sk", sk_r, h(case["skRm"]))
    expect_eq("DeriveKeyPair(ikmR).pk", pk_r, h(case["pkRm"]))
    expect_eq("suite_id", suite.suite_id, h(case["suite_id"]))
    info, enc = h(case["info"]), h(case["enc"])
    shared_secret = suite.kem.decap(enc, sk_r)
    expect_eq("shared_secret (Decap)", shared_secret, h(case["shared_secret"]))
    _, key, nonce, exp = suite.key_schedule(MODE_BASE, shared_secret, info, b"", b"")
    expect_eq("key", key, h(case["key"]))
    expect_eq("base_nonce", nonce, h(case["base_nonce"]))
    expect_eq("exporter_secret", exp, h(case["exporter_secret"]))
    receiver = suite.setup_receiver(MODE_BASE, enc, sk_r, info)
    # A sender context with the same key schedule (the KEM part is what cannot be replayed).
    sender = Context(suite, key, nonce, exp)
    for i, v in enumerate(case["encryptions"]):
        aad, pt, ct = h(v["aad"]), h(v["pt"]), h(v["ct"])
        expect_eq(f"encryptions[{i}] seal", sender.seal(aad, pt), ct)
        try:
            expect_eq(f"encryptions[{i}] open", receiver.open(aad, ct), pt)
        except DecryptFailed:
            raise CaseFailed(f"encryptions[{i}]: open failed") from None
    if case["encryptions"]:
        first = case["encryptions"][0]
        got = suite.open_base(enc, sk_r, info, h(first["aad"]), h(first["ct"]))
        expect_eq("open_base", got, h(first["pt"]))
    for i, x in enumerate(case["exports"]):
        ctx, length, want = h(x["exporter_context"]), x["L"], h(x["exported_value"])
        expect_eq(f"exports[{i}]", receiver.export(ctx, length), want)
    # A fresh encapsulation round trip.
    enc2, ct2 = suite.seal_base(pk_r, info, b"aad", b"round trip", b"")
    expect_eq("len(enc)", len(enc2), suite.kem.n_enc)
    expect_eq("round trip", suite.open_base(enc2, sk_r, info, b"aad", ct2), b"round trip")


def _native_keys(suite: Hpke, sk: bytes, pk: bytes) -> tuple[Any, Any]:
    kem = suite.kem
    if isinstance(kem, pq.XWing):
        sk_m, sk_x, _, pk_x = kem.expand(sk)
        priv = native_hpke.MLKEM768X25519PrivateKey(sk_m, sk_x)
        pub = native_hpke.MLKEM768X25519PublicKey(
            sk_m.public_key(), x25519.X25519PublicKey.from_public_bytes(pk_x)
        )
        return priv, pub
    if isinstance(kem, pq.NistHybrid):
        sk_m, sk_t, _, _ = kem.expand(sk)
        return (
            native_hpke.MLKEM1024P384PrivateKey(sk_m, sk_t),
            native_hpke.MLKEM1024P384PublicKey(sk_m.public_key(), sk_t.public_key()),
        )
    return kem.load_private(sk), kem.load_public(pk)


def _check_native(suite: Hpke, case: Any) -> None:
    """Interoperation with cryptography's own HPKE (empty AAD), where it has the suite."""
    try:
        native = native_hpke.Suite(
            _NATIVE_KEMS[suite.kem.kem_id],
            _NATIVE_KDFS[suite.kdf.kdf_id],
            _NATIVE_AEADS[suite.aead.aead_id],
        )
    except KeyError:
        return
    sk_r, pk_r = h(case["skRm"]), h(case["pkRm"])
    info = h(case["info"])
    priv, pub = _native_keys(suite, sk_r, pk_r)
    pt = b"native-hpke-interop"
    enc, ct = suite.seal_base(pk_r, info, b"", pt, b"")
    expect_eq("native open of our seal", native.decrypt(enc + ct, priv, info), pt)
    out = native.encrypt(pt, pub, info)
    n = suite.kem.n_enc
    expect_eq("our open of native seal", suite.open_base(out[:n], sk_r, info, b"", out[n:]), pt)
