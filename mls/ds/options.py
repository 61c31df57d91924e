"""The options of ``python -m mls serve`` (argparse only: ``--help`` needs no extra)."""

from __future__ import annotations

import argparse
import os

__all__ = ["build_parser"]


def build_parser(parser: argparse.ArgumentParser | None = None) -> argparse.ArgumentParser:
    p = parser or argparse.ArgumentParser(prog="python -m mls serve")
    p.description = "Run a delivery-service node (SQLite by default; PostgreSQL for several)."
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8080)
    p.add_argument(
        "--database",
        default=os.environ.get("MLS_DS_DATABASE", "sqlite:///mls-ds.sqlite3"),
        help="sqlite:///relative.db, sqlite:////absolute.db or postgresql://user@host/db "
        "(default: $MLS_DS_DATABASE or sqlite:///mls-ds.sqlite3)",
    )
    p.add_argument("--node", default=None, help="node name in logs and /health")
    p.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
    p.add_argument("--rate", type=float, default=200.0, help="requests/s per client")
    p.add_argument("--burst", type=float, default=400.0, help="request burst per client")
    p.add_argument("--max-message", type=int, default=256 * 1024, help="bytes per MLS message")
    p.add_argument("--token-ttl", type=int, default=3600, help="seconds a token is valid")
    p.add_argument("--pool-size", type=int, default=8, help="PostgreSQL connections")
    p.add_argument(
        "--poll-interval",
        type=float,
        default=2.0,
        help="seconds between inbox checks of an idle WebSocket (pushes come by notification)",
    )
    p.add_argument("--sqlite-sync", default="normal", choices=["normal", "full"])
    return p
