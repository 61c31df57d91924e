"""``python -m mls serve``: run one delivery-service node (options: :mod:`mls.ds.options`)."""

from __future__ import annotations

import argparse
import secrets

import uvicorn

from mls.ds.observe import configure_logging
from mls.ds.options import build_parser
from mls.ds.server import DsConfig, create_app
from mls.ds.store import Limits

__all__ = ["main", "run"]


def main(argv: list[str]) -> int:
    return run(build_parser().parse_args(argv))


def run(args: argparse.Namespace) -> int:
    configure_logging(args.log_level)
    config = DsConfig(
        database=args.database,
        node=args.node or f"node-{secrets.token_hex(3)}",
        rate=args.rate,
        burst=args.burst,
        max_message=args.max_message,
        max_body=max(1 << 20, 2 * args.max_message),
        pool_size=args.pool_size,
        poll_interval=args.poll_interval,
        sqlite_sync=args.sqlite_sync.upper(),
        limits=Limits(token_ttl=args.token_ttl),
    )
    uvicorn.run(
        create_app(config),
        host=args.host,
        port=args.port,
        log_level="warning",
        access_log=False,
        ws_max_size=max(1 << 20, 2 * args.max_message),
        ws_per_message_deflate=False,
        timeout_graceful_shutdown=5,
        timeout_keep_alive=30,
    )
    return 0
