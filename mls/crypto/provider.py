"""Crypto providers: one :class:`CipherSuite` per suite id (RFC 9420 §17.1 and the suites of
:mod:`mls.crypto.registry`), sharing an RNG.

``CryptoProvider(rng=...)`` is the seam that makes randomness injectable (STYLE §2 example 1):
tests pass a deterministic ``rng`` and every ephemeral key, HPKE encapsulation and generated
key pair becomes reproducible. ``get_suite(id)`` uses the process-wide default provider,
which draws from ``os.urandom``.
"""

from __future__ import annotations

import os

from mls.crypto.registry import check_available, suite_params
from mls.crypto.suites import CipherSuite, Rng

__all__ = ["CryptoProvider", "default_provider", "get_suite"]


class CryptoProvider:
    """Builds and caches the :class:`CipherSuite` objects for one RNG.

    ``native_hpke`` selects cryptography's built-in HPKE for single-shot base-mode seal/open
    with empty AAD (all MLS uses) where it supports the suite (X25519, P-256, P-384, P-521):

    - ``None`` (default): seal natively only when ``rng`` is ``os.urandom``, because the
      native path draws its ephemeral keys from the OS and ignores ``rng``; it is 5-20%
      faster at sealing (benchmarks/primitives.py). Open always uses our RFC 9180 code,
      which is as fast for X25519/P-256 and faster for P-384/P-521.
    - ``True``: native seal and open wherever supported (even with a custom ``rng``, so
      sealing is then not reproducible).
    - ``False``: our implementation only (fully deterministic under an injected ``rng``).
    """

    def __init__(self, rng: Rng = os.urandom, *, native_hpke: bool | None = None) -> None:
        self.rng = rng
        if native_hpke is None:
            self._native_seal = rng is os.urandom
            self._native_open = False
        else:
            self._native_seal = self._native_open = native_hpke
        self._suites: dict[int, CipherSuite] = {}

    def __repr__(self) -> str:
        return f"<CryptoProvider rng={getattr(self.rng, '__name__', 'custom')}>"

    def suite(self, suite_id: int) -> CipherSuite:
        """The suite with this id; raises UnsupportedError for unknown ids."""
        params = suite_params(suite_id)
        cs = self._suites.get(suite_id)
        # The registry can map an id anew (another profile): rebuild the suite then.
        if cs is None or cs.params is not params:
            check_available(params)
            cs = CipherSuite(
                params,
                self.rng,
                native_seal=self._native_seal,
                native_open=self._native_open,
            )
            self._suites[suite_id] = cs
        return cs


_DEFAULT = CryptoProvider()


def default_provider() -> CryptoProvider:
    return _DEFAULT


def get_suite(suite_id: int) -> CipherSuite:
    """The suite with this id from the default provider (``os.urandom``)."""
    return _DEFAULT.suite(suite_id)
