"""An untrusted delivery service for MLS (RFC 9420 §14, RFC 9750 §5): ``python -m mls serve``.

Needs the ``[server]`` extra (Starlette, uvicorn, websockets, psycopg); nothing else in ``mls``
imports this package. It stores KeyPackages, orders each group's messages (exactly one commit
per epoch wins, also across nodes sharing one PostgreSQL database), keeps a per-client inbox
with a cursor, pushes over WebSocket and relays SFrame call frames. It reads only the public
framing of what it is handed (:mod:`mls.ds.wire`) and holds no member key. ``docs/ds.md``
describes the API and the rules.

Modules: ``cli`` (the command), ``server`` (HTTP/WebSocket API), ``store`` (rules and state),
``db`` (SQLite and PostgreSQL), ``wire`` (what is parsed), ``openapi``, ``observe``, ``errors``.
"""

from __future__ import annotations

__all__: list[str] = []
