"""Disappearing messages: a group-wide timer in a GroupContext extension, and message expiry.

The timer lives in the GroupContext (RFC 9420 §8.1) as a private-use extension (§17.3 reserves
0xF000-0xFFFF for private use)::

    /* extension_type = DISAPPEARING_MESSAGES_EXTENSION (0xF0D1) */
    struct {
        uint32 duration;   /* seconds, MIN_TIMER..MAX_TIMER (5 s to 24 h) */
    } DisappearingMessages;

The extension absent means "off". Members change it with a GroupContextExtensions proposal
(§12.1.7), so every member moves to the new timer at the same epoch, and the group's
``required_capabilities`` (§11.1) lists the type, so a KeyPackage that does not support it cannot
be added (§12.1.1) and a member that does not support it blocks the change (§12.1.7).

**Expiry of one message.** The timer in force is the one of the epoch the message was sent in
(every PrivateMessage names its epoch, §6.3). The sender writes the absolute expiry
``sent_at + timer`` into the MIMI content's ``expires`` field (draft-ietf-mimi-content §
Expiration). We chose the MIMI content over the PrivateMessage ``authenticated_data`` because:

- it is authenticated: the content is signed by the sender (FramedContent signature, §6.1) and
  AEAD-protected, so nobody but a member can set or change it;
- it is confidential: ``authenticated_data`` travels in clear, so the delivery service would learn
  the group's timer and which messages disappear;
- it is the standard field every MIMI client already understands.

A receiver does not trust the sender's clock to extend a message's life: the effective expiry is
``min(expires, received_at + timer)``, so a message never outlives the group timer measured on the
receiver's own clock, while a message delayed in transit still expires at ``sent_at + timer``. A
relative ``expires`` (seconds after reading) counts from ``received_at``. A message is expired at
``now >= expires_at``: at exactly ``sent_at + timer`` it is gone. With the timer off, a message's
own ``expires`` is still honoured.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import ClassVar, Self

from mls.codec.buffer import Buffer, Writer
from mls.codec.wire import decode, encode
from mls.errors import DecodeError, MalformedExtension, UsageError
from mls.extensions import Extension, RequiredCapabilities, find_extension

__all__ = [
    "DISAPPEARING_MESSAGES_EXTENSION",
    "MAX_TIMER",
    "MIN_TIMER",
    "DisappearingMessages",
    "message_expiry",
    "timer_of",
    "with_required_support",
    "with_timer",
]

#: Private-use extension type of the timer (RFC 9420 §17.3: 0xF000-0xFFFF).
DISAPPEARING_MESSAGES_EXTENSION = 0xF0D1
MIN_TIMER = 5
MAX_TIMER = 24 * 3600


@dataclass(frozen=True, slots=True, kw_only=True)
class DisappearingMessages:
    """The group's timer (see the module docstring)::

    struct {
        uint32 duration;
    } DisappearingMessages;
    """

    extension_type: ClassVar[int] = DISAPPEARING_MESSAGES_EXTENSION
    duration: int

    def __post_init__(self) -> None:
        if not MIN_TIMER <= self.duration <= MAX_TIMER:
            raise UsageError(
                f"disappearing timer {self.duration} s outside {MIN_TIMER}..{MAX_TIMER} s"
            )

    def encode(self, w: Writer) -> None:
        w.push_uint32(self.duration)

    @classmethod
    def decode(cls, buf: Buffer) -> Self:
        duration = buf.pull_uint32()
        if not MIN_TIMER <= duration <= MAX_TIMER:
            raise MalformedExtension(f"disappearing timer {duration} s out of range")
        return cls(duration=duration)

    def to_extension(self) -> Extension:
        return Extension(extension_type=self.extension_type, extension_data=encode(self))

    @classmethod
    def from_extension(cls, ext: Extension) -> Self:
        if ext.extension_type != cls.extension_type:
            raise UsageError(f"extension type {ext.extension_type:#06x} is not the timer's")
        try:
            return decode(cls, ext.extension_data)
        except MalformedExtension:
            raise
        except DecodeError as exc:
            raise MalformedExtension(f"DisappearingMessages: {exc}") from exc


def timer_of(extensions: Iterable[Extension]) -> int | None:
    """The timer (seconds) held in a GroupContext's extensions, or ``None`` when off.

    The group layer does not know this extension, so it cannot refuse a malformed value from a
    peer; we fail towards deletion and read a malformed one as the shortest timer.
    """
    ext = find_extension(extensions, DISAPPEARING_MESSAGES_EXTENSION)
    if ext is None:
        return None
    try:
        return DisappearingMessages.from_extension(ext).duration
    except MalformedExtension:
        return MIN_TIMER


def with_required_support(extensions: Sequence[Extension]) -> tuple[Extension, ...]:
    """``extensions`` whose ``required_capabilities`` lists the timer extension (§11.1)."""
    req = RequiredCapabilities.find(extensions) or RequiredCapabilities()
    if DISAPPEARING_MESSAGES_EXTENSION in req.extension_types:
        return tuple(extensions)
    req = RequiredCapabilities(
        extension_types=(*req.extension_types, DISAPPEARING_MESSAGES_EXTENSION),
        proposal_types=req.proposal_types,
        credential_types=req.credential_types,
    )
    return _replace(extensions, req.to_extension())


def with_timer(extensions: Sequence[Extension], seconds: int | None) -> tuple[Extension, ...]:
    """The GroupContext extensions with the timer set to ``seconds`` (``None``: off).

    Every other extension is kept (a GroupContextExtensions proposal replaces the whole list,
    §12.1.7) and ``required_capabilities`` is made to list the timer type.
    """
    exts = with_required_support(extensions)
    if seconds is None:
        return tuple(e for e in exts if e.extension_type != DISAPPEARING_MESSAGES_EXTENSION)
    return _replace(exts, DisappearingMessages(duration=seconds).to_extension())


def _replace(extensions: Sequence[Extension], new: Extension) -> tuple[Extension, ...]:
    out = [e for e in extensions if e.extension_type != new.extension_type]
    out.append(new)
    return tuple(out)


def message_expiry(
    *,
    timer: int | None,
    received_at: int,
    expires: int | None,
    relative: bool = False,
) -> int | None:
    """The time (seconds since the UNIX epoch) at which a received message expires.

    ``timer`` is the group timer of the message's epoch; ``expires``/``relative`` come from the
    message's authenticated MIMI ``expires`` field (``None`` if absent). ``None``: never.
    """
    candidates: list[int] = []
    if timer is not None:
        candidates.append(received_at + timer)
    if expires is not None:
        candidates.append(received_at + expires if relative else expires)
    return min(candidates) if candidates else None
