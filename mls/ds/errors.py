"""The one error type of the delivery service: a refused request (an HTTP 4xx answer).

Every check that refuses input raises :class:`Refused` *before* anything is written, or inside
the database transaction that it then rolls back, so a refused request changes nothing.
"""

from __future__ import annotations

from typing import Any

from mls.errors import PeerError

__all__ = ["Refused", "Unavailable"]


class Refused(PeerError):
    """A request the server refuses: ``status`` (4xx), a stable ``code`` and extra JSON fields.

    The message is for people; clients branch on ``code`` (see ``docs/ds.md``).
    """

    def __init__(self, status: int, code: str, message: str, **extra: Any) -> None:
        assert 400 <= status < 500
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.extra = extra

    def body(self) -> dict[str, Any]:
        return {"error": self.code, "message": self.message, **self.extra}


class Unavailable(Exception):
    """The database cannot be reached: answered with 503, the one 5xx the server sends."""
