"""``python -m mls vectors run [PATH ...] [--json]``: run vector files and print a summary."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from mls.conformance.core import FileResult, default_vectors_root, locate_vectors, run_file
from mls.conformance.registry import handler_name
from mls.errors import UsageError


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
            raise UsageError(f"no such vector file or folder: {p}")
    return out


MISSING_HINT = (
    "a source checkout carries every vector file in its vectors/ folder; with an installed "
    "wheel, set MLS_VECTORS to such a folder (official MLS vectors: "
    "https://github.com/mlswg/mls-implementations/tree/main/test-vectors)"
)


def build_parser(parser: argparse.ArgumentParser | None = None) -> argparse.ArgumentParser:
    """The options of ``vectors run`` (on ``parser`` when the main CLI supplies one)."""
    if parser is None:
        parser = argparse.ArgumentParser(prog="python -m mls vectors run")
    parser.description = (
        "Run conformance vector files. Without PATH, run every file the runner knows from "
        "$MLS_VECTORS or the checkout's vectors/ folder, and fail if one is missing."
    )
    parser.add_argument("paths", nargs="*", metavar="PATH", help="vector files or folders")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument(
        "--markdown", action="store_true", help="print the table in Markdown (as in the README)"
    )
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress on stderr")
    return parser


def main(argv: list[str]) -> int:
    return run(build_parser().parse_args(argv))


def run(args: argparse.Namespace) -> int:
    """Run the files named by ``args`` (see :func:`build_parser`); the exit status."""
    paths: list[str] = args.paths
    missing: list[str] = []
    if paths:
        files = collect(paths)
    else:
        located = locate_vectors()
        files = [(path, rel) for rel, path in located if path is not None]
        missing = [rel for rel, path in located if path is None]
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
            "missing": missing,
        }
        print(json.dumps(doc, indent=2))
    elif args.markdown:
        print(markdown_table(results))
    elif results:
        print_table(results)
    if missing:
        root = default_vectors_root()
        where = f"under {root}" if root is not None else "(no vectors folder found)"
        print(f"\nmissing {len(missing)} vector file(s) {where}:", file=sys.stderr)
        for rel in missing:
            print(f"  - {rel}", file=sys.stderr)
        print(MISSING_HINT, file=sys.stderr)
    return 1 if failed or missing or not results else 0


def markdown_table(results: list[FileResult]) -> str:
    """The results as the README's conformance table (one row per file and a total)."""
    kinds = ("passed", "failed", "unsupported")
    rows = ["| file | cases | passed | failed | unsupported |", "|---|---|---|---|---|"]
    for r in results:
        counts = " | ".join(str(r.count(k)) for k in kinds)
        rows.append(f"| `{r.file}` | {r.cases} | {counts} |")
    totals = [sum(r.cases for r in results)] + [sum(r.count(k) for r in results) for k in kinds]
    rows.append("| **total** | " + " | ".join(f"**{t}**" for t in totals) + " |")
    return "\n".join(rows)


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
