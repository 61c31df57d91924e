"""Rekey benchmark: commit, process, join and message protection against group size.

Usage: ``python benchmarks/rekey.py [--sizes 2,1024,...] [--shape {sparse,full,churned,all}]
[--suite 1] [--reps N] [--json FILE] [--md FILE] [--plot FILE.png] [--quick] [--cold]``

Default sizes: powers of two from 2 to 65,536 (``sparse`` up to 8,192; ``full`` also 10,000
and 50,000, the sizes two targets name). Default repetitions: 11 (n <= 256) down to 3
(n > 16,384), after one warm-up. Progress goes to stderr, the Markdown report to stdout.
See benchmarks/README.md for the method and the results.

For each tree shape (see ``_builders.py``) and size it times, on real member states:

- ``commit``: an empty commit with an UpdatePath by the member at leaf 0 (``group.commit()``);
- ``process``: that commit processed by the member at the last leaf (``group.process``);
- ``join``: ``Group.join`` of a new member from the Welcome of a commit adding it (tree out of
  band);
- ``protect`` / ``unprotect``: a 1 KiB application message.

Every repetition starts from the same state, prepared outside the timer: the committer's
pending commit is cleared after each one and its secret tree restored; the processor is
restored from its serialised state (its tree hashes recomputed, as a live member has them
cached) and, unless ``--cold``, a throwaway copy processes the same commit first, so CPU caches
are as warm as for a running member; the joiner gets its KeyPackage back; for messages the
secret trees of sender and receiver are restored (``Group._secret_tree``: private API,
acceptable in a benchmark). The garbage collector is paused during each timed call.

The floor of a timed call is the cost of the primitive operations it actually performed,
counted with ``mls.crypto.COUNTERS`` around the call, each priced at its cost measured at
startup in the same process: per call for HPKE seal/open and DeriveKeyPair, per call plus per
byte for sign, verify, hash, HMAC and AEAD, per call for HKDF extract/expand.
``ratio = median / floor``: how much the library adds to the cryptography it must do.
"""

from __future__ import annotations

import argparse
import gc
import json
import math
import os
import platform
import statistics
import sys
import time
import tracemalloc
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import cryptography
from _builders import (
    NOW,
    Built,
    build_churned,
    build_full,
    build_sparse,
    new_clients,
    tree_from_group_info,
)

from mls.crypto import COUNTERS, CipherSuite, get_suite, use_profile
from mls.framing.message import MLSMessage
from mls.group import ApplicationMessage, Client, CommitMerged, Group, GroupConfig
from mls.schedule.secret_tree import SecretTree

OPS = ("commit", "process", "join", "protect", "unprotect")
SHAPES = ("sparse", "full", "churned")
POWERS = [1 << k for k in range(1, 17)]
SPARSE_MAX = 8192
FULL_EXTRA = (10_000, 50_000)
QUICK_SIZES = [2, 16, 128, 1024]
MESSAGE = os.urandom(1024)


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


# -- primitive costs -------------------------------------------------------------------------


@dataclass
class Cost:
    """Cost model of one primitive: ``per_call + per_byte * bytes`` (microseconds)."""

    per_call: float
    per_byte: float = 0.0


#: (counter of calls, counter of bytes or None)
PRICED = {
    "hpke_seal": ("hpke_seal", None),
    "hpke_open": ("hpke_open", None),
    "derive_key_pair": ("derive_key_pair", None),
    "sign": ("sign", "sign_bytes"),
    "verify": ("verify", "verify_bytes"),
    "hash": ("hash", "hash_bytes"),
    "mac": ("mac", "mac_bytes"),
    "kdf_extract": ("kdf_extract", None),
    "kdf_expand": ("kdf_expand", None),
    "aead_seal": ("aead_seal", "aead_seal_bytes"),
    "aead_open": ("aead_open", "aead_open_bytes"),
}


# The clock of the timed calls and of the primitive prices: wall time by default; --cpu-time
# switches both to this process's CPU time, which other jobs on a shared machine do not inflate.
CLOCK: dict[str, Callable[[], int]] = {"ns": time.perf_counter_ns}


