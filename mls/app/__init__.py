"""Application layer: chat content (MIMI), clients, storage, disappearing messages, calls.

All real I/O, clocks and persistence of the library live here (layer L8, above ``mls.group``):

- :mod:`mls.app.content`: MIMI content messages (draft-ietf-mimi-content).
- :mod:`mls.app.client`: :class:`ChatClient`, one identity and its groups, persisted atomically.
- :mod:`mls.app.storage`: the :class:`Storage` Protocol, :class:`MemoryStorage` and
  :class:`SQLiteStorage` (the embedded default).
- :mod:`mls.app.disappearing`: the group's disappearing-messages timer (a GroupContext
  extension, type 0xF0D1) and message expiry.
- :mod:`mls.app.calls`: :class:`GroupCall`, SFrame (RFC 9605 §5.2) keyed from the MLS exporter.
- :mod:`mls.app.delivery`: an in-process delivery service and SFU (demo and tests).
- :mod:`mls.app.view`: stored messages folded into a conversation (edits, reactions).
- :mod:`mls.app.demo`: ``python -m mls demo``.
"""

from __future__ import annotations

from mls.app.calls import GroupCall, GroupExporter
from mls.app.client import (
    ChatClient,
    ChatConfig,
    ChatEvent,
    GroupUpdated,
    Ignored,
    Joined,
    MessageExpired,
    MessageReceived,
    ProposalQueued,
    Sent,
)
from mls.app.delivery import DeliveryService
from mls.app.disappearing import DISAPPEARING_MESSAGES_EXTENSION, DisappearingMessages
from mls.app.storage import (
    GroupRecord,
    GroupWrite,
    MemoryStorage,
    Snapshot,
    SQLiteStorage,
    StateChange,
    Storage,
    StoredMessage,
)
from mls.app.view import ChatLine, conversation

__all__ = [
    "ChatClient",
    "ChatConfig",
    "ChatEvent",
    "ChatLine",
    "DISAPPEARING_MESSAGES_EXTENSION",
    "DeliveryService",
    "DisappearingMessages",
    "GroupCall",
    "GroupExporter",
    "GroupRecord",
    "GroupWrite",
    "GroupUpdated",
    "Ignored",
    "Joined",
    "MemoryStorage",
    "MessageExpired",
    "MessageReceived",
    "ProposalQueued",
    "SQLiteStorage",
    "Sent",
    "Snapshot",
    "StateChange",
    "Storage",
    "StoredMessage",
    "conversation",
]
