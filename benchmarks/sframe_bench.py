"""SFrame throughput: encrypt + decrypt of a 1,200-byte frame for each SFrame cipher suite.

For each suite it measures, in the same run:

- ``sframe``: one :meth:`SFrameContext.encrypt` by a sender plus one :meth:`SFrameContext.decrypt`
  by a receiver (header, nonce, KID lookup, replay window and AEAD);
- ``raw``: the bare AEAD primitive calls on the same data: ``AESGCM.encrypt`` + ``decrypt``, or
  AES-CTR + HMAC + constant-time compare + AES-CTR for the CTR suites.

and prints frames per second for both and the ratio ``sframe time / raw time`` (the overhead of
the SFrame layer). Usage, from the repository root:
``python -m benchmarks.sframe_bench [--frames N] [--json]``.
"""

from __future__ import annotations

import argparse
import hmac
import json
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.hmac import HMAC

from mls.sframe import SUITES, SFrameContext, SFrameSuite

FRAME = 1200


@dataclass
class BenchExporter:
    """A stand-in for an MLS group's exporter (the benchmark measures SFrame, not MLS)."""

    epoch: int
    own_leaf_index: int
    leaf_count: int
    secret: bytes

    def export_secret(self, label: str, context: bytes, length: int) -> bytes:
        out = b""
        while len(out) < length:
            out += hmac.new(
                self.secret, label.encode() + context + bytes([len(out)]), "sha256"
            ).digest()
        return out[:length]


def best_of(fn: Callable[[], None], n: int, repeat: int = 3) -> float:
    """Seconds per call: the best of ``repeat`` runs of ``n`` calls (less noise on shared CPUs)."""
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        for _ in range(n):
            fn()
        best = min(best, time.perf_counter() - t0)
    return best / n


def sframe_op(suite: SFrameSuite) -> Callable[[], None]:
    secret = os.urandom(32)
    tx = SFrameContext(suite, replay_window=64)
    rx = SFrameContext(suite, replay_window=64)
    tx.epoch_changed(BenchExporter(1, 0, 2, secret), now=0)
    rx.epoch_changed(BenchExporter(1, 1, 2, secret), now=0)
    pt, meta = os.urandom(FRAME), b"rtp-hdr-ext"

    def op() -> None:
        rx.decrypt(tx.encrypt(pt, meta), meta, now=0)

    return op


def raw_op(suite: SFrameSuite) -> Callable[[], None]:
    pt, nonce, aad = os.urandom(FRAME), os.urandom(12), os.urandom(16)
    if not suite.is_ctr_hmac:
        aead = AESGCM(os.urandom(suite.nk))

        def gcm() -> None:
            aead.decrypt(nonce, aead.encrypt(nonce, pt, aad), aad)

        return gcm
    aes = algorithms.AES(os.urandom(suite.nka))
    mac = HMAC(os.urandom(suite.nh), suite.hash_algorithm())
    counter = modes.CTR(nonce + bytes(4))
    nt8 = suite.nt.to_bytes(8, "big")

    def ctr_hmac() -> None:
        # The RFC 9605 §4.5.1 construction, including its length prefix, without SFrame framing.
        enc = Cipher(aes, counter).encryptor()
        ct = enc.update(pt) + enc.finalize()
        lens = len(aad).to_bytes(8, "big") + len(ct).to_bytes(8, "big") + nt8 + nonce
        m = mac.copy()
        m.update(lens + aad + ct)
        tag = m.finalize()[: suite.nt]
        m = mac.copy()
        m.update(lens + aad + ct)
        hmac.compare_digest(m.finalize()[: suite.nt], tag)
        dec = Cipher(aes, counter).decryptor()
        dec.update(ct)
        dec.finalize()

    return ctr_hmac


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.sframe_bench")
    parser.add_argument("--frames", type=int, default=5000, help="frames per timing run")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    rows = []
    for suite in SUITES.values():
        s = best_of(sframe_op(suite), args.frames)
        r = best_of(raw_op(suite), args.frames)
        rows.append(
            {
                "suite": suite.suite_id,
                "name": suite.name,
                "frame_bytes": FRAME,
                "sframe_fps": round(1 / s),
                "raw_fps": round(1 / r),
                "sframe_us": round(s * 1e6, 2),
                "raw_us": round(r * 1e6, 2),
                "ratio": round(s / r, 2),
            }
        )
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    print(f"encrypt + decrypt of a {FRAME}-byte frame ({args.frames} frames, best of 3)")
    print(f"{'suite':<32} {'sframe fps':>11} {'raw AEAD fps':>13} {'us/frame':>9} {'ratio':>6}")
    for row in rows:
        print(
            f"{row['suite']} {row['name']:<30} {row['sframe_fps']:>11,} {row['raw_fps']:>13,} "
            f"{row['sframe_us']:>9} {row['ratio']:>6}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