def _clock_ns() -> int:
    return CLOCK["ns"]()


def _per_call_us(fn: Callable[[], object], rounds: int, budget_s: float) -> float:
    fn()
    t = time.perf_counter()
    fn()
    one = max(time.perf_counter() - t, 1e-7)
    per_batch = max(1, min(5000, int(budget_s / rounds / one)))
    samples = []
    for _ in range(rounds):
        t0 = _clock_ns()
        for _ in range(per_batch):
            fn()
        samples.append((_clock_ns() - t0) / per_batch / 1000)
    return statistics.median(samples)


def measure_costs(cs: CipherSuite, quick: bool) -> dict[str, Cost]:
    """Per-call (and per-byte) cost of each counted primitive, on this suite, now."""
    rounds, budget = (5, 0.05) if quick else (9, 0.25)
    small, large = 64, 65536
    sk, pk = cs.generate_key_pair()
    ssk, spk = cs.generate_signature_key_pair()
    info = b"\x19MLS 1.0 UpdatePathNode" + b"\x40\x80" + os.urandom(128)
    pt = os.urandom(cs.hash_len + 1)
    kem_output, ct = cs.hpke_seal(pk, info, b"", pt)
    ikm = os.urandom(cs.hpke_sk_len)
    secret = os.urandom(cs.hash_len)
    key, nonce = os.urandom(cs.aead_key_len), os.urandom(cs.aead_nonce_len)
    data = {s: os.urandom(s) for s in (small, large)}
    sigs = {s: cs.sign(ssk, data[s]) for s in data}
    sealed = {s: cs.aead_seal(key, nonce, b"", data[s]) for s in data}

    def linear(fn: Callable[[bytes], Callable[[], object]], by: dict[int, bytes]) -> Cost:
        a = _per_call_us(fn(by[small]), rounds, budget)
        b = _per_call_us(fn(by[large]), rounds, budget)
        per_byte = max(0.0, (b - a) / (large - small))
        return Cost(max(0.0, a - per_byte * small), per_byte)

    def once(fn: Callable[[], object]) -> Cost:
        return Cost(_per_call_us(fn, rounds, budget))

    return {
        "hpke_seal": once(lambda: cs.hpke_seal(pk, info, b"", pt)),
        "hpke_open": once(lambda: cs.hpke_open(sk, kem_output, info, b"", ct)),
        "derive_key_pair": once(lambda: cs.derive_key_pair(ikm)),
        "sign": linear(lambda m: lambda: cs.sign(ssk, m), data),
        "verify": Cost(
            # verify's per-byte cost, from the two message sizes with their own signatures
            *_verify_model(cs, spk, data, sigs, rounds, budget, small, large)
        ),
        "hash": linear(lambda m: lambda: cs.hash(m), data),
        "mac": linear(lambda m: lambda: cs.mac(secret, m), data),
        "kdf_extract": once(lambda: cs.kdf_extract(secret, secret)),
        "kdf_expand": once(lambda: cs.kdf_expand(secret, b"\x00\x20\x0fMLS 1.0 key\x00", 32)),
        "aead_seal": linear(lambda m: lambda: cs.aead_seal(key, nonce, b"", m), data),
        "aead_open": linear(
            lambda m: lambda: cs.aead_open(key, nonce, b"", m),
            {s: sealed[s] for s in data},
        ),
    }


def _verify_model(
    cs: CipherSuite,
    spk: bytes,
    data: dict[int, bytes],
    sigs: dict[int, bytes],
    rounds: int,
    budget: float,
    small: int,
    large: int,
) -> tuple[float, float]:
    a = _per_call_us(lambda: cs.verify(spk, data[small], sigs[small]), rounds, budget)
    b = _per_call_us(lambda: cs.verify(spk, data[large], sigs[large]), rounds, budget)
    per_byte = max(0.0, (b - a) / (large - small))
    return max(0.0, a - per_byte * small), per_byte


def floor_us(counts: dict[str, int], costs: dict[str, Cost], only: tuple[str, ...] = ()) -> float:
    total = 0.0
    for name, (calls, nbytes) in PRICED.items():
        if only and name not in only:
            continue
        c = costs[name]
        total += counts.get(calls, 0) * c.per_call
        if nbytes is not None:
            total += counts.get(nbytes, 0) * c.per_byte
    return total


