"""The cipher-suite code-point registry: which 16-bit suite id means which algorithms.

RFC 9420 §17.1 fixes suites 1-7 (:data:`mls.crypto.suites.SUITES`); they never change. The
post-quantum suites of draft-ietf-mls-pq-ciphersuites-06 have no IANA numbers yet (TBD1..TBD11)
and implementations use clashing provisional ones (``CODEPOINTS.md`` in the shared vectors), so
their ids come from a *profile*:

- ``openmls`` (the default): OpenMLS's provisional numbers for the draft suites (main
  79ebb5b, feature ``draft-ietf-mls-pq-ciphersuites``), draft algorithms, hpke-pq DeriveKeyPair.
- ``ts-mls-1``: a **compatibility profile** for ts-mls 1.x (1.6.4): its ids 79-88, its
  algorithms (HKDF-SHA512 throughout, SHA-512 with ML-KEM-1024 and X-Wing) and its
  DeriveKeyPair (ML-KEM: ikm used as the seed; X-Wing: SHAKE256(ikm, 32)), which deviate
  from draft-ietf-hpke-pq. Its ML-KEM-512 suites (77, 78) are unsupported.

TBD3-TBD5 (MLKEM768-P256, MLKEM1024-P384) work too but have no id in either profile (OpenMLS
does not implement them): map them with ``register_suite(draft_suite("TBD3", id))``.

The active profile is process-wide: :func:`use_profile` (or ``MLS_SUITE_PROFILE`` at import).
Applications can map further ids with :func:`register_suite`; those take precedence over the
profile. Suites whose primitives the installed cryptography lacks raise
:class:`~mls.errors.UnsupportedError` with the reason.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field

from mls.crypto import pq
from mls.crypto import signatures as _sig
from mls.crypto.suites import SUITES, SuiteParams
from mls.errors import UnsupportedError, UsageError

__all__ = [
    "DRAFT_SUITES",
    "PROFILES",
    "Profile",
    "active_profile",
    "check_available",
    "draft_suite",
    "is_pq",
    "pq_suite_ids",
    "register_suite",
    "suite_params",
    "supported_suites",
    "unregister_suite",
    "use_profile",
]

_KEM_MLKEM768 = 0x0041
_KEM_MLKEM1024 = 0x0042
_KEM_XWING = 0x647A
_PQ_KEMS = frozenset({0x0040, _KEM_MLKEM768, _KEM_MLKEM1024, 0x0050, 0x0051, _KEM_XWING})
_PQ_SIGNATURES = frozenset({pq.MLDSA44.scheme_id, pq.MLDSA65.scheme_id, pq.MLDSA87.scheme_id})


def _def(name: str, kem: int, kdf: int, aead: int, hash_name: str, sig: object) -> SuiteParams:
    return SuiteParams(
        suite_id=0,
        name=name,
        kem_id=kem,
        kdf_id=kdf,
        aead_id=aead,
        hash_name=hash_name,
        signature=sig,  # type: ignore[arg-type]
    )


# draft-ietf-mls-pq-ciphersuites-06 §3 (IANA table), by draft placeholder. KDF ids are HKDF
# (0x0001 SHA-256, 0x0002 SHA-384) since -06; AEAD 0x0001 AES-128-GCM, 0x0002 AES-256-GCM,
# 0x0003 ChaCha20Poly1305.
DRAFT_SUITES: dict[str, SuiteParams] = {
    "TBD1": _def(
        "MLS_128_MLKEM768X25519_AES128GCM_SHA256_Ed25519", _KEM_XWING, 1, 1, "sha256", _sig.ED25519
    ),
    "TBD2": _def(
        "MLS_128_MLKEM768X25519_AES256GCM_SHA384_Ed25519", _KEM_XWING, 2, 2, "sha384", _sig.ED25519
    ),
    "TBD3": _def(
        "MLS_128_MLKEM768P256_AES128GCM_SHA256_P256", 0x0050, 1, 1, "sha256", _sig.ECDSA_P256_SHA256
    ),
    "TBD4": _def(
        "MLS_128_MLKEM768P256_AES256GCM_SHA384_P256", 0x0050, 2, 2, "sha384", _sig.ECDSA_P256_SHA256
    ),
    "TBD5": _def(
        "MLS_192_MLKEM1024P384_AES256GCM_SHA384_P384",
        0x0051,
        2,
        2,
        "sha384",
        _sig.ECDSA_P384_SHA384,
    ),
    "TBD6": _def(
        "MLS_128_MLKEM768_AES256GCM_SHA384_Ed25519", _KEM_MLKEM768, 2, 2, "sha384", _sig.ED25519
    ),
    "TBD7": _def(
        "MLS_128_MLKEM768_AES256GCM_SHA384_P256",
        _KEM_MLKEM768,
        2,
        2,
        "sha384",
        _sig.ECDSA_P256_SHA256,
    ),
    "TBD8": _def(
        "MLS_192_MLKEM1024_AES256GCM_SHA384_P384",
        _KEM_MLKEM1024,
        2,
        2,
        "sha384",
        _sig.ECDSA_P384_SHA384,
    ),
    "TBD9": _def(
        "MLS_128_MLKEM768X25519_CHACHA20POLY1305_SHA384_MLDSA44",
        _KEM_XWING,
        2,
        3,
        "sha384",
        pq.MLDSA44,
    ),
    "TBD10": _def(
        "MLS_192_MLKEM768_AES256GCM_SHA384_MLDSA65", _KEM_MLKEM768, 2, 2, "sha384", pq.MLDSA65
    ),
    "TBD11": _def(
        "MLS_256_MLKEM1024_AES256GCM_SHA384_MLDSA87", _KEM_MLKEM1024, 2, 2, "sha384", pq.MLDSA87
    ),
}


@dataclass(frozen=True)
class Profile:
    """A named mapping of suite ids to post-quantum suites."""

    name: str
    description: str
    suites: dict[int, SuiteParams]
    #: ids the profile names but this library cannot offer, with the reason.
    unsupported: dict[int, str] = field(default_factory=dict)


def _ids(mapping: dict[int, str]) -> dict[int, SuiteParams]:
    return {
        sid: dataclasses.replace(DRAFT_SUITES[tbd], suite_id=sid) for sid, tbd in mapping.items()
    }


_OPENMLS = Profile(
    "openmls",
    "OpenMLS main (79ebb5b) provisional ids for draft-ietf-mls-pq-ciphersuites-06",
    _ids(
        {
            0x004F: "TBD1",
            0x004E: "TBD2",
            0xF042: "TBD6",
            0x0050: "TBD7",
            0x0042: "TBD8",
            0x0052: "TBD9",
            0x0051: "TBD10",
            0x0907: "TBD11",
        }
    ),
)


def _ts(sid: int, name: str, kem: int, aead: int, hash_name: str, sig: object) -> SuiteParams:
    return SuiteParams(
        suite_id=sid,
        name=name,
        kem_id=kem,
        kdf_id=0x0003,  # ts-mls 1.x uses HKDF-SHA512 in every PQ suite
        aead_id=aead,
        hash_name=hash_name,
        signature=sig,  # type: ignore[arg-type]
        derive=pq.DERIVE_TS_MLS_1,
        note="ts-mls 1.x compatibility: HKDF-SHA512 and @hpke DeriveKeyPair, not hpke-pq",
    )


_TS_MLS_1 = Profile(
    "ts-mls-1",
    "ts-mls 1.x (1.6.4) ids 79-88 and algorithms; a compatibility profile that deviates from "
    "draft-ietf-hpke-pq (DeriveKeyPair) and draft-ietf-mls-pq-ciphersuites (HKDF-SHA512)",
    {
        s.suite_id: s
        for s in (
            _ts(
                79,
                "MLS_256_MLKEM768_AES256GCM_SHA384_Ed25519",
                _KEM_MLKEM768,
                2,
                "sha384",
                _sig.ED25519,
            ),
            _ts(
                80,
                "MLS_256_MLKEM768_CHACHA20POLY1305_SHA384_Ed25519",
                _KEM_MLKEM768,
                3,
                "sha384",
                _sig.ED25519,
            ),
            _ts(
                81,
                "MLS_256_MLKEM1024_AES256GCM_SHA512_Ed25519",
                _KEM_MLKEM1024,
                2,
                "sha512",
                _sig.ED25519,
            ),
            _ts(
                82,
                "MLS_256_MLKEM1024_CHACHA20POLY1305_SHA512_Ed25519",
                _KEM_MLKEM1024,
                3,
                "sha512",
                _sig.ED25519,
            ),
            _ts(
                83, "MLS_256_XWING_AES256GCM_SHA512_Ed25519", _KEM_XWING, 2, "sha512", _sig.ED25519
            ),
            _ts(
                84,
                "MLS_256_XWING_CHACHA20POLY1305_SHA512_Ed25519",
                _KEM_XWING,
                3,
                "sha512",
                _sig.ED25519,
            ),
            _ts(
                85,
                "MLS_256_MLKEM1024_AES256GCM_SHA512_MLDSA87",
                _KEM_MLKEM1024,
                2,
                "sha512",
                pq.MLDSA87,
            ),
            _ts(
                86,
                "MLS_256_MLKEM1024_CHACHA20POLY1305_SHA512_MLDSA87",
                _KEM_MLKEM1024,
                3,
                "sha512",
                pq.MLDSA87,
            ),
            _ts(87, "MLS_256_XWING_AES256GCM_SHA512_MLDSA87", _KEM_XWING, 2, "sha512", pq.MLDSA87),
            _ts(
                88,
                "MLS_256_XWING_CHACHA20POLY1305_SHA512_MLDSA87",
                _KEM_XWING,
                3,
                "sha512",
                pq.MLDSA87,
            ),
        )
    },
    unsupported={
        77: "ts-mls suite 77 (MLS_128_MLKEM512_AES128GCM_SHA256_Ed25519) needs ML-KEM-512, "
        "which cryptography does not implement",
        78: "ts-mls suite 78 (MLS_128_MLKEM512_CHACHA20POLY1305_SHA256_Ed25519) needs "
        "ML-KEM-512, which cryptography does not implement",
    },
)

PROFILES: dict[str, Profile] = {p.name: p for p in (_OPENMLS, _TS_MLS_1)}
DEFAULT_PROFILE = "openmls"

_state: dict[str, Profile] = {"active": PROFILES[DEFAULT_PROFILE]}
_custom: dict[int, SuiteParams] = {}


def draft_suite(placeholder: str, suite_id: int) -> SuiteParams:
    """The draft-06 suite ``placeholder`` ("TBD1".."TBD11") under ``suite_id``, for
    :func:`register_suite` (TBD3-TBD5 have no id in any profile: OpenMLS lacks them)."""
    try:
        return dataclasses.replace(DRAFT_SUITES[placeholder], suite_id=suite_id)
    except KeyError:
        raise UsageError(f"no suite {placeholder!r} in draft-ietf-mls-pq-ciphersuites-06") from None


def use_profile(name: str) -> Profile:
    """Make ``name`` the active profile (process-wide); returns it."""
    try:
        profile = PROFILES[name]
    except KeyError:
        raise UsageError(
            f"unknown suite profile {name!r} (known: {', '.join(sorted(PROFILES))})"
        ) from None
    _state["active"] = profile
    return profile


def active_profile() -> Profile:
    return _state["active"]


def register_suite(params: SuiteParams, *, replace: bool = False) -> None:
    """Map ``params.suite_id`` to ``params`` (for every profile). Ids 1-7 are fixed by RFC 9420;
    an id already registered needs ``replace=True``."""
    sid = params.suite_id
    if not 0 < sid <= 0xFFFF:
        raise UsageError(f"cipher suite id {sid} is not a 16-bit value")
    if sid in SUITES:
        raise UsageError(f"cipher suite {sid} is fixed by RFC 9420 §17.1")
    if sid in _custom and not replace:
        raise UsageError(f"cipher suite {sid} is already registered")
    _custom[sid] = params


def unregister_suite(suite_id: int) -> None:
    _custom.pop(suite_id, None)


def suite_params(suite_id: int) -> SuiteParams:
    """What ``suite_id`` means now; raises UnsupportedError (with the reason) otherwise."""
    params = SUITES.get(suite_id) or _custom.get(suite_id)
    if params is not None:
        return params
    profile = _state["active"]
    params = profile.suites.get(suite_id)
    if params is not None:
        return params
    why = profile.unsupported.get(suite_id)
    if why is not None:
        raise UnsupportedError(why)
    raise UnsupportedError(
        f"cipher suite {suite_id} (0x{suite_id:04x}) is not supported (profile {profile.name!r})"
    )


def is_pq(params: SuiteParams) -> bool:
    """Whether a suite uses a post-quantum KEM or signature."""
    return params.kem_id in _PQ_KEMS or params.signature.scheme_id in _PQ_SIGNATURES


def check_available(params: SuiteParams) -> None:
    """Raise UnsupportedError, saying why, when this installation cannot run ``params``."""
    if params.kem_id in _PQ_KEMS:
        pq.kem_by_id(params.kem_id)  # ML-KEM-512 is not offered
        why = pq.mlkem_unavailable()
        if why is not None:
            raise UnsupportedError(f"cipher suite {params.suite_id} needs ML-KEM: {why}")
    if params.signature.scheme_id in _PQ_SIGNATURES:
        why = pq.mldsa_unavailable()
        if why is not None:
            raise UnsupportedError(f"cipher suite {params.suite_id} needs ML-DSA: {why}")


def _usable(params: SuiteParams) -> bool:
    try:
        check_available(params)
    except UnsupportedError:
        return False
    return True


def pq_suite_ids() -> tuple[int, ...]:
    """The post-quantum suite ids usable now (active profile and registered ones)."""
    merged = {**_state["active"].suites, **_custom}
    return tuple(sorted(s for s, p in merged.items() if is_pq(p) and _usable(p)))


def supported_suites() -> tuple[int, ...]:
    """Every suite id usable now: 1-7, the active profile's and the registered ones."""
    merged = {**_state["active"].suites, **_custom}
    return (*sorted(SUITES), *sorted(s for s, p in merged.items() if _usable(p)))


_env_profile = os.environ.get("MLS_SUITE_PROFILE")
if _env_profile:
    use_profile(_env_profile)
