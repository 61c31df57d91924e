"""Handler for ``hpke/test-vectors.json`` (RFC 9180 Appendix A test vectors).

One case per entry (mode x KEM x KDF x AEAD). Our implementation is checked on everything:
DeriveKeyPair for every key, the sender setup with the given ephemeral ``ikmE``, the key
schedule outputs, every sequential encryption (seal == ct, open == pt) and every export.
cryptography's native HPKE (base mode, single-shot, empty AAD) is checked where it offers the
suite: it must open the vector's first ciphertext and interoperate with our path both ways.
"""

from __future__ import annotations

from typing import Any

from cryptography.hazmat.bindings._rust import openssl as _rust_openssl

from mls.conformance.core import CaseFailed, CaseUnsupported, expect_eq, h
from mls.crypto.hpke import (
    MODE_AUTH,
    MODE_AUTH_PSK,
    MODE_BASE,
    MODE_PSK,
    Hpke,
    hpke_suite,
    native_hpke_for,
)
from mls.errors import DecryptFailed, UnsupportedError

# cryptography's public HPKE API takes no AAD, but the vectors' ciphertexts have one; its
# internal helper with an AAD parameter lets us open them natively. Optional: only if present.
_native_decrypt_with_aad: Any = getattr(_rust_openssl.hpke, "_decrypt_with_aad", None)


def case_ids(data: Any) -> list[str]:
    return [
        f"mode{e['mode']}-kem{e['kem_id']}-kdf{e['kdf_id']}-aead{e['aead_id']}-#{i}"
        for i, e in enumerate(data)
    ]


def check(case: Any) -> None:
    try:
        suite = hpke_suite(case["kem_id"], case["kdf_id"], case["aead_id"])
    except UnsupportedError as exc:
        raise CaseUnsupported(str(exc)) from None
    mode = case["mode"]
    if mode not in (MODE_BASE, MODE_PSK, MODE_AUTH, MODE_AUTH_PSK):
        raise CaseUnsupported(f"unknown HPKE mode {mode}")
    _check_ours(suite, mode, case)
    if mode == MODE_BASE and suite.aead.cls is not None:
        _check_native(suite, case)


def _keys(suite: Hpke, case: Any, who: str) -> tuple[bytes, bytes]:
    sk, pk = suite.kem.derive_key_pair(h(case[f"ikm{who}"]))
    expect_eq(f"DeriveKeyPair(ikm{who}).sk", sk, h(case[f"sk{who}m"]))
    expect_eq(f"DeriveKeyPair(ikm{who}).pk", pk, h(case[f"pk{who}m"]))
    expect_eq(f"pk(sk{who})", suite.kem.public_key(sk), pk)
    return sk, pk


def _check_ours(suite: Hpke, mode: int, case: Any) -> None:
    _keys(suite, case, "E")
    sk_r, pk_r = _keys(suite, case, "R")
    sk_s = pk_s = None
    if mode in (MODE_AUTH, MODE_AUTH_PSK):
        sk_s, pk_s = _keys(suite, case, "S")
    psk = h(case.get("psk", ""))
    psk_id = h(case.get("psk_id", ""))
    info, ikm_e = h(case["info"]), h(case["ikmE"])

    shared_secret, enc = suite.kem.encap(pk_r, ikm_e, sk_s)
    expect_eq("enc", enc, h(case["enc"]))
    expect_eq("shared_secret (Encap)", shared_secret, h(case["shared_secret"]))
    expect_eq("shared_secret (Decap)", suite.kem.decap(enc, sk_r, pk_s), shared_secret)
    ksc, key, nonce, exp = suite.key_schedule(mode, shared_secret, info, psk, psk_id)
    expect_eq("key_schedule_context", ksc, h(case["key_schedule_context"]))
    expect_eq("key", key, h(case["key"]))
    expect_eq("base_nonce", nonce, h(case["base_nonce"]))
    expect_eq("exporter_secret", exp, h(case["exporter_secret"]))

    enc2, sender = suite.setup_sender(mode, pk_r, info, ikm_e, psk=psk, psk_id=psk_id, sk_s=sk_s)
    expect_eq("setup_sender enc", enc2, h(case["enc"]))
    receiver = suite.setup_receiver(mode, enc, sk_r, info, psk=psk, psk_id=psk_id, pk_s=pk_s)
    if suite.aead.cls is not None:
        # The vectors list consecutive encryptions: sequence numbers 0, 1, 2, ...
        for i, v in enumerate(case["encryptions"]):
            aad, pt, ct = h(v["aad"]), h(v["pt"]), h(v["ct"])
            expect_eq(f"encryptions[{i}] seal", sender.seal(aad, pt), ct)
            try:
                expect_eq(f"encryptions[{i}] open", receiver.open(aad, ct), pt)
            except DecryptFailed:
                raise CaseFailed(f"encryptions[{i}]: open failed") from None
        if mode == MODE_BASE and case["encryptions"]:
            first = case["encryptions"][0]
            aad, pt, ct = h(first["aad"]), h(first["pt"]), h(first["ct"])
            expect_eq("seal_base", suite.seal_base(pk_r, info, aad, pt, ikm_e), (enc, ct))
            expect_eq("open_base", suite.open_base(enc, sk_r, info, aad, ct), pt)
    elif case["encryptions"]:
        raise CaseFailed("export-only suite has encryptions")
    for i, x in enumerate(case["exports"]):
        ctx, length, want = h(x["exporter_context"]), x["L"], h(x["exported_value"])
        expect_eq(f"exports[{i}] (sender)", sender.export(ctx, length), want)
        expect_eq(f"exports[{i}] (receiver)", receiver.export(ctx, length), want)


def _check_native(suite: Hpke, case: Any) -> None:
    native = native_hpke_for(suite)
    if native is None:
        return
    sk_r, pk_r = h(case["skRm"]), h(case["pkRm"])
    info, enc = h(case["info"]), h(case["enc"])
    if case["encryptions"] and _native_decrypt_with_aad is not None:
        first = case["encryptions"][0]
        priv = suite.kem.load_private(sk_r)
        got = _native_decrypt_with_aad(
            native._suite, enc + h(first["ct"]), priv, info=info, aad=h(first["aad"])
        )
        expect_eq("native open of encryptions[0]", got, h(first["pt"]))
    # Interoperation with our (vector-proven) path, with the empty AAD MLS uses.
    pt = b"native-hpke-interop"
    kem_output, ct = suite.seal_base(pk_r, info, b"", pt, h(case["ikmE"]))
    expect_eq("native open of our seal", native.open(kem_output, sk_r, info, ct), pt)
    kem_output, ct = native.seal(pk_r, info, pt)
    expect_eq("our open of native seal", suite.open_base(kem_output, sk_r, info, b"", ct), pt)
