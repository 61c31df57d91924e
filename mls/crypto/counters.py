"""Opt-in counters of primitive operations, for benchmarks (no RFC section).

The rekey benchmark sets ``COUNTERS.enabled = True``, runs an operation and reads the fields.
When disabled (the default) each instrumented call pays one attribute test and nothing else.

:meth:`Counters.snapshot` gives the public-key operations (HPKE seal/open, DeriveKeyPair,
sign, verify); :meth:`Counters.snapshot_all` adds the symmetric ones (hash, MAC, HKDF extract
and expand, AEAD seal and open) and the bytes fed to the operations whose cost grows with their
input, so a benchmark can price an operation as calls x per-call cost + bytes x per-byte cost.
"""

from __future__ import annotations

_FIELDS = ("hpke_seal", "hpke_open", "derive_key_pair", "sign", "verify")
_EXTRA_FIELDS = (
    "sign_bytes",
    "verify_bytes",
    "hash",
    "hash_bytes",
    "mac",
    "mac_bytes",
    "kdf_extract",
    "kdf_expand",
    "aead_seal",
    "aead_seal_bytes",
    "aead_open",
    "aead_open_bytes",
)


class Counters:
    """Counts of primitive calls (and of their input bytes) while ``enabled``."""

    __slots__ = (
        "aead_open",
        "aead_open_bytes",
        "aead_seal",
        "aead_seal_bytes",
        "derive_key_pair",
        "enabled",
        "hash",
        "hash_bytes",
        "hpke_open",
        "hpke_seal",
        "kdf_expand",
        "kdf_extract",
        "mac",
        "mac_bytes",
        "sign",
        "sign_bytes",
        "verify",
        "verify_bytes",
    )

    def __init__(self) -> None:
        self.enabled = False
        self.hpke_seal = self.hpke_open = self.derive_key_pair = self.sign = self.verify = 0
        self.sign_bytes = self.verify_bytes = 0
        self.hash = self.hash_bytes = self.mac = self.mac_bytes = 0
        self.kdf_extract = self.kdf_expand = 0
        self.aead_seal = self.aead_seal_bytes = self.aead_open = self.aead_open_bytes = 0

    def reset(self) -> None:
        """Set every count back to zero (``enabled`` is left as it is)."""
        for name in (*_FIELDS, *_EXTRA_FIELDS):
            setattr(self, name, 0)

    def snapshot(self) -> dict[str, int]:
        """The public-key operation counts as a plain dict."""
        return {name: getattr(self, name) for name in _FIELDS}

    def snapshot_all(self) -> dict[str, int]:
        """Every count, symmetric operations and byte counts included."""
        return {name: getattr(self, name) for name in (*_FIELDS, *_EXTRA_FIELDS)}

    def __repr__(self) -> str:
        inner = ", ".join(f"{k}={v}" for k, v in self.snapshot().items())
        return f"Counters(enabled={self.enabled}, {inner})"


COUNTERS = Counters()
"""The process-wide counters used by :mod:`mls.crypto`."""
