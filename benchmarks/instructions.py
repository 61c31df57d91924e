"""Instruction counts: each operation's cost in CPU instructions beside the instructions of the
primitives it performs, a ratio that a noisy, shared machine cannot move.

Wall-time ratios (``rekey.py``) move by +-30% here from run to run because the machine is shared.
Instructions executed do not depend on the load. This script runs every measurement under
``valgrind --tool=callgrind`` and counts only what executes inside one call of
``functools.reduce`` (``--toggle-collect=functools_reduce``), so the state is loaded and
prepared outside the count and each measured call gets its own dump
(``--dump-after=functools_reduce``).

- **Operations** (full tree of n members, or ``--shape sparse``; suite 1 by default, as in
  ``rekey.py``): ``commit`` (an empty commit with a path), ``process`` (of that commit, by the
  member at the last leaf), ``protect`` and ``unprotect`` (1 KiB, steady state).
- **Primitives**: each counted primitive of ``mls.crypto.COUNTERS`` is priced in instructions per
  call (and per byte, from a 64 B and a 64 KiB input), K calls inside one measured call.
- **Floor** = sum of primitive counts (from ``COUNTERS`` in a native run of the same operation)
  times their instruction prices. ``ratio = instructions / floor``.
- The primitives are priced twice, before and after the operations; the report gives both and
  how much they moved (instruction counts should not move; a difference means the price
  depends on state, e.g. a cache warmed by the operations).
- **Warm interpreter** (``--warmups``, default 20): the primitives are priced in a loop, so
  CPython 3.11's specializing interpreter has quickened and specialized their wrappers; an
  operation measured on its second run is not (a code object is quickened after 8 calls,
  an instruction specialized after more). So each operation first runs ``--warmups`` times
  on a 16-member group of the same shape, then once on a copy of the measured state
  (lazily built caches), then once measured. ``--warmups 0`` is the earlier method.
- ``protect`` and ``unprotect`` are steady state: the rehearsal runs on the measured group
  itself, whose secret tree is then restored, so per-epoch caches (the encoded GroupContext)
  are warm, as for every message after an epoch's first.

Usage::

    python benchmarks/instructions.py --sizes 1024 --md instr.md --json instr.json

About 2-4 minutes per size on this machine (valgrind runs Python ~50x slower). Requires
valgrind.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from _builders import NOW, Built, build_full, build_sparse
from rekey import MESSAGE, PRICED

from mls.crypto import COUNTERS, CipherSuite, get_suite
from mls.group import ApplicationMessage, Client, CommitMerged, Group, GroupConfig
from mls.schedule.secret_tree import SecretTree

OPS = ("commit", "process", "protect", "unprotect")
#: Calls per priced primitive inside one measured call.
K = 40
SMALL, LARGE = 64, 65536
#: Members of the group the warm-up runs use.
WARM_N = 16


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def measured(fn: Callable[[], object]) -> None:
    """Run ``fn`` inside the one C function callgrind collects in (and dumps after)."""
    functools.reduce(lambda _, f: f(), [fn], None)


# -- child side: runs under valgrind ----------------------------------------------------------


def _restore_secret_tree(g: Group, saved: bytes) -> None:
    g._secret_tree = SecretTree.from_bytes(g.suite, saved)  # private API, benchmark only


def _load(d: Path, cs: CipherSuite) -> dict[str, Any]:
    """The saved states and messages of one group (see :func:`_save`)."""
    out: dict[str, Any] = {p.name: p.read_bytes() for p in d.iterdir() if p.is_file()}
    out["cc"] = Client.from_bytes(out["cclient"], cs)
    out["pc"] = Client.from_bytes(out["pclient"], cs)
    return out


def _runner(
    op: str, s: dict[str, Any], cs: CipherSuite
) -> tuple[Callable[[], object], Callable[[], None] | None]:
    """``op`` on a fresh copy of the saved state ``s``: (run, reset). For protect and unprotect
    ``reset`` restores the secret tree, so ``run`` can be called again on the same group."""
    if op == "commit":
        g = Group.from_bytes(s["committer"], s["cc"])
        g.tree.tree_hash()
        _restore_secret_tree(g, s["c_st"])
        return functools.partial(g.commit, now=NOW), None
    if op == "process":
        g = Group.from_bytes(s["processor"], s["pc"])
        g.tree.tree_hash()
        return functools.partial(g.process, s["commit"], now=NOW), None
    run: Callable[[], object]
    if op == "protect":
        g = Group.from_bytes(s["committer"], s["cc"])
        saved, run = s["c_st_app"], functools.partial(g.protect, MESSAGE)
    else:
        g = Group.from_bytes(s["processor"], s["pc"])
        saved, run = s["p_st"], functools.partial(g.process, s["message"], now=NOW)
    reset = functools.partial(_restore_secret_tree, g, saved)
    reset()
    return run, reset


def child_ops(spec: dict[str, Any]) -> None:
    cs = get_suite(spec["suite"])
    state = _load(Path(spec["dir"]), cs)
    warm = _load(Path(spec["warm_dir"]), cs) if spec["warmups"] else {}
    for op in spec["ops"]:
        # Warm the interpreter on the small group; then one rehearsal on a copy of the
        # measured state (steady: on the measured group itself), so lazily built caches are not
        # counted; then the measured call.
        for _ in range(spec["warmups"]):
            _runner(op, warm, cs)[0]()
        run, reset = _runner(op, state, cs)
        if spec["steady"] and reset is not None:
            run()
            reset()
        else:
            run()
            run, _ = _runner(op, state, cs)
        measured(run)


def _prims(cs: CipherSuite) -> list[tuple[str, int, Callable[[], object]]]:
    """(name, input bytes, one call) for every priced primitive and size."""
    sk, pk = cs.generate_key_pair()
    ssk, spk = cs.generate_signature_key_pair()
    info = b"\x19MLS 1.0 UpdatePathNode" + b"\x40\x80" + bytes(128)
    pt = bytes(cs.hash_len + 1)
    kem_output, ct = cs.hpke_seal(pk, info, b"", pt)
    ikm = bytes(range(cs.hpke_sk_len))
    secret = bytes(cs.hash_len)
    key, nonce = bytes(cs.aead_key_len), bytes(cs.aead_nonce_len)
    out: list[tuple[str, int, Callable[[], object]]] = [
        ("hpke_seal", 0, lambda: cs.hpke_seal(pk, info, b"", pt)),
        ("hpke_open", 0, lambda: cs.hpke_open(sk, kem_output, info, b"", ct)),
        ("derive_key_pair", 0, lambda: cs.derive_key_pair(ikm)),
        ("kdf_extract", 0, lambda: cs.kdf_extract(secret, secret)),
        ("kdf_expand", 0, lambda: cs.kdf_expand(secret, b"\x00\x20\x0fMLS 1.0 key\x00", 32)),
    ]
    for size in (SMALL, LARGE):
        m = bytes(size)
        sig = cs.sign(ssk, m)
        sealed = cs.aead_seal(key, nonce, b"", m)
        out += [
            ("sign", size, functools.partial(cs.sign, ssk, m)),
            ("verify", size, functools.partial(cs.verify, spk, m, sig)),
            ("hash", size, functools.partial(cs.hash, m)),
            ("mac", size, functools.partial(cs.mac, secret, m)),
            ("aead_seal", size, functools.partial(cs.aead_seal, key, nonce, b"", m)),
            ("aead_open", size, functools.partial(cs.aead_open, key, nonce, b"", sealed)),
        ]
    return out


def child_prims(spec: dict[str, Any]) -> None:
    cs = get_suite(spec["suite"])
    for _, _, fn in _prims(cs):
        fn()  # warm
        measured(lambda fn=fn: [fn() for _ in range(K)])  # type: ignore[misc]


# -- parent side -------------------------------------------------------------------------------


def _callgrind(spec: dict[str, Any], tmp: Path, tag: str) -> list[int]:
    """Run this script as a child under callgrind; the instructions of each measured call."""
    spec_path = tmp / f"{tag}.json"
    spec_path.write_text(json.dumps(spec))
    out = tmp / f"cg-{tag}"
    cmd = [
        "valgrind",
        "--tool=callgrind",
        "--collect-atstart=no",
        "--toggle-collect=functools_reduce",
        "--dump-after=functools_reduce",
        f"--callgrind-out-file={out}.%p",
        sys.executable,
        __file__,
        "--child",
        str(spec_path),
    ]
    env = dict(os.environ, PYTHONHASHSEED="0")
    subprocess.run(cmd, check=True, capture_output=True, env=env)
    dumps = sorted(
        (p for p in tmp.glob(f"cg-{tag}.*.*")), key=lambda p: int(p.name.rsplit(".", 1)[1])
    )
    counts = []
    for p in dumps:
        for line in p.read_text().splitlines():
            if line.startswith("totals:"):
                counts.append(int(line.split()[1]))
    return counts


def price(suite: int, tmp: Path, tag: str) -> dict[str, tuple[float, float]]:
    """Instructions per call and per byte of every priced primitive."""
    names = _prims(get_suite(suite))
    counts = _callgrind({"mode": "prims", "suite": suite}, tmp, tag)
    if len(counts) != len(names):
        raise RuntimeError(f"expected {len(names)} measurements, got {len(counts)}")
    per: dict[str, dict[int, float]] = {}
    for (name, size, _), total in zip(names, counts, strict=True):
        per.setdefault(name, {})[size] = total / K
    model: dict[str, tuple[float, float]] = {}
    for name, by in per.items():
        if 0 in by:
            model[name] = (by[0], 0.0)
        else:
            per_byte = max(0.0, (by[LARGE] - by[SMALL]) / (LARGE - SMALL))
            model[name] = (max(0.0, by[SMALL] - per_byte * SMALL), per_byte)
    return model


def floor(counts: dict[str, int], model: dict[str, tuple[float, float]]) -> float:
    total = 0.0
    for name, (calls, nbytes) in PRICED.items():
        per_call, per_byte = model[name]
        total += counts.get(calls, 0) * per_call
        if nbytes is not None:
            total += counts.get(nbytes, 0) * per_byte
    return total


#: The tree shapes of ``rekey.py`` this script measures (see ``_builders.py``).
SHAPES: dict[str, Callable[..., Built]] = {"full": build_full, "sparse": build_sparse}


def prepare(n: int, suite: int, tmp: Path, shape: str = "full") -> dict[str, dict[str, int]]:
    """Build the group natively, save what the child needs, and count each op's primitives."""
    cs = get_suite(suite)
    b = SHAPES[shape](cs, n, GroupConfig(), log)
    c, p = b.committer, b.processor
    c.tree.tree_hash()
    c_st = c._secret_tree.to_bytes()
    counts: dict[str, dict[str, int]] = {}

    def count(run: Callable[[], Any]) -> Any:
        COUNTERS.reset()
        COUNTERS.enabled = True
        try:
            return run()
        finally:
            COUNTERS.enabled = False
            counts[op] = COUNTERS.snapshot_all()

    op = "commit"
    out = count(lambda: c.commit(now=NOW))
    c.clear_pending_commit()
    _restore_secret_tree(c, c_st)
    p_state = p.to_bytes()
    op = "process"
    g = Group.from_bytes(p_state, p.client)
    g.tree.tree_hash()
    ev = count(lambda: g.process(out.commit, now=NOW))
    assert isinstance(ev, CommitMerged)
    # Steady-state application messages (one already sent and received this epoch).
    ev0 = p.process(c.protect(MESSAGE), now=NOW)
    assert isinstance(ev0, ApplicationMessage)
    c_st2, p_st2 = c._secret_tree.to_bytes(), p._secret_tree.to_bytes()
    op = "protect"
    message = count(lambda: c.protect(MESSAGE))
    _restore_secret_tree(c, c_st2)
    op = "unprotect"
    ev1 = count(lambda: p.process(message, now=NOW))
    assert isinstance(ev1, ApplicationMessage)
    _restore_secret_tree(p, p_st2)
    files = {
        "cclient": c.client.to_bytes(),
        "pclient": p.client.to_bytes(),
        "committer": c.to_bytes(),
        "processor": p_state,
        "commit": out.commit,
        "message": message,
        "c_st": c_st,
        "p_st": p_st2,
    }
    # The child restores c_st (the first handshake message of the epoch) for commit and
    # c_st_app (one message already sent) for protect.
    files["c_st_app"] = c_st2
    for name, data in files.items():
        (tmp / name).write_bytes(data)
    return counts


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="1024", help="comma-separated member counts (full tree)")
    ap.add_argument(
        "--suite", type=lambda x: int(x, 0), default=1, help="suite id (0x004f: X-Wing)"
    )
    ap.add_argument("--ops", default=",".join(OPS), help="comma-separated subset of " + str(OPS))
    ap.add_argument("--shape", choices=sorted(SHAPES), default="full", help="tree shape")
    ap.add_argument(
        "--warmups",
        type=int,
        default=20,
        help="runs of each operation on a 16-member group before it is measured (0: none)",
    )
    ap.add_argument(
        "--first-message",
        action="store_true",
        help="measure protect / unprotect as the first message on a freshly loaded group",
    )
    ap.add_argument("--json", metavar="FILE")
    ap.add_argument("--md", metavar="FILE")
    ap.add_argument("--child", metavar="SPEC", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child:
        spec = json.loads(Path(args.child).read_text())
        if spec["mode"] == "prims":
            child_prims(spec)
        else:
            child_ops(spec)
        return 0
    if shutil.which("valgrind") is None:
        print("instructions.py needs valgrind (apt-get install valgrind)", file=sys.stderr)
        return 2
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        log("pricing primitives (before)")
        before = price(args.suite, tmp, "prims-before")
        warm_dir = tmp / "warm"
        if args.warmups:
            warm_dir.mkdir()
            prepare(WARM_N, args.suite, warm_dir)
        for n in [int(x) for x in args.sizes.split(",")]:
            work = tmp / f"n{n}"
            work.mkdir()
            log(f"n={n}: building and counting natively")
            counts = prepare(n, args.suite, work, args.shape)
            log(f"n={n}: measuring under callgrind")
            ops = [op for op in args.ops.split(",") if op in OPS]
            instr = {}
            for op in ops:
                spec = {
                    "mode": "ops",
                    "suite": args.suite,
                    "dir": str(work),
                    "ops": [op],
                    "warm_dir": str(warm_dir),
                    "warmups": args.warmups,
                    "steady": not args.first_message,
                }
                (got,) = _callgrind(spec, tmp, f"{op}-{n}")
                instr[op] = got
            for op in ops:
                rows.append({"n": n, "op": op, "instructions": instr[op], "counts": counts[op]})
        log("pricing primitives (after)")
        after = price(args.suite, tmp, "prims-after")
    moved = {
        k: (after[k][0] - before[k][0]) / before[k][0] if before[k][0] else 0.0 for k in before
    }
    for r in rows:
        r["floor_before"] = floor(r["counts"], before)
        r["floor_after"] = floor(r["counts"], after)
        r["ratio"] = r["instructions"] / r["floor_before"]
        r["ratio_after"] = r["instructions"] / r["floor_after"]
    lines = [
        f"Instructions (callgrind, suite {args.suite}, {args.shape} tree, {args.warmups} warm-ups, "
        f"protect / unprotect {'first message' if args.first_message else 'steady'}); "
        "floor = primitive counts x instructions per primitive call (priced before and after "
        "the operations).",
        "",
        "| n | op | instructions | floor | ratio | ratio (after) |",
        "|---:|---|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r['n']:,} | {r['op']} | {r['instructions']:,} | {r['floor_before']:,.0f} | "
            f"{r['ratio']:.2f} | {r['ratio_after']:.2f} |"
        )
    worst = max(abs(v) for v in moved.values())
    lines += ["", f"Primitive prices moved by at most {worst:.2%} between the two pricings."]
    text = "\n".join(lines)
    print(text)
    if args.md:
        Path(args.md).write_text(text + "\n")
    if args.json:
        Path(args.json).write_text(
            json.dumps({"rows": rows, "prices_before": before, "prices_after": after}, indent=1)
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
