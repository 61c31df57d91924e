"""Networked clients: :class:`NetClient` (asyncio) over the delivery service of ``mls.ds``.

Needs the optional extra ``[server]`` (httpx, websockets); ``import mls`` and ``mls.app`` do
not import this package.
"""

from __future__ import annotations

from mls.app.network.client import (
    LEAVE_REQUEST,
    Delivered,
    DeliveryError,
    NetCall,
    NetClient,
    NetConfig,
    Posted,
)
from mls.app.network.store import NetStore

__all__ = [
    "LEAVE_REQUEST",
    "Delivered",
    "DeliveryError",
    "NetCall",
    "NetClient",
    "NetConfig",
    "NetStore",
    "Posted",
]
