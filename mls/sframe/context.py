"""An SFrame call context bound to an MLS group (RFC 9605 §4.4, §5.2, §9.3, Appendix A).

:class:`SFrameContext` keeps, for each MLS epoch it holds:

- the send keys of this member (one per context id, each with its next CTR; a key is never used
  for receiving, §4.4.1), and
- the receive keys of the other senders, derived on first use and kept only once a frame under
  them has authenticated, each with an anti-replay window over CTR values (§9.3, in the style
  of RFC 3711 §3.3.2).

Memory is bounded whatever peers send: a replay window holds at most ``replay_window`` bits
however far a CTR jumps, and an epoch holds at most ``max_receivers`` receive contexts. Every
member knows the epoch's shared ``base_key`` (§7.2: no per-sender authentication), so one member
can mint authentic frames under any number of KIDs; past the cap, frames under new KIDs are
refused with :class:`~mls.errors.TooManyKeyIDs` before any key is derived.

Each (``base_key``, KID, CTR) is used at most once (§9.1): a context encrypts only in its newest
epoch, epochs only move forward, and each KID's CTR only grows, refusing to wrap with
:class:`~mls.errors.NonceSpaceExhausted`. Across processes this holds only if no two contexts of
one member ever send under the same KID in one epoch; callers give each one its own context id
(:mod:`mls.app.calls` uses a persisted, never reused call session number).

``epoch_changed(exporter, now=...)`` switches to a new epoch. The previous epochs stay available for
*receiving* until ``now + grace_period`` so that frames in flight still decrypt; an epoch whose
low ``E`` bits equal the new one's is dropped at once (§5.2: "receivers MUST remove an old epoch
when a new epoch with the same low-order E bits is introduced"). The context is sans-I/O: the
caller passes the clock (``now``, in any unit, the same as ``grace_period``).

A member removed from the group no longer receives exporters for later epochs, so it cannot derive
their keys: their KIDs are unknown to it (or, if the low epoch bits wrap, their tags do not verify).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from mls.errors import (
    InvalidState,
    NonceSpaceExhausted,
    ReplayedMessage,
    TooManyKeyIDs,
    UnknownKeyID,
    UsageError,
)
from mls.sframe.cipher import FrameKey, SFrameSuite, get_suite
from mls.sframe.header import MAX_VALUE, parse_header
from mls.sframe.keys import EpochKeys, Exporter

#: The widest replay window accepted: 8 KiB of bitmap per receive context.
MAX_REPLAY_WINDOW = 1 << 16
#: Default cap on the receive contexts (KIDs) held per epoch.
DEFAULT_MAX_RECEIVERS = 4096


@dataclass(frozen=True, slots=True, kw_only=True)
class DecryptedFrame:
    """A frame that authenticated and passed the replay check."""

    plaintext: bytes = field(repr=False)
    epoch: int
    """The full MLS epoch the frame was encrypted in."""
    sender_index: int
    """The sender's leaf index (taken from the KID)."""
    context_id: int
    kid: int
    ctr: int


class ReplayWindow:
    """Sliding anti-replay window over CTR values (RFC 9605 §9.3, RFC 3711 §3.3.2).

    Bit ``i`` of the bitmap records that ``top - i`` was accepted. Counters more than ``size - 1``
    below the highest accepted one are rejected as possible replays. The bitmap never holds more
    than ``size`` bits: a jump of ``size`` or more clears it instead of shifting it, so a frame
    with a CTR of 2^63 costs no more memory than one with CTR ``top + 1``.
    """

    __slots__ = ("_bits", "_mask", "_size", "_top")

    def __init__(self, size: int) -> None:
        if not 1 <= size <= MAX_REPLAY_WINDOW:
            raise UsageError(f"replay window must hold 1..{MAX_REPLAY_WINDOW} counters, got {size}")
        self._size = size
        self._mask = (1 << size) - 1
        self._top = -1
        self._bits = 0

    @property
    def top(self) -> int:
        """The highest CTR accepted so far (-1 before the first)."""
        return self._top

    def state(self) -> tuple[int, int, int]:
        """``(size, top, bitmap)``: everything the window decides with (for tests and audits)."""
        return self._size, self._top, self._bits

    def check(self, ctr: int) -> None:
        """Raise :class:`ReplayedMessage` if ``ctr`` was seen or is too old to tell."""
        if ctr > self._top:
            return
        delta = self._top - ctr
        if delta >= self._size:
            raise ReplayedMessage(f"SFrame CTR {ctr} is older than the replay window")
        if (self._bits >> delta) & 1:
            raise ReplayedMessage(f"SFrame CTR {ctr} was already received")

    def commit(self, ctr: int) -> None:
        """Record ``ctr``; call only after the frame authenticated (forgeries must not move it)."""
        if ctr > self._top:
            shift = ctr - self._top
            # Shifting by the jump itself would allocate shift bits (2^40 for one forged-looking
            # but authentic frame): every old bit falls out of the window anyway.
            self._bits = 1 if shift >= self._size else ((self._bits << shift) | 1) & self._mask
            self._top = ctr
        else:
            self._bits |= 1 << (self._top - ctr)


