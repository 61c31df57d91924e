"""SFrame (RFC 9605) end-to-end media encryption keyed from MLS (RFC 9605 §5.2).

- :mod:`mls.sframe.header`: the SFrame header (§4.3).
- :mod:`mls.sframe.cipher`: cipher suites, key/salt derivation, AES-GCM and AES-CTR+HMAC (§4.4-4.5).
- :mod:`mls.sframe.keys`: the :class:`Exporter` Protocol, per-epoch ``base_key``, KID packing
  (§5.2).
- :mod:`mls.sframe.context`: :class:`SFrameContext`, a call context with epoch switching, a grace
  period for in-flight frames and anti-replay windows.

This package depends only on ``cryptography`` and lower layers; it never imports ``mls.group``.
"""

from __future__ import annotations

from mls.sframe.cipher import SUITES, FrameKey, SFrameSuite, derive_key_salt, get_suite
from mls.sframe.context import DecryptedFrame, ReplayWindow, SFrameContext
from mls.sframe.header import SFrameHeader, encode_header, parse_header
from mls.sframe.keys import BASE_KEY_LABEL, EpochKeys, Exporter, KidLayout, index_bits

__all__ = [
    "SFrameContext",
    "DecryptedFrame",
    "Exporter",
    "EpochKeys",
    "KidLayout",
    "index_bits",
    "BASE_KEY_LABEL",
    "SFrameSuite",
    "SUITES",
    "get_suite",
    "FrameKey",
    "derive_key_salt",
    "SFrameHeader",
    "encode_header",
    "parse_header",
    "ReplayWindow",
]
