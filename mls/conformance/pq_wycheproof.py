"""Handler for the Wycheproof ML-KEM and ML-DSA files (``pq/wycheproof/*.json``, C2SP).

The primitives are cryptography's; what is checked is our use of them (seed key formats, key
and ciphertext length checks, the FIPS 203 encapsulation-key check, empty-context signing) and
the primitive's answers on every case:

- ``mlkem_*_keygen_seed_test``: seed ``d || z`` -> encapsulation key (cryptography does not
  export the expanded decapsulation key ``dk``; its correctness shows in the decaps cases).
- ``mlkem_*_test``: seed -> ek, Decaps(c) == K (implicit rejection included); bad seed or
  ciphertext lengths are refused.
- ``mlkem_*_encaps_test``: an invalid ``ek`` (not reduced mod q, bad length) is refused; a
  valid one is accepted and a fresh encapsulation to it has the right size. ``c``/``K`` from
  the fixed ``m`` cannot be reproduced: cryptography has no derandomized Encaps.
- ``mldsa_*_sign_seed_test``: seed -> public key; the vector's signature verifies with the
  vector's context; our own (hedged) signature verifies; bad seed lengths and contexts over 255
  bytes are refused. Cases given only as ``mu`` (flag ``Internal``) are unsupported:
  cryptography offers no external-mu signing.
- ``mldsa_*_verify_test``: verify with the case's context must accept exactly the valid cases.
"""

from __future__ import annotations

from typing import Any

from mls.conformance.core import CaseFailed, CaseUnsupported, expect_eq, h
from mls.crypto import pq
from mls.errors import BadSignature, DecryptFailed, InvalidKey

_MLDSA = {"ML-DSA-44": pq.MLDSA44, "ML-DSA-65": pq.MLDSA65, "ML-DSA-87": pq.MLDSA87}
_MLKEM = {"ML-KEM-768": pq.KEM_MLKEM768, "ML-KEM-1024": pq.KEM_MLKEM1024}


def cases(data: Any) -> list[Any]:
    out: list[Any] = []
    for group in data["testGroups"]:
        meta = {k: v for k, v in group.items() if k != "tests"}
        meta.setdefault("parameterSet", data.get("algorithm"))
        out.extend({**t, "_group": meta} for t in group["tests"])
    return out


def case_ids(data: Any) -> list[str]:
    return [f"{c['_group']['type']}-tc{c['tcId']}" for c in cases(data)]


def check(case: Any) -> None:
    why = pq.mlkem_unavailable() or pq.mldsa_unavailable()
    if why is not None:  # pragma: no cover - depends on the installed OpenSSL
        raise CaseUnsupported(why)
    kind = case["_group"]["type"]
    if kind == "MLKEMKeyGen":
        _mlkem_keygen(case)
    elif kind == "MLKEMTest":
        _mlkem_decaps(case)
    elif kind == "MLKEMEncapsTest":
        _mlkem_encaps(case)
    elif kind == "MlDsaSign":
        _mldsa_sign(case)
    elif kind == "MlDsaVerify":
        _mldsa_verify(case)
    else:
        raise CaseUnsupported(f"Wycheproof test type {kind!r}")


def _kem(case: Any) -> pq.MlKem:
    name = case["_group"]["parameterSet"]
    try:
        return _MLKEM[name]
    except KeyError:
        raise CaseUnsupported(f"{name} is not offered (cryptography has ML-KEM-768/1024)") from None


def _expect(case: Any, ok: bool, what: str) -> None:
    valid = case["result"] == "valid"
    if ok != valid:
        raise CaseFailed(f"{what}: {'accepted' if ok else 'refused'} a {case['result']} case")


def _mlkem_keygen(case: Any) -> None:
    kem = _kem(case)
    expect_eq("ek", kem.public_key(h(case["seed"])), h(case["ek"]))


def _mlkem_decaps(case: Any) -> None:
    kem = _kem(case)
    try:
        sk = h(case["seed"])
        ek = kem.public_key(sk)
        k = kem.decap(h(case["c"]), sk)
    except (InvalidKey, DecryptFailed):
        _expect(case, False, "decapsulation")
        return
    _expect(case, True, "decapsulation")
    if "ek" in case:
        expect_eq("ek", ek, h(case["ek"]))
    expect_eq("K", k, h(case["K"]))


def _mlkem_encaps(case: Any) -> None:
    kem = _kem(case)
    try:
        ss, ct = kem.encap(h(case["ek"]), b"")
    except InvalidKey:
        _expect(case, False, "encapsulation key check")
        return
    _expect(case, True, "encapsulation key check")
    expect_eq("len(c)", len(ct), len(h(case["c"])))
    expect_eq("len(K)", len(ss), len(h(case["K"])))


def _scheme(case: Any) -> pq.MlDsaScheme:
    return _MLDSA[case["_group"]["parameterSet"]]


def _mldsa_sign(case: Any) -> None:
    scheme = _scheme(case)
    if "msg" not in case:
        raise CaseUnsupported("given as mu only: cryptography offers no external-mu signing")
    ctx = h(case.get("ctx", ""))
    seed = h(case["_group"]["privateSeed"])
    try:
        priv = scheme.load_private(seed)
        ours = priv.sign(h(case["msg"]), ctx)
    except (InvalidKey, ValueError):
        _expect(case, False, "sign")
        return
    _expect(case, True, "sign")
    pk = scheme.public_key(seed)
    expect_eq("public key", pk, h(case["_group"]["publicKey"]))
    pub = scheme.load_public(pk)
    for who, sig in (("vector", h(case["sig"])), ("ours", ours)):
        try:
            pub.verify(sig, h(case["msg"]), ctx)
        except Exception as exc:
            raise CaseFailed(f"{who} signature does not verify: {type(exc).__name__}") from None
    if not ctx:  # the MLS path: empty context through SignatureScheme
        scheme.verify(pk, h(case["msg"]), scheme.sign(seed, h(case["msg"])))


def _mldsa_verify(case: Any) -> None:
    scheme = _scheme(case)
    ctx = h(case.get("ctx", ""))
    msg, sig = h(case["msg"]), h(case["sig"])
    try:
        pub = scheme.load_public(h(case["_group"]["publicKey"]))
        if ctx:
            pub.verify(sig, msg, ctx)
        else:
            scheme.verify(h(case["_group"]["publicKey"]), msg, sig)
    except (InvalidKey, BadSignature, ValueError):
        _expect(case, False, "verify")
        return
    except Exception as exc:  # InvalidSignature from the context path
        if type(exc).__name__ != "InvalidSignature":
            raise
        _expect(case, False, "verify")
        return
    _expect(case, True, "verify")
