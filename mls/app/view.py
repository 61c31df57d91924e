"""A conversation as a user sees it: stored MIMI messages folded into lines.

Folding follows draft-ietf-mimi-content: a message with ``replaces`` is a new version of an
earlier message by the *same* sender (§ Edit and Delete; a NullPart deletes it); a ``reaction``
disposition with ``inReplyTo`` attaches to its target (§ Reactions; a NullPart reaction retracts
an earlier one). Expired messages are never part of the input (see
:meth:`mls.app.client.ChatClient.messages`), and an edit or reaction whose target is gone does not
bring it back.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field, replace

from mls.app.content import (
    Disposition,
    ExternalPart,
    MimiContent,
    MultiPart,
    NullPart,
    SinglePart,
    decode_content,
)
from mls.app.storage import StoredMessage
from mls.errors import InvalidContent

__all__ = ["ChatLine", "conversation", "describe"]


@dataclass(frozen=True, slots=True, kw_only=True)
class ChatLine:
    """One visible message, after edits and with its reactions."""

    message_id: bytes
    sender: bytes
    text: str = field(repr=False)
    in_reply_to: bytes | None = None
    edited: bool = False
    #: ``(sender, reaction)`` pairs, in arrival order.
    reactions: tuple[tuple[bytes, str], ...] = ()
    expires_at: int | None = None


def describe(content: MimiContent) -> str:
    """A one-line rendering of a content's body."""
    return _render(content.nested_part.body)


def _render(body: object) -> str:
    if isinstance(body, SinglePart):
        return body.content.decode("utf-8", "replace")
    if isinstance(body, ExternalPart):
        return f"[{body.content_type} {body.filename or body.url}]"
    if isinstance(body, MultiPart):
        return " | ".join(_render(p.body) for p in body.parts)
    if isinstance(body, NullPart):
        return "[deleted]"
    return "[?]"


def conversation(messages: Iterable[StoredMessage]) -> list[ChatLine]:
    """Fold stored messages (in storage order) into the lines a user sees.

    Base messages are placed first and edits and reactions applied after, so one that arrived
    before its target (delivery order differs between members) still applies.
    """
    lines: dict[bytes, ChatLine] = {}
    order: list[bytes] = []
    changes: list[tuple[StoredMessage, MimiContent]] = []
    for m in messages:
        try:
            content = decode_content(m.content)
        except InvalidContent:
            continue
        if content.nested_part.disposition == Disposition.reaction or content.replaces is not None:
            changes.append((m, content))
            continue
        lines[m.message_id] = ChatLine(
            message_id=m.message_id,
            sender=m.sender,
            text=describe(content),
            in_reply_to=content.in_reply_to,
            expires_at=m.expires_at,
        )
        order.append(m.message_id)
    for m, content in changes:
        part = content.nested_part
        if part.disposition == Disposition.reaction:
            target = content.in_reply_to
            if target is None or target not in lines:
                continue
            line = lines[target]
            if isinstance(part.body, NullPart):
                kept = tuple(r for r in line.reactions if r[0] != m.sender)
            else:
                kept = (*line.reactions, (m.sender, describe(content)))
            lines[target] = replace(line, reactions=kept)
            continue
        assert content.replaces is not None
        old = lines.get(content.replaces)
        if old is None or old.sender != m.sender:
            continue  # only the original sender edits; a gone message stays gone
        if isinstance(part.body, NullPart):
            del lines[content.replaces]
        else:
            lines[content.replaces] = replace(old, text=describe(content), edited=True)
    return [lines[mid] for mid in order if mid in lines]