# -- timing ----------------------------------------------------------------------------------


@dataclass
class Timing:
    samples_ms: list[float]
    counts: dict[str, int]
    size: int

    @property
    def median_ms(self) -> float:
        return statistics.median(self.samples_ms)


def timed(
    prepare: Callable[[], Any],
    run: Callable[[Any], Any],
    after: Callable[[Any, Any], int],
    reps: int,
    warmup: int,
) -> Timing:
    """``prepare()`` (untimed) then ``run(state)`` (timed, counted) ``warmup + reps`` times;
    ``after(state, result)`` (untimed) checks the result and returns its size in bytes."""
    samples: list[float] = []
    counts: dict[str, int] | None = None
    size = 0
    for i in range(warmup + reps):
        state = prepare()
        gc.disable()
        COUNTERS.reset()
        COUNTERS.enabled = True
        try:
            t0 = _clock_ns()
            result = run(state)
            dt = _clock_ns() - t0
        finally:
            COUNTERS.enabled = False
            gc.enable()
        got = COUNTERS.snapshot_all()
        size = after(state, result)
        if i < warmup:
            continue
        samples.append(dt / 1e6)
        if counts is None:
            counts = got
        elif got != counts:
            # Repetitions start from the same state, so they must do the same work.
            raise RuntimeError(f"primitive counts differ between repetitions: {got} vs {counts}")
    assert counts is not None
    return Timing(samples, counts, size)


@dataclass
class TreeInfo:
    build_s: float
    validate_s: float
    state_bytes: int
    memory_bytes: int
    extra: dict[str, Any] = field(default_factory=dict)


def _restore_secret_tree(g: Group, saved: bytes) -> None:
    # Private API (benchmark only): protect/unprotect change nothing else in the group.
    g._secret_tree = SecretTree.from_bytes(g.suite, saved)


