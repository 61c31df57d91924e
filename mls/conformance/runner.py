"""``python -m mls vectors run [PATH ...] [--json]``: run vector files and print a summary."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from mls.conformance.core import FileResult, default_vectors_root, run_file
from mls.conformance.registry import handler_name


def collect(paths: list[str]) -> list[tuple[Path, str]]:
    """Expand files and folders into ``(file, name relative to its vectors root)``."""
    out: list[tuple[Path, str]] = []
    for p in paths:
        path = Path(p)
        if path.is_dir():
            for f in sorted(path.rglob("*.json")):
                if handler_name(str(f)) is not None:
                    out.append((f, f.relative_to(path).as_posix()))
        elif path.is_file():
            parts = path.resolve().parts
            out.append((path, "/".join(parts[-2:])))
        else:
            raise SystemExit(f"no such vector file or folder: {p}")
    return out


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m mls vectors run")
    parser.add_argument("paths", nargs="*", help="vector files or folders")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress on stderr")
    args = parser.parse_args(argv)
    paths: list[str] = args.paths
    if not paths:
        root = default_vectors_root()
        if root is None:
            print(
                "no vectors found: set MLS_VECTORS or place the mlswg/hpke/sframe vectors in "
                "../shared/vectors (https://github.com/mlswg/mls-implementations)",
                file=sys.stderr,
            )
            return 1
        paths = [str(root)]
    files = collect(paths)
    results: list[FileResult] = []
    for f, display in files:
        if not args.quiet:
            print(f"running {display} ...", file=sys.stderr, flush=True)
        results.append(run_file(f, display))
    failed = sum(r.count("failed") + (1 if r.error else 0) for r in results)
    if args.json:
        doc = {
            "files": [r.to_json() for r in results],
            "passed": sum(r.count("passed") for r in results),
            "failed": failed,
            "unsupported": sum(r.count("unsupported") for r in results),
        }
        print(json.dumps(doc, indent=2))
    else:
        print_table(results)
    return 1 if failed else 0


def print_table(results: list[FileResult]) -> None:
    width = max([len(r.file) for r in results] + [4])
    print(f"{'file':<{width}}  {'cases':>6} {'passed':>7} {'failed':>7} {'unsupp':>7}")
    for r in results:
        print(
            f"{r.file:<{width}}  {r.cases:>6} {r.count('passed'):>7} "
            f"{r.count('failed'):>7} {r.count('unsupported'):>7}"
        )
    for r in results:
        fails = r.failures()
        if fails:
            print(f"\n{r.file}: first failures")
            for line in fails[:5]:
                print(f"  - {line}")
        unsup = [x for x in r.results if x.status == "unsupported"]
        if unsup:
            print(
                f"\n{r.file}: {len(unsup)} unsupported, e.g. {unsup[0].case_id}: {unsup[0].detail}"
            )
    total = {s: sum(r.count(s) for r in results) for s in ("passed", "failed", "unsupported")}
    print(
        f"\ntotal: {total['passed']} passed, {total['failed']} failed, "
        f"{total['unsupported']} unsupported"
    )
