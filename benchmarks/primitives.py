"""Cost of the hot crypto primitives per cipher suite (median microseconds per call).

Usage: ``python benchmarks/primitives.py [--json FILE] [--suites 1,2] [--rounds N]``

For each RFC 9420 §17.1 suite: one HPKE seal and open on our RFC 9180 implementation and on
cryptography's native HPKE (where it offers the suite), one DeriveKeyPair, one sign, one
verify and one expand_with_label. Each figure is the median over ``rounds`` batches of the
mean time of one call within a batch.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import cryptography

from mls.crypto import CryptoProvider, expand_with_label, sign_with_label, verify_with_label
from mls.crypto.labels import encrypt_with_label

COLUMNS = [
    "seal_ours",
    "seal_native",
    "open_ours",
    "open_native",
    "derive_key_pair",
    "sign",
    "verify",
    "expand_with_label",
]


def measure(fn: Callable[[], object], rounds: int, budget_s: float = 0.02) -> float:
    """Median over ``rounds`` batches of the per-call time, in microseconds."""
    fn()
    start = time.perf_counter()
    fn()
    one = max(time.perf_counter() - start, 1e-7)
    per_batch = max(1, min(2000, int(budget_s / one)))
    samples = []
    for _ in range(rounds):
        t0 = time.perf_counter_ns()
        for _ in range(per_batch):
            fn()
        samples.append((time.perf_counter_ns() - t0) / per_batch / 1000)
    return statistics.median(samples)


def bench_suite(suite_id: int, rounds: int) -> dict[str, float | None]:
    ours = CryptoProvider(native_hpke=False).suite(suite_id)
    native = CryptoProvider(native_hpke=True).suite(suite_id)
    sk, pk = ours.generate_key_pair()
    ssk, spk = ours.generate_signature_key_pair()
    info = b"\x19MLS 1.0 UpdatePathNode" + b"\x40\x80" + os.urandom(128)  # EncryptContext-like
    pt = os.urandom(ours.hash_len + 3)  # an encoded path secret
    kem_out, ct = ours.hpke_seal(pk, info, b"", pt)
    secret = os.urandom(ours.hash_len)
    ikm = os.urandom(ours.hpke_sk_len)
    content = os.urandom(200)
    sig = sign_with_label(ours, ssk, "LeafNodeTBS", content)
    row: dict[str, float | None] = {
        "seal_ours": measure(lambda: ours.hpke_seal(pk, info, b"", pt), rounds),
        "open_ours": measure(lambda: ours.hpke_open(sk, kem_out, info, b"", ct), rounds),
        "seal_native": None,
        "open_native": None,
        "derive_key_pair": measure(lambda: ours.derive_key_pair(ikm), rounds),
        "sign": measure(lambda: sign_with_label(ours, ssk, "LeafNodeTBS", content), rounds),
        "verify": measure(
            lambda: verify_with_label(ours, spk, "LeafNodeTBS", content, sig), rounds
        ),
        "expand_with_label": measure(
            lambda: expand_with_label(ours, secret, "key", b"", ours.aead_key_len), rounds
        ),
    }
    if native.native_hpke is not None:
        row["seal_native"] = measure(lambda: native.hpke_seal(pk, info, b"", pt), rounds)
        row["open_native"] = measure(lambda: native.hpke_open(sk, kem_out, info, b"", ct), rounds)
    # Sanity: the labeled wrapper works on the measured path.
    encrypt_with_label(ours, pk, "UpdatePathNode", b"", pt)
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", metavar="FILE", help="also write the results as JSON")
    parser.add_argument("--suites", default="1,2,3,4,5,6,7")
    parser.add_argument("--rounds", type=int, default=15)
    args = parser.parse_args()
    suites = [int(s) for s in args.suites.split(",")]
    results = {}
    header = "suite | " + " | ".join(COLUMNS)
    print(
        f"median us per call; cryptography {cryptography.__version__}, "
        f"Python {platform.python_version()}, {platform.machine()}"
    )
    print(header)
    print("|".join("---" for _ in range(len(COLUMNS) + 1)))
    for sid in suites:
        row = bench_suite(sid, args.rounds)
        results[sid] = row
        cells = ["n/a" if row[c] is None else f"{row[c]:.1f}" for c in COLUMNS]
        print(f"{sid} | " + " | ".join(cells), flush=True)
    if args.json:
        meta = {
            "cryptography": cryptography.__version__,
            "python": platform.python_version(),
            "machine": platform.machine(),
            "unit": "median microseconds per call",
        }
        Path(args.json).write_text(json.dumps({"meta": meta, "suites": results}, indent=2))


if __name__ == "__main__":
    main()
