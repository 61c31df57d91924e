"""Memory of a long-running gRPC interop server (``mls.interop_grpc``): does it leak?

Plays every script of the working group's configs (all but ``deep_random``), both handshake
modes, round after round against two in-process servers of ours through real gRPC on loopback,
freeing each actor's last state at the end of each run as the working group's runner does. It
prints, per round, the handles alive on each server, Python's traced heap (``tracemalloc``) and
the process RSS. A server that keeps nothing after ``Free`` shows flat lines after the first
rounds (the runner never frees external signers: those handles stay, bounded by
``MAX_DETACHED``; the library's key caches fill up to their bound, ``--clear-caches`` leaves
them out).

    pip install -e ".[interop]"
    python benchmarks/interop_grpc_memory.py --rounds 20     # ~2 min here

The configs are read from ``../shared/interop/mlswg/configs`` (``MLS_INTEROP_HARNESS``).
"""

from __future__ import annotations

import argparse
import functools
import gc
import resource
import sys
import time
import tracemalloc
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from mls.interop_grpc.service import MAX_DETACHED
from tests.grpc.conftest import Server, load_config
from tests.grpc.coordinator import Coordinator, actors_of

FAMILIES = (
    "welcome_join",
    "application",
    "commit",
    "external_join",
    "external_proposals",
    "reinit",
    "branch",
)


def rss_mib() -> float:
    with open("/proc/self/statm") as f:
        pages = int(f.read().split()[1])
    return pages * resource.getpagesize() / 2**20


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--suite", type=int, default=1)
    parser.add_argument(
        "--clear-caches",
        action="store_true",
        help="empty the library's bounded LRU caches (loaded keys) before each measurement, so "
        "that their filling up (to 4,096 public keys per scheme) is not counted",
    )
    parser.add_argument(
        "--max-detached",
        type=int,
        default=MAX_DETACHED,
        help=f"cap on handles the runner never frees (server default {MAX_DETACHED})",
    )
    args = parser.parse_args()
    scripts = [(f, n, s) for f in FAMILIES for n, s in load_config(f).items()]
    a, b = Server(max_detached=args.max_detached), Server(max_detached=args.max_detached)
    tracemalloc.start()
    print("round  runs  handles(a/b)  traced_MiB  rss_MiB  seconds")
    try:
        for r in range(1, args.rounds + 1):
            start, runs = time.perf_counter(), 0
            for _family, _name, script in scripts:
                for encrypt in (True, False):
                    actors = actors_of(script)
                    stubs = {x: (a, b)[i % 2].stub for i, x in enumerate(actors)}
                    Coordinator(stubs, args.suite, encrypt).run(script)
                    runs += 1
            if args.clear_caches:
                for obj in gc.get_objects():
                    if isinstance(obj, functools._lru_cache_wrapper):
                        obj.cache_clear()
            gc.collect()
            traced = tracemalloc.get_traced_memory()[0] / 2**20
            print(
                f"{r:5d}  {runs:4d}  {a.service.handle_count:5d}/{b.service.handle_count:<5d}"
                f"  {traced:10.2f}  {rss_mib():7.1f}  {time.perf_counter() - start:7.1f}",
                flush=True,
            )
    finally:
        a.close()
        b.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
