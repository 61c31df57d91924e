"""Command line of ``mls``: ``python -m mls COMMAND``; ``python -m mls --help`` lists them.

Each command is one ``argparse`` subparser whose ``func`` runs it; to add a command, add a
``_add_<name>`` function and call it in :func:`build_parser`. Command modules are imported only
when their command runs, so ``--help`` stays fast and needs no optional extra.
"""

from __future__ import annotations

import argparse
import sys
from typing import NoReturn

from mls import __version__
from mls.errors import MLSError

__all__ = ["build_parser", "main"]


class _Parser(argparse.ArgumentParser):
    """An ``ArgumentParser`` whose usage errors are one line (and exit status 2)."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _vectors_run(args: argparse.Namespace) -> int:
    from mls.conformance.runner import run

    return run(args)


def _demo(args: argparse.Namespace) -> int:
    if args.network:
        # Server and client processes need the optional extra [server]; imported only here.
        try:
            from mls.app.network.demo import main as run_network_demo
        except ImportError as exc:
            print(f"python -m mls demo --network: {exc}; install mls-protocol[server]")
            return 2
        return run_network_demo()
    from mls.app.demo import main as run_demo

    return run_demo(["--memory"] if args.memory else [])


def _interop(args: argparse.Namespace) -> int:
    from mls.crypto import use_profile

    use_profile(args.suite_profile)  # which ids the PQ suites have (mls.crypto.registry)
    if args.grpc is not None:
        # The gRPC service needs the optional extra [interop]; imported only here.
        try:
            from mls.interop_grpc.server import serve
        except ImportError as exc:
            print(
                f"python -m mls interop --grpc: {exc}; install mls-protocol[interop]",
                file=sys.stderr,
            )
            return 2
        return serve(args.host, args.grpc)
    from mls.interop import main as run_interop

    return run_interop([])


def _serve(args: argparse.Namespace) -> int:
    # The server needs the optional extra [server]; imported only here.
    try:
        from mls.ds.cli import run as run_server
    except ImportError as exc:
        print(f"python -m mls serve: {exc}; install mls-protocol[server]", file=sys.stderr)
        return 2

    return run_server(args)


def _chat(args: argparse.Namespace) -> int:
    # The networked client needs the optional extra [server] (httpx, websockets).
    try:
        from mls.app.network.chat import main as run_chat
    except ImportError as exc:
        print(f"python -m mls chat: {exc}; install mls-protocol[server]", file=sys.stderr)
        return 2
    return run_chat(args)


def _add_chat(sub: argparse._SubParsersAction[_Parser]) -> None:
    p = sub.add_parser(
        "chat",
        help="interactive terminal chat through a delivery service (needs the [server] extra)",
        description=(
            "Chat through a delivery service (python -m mls serve): groups, invites, removes, "
            "leave, replies, reactions, edits and disappearing messages. Type /help inside."
        ),
    )
    p.add_argument("--server", required=True, metavar="URL", help="e.g. http://127.0.0.1:8080")
    p.add_argument("--name", required=True, help="your identity (registered on first use)")
    p.add_argument(
        "--data",
        metavar="FILE",
        default=None,
        help="SQLite file of your keys, groups and messages (default: memory, lost on exit)",
    )
    p.set_defaults(func=_chat)


def _add_vectors(sub: argparse._SubParsersAction[_Parser]) -> None:
    from mls.conformance.runner import build_parser as vectors_run_parser

    p = sub.add_parser(
        "vectors",
        help="conformance: run the test vectors (MLS, HPKE, SFrame)",
        description="Conformance test vectors.",
    )
    actions = p.add_subparsers(dest="action", metavar="ACTION", required=True)
    run = actions.add_parser("run", help="run vector files; print cases passed and failed")
    vectors_run_parser(run)
    run.set_defaults(func=_vectors_run)


def _add_demo(sub: argparse._SubParsersAction[_Parser]) -> None:
    p = sub.add_parser(
        "demo",
        help="end-to-end demo: a group chat and an SFrame group call",
        description=(
            "A group chat (replies, reactions, edits, disappearing messages, adds and removes) "
            "and an SFrame group call across an epoch change, checking that the delivery service "
            "never sees plaintext. Exit status 0 means every check held."
        ),
    )
    p.add_argument(
        "--memory", action="store_true", help="keep client state in memory instead of SQLite"
    )
    p.add_argument(
        "--network",
        action="store_true",
        help="the same story across processes: a delivery service and four chat clients on "
        "loopback (needs the [server] extra)",
    )
    p.set_defaults(func=_demo)


def _add_interop(sub: argparse._SubParsersAction[_Parser]) -> None:
    p = sub.add_parser(
        "interop",
        help="interop driver: JSON lines on stdin and stdout",
        description=(
            "Serve the line protocol of the interop coordinator on stdin/stdout until end of "
            "input; with --grpc, serve the MLS working group's gRPC service mls_client.MLSClient "
            "instead (docs/interop.md)."
        ),
    )
    p.add_argument(
        "--grpc",
        type=int,
        metavar="PORT",
        help="serve mls_client.MLSClient over gRPC on PORT (0: any free port) until SIGINT/SIGTERM",
    )
    p.add_argument(
        "--host", default="127.0.0.1", help="address to listen on with --grpc (default 127.0.0.1)"
    )
    p.add_argument(
        "--suite-profile",
        default="openmls",
        choices=("openmls", "ts-mls-1"),
        help="code points of the post-quantum suites: openmls (default; OpenMLS's provisional "
        "ids) or ts-mls-1 (ts-mls 1.x compatibility, ids 79-88)",
    )
    p.set_defaults(func=_interop)


def _add_serve(sub: argparse._SubParsersAction[_Parser]) -> None:
    from mls.ds.options import build_parser as serve_parser

    p = sub.add_parser(
        "serve",
        help="run a delivery-service node (needs the [server] extra)",
        description="Run a delivery-service node (SQLite by default; PostgreSQL for several).",
    )
    serve_parser(p)
    p.set_defaults(func=_serve)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="python -m mls",
        description="Messaging Layer Security (RFC 9420): conformance, demo, interop, server.",
    )
    parser.add_argument("--version", action="version", version=f"mls-protocol {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    _add_vectors(sub)
    _add_demo(sub)
    _add_interop(sub)
    _add_serve(sub)
    _add_chat(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(sys.argv[1:] if argv is None else argv)
    try:
        status: int = args.func(args)
    except MLSError as exc:
        print(f"python -m mls {args.command}: error: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:
        print(f"python -m mls {args.command}: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    return status


if __name__ == "__main__":
    sys.exit(main())
