"""The secret tree and the per-sender hash ratchets (RFC 9420 §9, §9.1, §9.2, §15.3).

Owns :class:`SecretTree`: the tree of secrets rooted at the epoch's ``encryption_secret``, the
handshake and application ratchets of each leaf, the out-of-order window, the forward-jump
bound, and a storage encoding that holds only the secrets not yet deleted.

Laziness and deletion (§9.2). Nothing is derived up front: a group of 50,000 members costs one
root secret until someone sends. Asking for a leaf walks down from the lowest stored ancestor,
deriving *both* children at each step; the parent is then deleted ("a node's secret is deleted
once both children are derived"), the off-path child is stored and the walk continues. At the
leaf the two ratchet secrets are derived and the leaf secret is deleted. So a leaf costs
``log2(n)`` expansions and the store holds at most one secret per level per derived path.

Ratchets. Each ratchet stores only ``ratchet_secret_[next_generation]`` and the key/nonce pairs
of skipped generations still inside the window. A consumed key/nonce is removed at once and the
ratchet secrets it came from are already gone, so it can never be produced again (forward
secrecy, §9.2); asking again raises :class:`~mls.errors.ReplayedMessage`. Python cannot wipe an
immutable ``bytes``; "deleted" means this object keeps no reference to it.

Receiving is two-phase, so a message that fails to decrypt changes nothing: RFC 9420 §9.2
counts a key as consumed only once it (successfully) decrypted a message.
:meth:`SecretTree.prepare_receive` derives the key without touching any ratchet;
:meth:`SecretTree.confirm_receive` consumes it. :meth:`SecretTree.receive_key` does both.

Window policy (§15.3 leaves it to the application; the defaults are justified at the constants):

- a generation more than ``out_of_order_window`` behind the newest generation received on that
  ratchet raises :class:`~mls.errors.GenerationOutOfWindow`; its key was deleted (or never kept);
- a generation more than ``max_forward_distance`` ahead of the next expected one raises
  :class:`~mls.errors.GenerationOutOfWindow` before any derivation (DoS bound, §15.3);
- a generation inside the window whose key is no longer held was consumed: ``ReplayedMessage``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TypeVar

from mls.codec import Buffer, Writer
from mls.constants import ContentType
from mls.crypto import CipherSuite
from mls.crypto.labels import expand_with_label, tree_secret_heads
from mls.errors import (
    DecodeError,
    GenerationOutOfWindow,
    InvalidContentType,
    InvalidState,
    MLSError,
    ReplayedMessage,
    UnknownSender,
    UsageError,
)

__all__ = [
    "DEFAULT_MAX_FORWARD_DISTANCE",
    "DEFAULT_OUT_OF_ORDER_WINDOW",
    "PendingKey",
    "SecretTree",
]

DEFAULT_OUT_OF_ORDER_WINDOW = 256
"""Keys are kept for generations at most this far behind the newest one received per ratchet.

Reordering beyond a few messages needs that many messages from one sender in flight at once on
paths of different latency; 256 covers bursts well past what a store-and-forward DS produces.
It also bounds memory per ratchet to 256 key/nonce pairs (about 256 x 44 bytes of key material,
~60 KB with Python object overhead) even against a member that deliberately skips generations.
Keys are dropped with the whole tree at the end of the epoch anyway.
"""

DEFAULT_MAX_FORWARD_DISTANCE = 1000
"""A received generation may be at most this far ahead of the next expected one (§15.3).

