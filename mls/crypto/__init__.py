"""Layer L1: the cryptography of RFC 9420 (§5.1, §5.2, §8, §17.1) and HPKE (RFC 9180).

Protocol code uses a :class:`CipherSuite` (from :func:`get_suite` or
``CryptoProvider(rng=...).suite(id)``) together with the labeled operations in
:mod:`mls.crypto.labels`; it never calls HKDF or HPKE directly. Everything is composed from
pyca/cryptography; nothing here implements a primitive.
"""

from __future__ import annotations

from mls.crypto.counters import COUNTERS, Counters
from mls.crypto.labels import (
    decrypt_with_label,
    derive_secret,
    derive_tree_secret,
    encrypt_with_label,
    expand_with_label,
    make_key_package_ref,
    make_proposal_ref,
    ref_hash,
    sign_with_label,
    verify_with_label,
)
from mls.crypto.provider import CryptoProvider, default_provider, get_suite
from mls.crypto.registry import (
    pq_suite_ids,
    register_suite,
    supported_suites,
    use_profile,
)
from mls.crypto.suites import SUITES, CipherSuite, Rng, SuiteParams

__all__ = [
    "CipherSuite",
    "CryptoProvider",
    "Rng",
    "SuiteParams",
    "SUITES",
    "default_provider",
    "get_suite",
    "pq_suite_ids",
    "register_suite",
    "supported_suites",
    "use_profile",
    "COUNTERS",
    "Counters",
    "expand_with_label",
    "derive_secret",
    "derive_tree_secret",
    "sign_with_label",
    "verify_with_label",
    "encrypt_with_label",
    "decrypt_with_label",
    "ref_hash",
    "make_key_package_ref",
    "make_proposal_ref",
]