def bench_built(
    b: Built,
    cs: CipherSuite,
    config: GroupConfig,
    reps: int,
    warmup: int,
    *,
    rehearse: bool = True,
) -> tuple[dict[str, Timing], TreeInfo]:
    c, p = b.committer, b.processor
    out: dict[str, Timing] = {}
    # commit: an empty commit with a path; the pending commit is cleared after each rep.
    last_commit: list[bytes] = []

    def commit_after(_: Any, res: Any) -> int:
        last_commit[:] = [res.commit]
        c.clear_pending_commit()
        return len(res.commit)

    c.tree.tree_hash()
    # Sending the commit (a PrivateMessage) advances the committer's handshake ratchet, which
    # clear_pending_commit() does not undo: restore the secret tree too, so that every
    # repetition is the committer's first handshake message of the epoch.
    c_st0 = c._secret_tree.to_bytes()
    out["commit"] = timed(
        lambda: _restore_secret_tree(c, c_st0),
        lambda _: c.commit(now=NOW),
        commit_after,
        reps,
        warmup,
    )
    commit_bytes = last_commit[0]

    # process: the processor restored from bytes (tree hashes cached, as for a live member).
    p_state = p.to_bytes()

    def fresh_processor() -> Group:
        # Restoring a group of n members evicts the CPU caches; a member that has been running
        # has its code and the crypto library warm. A rehearsal on a throwaway copy (same
        # commit, same state) restores that, so the timed call is compared with primitive
        # costs measured under the same conditions.
        g = Group.from_bytes(p_state, p.client)
        g.tree.tree_hash()
        if rehearse:
            rehearsal = Group.from_bytes(p_state, p.client)
            rehearsal.tree.tree_hash()
            rehearsal.process(commit_bytes, now=NOW)
        return g

    def process_after(g: Group, ev: Any) -> int:
        assert isinstance(ev, CommitMerged) and ev.has_path and g.epoch == c.epoch + 1
        return len(commit_bytes)

    out["process"] = timed(
        fresh_processor,
        lambda g: g.process(commit_bytes, now=NOW),
        process_after,
        reps,
        warmup,
    )

    # join: a commit (with a path) adding one member; the joiner's KeyPackage is re-adopted.
    (joiner,) = new_clients(cs, "joiner", 1)
    (ref,) = joiner.key_package_refs()
    kpp = joiner.find_key_package(ref)
    assert kpp is not None
    add = c.commit(add=[kpp.key_package], group_info=True, now=NOW)
    c.clear_pending_commit()
    assert add.welcome is not None and add.group_info is not None
    welcome, ratchet_tree = add.welcome, tree_from_group_info(add.group_info)

    def fresh_joiner() -> None:
        if joiner.find_key_package(ref) is None:
            joiner.adopt_key_package(kpp)

    def join_after(_: Any, g: Group) -> int:
        assert g.member_count == c.member_count + 1
        return len(welcome)

    out["join"] = timed(
        fresh_joiner,
        lambda _: Group.join(joiner, welcome, ratchet_tree=ratchet_tree, config=config, now=NOW),
        join_after,
        reps,
        warmup,
    )

    # protect / unprotect: steady state (one message already sent and received this epoch).
    first = c.protect(MESSAGE)
    ev0 = p.process(first, now=NOW)
    assert isinstance(ev0, ApplicationMessage)
    c_st, p_st = c._secret_tree.to_bytes(), p._secret_tree.to_bytes()
    last_msg: list[bytes] = []

    def protect_after(_: Any, msg: bytes) -> int:
        last_msg[:] = [msg]
        return len(msg)

    out["protect"] = timed(
        lambda: _restore_secret_tree(c, c_st),
        lambda _: c.protect(MESSAGE),
        protect_after,
        reps,
        warmup,
    )
    message = last_msg[0]

    def unprotect_after(_: Any, ev: Any) -> int:
        assert isinstance(ev, ApplicationMessage) and ev.data == MESSAGE
        return len(message)

    out["unprotect"] = timed(
        lambda: _restore_secret_tree(p, p_st),
        lambda _: p.process(message, now=NOW),
        unprotect_after,
        reps,
        warmup,
    )

    # State: serialised size and the memory of a restored Group with its tree hashes.
    gc.collect()
    tracemalloc.start()
    g = Group.from_bytes(p_state, p.client)
    g.tree.tree_hash()
    memory = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    del g
    info = TreeInfo(
        build_s=b.build_s,
        validate_s=b.validate_s,
        state_bytes=len(p_state),
        memory_bytes=memory,
        extra={"tree_bytes": len(ratchet_tree), "commit_add_bytes": len(add.commit)},
    )
    return out, info


# -- output ----------------------------------------------------------------------------------


def make_rows(
    shape: str, n: int, timings: dict[str, Timing], info: TreeInfo, costs: dict[str, Cost]
) -> list[dict[str, Any]]:
    rows = []
    for op in OPS:
        t = timings[op]
        fl = floor_us(t.counts, costs) / 1000
        rows.append(
            {
                "shape": shape,
                "n": n,
                "op": op,
                "median_ms": round(t.median_ms, 4),
                "min_ms": round(min(t.samples_ms), 4),
                "max_ms": round(max(t.samples_ms), 4),
                "floor_ms": round(fl, 4),
                "ratio": round(t.median_ms / fl, 3) if fl > 0 else None,
                "bytes": t.size,
                "reps": len(t.samples_ms),
                "counts": {k: v for k, v in t.counts.items() if v},
                "verify_floor_ms": round(floor_us(t.counts, costs, ("verify",)) / 1000, 4),
                "build_s": round(info.build_s, 3),
                "validate_s": round(info.validate_s, 3),
                "state_bytes": info.state_bytes,
                "memory_bytes": info.memory_bytes,
                "tree_bytes": info.extra["tree_bytes"],
            }
        )
    return rows


def _fmt(x: float | None, digits: int = 3) -> str:
    if x is None:
        return "-"
    if x >= 100:
        return f"{x:.0f}"
    if x >= 10:
        return f"{x:.1f}"
    return f"{x:.{digits}f}"