Catching up costs one expansion per skipped generation (plus two for each one kept), so this
caps the work one forged or hostile message can cause at ~1,500 HKDF-Expand calls (a few ms);
``generation = 0xffffffff`` is rejected with no derivation at all. A gap of 1,000 messages from a
single sender within one epoch means heavy loss that a reliable DS does not produce. Same bound
as OpenMLS's default ``maximum_forward_distance``.
"""

MAX_GENERATION = 0xFFFFFFFF  # SenderData.generation is a uint32 (§6.3.2).

_HANDSHAKE = 0
_APPLICATION = 1
_RATCHET_LABELS = ("handshake", "application")


def _ratchet_kind(content_type: int) -> int:
    # §6.3.1: application messages use the application ratchet, proposals and commits the
    # handshake ratchet.
    if content_type == ContentType.application:
        return _APPLICATION
    if content_type in (ContentType.proposal, ContentType.commit):
        return _HANDSHAKE
    raise InvalidContentType(f"no sender ratchet for content type {content_type}")


class _Ratchet:
    """One hash ratchet: ``secret`` is ``ratchet_secret_[next_generation]``."""

    __slots__ = ("next_generation", "secret", "skipped")

    def __init__(
        self,
        secret: bytes,
        next_generation: int = 0,
        skipped: dict[int, tuple[bytes, bytes]] | None = None,
    ) -> None:
        self.secret = secret
        self.next_generation = next_generation
        # Unconsumed (key, nonce) of skipped generations, in increasing generation order.
        self.skipped: dict[int, tuple[bytes, bytes]] = {} if skipped is None else skipped

    def __repr__(self) -> str:
        return f"_Ratchet(next_generation={self.next_generation}, skipped={len(self.skipped)})"


class _LeafDerivation:
    """A leaf's freshly derived ratchets and the tree-node changes to store with them."""

    __slots__ = ("consumed", "kept", "leaf_index", "pair")

    def __init__(
        self,
        leaf_index: int,
        pair: tuple[_Ratchet, _Ratchet],
        consumed: int,
        kept: dict[int, bytes],
    ) -> None:
        self.leaf_index = leaf_index
        self.pair = pair
        self.consumed = consumed
        self.kept = kept

    def __repr__(self) -> str:
        return f"_LeafDerivation(leaf_index={self.leaf_index})"


class PendingKey:
    """A key/nonce for one received generation, derived but not yet consumed.

    Produced by :meth:`SecretTree.prepare_receive`; hand it to :meth:`SecretTree.confirm_receive`
    once the message decrypted. It holds the ratchet advance to apply, so confirming costs no
    further derivation.
    """

    __slots__ = (
        "_advance",
        "_base_next",
        "_materialize",
        "_ratchet",
        "_tree",
        "generation",
        "key",
        "kind",
        "leaf_index",
        "nonce",
    )

    def __init__(
        self,
        *,
        tree: SecretTree,
        ratchet: _Ratchet,
        leaf_index: int,
        kind: int,
        generation: int,
        key: bytes,
        nonce: bytes,
        base_next: int,
        advance: tuple[bytes, list[tuple[int, tuple[bytes, bytes]]]] | None,
        materialize: _LeafDerivation | None = None,
    ) -> None:
        self._tree = tree
        # The leaf's tree derivation, stored only on confirm (so a rejected message leaves the
        # secret tree exactly as it was).
        self._materialize = materialize
        self._ratchet = ratchet
        self.leaf_index = leaf_index
        self.kind = kind
        self.generation = generation
        self.key = key
        self.nonce = nonce
        self._base_next = base_next
        # None: the key comes from the skipped store. Otherwise (next secret, new skipped keys).
        self._advance = advance

    def __repr__(self) -> str:
        return (
            f"PendingKey(leaf_index={self.leaf_index}, ratchet={_RATCHET_LABELS[self.kind]}, "
            f"generation={self.generation})"
        )


