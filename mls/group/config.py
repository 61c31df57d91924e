"""Per-group policy: the choices RFC 9420 leaves to the application (see SPEC_NOTES.md)."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["GroupConfig"]


@dataclass(frozen=True, slots=True, kw_only=True)
class GroupConfig:
    """Options of one group. All defaults are the safe choice."""

    #: Send handshake messages (proposals, commits) as PrivateMessage (hides the sender and the
    #: content from the delivery service, §6.3) or, with ``False``, as PublicMessage (lets the
    #: delivery service track the tree, §6.2). Application messages are always PrivateMessage.
    private_handshake: bool = True
    #: Put the ratchet tree in the Welcome's GroupInfo (``ratchet_tree`` extension, §12.4.3.3).
    ratchet_tree_extension: bool = False
    #: Pad PrivateMessage content to a multiple of this many bytes (§6.3.1; 0 = no padding).
    padding_block: int = 32
    #: Past epochs whose application keys are kept so late messages still decrypt (§15.3).
    past_epochs: int = 1
    #: Resumption PSKs kept for this many past epochs (§8.6), for branch, ReInit and PSK use.
    resumption_psks: int = 8
    #: Secret-tree window: skipped generations kept per sender and ratchet (§9.2).
    out_of_order_window: int = 128
    #: Largest forward jump in generations accepted from one sender (a DoS bound, §9.2).
    max_forward_distance: int = 1024
    #: Reject KeyPackages/leaves whose lifetime excludes ``now`` (§7.3); ``now`` comes from the
    #: caller. Tolerance in seconds for clock skew on ``not_before``.
    lifetime_skew: int = 300

    def __post_init__(self) -> None:
        if self.padding_block < 0 or self.past_epochs < 0 or self.resumption_psks < 0:
            raise ValueError("GroupConfig values must be non-negative")