def markdown(rows: list[dict[str, Any]], costs: dict[str, Cost], meta: dict[str, Any]) -> str:
    lines = [
        f"Suite {meta['suite']} ({meta.get('suite_name', '')}), Python {meta['python']}, "
        f"cryptography {meta['cryptography']}, {meta['machine']}; total run "
        f"{meta['total_s']:.0f} s ({meta.get('clock', 'wall')} clock). KeyPackage: "
        f"{meta.get('key_package_bytes', '?')} bytes.",
        "",
        "| shape | n | op | median ms | min ms | max ms | floor ms | ratio | bytes |",
        "|---|---:|---|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r['shape']} | {r['n']} | {r['op']} | {_fmt(r['median_ms'])} | "
            f"{_fmt(r['min_ms'])} | {_fmt(r['max_ms'])} | {_fmt(r['floor_ms'])} | "
            f"{_fmt(r['ratio'], 2)} | {r['bytes']} |"
        )
    lines += [
        "",
        "| shape | n | build s | of which validation s | state bytes | state B/member | "
        "memory B/member | tree bytes |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    seen = set()
    for r in rows:
        key = (r["shape"], r["n"])
        if key in seen:
            continue
        seen.add(key)
        n = r["n"]
        lines.append(
            f"| {r['shape']} | {n} | {r['build_s']:.2f} | {r['validate_s']:.2f} | "
            f"{r['state_bytes']} | {r['state_bytes'] / n:.0f} | {r['memory_bytes'] / n:.0f} | "
            f"{r['tree_bytes']} |"
        )
    lines += ["", "| primitive | us per call | ns per byte |", "|---|---:|---:|"]
    for name, c in costs.items():
        lines.append(f"| {name} | {c.per_call:.2f} | {c.per_byte * 1000:.3f} |")
    lines += ["", *target_lines(rows)]
    return "\n".join(lines) + "\n"


def _row(rows: list[dict[str, Any]], shape: str, n: int, op: str) -> dict[str, Any] | None:
    for r in rows:
        if r["shape"] == shape and r["n"] == n and r["op"] == op:
            return r
    return None


def target_lines(rows: list[dict[str, Any]]) -> list[str]:
    """The issue-7 targets, each marked met / missed from the measured rows."""
    out = ["| target | measured | verdict |", "|---|---|---|"]

    def add(name: str, measured: str, ok: bool | None) -> None:
        verdict = "n/a" if ok is None else ("met" if ok else "MISSED")
        out.append(f"| {name} | {measured} | {verdict} |")

    for op in ("commit", "process"):
        rs = [r for r in rows if r["shape"] == "full" and r["op"] == op and r["n"] >= 1024]
        if rs:
            worst = max(rs, key=lambda r: r["ratio"] or 0)
            add(
                f"full, n >= 1024: {op} <= 1.5x floor",
                f"worst {worst['ratio']:.2f}x at n={worst['n']}",
                all((r["ratio"] or 0) <= 1.5 for r in rs),
            )
    a, b = _row(rows, "full", 1024, "commit"), _row(rows, "full", 65536, "commit")
    if a and b:
        k = b["median_ms"] / a["median_ms"]
        add("full: commit at 65,536 <= 2x commit at 1,024", f"{k:.2f}x", k <= 2)
    r = _row(rows, "sparse", 1024, "commit")
    if r:
        add("sparse 1,024: commit <= 1.25x floor", f"{r['ratio']:.2f}x", r["ratio"] <= 1.25)
    r = _row(rows, "sparse", 1024, "process")
    if r:
        add("sparse 1,024: process <= 2 ms", f"{r['median_ms']:.2f} ms", r["median_ms"] <= 2)
    joins = [r for r in rows if r["shape"] == "full" and r["op"] == "join"]
    if joins:
        r = min(joins, key=lambda r: abs(math.log(r["n"] / 10_000)))
        k = r["median_ms"] / r["verify_floor_ms"]
        add(
            f"full: join <= 2x its verifications (n={r['n']})",
            f"{k:.2f}x ({r['median_ms']:.0f} ms vs {r['verify_floor_ms']:.0f} ms)",
            k <= 2,
        )
        big = sorted((r["n"], r["median_ms"]) for r in joins if r["n"] >= 1024)
        if len(big) >= 2:
            (n0, t0), (n1, t1) = big[0], big[-1]
            slope = math.log(t1 / t0) / math.log(n1 / n0)
            add("join linear in n (log-log slope, n >= 1024)", f"{slope:.2f}", slope <= 1.1)
    mems = [r for r in rows if r["op"] == "commit"]
    if mems:
        r = min(mems, key=lambda r: abs(math.log(r["n"] / 50_000)))
        per = r["memory_bytes"] / r["n"]
        add(f"state <= 2 KiB/member ({r['shape']}, n={r['n']})", f"{per:.0f} B", per <= 2048)
        worst = max(mems, key=lambda r: r["memory_bytes"] / r["n"] if r["n"] >= 1024 else 0)
        if worst["n"] >= 1024:
            per = worst["memory_bytes"] / worst["n"]
            add(
                f"state <= 2 KiB/member (worst, n >= 1024: {worst['shape']} {worst['n']})",
                f"{per:.0f} B",
                per <= 2048,
            )
    for op in ("protect", "unprotect"):
        rs = [r for r in rows if r["op"] == op]
        if rs:
            worst = max(rs, key=lambda r: r["ratio"] or 0)
            add(
                f"1 KiB {op} <= 1.3x floor",
                f"worst {worst['ratio']:.2f}x ({worst['shape']} {worst['n']})",
                all((r["ratio"] or 0) <= 1.3 for r in rs),
            )
    return out


def plot(rows: list[dict[str, Any]], path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, 3, figsize=(16, 9.5))
    colors = {"sparse": "tab:blue", "full": "tab:orange", "churned": "tab:green"}
    for ax, op in zip(axes.flat, OPS, strict=False):
        for shape in SHAPES:
            rs = sorted(
                (r for r in rows if r["shape"] == shape and r["op"] == op), key=lambda r: r["n"]
            )
            if not rs:
                continue
            ns = [r["n"] for r in rs]
            ax.plot(ns, [r["median_ms"] for r in rs], "o-", color=colors[shape], label=shape)
            ax.plot(
                ns, [r["floor_ms"] for r in rs], "--", color=colors[shape], label=f"{shape} floor"
            )
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_title(op)
        ax.set_xlabel("members")
        ax.set_ylabel("ms (median)")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=7)
    ax = axes.flat[5]
    for shape in SHAPES:
        rs = sorted(
            (r for r in rows if r["shape"] == shape and r["op"] == "commit"), key=lambda r: r["n"]
        )
        if rs:
            ns = [r["n"] for r in rs]
            ax.plot(
                ns,
                [r["memory_bytes"] / r["n"] for r in rs],
                "o-",
                color=colors[shape],
                label=f"{shape} memory",
            )
            ax.plot(
                ns,
                [r["state_bytes"] / r["n"] for r in rs],
                ":",
                color=colors[shape],
                label=f"{shape} serialised",
            )
    ax.axhline(2048, color="red", lw=0.8, label="2 KiB target")
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set_title("group state per member")
    ax.set_xlabel("members")
    ax.set_ylabel("bytes / member")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7)
    fig.suptitle("mls rekey benchmark (solid: median; dashed: floor of primitive costs)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)


# -- main ------------------------------------------------------------------------------------


def default_reps(n: int) -> int:
    if n <= 256:
        return 11
    if n <= 4096:
        return 7
    if n <= 16384:
        return 5
    return 3


def plan(sizes: list[int] | None, shape: str, quick: bool) -> list[tuple[int, list[str]]]:
    """(n, shapes to run at n), ascending."""
    shapes = SHAPES if shape == "all" else (shape,)
    out: dict[int, list[str]] = {}
    for s in shapes:
        if sizes is not None:
            ns = sizes
        elif quick:
            ns = QUICK_SIZES
        elif s == "sparse":
            ns = [n for n in POWERS if n <= SPARSE_MAX]
        elif s == "full":
            ns = sorted({*POWERS, *FULL_EXTRA})
        else:
            ns = POWERS
        for n in ns:
            out.setdefault(n, []).append(s)
    return sorted(out.items())


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", help="comma-separated member counts (default: see README)")
    ap.add_argument("--shape", choices=(*SHAPES, "all"), default="all")
    ap.add_argument(
        "--suite",
        type=lambda v: int(v, 0),
        default=1,
        help="cipher suite id, decimal or 0x hex: 1-7 or a PQ suite of --suite-profile "
        "(openmls: 0x004F X-Wing, 0x0042/0x0907 ML-KEM-1024, ...)",
    )
    ap.add_argument(
        "--suite-profile",
        default="openmls",
        help="code points of the PQ suites (mls.crypto.registry: openmls, ts-mls-1)",
    )
    ap.add_argument("--reps", type=int, help="timed repetitions (default: 11 down to 3 by n)")
    ap.add_argument("--json", metavar="FILE")
    ap.add_argument("--md", metavar="FILE")
    ap.add_argument("--plot", metavar="FILE.png")
    ap.add_argument("--quick", action="store_true", help="small sizes, few reps (CI smoke)")
    ap.add_argument(
        "--cold", action="store_true", help="time process without a rehearsal (cold CPU caches)"
    )
    ap.add_argument(
        "--cpu-time",
        action="store_true",
        help="time calls and primitives with this process's CPU clock instead of the wall "
        "clock (for a shared, loaded machine; cache effects of other jobs remain)",
    )
    args = ap.parse_args(argv)
    if args.cpu_time:
        CLOCK["ns"] = time.process_time_ns
    t_start = time.perf_counter()
    use_profile(args.suite_profile)
    cs = get_suite(args.suite)
    config = GroupConfig()
    sizes = [int(s) for s in args.sizes.split(",")] if args.sizes else None
    if sizes is not None and min(sizes) < 2:
        ap.error("sizes must be at least 2")
    log(f"suite {cs.suite_id} ({cs.name}): measuring primitive costs")
    costs = measure_costs(cs, args.quick)
    for name, c in costs.items():
        log(f"  {name:16s} {c.per_call:8.2f} us + {c.per_byte * 1000:.3f} ns/B")
    rows: list[dict[str, Any]] = []
    for n, shapes in plan(sizes, args.shape, args.quick):
        reps = args.reps or (3 if args.quick else default_reps(n))
        warmup = 1
        full: Built | None = None
        for shape in shapes:
            log(f"[{time.perf_counter() - t_start:7.1f} s] {shape} n={n}: building")
            if shape == "sparse":
                built = build_sparse(cs, n, config, log)
            elif shape == "full":
                built = full = build_full(cs, n, config, log)
            else:
                # Churn the full group of this size if it was just benchmarked (it is then
                # changed in place), else build one.
                built = build_churned(cs, n, config, log, full=full)
                full = None
            log(f"  built in {built.build_s:.2f} s; timing {reps} reps")
            timings, info = bench_built(built, cs, config, reps, warmup, rehearse=not args.cold)
            new = make_rows(shape, n, timings, info, costs)
            rows += new
            for r in new:
                log(
                    f"  {r['op']:9s} {r['median_ms']:10.3f} ms  floor {r['floor_ms']:9.3f}  "
                    f"ratio {r['ratio']}  {r['bytes']} B"
                )
            log(
                f"  state {info.state_bytes} B ({info.state_bytes / n:.0f}/member), "
                f"memory {info.memory_bytes / n:.0f} B/member"
            )
            del built
        del full
        gc.collect()
    total = time.perf_counter() - t_start
    meta = {
        "suite": cs.suite_id,
        "suite_name": cs.name,
        "clock": "cpu" if args.cpu_time else "wall",
        "key_package_bytes": len(
            MLSMessage(body=Client.create(b"kp-size", cs).key_package(1_750_000_000)).to_bytes()
        ),
        "python": platform.python_version(),
        "cryptography": cryptography.__version__,
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs",
        "total_s": total,
    }
    md = markdown(rows, costs, meta)
    print(md)
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1) + "\n")
    if args.md:
        Path(args.md).write_text(md)
    if args.plot:
        plot(rows, args.plot)
    log(f"done in {total:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