class SecretTree:
    """The §9 secret tree of one epoch, derived lazily, with deletion of consumed secrets.

    ``leaf_count`` is the number of leaves of the ratchet tree (a power of two, §7; other
    values are rounded up to the tree that holds them). ``own_leaf`` is this member's leaf, the
    one :meth:`next_send_key` ratchets; ``None`` for a passive observer.
    """

    __slots__ = (
        "_cs",
        "_dirty",
        "_heads",
        "_leaf_count",
        "_max_forward",
        "_nodes",
        "_own_leaf",
        "_ratchets",
        "_root",
        "_window",
    )

    def __init__(
        self,
        cs: CipherSuite,
        encryption_secret: bytes,
        leaf_count: int,
        *,
        own_leaf: int | None = None,
        out_of_order_window: int = DEFAULT_OUT_OF_ORDER_WINDOW,
        max_forward_distance: int = DEFAULT_MAX_FORWARD_DISTANCE,
    ) -> None:
        self._setup(cs, leaf_count, own_leaf, out_of_order_window, max_forward_distance)
        if len(encryption_secret) != cs.hash_len:
            raise UsageError("encryption_secret must be KDF.Nh bytes")
        self._nodes[self._root] = encryption_secret
        self._dirty.add(self._root)

    def _setup(
        self,
        cs: CipherSuite,
        leaf_count: int,
        own_leaf: int | None,
        window: int,
        max_forward: int,
    ) -> None:
        if not 1 <= leaf_count <= 1 << 31:
            raise UsageError(f"invalid leaf count {leaf_count}")
        if own_leaf is not None and not 0 <= own_leaf < leaf_count:
            raise UsageError(f"own leaf {own_leaf} outside a tree of {leaf_count} leaves")
        if not (0 <= window <= MAX_GENERATION and 0 <= max_forward <= MAX_GENERATION):
            raise UsageError("window and forward distance must be uint32 values")
        self._cs = cs
        self._leaf_count = leaf_count
        self._own_leaf = own_leaf
        self._window = window
        self._max_forward = max_forward
        self._heads = tree_secret_heads(cs.aead_key_len, cs.aead_nonce_len, cs.hash_len)
        # Root of the smallest complete tree with >= leaf_count leaves (Appendix C).
        self._root = (1 << (leaf_count - 1).bit_length()) - 1
        # node index -> tree_node_[N]_secret, only for secrets not yet deleted.
        self._nodes: dict[int, bytes] = {}
        # leaf index -> [handshake ratchet, application ratchet]
        self._ratchets: dict[int, tuple[_Ratchet, _Ratchet]] = {}
        # Storage rows (node indices) changed since the last take_rows(): see "storage".
        self._dirty: set[int] = set()

    def __repr__(self) -> str:
        return (
            f"SecretTree(suite={self._cs.suite_id}, leaf_count={self._leaf_count}, "
            f"stored_nodes={len(self._nodes)}, leaves_with_ratchets={len(self._ratchets)})"
        )

    @property
    def leaf_count(self) -> int:
        return self._leaf_count

    @property
    def own_leaf(self) -> int | None:
        return self._own_leaf

    @property
    def out_of_order_window(self) -> int:
        return self._window

    @property
    def max_forward_distance(self) -> int:
        return self._max_forward

    def stored_secret_count(self) -> int:
        """Secrets held right now: tree nodes, ratchet secrets and retained skipped keys."""
        n = len(self._nodes)
        for pair in self._ratchets.values():
            for r in pair:
                n += 1 + len(r.skipped)
        return n

    # -- tree ---------------------------------------------------------------------------------

    def _leaf_ratchets(self, leaf_index: int) -> tuple[_Ratchet, _Ratchet]:
        pair = self._ratchets.get(leaf_index)
        if pair is not None:
            return pair
        derivation = self._derive_leaf(leaf_index)
        self._store_leaf(derivation)
        return derivation.pair

    def _derive_leaf(self, leaf_index: int) -> _LeafDerivation:
        """The ratchets of a leaf not yet derived, and the tree-node changes that deriving it
        implies (§9), computed without touching the stored state."""
        if not 0 <= leaf_index < self._leaf_count:
            raise UnknownSender(f"leaf {leaf_index} is outside a tree of {self._leaf_count} leaves")
        cs = self._cs
        nh = cs.hash_len
        target = 2 * leaf_index
        # Find the one stored secret on the root-to-leaf path (the derivation frontier).
        x = self._root
        while x not in self._nodes:
            if x == target:  # Only a corrupted stored state can break the frontier invariant.
                raise InvalidState("secret tree has no secret on the path to this leaf")
            half = 1 << ((x ^ (x + 1)).bit_length() - 2)  # 2^(level(x) - 1)
            x = x ^ half if target < x else x ^ (3 * half)
        consumed = x
        secret = self._nodes[x]
        kept: dict[int, bytes] = {}
        while x != target:
            # §9: derive both children, delete the parent, keep the off-path child.
            half = 1 << ((x ^ (x + 1)).bit_length() - 2)
            left_secret = expand_with_label(cs, secret, "tree", b"left", nh)
            right_secret = expand_with_label(cs, secret, "tree", b"right", nh)
            if target < x:
                kept[x ^ (3 * half)] = right_secret
                x, secret = x ^ half, left_secret
            else:
                kept[x ^ half] = left_secret
                x, secret = x ^ (3 * half), right_secret
        pair = (
            _Ratchet(expand_with_label(cs, secret, "handshake", b"", nh)),
            _Ratchet(expand_with_label(cs, secret, "application", b"", nh)),
        )
        return _LeafDerivation(leaf_index, pair, consumed, kept)

    def _store_leaf(self, d: _LeafDerivation) -> None:
        del self._nodes[d.consumed]
        self._nodes.update(d.kept)
        self._ratchets[d.leaf_index] = d.pair
        self._dirty.add(d.consumed)
        self._dirty.update(d.kept)
        self._dirty.add(2 * d.leaf_index)

    # -- ratchet steps --------------------------------------------------------------------------

    def _step(self, secret: bytes, generation: int) -> tuple[bytes, bytes, bytes]:
        """``(key, nonce, next ratchet secret)`` from ``ratchet_secret_[generation]`` (§9.1):
        DeriveTreeSecret with the labels "key", "nonce" and "secret", their KDFLabel heads
        built once (this runs for every message sent and received)."""
        cs = self._cs
        heads = self._heads
        gen = generation.to_bytes(4, "big")
        expand = cs.kdf_expand
        return (
            expand(secret, heads[0] + gen, cs.aead_key_len),
            expand(secret, heads[1] + gen, cs.aead_nonce_len),
            expand(secret, heads[2] + gen, cs.hash_len),
        )

    def _prune(self, r: _Ratchet) -> None:
        # Drop skipped keys that fell more than `window` behind the newest generation.
        floor = r.next_generation - 1 - self._window
        if r.skipped and next(iter(r.skipped)) < floor:
            for g in [g for g in r.skipped if g < floor]:
                del r.skipped[g]

    # -- sending ------------------------------------------------------------------------------

    def next_generation(self, leaf_index: int, content_type: int) -> int:
        """The first generation of ``leaf_index``'s ratchet not yet reached (0 if untouched):
        every lower generation was consumed or is kept as skipped."""
        pair = self._ratchets.get(leaf_index)
        return 0 if pair is None else pair[_ratchet_kind(content_type)].next_generation

    def next_send_key(self, content_type: int) -> tuple[int, bytes, bytes]:
        """``(generation, key, nonce)`` for this member's next message of ``content_type``.

        The key is consumed here: the ratchet moves past it and it is not kept. The reuse
        guard (§6.3.1) is applied by framing.
        """
        if self._own_leaf is None:
            raise InvalidState("this secret tree has no own leaf to send from")
        r = self._leaf_ratchets(self._own_leaf)[_ratchet_kind(content_type)]
        generation = r.next_generation
        if generation > MAX_GENERATION:
            raise InvalidState("sender ratchet exhausted (2^32 messages in one epoch)")
        key, nonce, r.secret = self._step(r.secret, generation)
        r.next_generation = generation + 1
        self._prune(r)
        self._dirty.add(2 * self._own_leaf)
        return generation, key, nonce

    # -- receiving ----------------------------------------------------------------------------

    def prepare_receive(self, leaf_index: int, content_type: int, generation: int) -> PendingKey:
        """Derive the key/nonce of a received message without consuming it.

        Raises :class:`ReplayedMessage` if that generation's key was already consumed,
        :class:`GenerationOutOfWindow` if it is too old or too far ahead, :class:`UnknownSender`
        for a leaf outside the tree. No ratchet changes until :meth:`confirm_receive`.
        """
        kind = _ratchet_kind(content_type)
        if not 0 <= generation <= MAX_GENERATION:
            raise GenerationOutOfWindow(f"generation {generation} is not a uint32")
        pair = self._ratchets.get(leaf_index)
        derivation = None
        if pair is None:
            derivation = self._derive_leaf(leaf_index)
            pair = derivation.pair
        r = pair[kind]
        base = r.next_generation
        if generation < base:
            kept = r.skipped.get(generation)
            if kept is None:
                if generation < base - 1 - self._window:
                    raise GenerationOutOfWindow(
                        f"generation {generation} is more than {self._window} behind {base - 1}"
                    )
                raise ReplayedMessage(f"key for generation {generation} was already consumed")
            return PendingKey(
                tree=self,
                ratchet=r,
                leaf_index=leaf_index,
                kind=kind,
                generation=generation,
                key=kept[0],
                nonce=kept[1],
                base_next=base,
                advance=None,
            )
        if generation - base > self._max_forward:
            raise GenerationOutOfWindow(
                f"generation {generation} is more than {self._max_forward} ahead of {base}"
            )
        cs = self._cs
        secret = r.secret
        keep_from = generation - self._window
        skipped: list[tuple[int, tuple[bytes, bytes]]] = []
        heads = self._heads
        for j in range(base, generation):
            gen = j.to_bytes(4, "big")
            if j >= keep_from:
                key = cs.kdf_expand(secret, heads[0] + gen, cs.aead_key_len)
                nonce = cs.kdf_expand(secret, heads[1] + gen, cs.aead_nonce_len)
                skipped.append((j, (key, nonce)))
            secret = cs.kdf_expand(secret, heads[2] + gen, cs.hash_len)
        key, nonce, next_secret = self._step(secret, generation)
        return PendingKey(
            tree=self,
            ratchet=r,
            leaf_index=leaf_index,
            kind=kind,
            generation=generation,
            key=key,
            nonce=nonce,
            base_next=base,
            advance=(next_secret, skipped),
            materialize=derivation,
        )

    def confirm_receive(self, pending: PendingKey) -> None:
        """Consume ``pending``: delete its key and move the ratchet past it (§9.2).

        Raises :class:`ReplayedMessage` if the key was consumed in the meantime.
        """
        if pending._tree is not self:
            raise UsageError("this PendingKey was prepared by another secret tree")
        d = pending._materialize
        if d is not None:
            if d.leaf_index in self._ratchets or d.consumed not in self._nodes:
                # The leaf was derived meanwhile (another message confirmed): derive again.
                self.confirm_receive(
                    self.prepare_receive(
                        pending.leaf_index, _content_of(pending.kind), pending.generation
                    )
                )
                return
            self._store_leaf(d)
        r = pending._ratchet
        g = pending.generation
        if pending._advance is None or r.next_generation != pending._base_next:
            if g >= r.next_generation:
                # Stale forward advance (the ratchet moved since prepare): derive again.
                self.confirm_receive(
                    self.prepare_receive(pending.leaf_index, _content_of(pending.kind), g)
                )
                return
            if r.skipped.pop(g, None) is None:
                raise ReplayedMessage(f"key for generation {g} was already consumed")
            self._dirty.add(2 * pending.leaf_index)
            return
        next_secret, skipped = pending._advance
        r.secret = next_secret
        r.next_generation = g + 1
        r.skipped.update(skipped)
        self._prune(r)
        self._dirty.add(2 * pending.leaf_index)

    def receive_key(
        self, leaf_index: int, content_type: int, generation: int
    ) -> tuple[bytes, bytes]:
        """``(key, nonce)`` for a received message, consumed at once (prepare + confirm)."""
        pending = self.prepare_receive(leaf_index, content_type, generation)
        self.confirm_receive(pending)
        return pending.key, pending.nonce

    # -- storage ------------------------------------------------------------------------------

    def to_bytes(self) -> bytes:
        """Encode the state for storage: only secrets that are not yet deleted.

        ```
        struct {
            uint32 generation;
            opaque key<V>;
            opaque nonce<V>;
        } SkippedKey;

        struct {
            uint64 next_generation;
            opaque secret<V>;
            SkippedKey skipped<V>;
        } RatchetState;

        struct {
            uint32 leaf_index;
            RatchetState handshake;
            RatchetState application;
        } LeafRatchets;

        struct {
            uint32 node_index;
            opaque secret<V>;
        } TreeNodeSecret;

        struct {
            uint16 cipher_suite;
            uint32 leaf_count;
            optional<uint32> own_leaf;
            uint32 out_of_order_window;
            uint32 max_forward_distance;
            TreeNodeSecret nodes<V>;
            LeafRatchets leaves<V>;
        } SecretTreeState;
        ```
        """
        w = Writer()
        self._push_header(w)
        w.push_vector(sorted(self._nodes.items()), _push_node)
        w.push_vector(sorted(self._ratchets.items()), _push_leaf)
        return w.getvalue()

    def _push_header(self, w: Writer) -> None:
        w.push_uint16(self._cs.suite_id)
        w.push_uint32(self._leaf_count)
        w.push_optional(self._own_leaf, Writer.push_uint32)
        w.push_uint32(self._window)
        w.push_uint32(self._max_forward)

    @classmethod
    def from_bytes(cls, cs: CipherSuite, data: bytes) -> SecretTree:
        """Restore a tree written by :meth:`to_bytes`; raises :class:`DecodeError` if invalid."""
        buf = Buffer(data)

        def decode() -> SecretTree:
            tree = cls._pull_header(cs, buf)
            check = tree._checks()
            nodes = buf.pull_vector(lambda b: check.node(b.pull_uint32(), b.pull_opaque()))
            leaves = buf.pull_vector(check.leaf)
            tree._nodes = dict(nodes)
            tree._ratchets = dict(leaves)
            if len(tree._nodes) != len(nodes) or len(tree._ratchets) != len(leaves):
                raise DecodeError("duplicate entries in secret tree state")
            tree._dirty = set(tree._nodes) | {2 * leaf for leaf in tree._ratchets}
            return tree

        tree = _decoding("SecretTreeState", decode)
        if not buf.eof():
            raise DecodeError(f"{buf.remaining()} trailing bytes after SecretTreeState")
        return tree

    @classmethod
    def _pull_header(cls, cs: CipherSuite, buf: Buffer) -> SecretTree:
        suite = buf.pull_uint16()
        if suite != cs.suite_id:
            raise DecodeError(f"secret tree state is for suite {suite}, not {cs.suite_id}")
        leaf_count = buf.pull_uint32()
        own_leaf = buf.pull_optional(Buffer.pull_uint32)
        window = buf.pull_uint32()
        max_forward = buf.pull_uint32()
        tree = cls.__new__(cls)
        try:
            tree._setup(cs, leaf_count, own_leaf, window, max_forward)
        except UsageError as exc:
            raise DecodeError(f"invalid secret tree state: {exc}") from exc
        return tree

    def _checks(self) -> _RowChecks:
        cs = self._cs
        return _RowChecks(
            2 * (self._root + 1) - 1,
            self._leaf_count,
            cs.hash_len,
            cs.aead_key_len,
            cs.aead_nonce_len,
        )

    # -- storage by rows ----------------------------------------------------------------------
    #
    # For a store that writes what changed instead of the whole tree: a header (the fixed
    # parameters) and one row per node index that holds a secret: either a tree node's secret
    # or, at a leaf's node index 2 * leaf, that leaf's two ratchets. Receiving a message
    # changes one row (the sender's ratchets), or O(log n) rows the first time a sender is
    # derived (§9: the consumed parent is deleted, the off-path children are stored).
    #
    # struct {
    #     uint8 kind;                 /* 0: tree node secret, 1: leaf ratchets */
    #     select (kind) {
    #         case 0: opaque secret<V>;
    #         case 1: RatchetState handshake; RatchetState application;
    #     };
    # } SecretTreeRow;

    def header(self) -> bytes:
        """The fixed part of :meth:`to_bytes` (suite, leaf count, own leaf, window bounds)."""
        w = Writer()
        self._push_header(w)
        return w.getvalue()

    def _row(self, node: int) -> bytes | None:
        w = Writer()
        secret = self._nodes.get(node)
        if secret is not None:
            w.push_uint8(0)
            w.push_opaque(secret)
        else:
            pair = self._ratchets.get(node >> 1) if node % 2 == 0 else None
            if pair is None:
                return None
            w.push_uint8(1)
            _push_ratchet(w, pair[0])
            _push_ratchet(w, pair[1])
        return w.getvalue()

    def rows(self) -> dict[int, bytes]:
        """Every row of the current state (node index -> SecretTreeRow); marks all as stored."""
        self._dirty.clear()
        out: dict[int, bytes] = {}
        for node in [*self._nodes, *(2 * leaf for leaf in self._ratchets)]:
            row = self._row(node)
            assert row is not None
            out[node] = row
        return out

    def take_changed_rows(self) -> dict[int, bytes | None]:
        """The rows changed since the last :meth:`rows` / :meth:`take_changed_rows` (a tree
        just created or decoded from :meth:`to_bytes` has every row changed): node index ->
        its new SecretTreeRow, or ``None`` where the secret was deleted (§9.2: the store must
        delete that row in the same transaction)."""
        out = {node: self._row(node) for node in sorted(self._dirty)}
        self._dirty.clear()
        return out

    @classmethod
    def from_rows(cls, cs: CipherSuite, header: bytes, rows: Mapping[int, bytes]) -> SecretTree:
        """Restore a tree from :meth:`header` and its rows; raises :class:`DecodeError` if they
        are invalid (a row outside the tree, a leaf row not at a leaf, a path with two
        secrets). The restored tree has no changed rows."""

        def decode() -> SecretTree:
            buf = Buffer(header)
            tree = cls._pull_header(cs, buf)
            if not buf.eof():
                raise DecodeError("trailing bytes after the secret tree header")
            check = tree._checks()
            for node, data in rows.items():
                b = Buffer(data)
                kind = b.pull_uint8()
                if kind == 0:
                    index, secret = check.node(node, b.pull_opaque())
                    tree._nodes[index] = secret
                elif kind == 1 and node % 2 == 0:
                    leaf, pair = check.leaf_at(node >> 1, b)
                    tree._ratchets[leaf] = pair
                else:
                    raise DecodeError(f"invalid secret tree row kind {kind} at node {node}")
                if not b.eof():
                    raise DecodeError(f"trailing bytes in secret tree row {node}")
            tree._check_frontier()
            return tree

        return _decoding("SecretTreeRow", decode)

    def _check_frontier(self) -> None:
        """Every stored secret is on its own root-to-leaf path: no node holds a secret while
        an ancestor still does (rows from a store must not resurrect a deleted key)."""
        held = set(self._nodes) | {2 * leaf for leaf in self._ratchets}
        for x in held:
            y = x
            while y != self._root:
                k = (y ^ (y + 1)).bit_length() - 1  # level(y): its trailing ones (Appendix C)
                y = (y | (1 << k)) ^ (((y >> (k + 1)) & 1) << (k + 1))  # parent_step
                if y in self._nodes:
                    raise DecodeError(f"secret tree rows hold node {x} and its ancestor {y}")


