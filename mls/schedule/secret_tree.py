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
            return
        next_secret, skipped = pending._advance
        r.secret = next_secret
        r.next_generation = g + 1
        r.skipped.update(skipped)
        self._prune(r)

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
        w.push_uint16(self._cs.suite_id)
        w.push_uint32(self._leaf_count)
        w.push_optional(self._own_leaf, Writer.push_uint32)
        w.push_uint32(self._window)
        w.push_uint32(self._max_forward)

        def push_node(w: Writer, item: tuple[int, bytes]) -> None:
            w.push_uint32(item[0])
            w.push_opaque(item[1])

        def push_skipped(w: Writer, item: tuple[int, tuple[bytes, bytes]]) -> None:
            w.push_uint32(item[0])
            w.push_opaque(item[1][0])
            w.push_opaque(item[1][1])

        def push_ratchet(w: Writer, r: _Ratchet) -> None:
            w.push_uint64(r.next_generation)
            w.push_opaque(r.secret)
            w.push_vector(r.skipped.items(), push_skipped)

        def push_leaf(w: Writer, item: tuple[int, tuple[_Ratchet, _Ratchet]]) -> None:
            w.push_uint32(item[0])
            push_ratchet(w, item[1][0])
            push_ratchet(w, item[1][1])

        w.push_vector(sorted(self._nodes.items()), push_node)
        w.push_vector(sorted(self._ratchets.items()), push_leaf)
        return w.getvalue()

    @classmethod
    def from_bytes(cls, cs: CipherSuite, data: bytes) -> SecretTree:
        """Restore a tree written by :meth:`to_bytes`; raises :class:`DecodeError` if invalid."""
        buf = Buffer(data)
        try:
            tree = cls._decode(cs, buf)
        except MLSError:
            raise
        except (ValueError, IndexError, KeyError, OverflowError, TypeError) as exc:
            raise DecodeError(f"cannot decode SecretTreeState: {type(exc).__name__}") from exc
        if not buf.eof():
            raise DecodeError(f"{buf.remaining()} trailing bytes after SecretTreeState")
        return tree

    @classmethod
    def _decode(cls, cs: CipherSuite, buf: Buffer) -> SecretTree:
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
        width = 2 * (tree._root + 1) - 1
        nh, nk, nn = cs.hash_len, cs.aead_key_len, cs.aead_nonce_len

        def pull_secret(buf: Buffer, length: int) -> bytes:
            value = buf.pull_opaque()
            if len(value) != length:
                raise DecodeError("secret of the wrong length in secret tree state")
            return value

        def pull_node(buf: Buffer) -> tuple[int, bytes]:
            index = buf.pull_uint32()
            if index >= width:
                raise DecodeError(f"node {index} outside the secret tree")
            return index, pull_secret(buf, nh)

        def pull_skipped(buf: Buffer) -> tuple[int, tuple[bytes, bytes]]:
            g = buf.pull_uint32()
            return g, (pull_secret(buf, nk), pull_secret(buf, nn))

        def pull_ratchet(buf: Buffer) -> _Ratchet:
            next_generation = buf.pull_uint64()
            if next_generation > MAX_GENERATION + 1:
                raise DecodeError("ratchet generation out of range")
            secret = pull_secret(buf, nh)
            items = buf.pull_vector(pull_skipped)
            gens = [g for g, _ in items]
            if gens != sorted(set(gens)) or (gens and gens[-1] >= next_generation):
                raise DecodeError("skipped generations not increasing and behind the ratchet")
            return _Ratchet(secret, next_generation, dict(items))

        def pull_leaf(buf: Buffer) -> tuple[int, tuple[_Ratchet, _Ratchet]]:
            leaf = buf.pull_uint32()
            if leaf >= leaf_count:
                raise DecodeError(f"leaf {leaf} outside the secret tree")
            return leaf, (pull_ratchet(buf), pull_ratchet(buf))

        nodes = buf.pull_vector(pull_node)
        leaves = buf.pull_vector(pull_leaf)
        tree._nodes = dict(nodes)
        tree._ratchets = dict(leaves)
        if len(tree._nodes) != len(nodes) or len(tree._ratchets) != len(leaves):
            raise DecodeError("duplicate entries in secret tree state")
        return tree


def _content_of(kind: int) -> int:
    return ContentType.application if kind == _APPLICATION else ContentType.commit
