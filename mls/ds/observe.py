"""Structured logs and counters of the delivery service.

Log lines are JSON objects with an ``event`` name and small scalar fields: identities and
group ids (base64url), sizes, codes and timings. Message bytes never reach a log line: the
logger accepts only ``int``, ``float``, ``bool`` and short ``str`` values.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from collections import Counter
from typing import Any

__all__ = ["Metrics", "configure_logging", "log_event"]

log = logging.getLogger("mls.ds")

_MAX_FIELD = 200


def log_event(event: str, level: int = logging.INFO, **fields: object) -> None:
    if not log.isEnabledFor(level):
        return
    record: dict[str, object] = {"ts": round(time.time(), 3), "event": event}
    for key, value in fields.items():
        if isinstance(value, bool | int | float) or value is None:
            record[key] = value
        elif isinstance(value, str):
            record[key] = value[:_MAX_FIELD]
        else:  # bytes and anything else are never logged
            record[key] = f"<{type(value).__name__}>"
    log.log(level, json.dumps(record, separators=(",", ":")))


def configure_logging(level: str) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(message)s"))
    log.handlers[:] = [handler]
    log.setLevel(level.upper())
    log.propagate = False


class Metrics:
    """Per-node counters of accepted and refused requests, served at ``/metrics``."""

    def __init__(self) -> None:
        self.accepted: Counter[str] = Counter()
        self.refused: Counter[str] = Counter()
        self.started = time.time()

    def snapshot(self) -> dict[str, Any]:
        return {
            "uptime_seconds": round(time.time() - self.started, 3),
            "accepted": dict(sorted(self.accepted.items())),
            "refused": dict(sorted(self.refused.items())),
        }