class _RowChecks:
    """Range and length checks shared by the two storage decoders."""

    __slots__ = ("hash_len", "key_len", "leaf_count", "nonce_len", "width")

    def __init__(
        self, width: int, leaf_count: int, hash_len: int, key_len: int, nonce_len: int
    ) -> None:
        self.width = width
        self.leaf_count = leaf_count
        self.hash_len = hash_len
        self.key_len = key_len
        self.nonce_len = nonce_len

    @staticmethod
    def _secret(value: bytes, length: int) -> bytes:
        if len(value) != length:
            raise DecodeError("secret of the wrong length in secret tree state")
        return value

    def node(self, index: int, secret: bytes) -> tuple[int, bytes]:
        if index >= self.width:
            raise DecodeError(f"node {index} outside the secret tree")
        return index, self._secret(secret, self.hash_len)

    def _ratchet(self, buf: Buffer) -> _Ratchet:
        next_generation = buf.pull_uint64()
        if next_generation > MAX_GENERATION + 1:
            raise DecodeError("ratchet generation out of range")
        secret = self._secret(buf.pull_opaque(), self.hash_len)
        items = buf.pull_vector(
            lambda b: (
                b.pull_uint32(),
                (
                    self._secret(b.pull_opaque(), self.key_len),
                    self._secret(b.pull_opaque(), self.nonce_len),
                ),
            )
        )
        gens = [g for g, _ in items]
        if gens != sorted(set(gens)) or (gens and gens[-1] >= next_generation):
            raise DecodeError("skipped generations not increasing and behind the ratchet")
        return _Ratchet(secret, next_generation, dict(items))

    def leaf_at(self, leaf: int, buf: Buffer) -> tuple[int, tuple[_Ratchet, _Ratchet]]:
        if leaf >= self.leaf_count:
            raise DecodeError(f"leaf {leaf} outside the secret tree")
        return leaf, (self._ratchet(buf), self._ratchet(buf))

    def leaf(self, buf: Buffer) -> tuple[int, tuple[_Ratchet, _Ratchet]]:
        return self.leaf_at(buf.pull_uint32(), buf)


def _push_node(w: Writer, item: tuple[int, bytes]) -> None:
    w.push_uint32(item[0])
    w.push_opaque(item[1])


def _push_skipped(w: Writer, item: tuple[int, tuple[bytes, bytes]]) -> None:
    w.push_uint32(item[0])
    w.push_opaque(item[1][0])
    w.push_opaque(item[1][1])


def _push_ratchet(w: Writer, r: _Ratchet) -> None:
    w.push_uint64(r.next_generation)
    w.push_opaque(r.secret)
    w.push_vector(r.skipped.items(), _push_skipped)


def _push_leaf(w: Writer, item: tuple[int, tuple[_Ratchet, _Ratchet]]) -> None:
    w.push_uint32(item[0])
    _push_ratchet(w, item[1][0])
    _push_ratchet(w, item[1][1])


_T = TypeVar("_T")


def _decoding(what: str, fn: Callable[[], _T]) -> _T:
    try:
        return fn()
    except MLSError:
        raise
    except (ValueError, IndexError, KeyError, OverflowError, TypeError) as exc:
        raise DecodeError(f"cannot decode {what}: {type(exc).__name__}") from exc


def _content_of(kind: int) -> int:
    return ContentType.application if kind == _APPLICATION else ContentType.commit
