"""Opt-in counters of primitive operations, for benchmarks (no RFC section).

The rekey benchmark sets ``COUNTERS.enabled = True``, runs an operation and reads the fields.
When disabled (the default) each instrumented call pays one attribute test and nothing else.
"""

from __future__ import annotations

_FIELDS = ("hpke_seal", "hpke_open", "derive_key_pair", "sign", "verify")


class Counters:
    """Counts of HPKE seal/open, DeriveKeyPair, sign and verify calls while ``enabled``."""

    __slots__ = ("derive_key_pair", "enabled", "hpke_open", "hpke_seal", "sign", "verify")

    def __init__(self) -> None:
        self.enabled = False
        self.hpke_seal = 0
        self.hpke_open = 0
        self.derive_key_pair = 0
        self.sign = 0
        self.verify = 0

    def reset(self) -> None:
        """Set every count back to zero (``enabled`` is left as it is)."""
        for name in _FIELDS:
            setattr(self, name, 0)

    def snapshot(self) -> dict[str, int]:
        """The current counts as a plain dict."""
        return {name: getattr(self, name) for name in _FIELDS}

    def __repr__(self) -> str:
        inner = ", ".join(f"{k}={v}" for k, v in self.snapshot().items())
        return f"Counters(enabled={self.enabled}, {inner})"


COUNTERS = Counters()
"""The process-wide counters used by :mod:`mls.crypto`."""
