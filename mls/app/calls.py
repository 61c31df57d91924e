"""Group calls: SFrame media encryption keyed from an MLS group (RFC 9605 §5.2).

:class:`GroupCall` binds one member's :class:`~mls.sframe.SFrameContext` to a
:class:`~mls.group.Group`'s epochs; the group itself is the :class:`~mls.sframe.keys.Exporter`
that ``mls.sframe`` declares (:class:`GroupExporter`, a view of it, is kept for callers):

- every epoch's ``base_key`` is ``MLS-Exporter("SFrame 1.0 Base Key", "", AEAD.Nk)`` and each
  member's KID packs its leaf index and the epoch's low ``E`` bits (§5.2);
- on an epoch change the call sends under the new epoch at once and keeps the previous epochs'
  receive keys for ``grace_period`` seconds, so frames already in flight still decrypt;
- a member removed from the group never learns a later epoch's exporter, so it cannot derive
  later keys; :meth:`GroupCall.leave` drops the keys it held.

**Nonce uniqueness across restarts** (RFC 9605 §9.1: each (``base_key``, KID, CTR) at most
once). SFrame nonces come from a per-KID counter that starts at 0 (§4.4.3); a member that
restarted inside one epoch and rejoined the call would reuse (key, CTR) pairs. Each call session
therefore sends under its own KID *context* (the high KID bits that §5.2 leaves to the application
for uncoordinated streams): the session number itself, from a per-group counter that
:class:`~mls.app.client.ChatClient` persists before the call starts. Session numbers are never
reduced modulo anything, so two sessions never share a KID, however many calls one epoch sees;
a session number that does not fit the ``64 - S - E`` context bits of the current epoch refuses
to send (:class:`~mls.errors.NonceSpaceExhausted`) instead of wrapping. With the default ``E = 8``
that is after 2^24 sessions in the largest possible tree and 2^46 in a group of 1024 leaves.
"""

from __future__ import annotations

from mls.errors import NonceSpaceExhausted, UsageError
from mls.group import Group
from mls.sframe import DecryptedFrame, SFrameContext
from mls.sframe.cipher import AES_128_GCM_SHA256_128
from mls.sframe.context import DEFAULT_MAX_RECEIVERS

__all__ = ["DEFAULT_SFRAME_SUITE", "GroupCall", "GroupExporter"]

DEFAULT_SFRAME_SUITE = AES_128_GCM_SHA256_128


class GroupExporter:
    """A live :class:`~mls.sframe.keys.Exporter` view of a :class:`~mls.group.Group` (a
    ``Group`` is one already; kept for existing callers)."""

    __slots__ = ("_group",)

    def __init__(self, group: Group) -> None:
        self._group = group

    @property
    def epoch(self) -> int:
        return self._group.epoch

    @property
    def own_leaf_index(self) -> int:
        return self._group.own_leaf_index

    @property
    def leaf_count(self) -> int:
        return self._group.tree.n_leaves

    def export_secret(self, label: str, context: bytes, length: int) -> bytes:
        return self._group.export_secret(label, context, length)


class GroupCall:
    """One member's media keys for a call in one MLS group.

    ``now`` and ``grace_period`` are in seconds (the caller's clock, as everywhere in
    ``mls.app``). ``session`` is the KID context this member sends under (see the module
    docstring): the caller MUST NOT use one session number twice in a group (RFC 9605 §9.1), so it
    has no default. Frames from any context of another member are accepted.
    """

    def __init__(
        self,
        group: Group,
        *,
        now: int,
        session: int,
        suite: int = DEFAULT_SFRAME_SUITE,
        epoch_bits: int = 8,
        grace_period: int = 2,
        replay_window: int = 256,
        max_receivers: int = DEFAULT_MAX_RECEIVERS,
    ) -> None:
        if not 0 <= epoch_bits <= 16:
            raise UsageError("epoch_bits must be in 0..16 (leave room for the session id)")
        if session < 0:
            raise UsageError(f"call session must be non-negative, got {session}")
        self._group_id = group.group_id
        self._context_id = session
        sframe = SFrameContext(
            suite,
            epoch_bits=epoch_bits,
            grace_period=grace_period,
            replay_window=replay_window,
            max_receivers=max_receivers,
        )
        sframe.epoch_changed(group, now=now)
        self._check_context(sframe)
        self._sframe = sframe

    def _check_context(self, sframe: SFrameContext) -> None:
        bits = sframe.context_bits
        if self._context_id >> bits:
            # RFC 9605 §9.1: truncating the session to fit would give it an earlier session's KID.
            raise NonceSpaceExhausted(
                f"call session {self._context_id} does not fit the {bits} KID context bits of "
                "this epoch: no unused SFrame KID is left for this member in this group"
            )

    @property
    def group_id(self) -> bytes:
        return self._group_id

    @property
    def epoch(self) -> int | None:
        """The epoch frames are sent in; ``None`` once the call was left."""
        return self._sframe.epoch

    @property
    def held_epochs(self) -> list[int]:
        """Epochs whose receive keys are held (the current one and those in grace)."""
        return self._sframe.held_epochs

    @property
    def active(self) -> bool:
        return self._sframe.epoch is not None

    @property
    def context_id(self) -> int:
        return self._context_id

    @property
    def kid(self) -> int:
        """The KID this member sends under in the current epoch (send-only, §4.4.1)."""
        return self._sframe.own_kid(self._context_id)

    def epoch_changed(self, group: Group, *, now: int) -> None:
        """Switch to the group's current epoch (call after every merged commit)."""
        if self._sframe.epoch is not None and group.epoch != self._sframe.epoch:
            self._sframe.epoch_changed(group, now=now)

    def leave(self) -> None:
        """Forget every key (the member left or was removed)."""
        self._sframe.leave()

    def encrypt(self, media: bytes, metadata: bytes = b"") -> bytes:
        """One SFrame ciphertext of ``media`` under this member's current-epoch key.

        Raises :class:`~mls.errors.NonceSpaceExhausted` if this session has no unused
        (``base_key``, KID, CTR) left in the current epoch (the tree grew past what its session
        number fits, or 2^64 frames were sent).
        """
        self._check_context(self._sframe)
        return self._sframe.encrypt(media, metadata, context_id=self._context_id)

    def decrypt(self, frame: bytes, metadata: bytes = b"", *, now: int) -> DecryptedFrame:
        """Authenticate, replay-check and decrypt one frame (RFC 9605 §4.4.4, §9.4).

        Raises :class:`~mls.errors.UnknownKeyID`, :class:`~mls.errors.ReplayedMessage`,
        :class:`~mls.errors.DecryptFailed` or :class:`~mls.errors.DecodeError`.
        """
        return self._sframe.decrypt(frame, metadata, now=now)
