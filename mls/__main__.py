"""Command line of ``mls``.

- ``python -m mls vectors run [PATH ...] [--json]``: the conformance run over the official vectors;
- ``python -m mls interop``: the interop driver (JSON lines on stdin/stdout);
- ``python -m mls demo``: group chat and a group call end to end, with an in-process delivery
  service.
"""

from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) >= 2 and args[0] == "vectors" and args[1] == "run":
        from mls.conformance.runner import main as run_vectors

        return run_vectors(args[2:])
    if args and args[0] == "demo":
        from mls.app.demo import main as run_demo

        return run_demo(args[1:])
    if args and args[0] == "interop":
        from mls.interop import main as run_interop

        return run_interop(args[1:])
    print(
        "usage: python -m mls vectors run [PATH ...] [--json]\n"
        "       python -m mls interop\n"
        "       python -m mls demo",
        file=sys.stderr,
    )
    return 2


if __name__ == "__main__":
    sys.exit(main())
