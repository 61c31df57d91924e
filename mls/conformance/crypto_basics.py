"""Handler for ``mlswg/crypto-basics.json`` (RFC 9420 §5.1, §5.2, §8, §9 labeled operations).

Each case runs twice: with our RFC 9180 HPKE and with cryptography's native HPKE where the
suite allows it, so both seal/open paths are proven against the same vectors.
"""

from __future__ import annotations

from typing import Any

from mls.conformance.core import CaseFailed, CaseUnsupported, expect_eq, h
from mls.crypto import (
    CipherSuite,
    CryptoProvider,
    decrypt_with_label,
    derive_secret,
    derive_tree_secret,
    encrypt_with_label,
    expand_with_label,
    ref_hash,
    sign_with_label,
    verify_with_label,
)
from mls.errors import BadSignature, DecryptFailed, UnsupportedError

_OURS = CryptoProvider(native_hpke=False)
_NATIVE = CryptoProvider(native_hpke=True)


def case_ids(data: Any) -> list[str]:
    return [f"suite{c['cipher_suite']}" for c in data]


def check(case: Any) -> None:
    suite_id = case["cipher_suite"]
    try:
        paths = [("ours", _OURS.suite(suite_id))]
    except UnsupportedError as exc:
        raise CaseUnsupported(str(exc)) from None
    native = _NATIVE.suite(suite_id)
    if native.native_hpke is not None:
        paths.append(("native", native))
    for path, cs in paths:
        _check_suite(path, cs, case)


def _check_suite(path: str, cs: CipherSuite, case: Any) -> None:
    r = case["ref_hash"]
    expect_eq("ref_hash", ref_hash(cs, r["label"], h(r["value"])), h(r["out"]))

    e = case["expand_with_label"]
    got = expand_with_label(cs, h(e["secret"]), e["label"], h(e["context"]), e["length"])
    expect_eq("expand_with_label", got, h(e["out"]))

    d = case["derive_secret"]
    expect_eq("derive_secret", derive_secret(cs, h(d["secret"]), d["label"]), h(d["out"]))

    t = case["derive_tree_secret"]
    got = derive_tree_secret(cs, h(t["secret"]), t["label"], t["generation"], t["length"])
    expect_eq("derive_tree_secret", got, h(t["out"]))

    s = case["sign_with_label"]
    sk, pk, label, content = h(s["priv"]), h(s["pub"]), s["label"], h(s["content"])
    expect_eq("signature_public_key(priv)", cs.signature_public_key(sk), pk)
    try:
        verify_with_label(cs, pk, label, content, h(s["signature"]))
    except BadSignature:
        raise CaseFailed("sign_with_label: the vector's signature does not verify") from None
    fresh = sign_with_label(cs, sk, label, content)
    try:
        verify_with_label(cs, pk, label, content, fresh)
    except BadSignature:
        raise CaseFailed("sign_with_label: a fresh signature does not verify") from None
    try:
        verify_with_label(cs, pk, label + "x", content, fresh)
    except BadSignature:
        pass
    else:
        raise CaseFailed("verify_with_label accepted a signature under another label")

    c = case["encrypt_with_label"]
    sk, pk, label, ctx = h(c["priv"]), h(c["pub"]), c["label"], h(c["context"])
    pt = h(c["plaintext"])
    expect_eq("hpke_public_key(priv)", cs.hpke_public_key(sk), pk)
    try:
        got = decrypt_with_label(cs, sk, label, ctx, h(c["kem_output"]), h(c["ciphertext"]))
    except DecryptFailed:
        raise CaseFailed(f"decrypt_with_label ({path}): the vector does not open") from None
    expect_eq(f"decrypt_with_label ({path})", got, pt)
    kem_output, ct = encrypt_with_label(cs, pk, label, ctx, pt)
    got = decrypt_with_label(cs, sk, label, ctx, kem_output, ct)
    expect_eq(f"encrypt_with_label round trip ({path})", got, pt)
    # The other path must open what this one sealed.
    other = _NATIVE if path == "ours" else _OURS
    ocs = other.suite(cs.suite_id)
    got = decrypt_with_label(ocs, sk, label, ctx, kem_output, ct)
    expect_eq(f"encrypt_with_label ({path}) opened by the other path", got, pt)