class _Receiver:
    __slots__ = ("context_id", "key", "sender_index", "window")

    def __init__(self, key: FrameKey, sender_index: int, context_id: int, window: int) -> None:
        self.key = key
        self.sender_index = sender_index
        self.context_id = context_id
        self.window = ReplayWindow(window)


class _Sender:
    __slots__ = ("key", "next_ctr")

    def __init__(self, key: FrameKey) -> None:
        self.key = key
        self.next_ctr = 0


class _Epoch:
    __slots__ = ("expires_at", "keys", "receivers", "senders")

    def __init__(self, keys: EpochKeys) -> None:
        self.keys = keys
        self.expires_at: int | None = None  # None while it is the current epoch
        self.senders: dict[int, _Sender] = {}  # context id -> send state
        self.receivers: dict[int, _Receiver] = {}  # KID -> receive state


class SFrameContext:
    """SFrame encryption and decryption for one member of an MLS group (see the module doc).

    ``suite``: the SFrame cipher suite id (RFC 9605 §4.5); ``epoch_bits``: ``E`` of §5.2;
    ``grace_period``: how long (in the caller's clock unit) a replaced epoch stays usable for
    receiving; ``replay_window``: how many CTR values below the highest one are still accepted
    (1 to 2^16); ``max_receivers``: how many receive contexts (KIDs) one epoch may hold.
    """

    def __init__(
        self,
        suite: int | SFrameSuite,
        *,
        epoch_bits: int = 4,
        grace_period: int = 0,
        replay_window: int = 128,
        max_receivers: int = DEFAULT_MAX_RECEIVERS,
    ) -> None:
        self.suite = suite if isinstance(suite, SFrameSuite) else get_suite(suite)
        # Leaf indices are uint32 (RFC 9420 §7.1), so S <= 32 and E <= 32 always fit 64 bits.
        if not 0 <= epoch_bits <= 32:
            raise UsageError(f"epoch_bits must be in 0..32, got {epoch_bits}")
        if grace_period < 0:
            raise UsageError("grace_period must be non-negative")
        if max_receivers < 1:
            raise UsageError("max_receivers must be at least 1")
        self.epoch_bits = epoch_bits
        self.grace_period = grace_period
        self.replay_window = replay_window
        ReplayWindow(replay_window)  # validates the size
        self.max_receivers = max_receivers
        self._mask = (1 << epoch_bits) - 1
        self._current: _Epoch | None = None
        self._epochs: dict[int, _Epoch] = {}  # low E bits of the epoch -> epoch state
        self._next_expiry: int | None = None  # earliest expires_at among held epochs

    # -- epochs ------------------------------------------------------------------------------

    @property
    def epoch(self) -> int | None:
        """The current MLS epoch, or None before the first :meth:`epoch_changed`."""
        return self._current.keys.epoch if self._current else None

    @property
    def held_epochs(self) -> list[int]:
        """Every epoch whose receive keys are held (current and in grace), oldest first."""
        return sorted(e.keys.epoch for e in self._epochs.values())

    def receive_windows(self) -> dict[int, tuple[int, int, int]]:
        """KID -> ``(size, top, bitmap)`` of every held receive context (no key material)."""
        return {
            kid: rx.window.state()
            for ep in self._epochs.values()
            for kid, rx in ep.receivers.items()
        }

    @property
    def context_bits(self) -> int:
        """How many high KID bits the current epoch leaves for context ids: ``64 - S - E``."""
        layout = self._require_current().keys.layout
        return 64 - layout.index_bits - layout.epoch_bits

    def epoch_changed(self, exporter: Exporter, *, now: int) -> None:
        """Switch to the epoch of ``exporter`` (called after each MLS commit is merged)."""
        old = self._current
        new_epoch = exporter.epoch
        if old is not None and new_epoch <= old.keys.epoch:
            # The send counters restart at 0 in a new epoch: re-entering an epoch would reuse
            # (key, nonce) pairs (RFC 9605 §7.4, §9.1: senders MUST NOT encrypt twice with one
            # nonce).
            raise InvalidState(f"epoch {new_epoch} is not after the current {old.keys.epoch}")
        keys = EpochKeys.from_exporter(exporter, self.suite, epoch_bits=self.epoch_bits)
        if old is not None:
            old.expires_at = now + self.grace_period
            old.senders.clear()  # sending always uses the newest epoch
            if self._next_expiry is None or old.expires_at < self._next_expiry:
                self._next_expiry = old.expires_at
        entry = _Epoch(keys)
        # RFC 9605 §5.2: remove an old epoch that shares the new epoch's low E bits.
        self._epochs[new_epoch & self._mask] = entry
        self._current = entry
        self.expire(now)

    def expire(self, now: int) -> None:
        """Drop replaced epochs whose grace period has ended (also done by :meth:`decrypt`)."""
        if self._next_expiry is None or now < self._next_expiry:
            return  # the common case on the per-frame path: nothing to drop
        for low, ep in list(self._epochs.items()):
            if ep.expires_at is not None and now >= ep.expires_at:
                del self._epochs[low]
        pending = [e.expires_at for e in self._epochs.values() if e.expires_at is not None]
        self._next_expiry = min(pending) if pending else None

    def leave(self) -> None:
        """Forget every key, e.g. when this member was removed from the group."""
        self._epochs.clear()
        self._current = None
        self._next_expiry = None

    # -- sending -----------------------------------------------------------------------------

    def own_kid(self, context_id: int = 0) -> int:
        """The KID this member sends with in the current epoch for ``context_id``."""
        keys = self._require_current().keys
        return keys.kid(keys.own_index, context_id)

    def _require_current(self) -> _Epoch:
        if self._current is None:
            raise InvalidState("no MLS epoch yet: call epoch_changed() first")
        return self._current

    def encrypt(self, plaintext: bytes, metadata: bytes = b"", *, context_id: int = 0) -> bytes:
        """One SFrame ciphertext under this member's key for ``context_id`` (RFC 9605 §4.4.3)."""
        ep = self._require_current()
        sender = ep.senders.get(context_id)
        if sender is None:
            kid = ep.keys.kid(ep.keys.own_index, context_id)
            sender = ep.senders[context_id] = _Sender(ep.keys.frame_key(kid))
        ctr = sender.next_ctr
        if ctr > MAX_VALUE:
            # RFC 9605 §9.1: a wrapped CTR would repeat a (base_key, KID, CTR).
            raise NonceSpaceExhausted(
                "SFrame CTR space of this KID is exhausted: commit to start a new epoch"
            )
        out = sender.key.encrypt(ctr, metadata, plaintext)
        sender.next_ctr = ctr + 1
        return out

    # -- receiving ---------------------------------------------------------------------------

    def decrypt(self, ciphertext: bytes, metadata: bytes = b"", *, now: int) -> DecryptedFrame:
        """Authenticate and decrypt one SFrame ciphertext (RFC 9605 §4.4.4).

        Raises :class:`~mls.errors.DecodeError` (bad header), :class:`~mls.errors.UnknownKeyID`
        (no key for the KID; :class:`~mls.errors.TooManyKeyIDs` when the epoch is full),
        :class:`~mls.errors.ReplayedMessage` or :class:`~mls.errors.DecryptFailed`; the context
        is unchanged by any failure.
        """
        kid, ctr, n = parse_header(ciphertext)
        self.expire(now)
        ep = self._epochs.get(kid & self._mask)
        if ep is None:
            raise UnknownKeyID(f"SFrame KID {kid:#x}: no key for its epoch", kid=kid)
        rx = ep.receivers.get(kid)
        fresh = rx is None
        if rx is None:
            parts = ep.keys.sender_of(kid)
            if len(ep.receivers) >= self.max_receivers:
                raise TooManyKeyIDs(
                    f"SFrame KID {kid:#x}: epoch {ep.keys.epoch} already holds "
                    f"{self.max_receivers} receive contexts",
                    kid=kid,
                )
            rx = _Receiver(
                ep.keys.frame_key(kid), parts.sender_index, parts.context_id, self.replay_window
            )
        rx.window.check(ctr)
        plaintext = rx.key.open(ciphertext[:n], ctr, ciphertext[n:], metadata)
        rx.window.commit(ctr)
        if fresh:
            # Keep state only for KIDs that authenticated, so forged KIDs cost no memory.
            ep.receivers[kid] = rx
        return DecryptedFrame(
            plaintext=plaintext,
            epoch=ep.keys.epoch,
            sender_index=rx.sender_index,
            context_id=rx.context_id,
            kid=kid,
            ctr=ctr,
        )
