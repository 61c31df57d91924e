"""Run the conformance test vectors from Python and print one line per file.

The same cases as ``python -m mls vectors run``, through the library's API: every vector file
the runner knows, found in the checkout's ``vectors/`` folder (or ``$MLS_VECTORS``). Give file
names (as in the table, e.g. ``mlswg/welcome.json``) to run only those.

Run it from a checkout: ``python examples/conformance.py [NAME ...]``. Exit status 0 means every
case of every requested file passed and no file was missing.
"""

from __future__ import annotations

import sys

from mls.conformance import run_file
from mls.conformance.core import default_vectors_root, locate_vectors


def main(argv: list[str]) -> int:
    wanted = set(argv)
    located = [(name, path) for name, path in locate_vectors() if not wanted or name in wanted]
    unknown = wanted - {name for name, _ in located}
    if unknown:
        print(f"unknown vector file(s): {', '.join(sorted(unknown))}", file=sys.stderr)
        return 2
    print(f"vectors from {default_vectors_root()}")
    ok = True
    total = 0
    for name, path in located:
        if path is None:
            print(f"{name}: MISSING")
            ok = False
            continue
        result = run_file(path, name)
        passed = result.count("passed")
        total += passed
        print(f"{name}: {passed}/{result.cases} passed")
        for failure in result.failures()[:3]:
            print(f"  - {failure}")
        ok = ok and not result.error and passed == result.cases
    print(f"{total} cases passed" + ("" if ok else "; SOME FAILED OR WERE MISSING"))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
