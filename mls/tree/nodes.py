"""Ratchet-tree node structs (RFC 9420 §7.1, §7.2, §7.6, §12.4.3.3) and their codecs.

Owns ``Capabilities``, ``Lifetime``, ``LeafNode`` (with ``LeafNodeTBS`` and its
SignWithLabel/VerifyWithLabel "LeafNodeTBS", §5.1.2), ``ParentNode``, the tagged ``Node`` union
and the ``optional<Node> ratchet_tree<V>`` codec (§12.4.3.3). ``HPKECiphertext``,
``UpdatePathNode`` and ``UpdatePath`` (§7.6) live here too, below ``mls.messages``, so that
TreeKEM (this layer) can build and read them; :mod:`mls.messages.commit` re-exports them.

These decoders run once per node of a tree of up to ~100,000 nodes, so they are written
straight-line on :class:`~mls.codec.Buffer` without per-field helper calls. A ``LeafNode`` caches
its own encoding (tree hashes and KeyPackage references re-encode leaves many times).
"""

from __future__ import annotations

import functools
import struct
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Self, TypeAlias

from mls.codec.buffer import ONE_BYTE_VARINTS, Buffer, Writer, encode_varint
from mls.constants import LeafNodeSource, NodeType
from mls.credentials import Credential
from mls.crypto.labels import sign_with_label, verify_with_label
from mls.errors import DecodeError, SizeLimitExceeded, UsageError
from mls.extensions import Extension, pull_extensions, pull_uint16s, push_extensions, push_uint16s

if TYPE_CHECKING:
    from mls.crypto import CipherSuite

__all__ = [
    "Capabilities",
    "Lifetime",
    "LeafNode",
    "ParentNode",
    "Node",
    "encode_node",
    "decode_node",
    "pull_node",
    "push_node",
    "pull_ratchet_tree",
    "push_ratchet_tree",
    "encode_ratchet_tree",
    "decode_ratchet_tree",
    "HPKECiphertext",
    "UpdatePathNode",
    "UpdatePath",
]

_KEY_PACKAGE = LeafNodeSource.key_package
_UPDATE = LeafNodeSource.update
_COMMIT = LeafNodeSource.commit


@dataclass(frozen=True, slots=True, kw_only=True)
class Capabilities:
    """RFC 9420 §7.2::

        struct {
            ProtocolVersion versions<V>;
            CipherSuite cipher_suites<V>;
            ExtensionType extensions<V>;
            ProposalType proposals<V>;
            CredentialType credentials<V>;
        } Capabilities;

    Unknown and GREASE values are kept (and must be ignored by whoever interprets them, §13.4).
    """

    versions: tuple[int, ...] = ()
    cipher_suites: tuple[int, ...] = ()
    extensions: tuple[int, ...] = ()
    proposals: tuple[int, ...] = ()
    credentials: tuple[int, ...] = ()
    _encoded: bytes | None = field(default=None, init=False, repr=False, compare=False)

    def encode(self, w: Writer) -> None:
        enc = self._encoded
        if enc is None:
            # Decoded capabilities are shared between leaves (_pull_capabilities): encode once.
            body = Writer()
            push_uint16s(body, self.versions)
            push_uint16s(body, self.cipher_suites)
            push_uint16s(body, self.extensions)
            push_uint16s(body, self.proposals)
            push_uint16s(body, self.credentials)
            enc = body.getvalue()
            object.__setattr__(self, "_encoded", enc)
        w.push_bytes(enc)

    @classmethod
    def decode(cls, buf: Buffer) -> Self:
        return cls(
            versions=pull_uint16s(buf),
            cipher_suites=pull_uint16s(buf),
            extensions=pull_uint16s(buf),
            proposals=pull_uint16s(buf),
            credentials=pull_uint16s(buf),
        )


def _pull_capabilities(buf: Buffer) -> Capabilities:
    # Most leaves of a group advertise identical capabilities: share one immutable object per
    # distinct encoding, which saves decode time and memory in large trees. Only small lists go
    # through the (bounded) cache, so hostile input cannot pin large buffers in it.
    parts = (
        buf.pull_opaque(),
        buf.pull_opaque(),
        buf.pull_opaque(),
        buf.pull_opaque(),
        buf.pull_opaque(),
    )
    if sum(map(len, parts)) <= _CACHEABLE_CAPABILITIES:
        return _shared_capabilities(*parts)
    return _capabilities(*parts)


_CACHEABLE_CAPABILITIES = 256


def _capabilities(v: bytes, cs: bytes, ext: bytes, prop: bytes, cred: bytes) -> Capabilities:
    return Capabilities(
        versions=_uint16s(v),
        cipher_suites=_uint16s(cs),
        extensions=_uint16s(ext),
        proposals=_uint16s(prop),
        credentials=_uint16s(cred),
    )


_shared_capabilities = functools.lru_cache(maxsize=256)(_capabilities)


def _uint16s(data: bytes) -> tuple[int, ...]:
    n = len(data)
    if n & 1:
        raise DecodeError("uint16 vector with an odd byte length")
    return struct.unpack(f">{n >> 1}H", data)


@dataclass(frozen=True, slots=True, kw_only=True)
class Lifetime:
    """RFC 9420 §7.2 (seconds since the Unix epoch)::

    struct {
        uint64 not_before;
        uint64 not_after;
    } Lifetime;
    """

    not_before: int
    not_after: int

    def encode(self, w: Writer) -> None:
        w.push_uint64(self.not_before)
        w.push_uint64(self.not_after)

    @classmethod
    def decode(cls, buf: Buffer) -> Self:
        return cls(not_before=buf.pull_uint64(), not_after=buf.pull_uint64())

    def contains(self, now: int) -> bool:
        """True if ``not_before <= now <= not_after``."""
        return self.not_before <= now <= self.not_after


@dataclass(frozen=True, slots=True, kw_only=True)
class LeafNode:
    """RFC 9420 §7.2::

        struct {
            HPKEPublicKey encryption_key;
            SignaturePublicKey signature_key;
            Credential credential;
            Capabilities capabilities;

            LeafNodeSource leaf_node_source;
            select (LeafNode.leaf_node_source) {
                case key_package:
                    Lifetime lifetime;
                case update:
                    struct{};
                case commit:
                    opaque parent_hash<V>;
            };

            Extension extensions<V>;
            /* SignWithLabel(., "LeafNodeTBS", LeafNodeTBS) */
            opaque signature<V>;
        } LeafNode;

    ``lifetime`` is set exactly when ``leaf_node_source`` is ``key_package`` and ``parent_hash``
    exactly when it is ``commit``. Build an unsigned node with ``signature=b""`` and call
    :meth:`sign`. The encoding is cached on first use (instances are immutable).
    """

    encryption_key: bytes
    signature_key: bytes
    credential: Credential
    capabilities: Capabilities
    leaf_node_source: int
    lifetime: Lifetime | None = None
    parent_hash: bytes | None = None
    extensions: tuple[Extension, ...] = ()
    signature: bytes = b""
    _encoded: bytes | None = field(default=None, init=False, repr=False, compare=False)

    def _push_unsigned(self, w: Writer) -> None:
        # Everything above the signature: the common prefix of LeafNode and LeafNodeTBS.
        w.push_opaque(self.encryption_key)
        w.push_opaque(self.signature_key)
        self.credential.encode(w)
        self.capabilities.encode(w)
        source = self.leaf_node_source
        w.push_uint8(source)
        if source == _KEY_PACKAGE:
            if self.lifetime is None:
                raise UsageError("a key_package LeafNode needs a lifetime")
            w.push_uint64(self.lifetime.not_before)
            w.push_uint64(self.lifetime.not_after)
        elif source == _COMMIT:
            if self.parent_hash is None:
                raise UsageError("a commit LeafNode needs a parent_hash")
            w.push_opaque(self.parent_hash)
        elif source != _UPDATE:
            raise UsageError(f"unknown leaf_node_source {source}")
        push_extensions(w, self.extensions)

    def to_bytes(self) -> bytes:
        """The encoded LeafNode (cached)."""
        enc = self._encoded
        if enc is None:
            w = Writer()
            self._push_unsigned(w)
            w.push_opaque(self.signature)
            enc = w.getvalue()
            object.__setattr__(self, "_encoded", enc)
        return enc

    def encode(self, w: Writer) -> None:
        w.push_bytes(self.to_bytes())

    @classmethod
    def decode(cls, buf: Buffer) -> Self:
        start = buf.position
        encryption_key = buf.pull_opaque()
        signature_key = buf.pull_opaque()
        credential = Credential.decode(buf)
        capabilities = _pull_capabilities(buf)
        source = buf.pull_uint8()
        lifetime = None
        parent_hash = None
        if source == _KEY_PACKAGE:
            lifetime = Lifetime(not_before=buf.pull_uint64(), not_after=buf.pull_uint64())
        elif source == _COMMIT:
            parent_hash = buf.pull_opaque()
        elif source != _UPDATE:
            raise DecodeError(f"unknown leaf_node_source {source}")
        leaf = cls(
            encryption_key=encryption_key,
            signature_key=signature_key,
            credential=credential,
            capabilities=capabilities,
            leaf_node_source=source,
            lifetime=lifetime,
            parent_hash=parent_hash,
            extensions=pull_extensions(buf),
            signature=buf.pull_opaque(),
        )
        # The decoder is strict (minimal varints, no duplicate extensions), so the bytes read
        # are the node's one encoding: keep them for its signature and tree hash (§7.2, §7.8).
        object.__setattr__(leaf, "_encoded", buf.slice(start, buf.position))
        return leaf

    def tbs(self, group_id: bytes | None = None, leaf_index: int | None = None) -> bytes:
        """The encoded LeafNodeTBS (§7.2)::

            struct {
                ... all LeafNode fields above signature ...
                select (LeafNodeTBS.leaf_node_source) {
                    case key_package:
                        struct{};
                    case update:
                    case commit:
                        opaque group_id<V>;
                        uint32 leaf_index;
                };
            } LeafNodeTBS;

        ``group_id`` and ``leaf_index`` are required for ``update`` and ``commit`` leaves and
        ignored for ``key_package`` leaves.
        """
        enc = self.to_bytes()
        sig_len = len(self.signature)
        unsigned = enc[: len(enc) - sig_len - len(encode_varint(sig_len))]
        if self.leaf_node_source == _KEY_PACKAGE:
            return unsigned
        if group_id is None or leaf_index is None:
            raise UsageError("an update/commit LeafNode is signed over group_id and leaf_index")
        return unsigned + encode_varint(len(group_id)) + group_id + leaf_index.to_bytes(4, "big")

    def sign(
        self,
        cs: CipherSuite,
        signature_private_key: bytes,
        group_id: bytes | None = None,
        leaf_index: int | None = None,
    ) -> LeafNode:
        """A copy of this node with ``signature`` = SignWithLabel(sk, "LeafNodeTBS", tbs)."""
        tbs = self.tbs(group_id, leaf_index)
        return replace(
            self, signature=sign_with_label(cs, signature_private_key, "LeafNodeTBS", tbs)
        )

    def verify(
        self, cs: CipherSuite, group_id: bytes | None = None, leaf_index: int | None = None
    ) -> None:
        """VerifyWithLabel(signature_key, "LeafNodeTBS", tbs, signature); raises BadSignature."""
        verify_with_label(
            cs, self.signature_key, "LeafNodeTBS", self.tbs(group_id, leaf_index), self.signature
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class ParentNode:
    """RFC 9420 §7.1::

        struct {
            HPKEPublicKey encryption_key;
            opaque parent_hash<V>;
            uint32 unmerged_leaves<V>;
        } ParentNode;

    ``unmerged_leaves`` is kept as received; its sortedness (§7.1) is checked by tree validation.
    """

    encryption_key: bytes
    parent_hash: bytes = b""
    unmerged_leaves: tuple[int, ...] = ()

    def to_bytes(self) -> bytes:
        """The encoded ParentNode (tree hashes encode every parent of a tree)."""
        leaves = self.unmerged_leaves
        if leaves:
            try:
                raw = struct.pack(f">{len(leaves)}I", *leaves)
            except struct.error as exc:
                raise UsageError(f"unmerged leaf index out of range: {exc}") from None
        else:
            raw = b""
        key, ph = self.encryption_key, self.parent_hash
        nk, nph = len(key), len(ph)
        if nk < 0x40 and nph < 0x40 and not raw:
            # The common case (suite keys and hashes up to 63 bytes, no unmerged leaves).
            return ONE_BYTE_VARINTS[nk] + key + ONE_BYTE_VARINTS[nph] + ph + b"\x00"
        return encode_varint(nk) + key + encode_varint(nph) + ph + encode_varint(len(raw)) + raw

    def encode(self, w: Writer) -> None:
        w.push_bytes(self.to_bytes())

    @classmethod
    def decode(cls, buf: Buffer) -> Self:
        encryption_key = buf.pull_opaque()
        parent_hash = buf.pull_opaque()
        raw = buf.pull_opaque()
        n = len(raw)
        if n & 3:
            raise DecodeError("unmerged_leaves byte length is not a multiple of 4")
        return cls(
            encryption_key=encryption_key,
            parent_hash=parent_hash,
            unmerged_leaves=struct.unpack(f">{n >> 2}I", raw) if n else (),
        )


Node: TypeAlias = LeafNode | ParentNode
"""RFC 9420 §12.4.3.3 ``Node``: the ``node_type`` tag follows from the Python type."""

_LEAF = NodeType.leaf
_PARENT = NodeType.parent


def push_node(w: Writer, node: Node) -> None:
    """Encode ``Node`` (§12.4.3.3)::

    struct {
        NodeType node_type;
        select (Node.node_type) {
            case leaf:   LeafNode leaf_node;
            case parent: ParentNode parent_node;
        };
    } Node;
    """
    if isinstance(node, LeafNode):
        w.push_uint8(_LEAF)
        w.push_bytes(node.to_bytes())
    else:
        w.push_uint8(_PARENT)
        node.encode(w)


def pull_node(buf: Buffer) -> Node:
    node_type = buf.pull_uint8()
    if node_type == _LEAF:
        return LeafNode.decode(buf)
    if node_type == _PARENT:
        return ParentNode.decode(buf)
    raise DecodeError(f"unknown node_type {node_type}")


def encode_node(node: Node) -> bytes:
    w = Writer()
    push_node(w, node)
    return w.getvalue()


def decode_node(data: bytes) -> Node:
    buf = Buffer(data)
    node = pull_node(buf)
    if not buf.eof():
        raise DecodeError("trailing bytes after Node")
    return node


def push_ratchet_tree(w: Writer, nodes: Sequence[Node | None]) -> None:
    """``optional<Node> ratchet_tree<V>`` (§12.4.3.3), written exactly as given.

    The sender must drop trailing blank nodes first (§12.4.3.3); this codec does not trim.
    """
    body = Writer()
    for node in nodes:
        if node is None:
            body.push_uint8(0)
        else:
            body.push_uint8(1)
            push_node(body, node)
    w.push_opaque(body.getvalue())


def pull_ratchet_tree(buf: Buffer, max_nodes: int | None = None) -> list[Node | None]:
    """``optional<Node> ratchet_tree<V>``, as listed (no shape checks: the tree layer does them).
    More than ``max_nodes`` entries raise SizeLimitExceeded before they are decoded (a blank
    entry is one byte, so a small message could otherwise ask for a huge tree)."""
    out: list[Node | None] = []
    append = out.append
    limit = -1 if max_nodes is None else max_nodes
    with buf.pull_block() as end:
        while buf.position < end:
            if len(out) == limit:
                raise SizeLimitExceeded(f"ratchet_tree has more than {limit} nodes")
            present = buf.pull_uint8()
            if present == 0:
                append(None)
            elif present == 1:
                append(pull_node(buf))
            else:
                raise DecodeError(f"invalid optional presence byte {present}")
    return out


def encode_ratchet_tree(nodes: Sequence[Node | None]) -> bytes:
    w = Writer()
    push_ratchet_tree(w, nodes)
    return w.getvalue()


def decode_ratchet_tree(data: bytes, max_nodes: int | None = None) -> list[Node | None]:
    """Decode the ``ratchet_tree`` extension data (or any encoded ``ratchet_tree<V>``)."""
    buf = Buffer(data)
    nodes = pull_ratchet_tree(buf, max_nodes)
    if not buf.eof():
        raise DecodeError("trailing bytes after ratchet_tree")
    return nodes


# -- UpdatePath (§7.6) ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class HPKECiphertext:
    """RFC 9420 §7.6::

    struct {
        opaque kem_output<V>;
        opaque ciphertext<V>;
    } HPKECiphertext;
    """

    kem_output: bytes
    ciphertext: bytes

    def encode(self, w: Writer) -> None:
        w.push_opaque(self.kem_output)
        w.push_opaque(self.ciphertext)

    @classmethod
    def decode(cls, buf: Buffer) -> Self:
        return cls(kem_output=buf.pull_opaque(), ciphertext=buf.pull_opaque())


@dataclass(frozen=True, slots=True, kw_only=True)
class UpdatePathNode:
    """RFC 9420 §7.6::

        struct {
            HPKEPublicKey encryption_key;
            HPKECiphertext encrypted_path_secret<V>;
        } UpdatePathNode;

    A node of a commit to n members holds up to n - 1 ciphertexts, and a commit is encoded
    several times (signature, transcript hash, framing), so the encoded ciphertext vector is
    cached: kept from the wire on decode, computed once otherwise.
    """

    encryption_key: bytes
    encrypted_path_secret: tuple[HPKECiphertext, ...]
    _encoded_cts: bytes | None = field(default=None, init=False, repr=False, compare=False)

    def encode(self, w: Writer) -> None:
        w.push_opaque(self.encryption_key)
        raw = self._encoded_cts
        if raw is None:
            parts: list[bytes] = []
            for ct in self.encrypted_path_secret:
                kem, c = ct.kem_output, ct.ciphertext
                parts += (encode_varint(len(kem)), kem, encode_varint(len(c)), c)
            raw = b"".join(parts)
            object.__setattr__(self, "_encoded_cts", raw)
        w.push_opaque(raw)

    @classmethod
    def decode(cls, buf: Buffer) -> Self:
        encryption_key = buf.pull_opaque()
        raw = buf.pull_opaque()
        node = cls(encryption_key=encryption_key, encrypted_path_secret=_pull_ciphertexts(raw))
        object.__setattr__(node, "_encoded_cts", raw)
        return node


def _pull_ciphertexts(raw: bytes) -> tuple[HPKECiphertext, ...]:
    """The ``HPKECiphertext`` items of an encoded vector body, in one tight loop (a commit to a
    sparse tree of n members carries n - 1 of them). Same rules as :meth:`Buffer.pull_opaque`:
    minimal varints, no 0b11 prefix, no truncation."""
    out: list[HPKECiphertext] = []
    append = out.append
    new = object.__new__
    setattr_ = object.__setattr__
    end = len(raw)
    pos = 0
    try:
        while pos < end:
            # Lengths below 64 (one-byte varints) are the common case: kem_output is Npk bytes
            # and the ciphertext Nh + 1 + Nt for a 32-byte path secret.
            n = raw[pos]
            if n < 0x40:
                start, pos = pos + 1, pos + 1 + n
            else:
                start, pos = _opaque_span(raw, pos)
            kem_output = raw[start:pos]
            n = raw[pos]
            if n < 0x40:
                start, pos = pos + 1, pos + 1 + n
            else:
                start, pos = _opaque_span(raw, pos)
            if pos > end:
                raise DecodeError("truncated HPKECiphertext")
            # Equivalent to HPKECiphertext(kem_output=..., ciphertext=...), without the
            # keyword-argument call of a frozen dataclass (half the cost).
            ct = new(HPKECiphertext)
            setattr_(ct, "kem_output", kem_output)
            setattr_(ct, "ciphertext", raw[start:pos])
            append(ct)
    except IndexError:
        raise DecodeError("truncated HPKECiphertext") from None
    return tuple(out)


def _opaque_span(raw: bytes, pos: int) -> tuple[int, int]:
    """(start, stop) of the ``opaque<V>`` at ``pos`` with a multi-byte varint length."""
    if raw[pos] >> 6 == 1 and pos + 2 <= len(raw):
        # Two-byte lengths (64 to 16383 bytes: a commit's ciphertext vectors), inlined.
        length = ((raw[pos] & 0x3F) << 8) | raw[pos + 1]
        if length < 0x40:
            raise DecodeError("non-minimal varint encoding")
        start = pos + 2
    else:
        buf = Buffer(raw[pos : pos + 4])
        length = buf.pull_varint()
        start = pos + buf.position
    if start + length > len(raw):
        raise DecodeError("truncated HPKECiphertext")
    return start, start + length


@dataclass(frozen=True, slots=True, kw_only=True)
class UpdatePath:
    """RFC 9420 §7.6::

    struct {
        LeafNode leaf_node;
        UpdatePathNode nodes<V>;
    } UpdatePath;
    """

    leaf_node: LeafNode
    nodes: tuple[UpdatePathNode, ...]

    def encode(self, w: Writer) -> None:
        self.leaf_node.encode(w)
        body = Writer()
        for node in self.nodes:
            node.encode(body)
        w.push_opaque(body.getvalue())

    @classmethod
    def decode(cls, buf: Buffer) -> Self:
        leaf_node = LeafNode.decode(buf)
        return cls(leaf_node=leaf_node, nodes=_pull_path_nodes(buf.pull_opaque()))


def _pull_path_nodes(raw: bytes) -> tuple[UpdatePathNode, ...]:
    """The ``UpdatePathNode`` items of an encoded vector body (one per level of the sender's
    filtered direct path), in one loop as :func:`_pull_ciphertexts`; same rules as
    :meth:`UpdatePathNode.decode`."""
    out: list[UpdatePathNode] = []
    new = object.__new__
    setattr_ = object.__setattr__
    end = len(raw)
    pos = 0
    try:
        while pos < end:
            n = raw[pos]
            if n < 0x40:
                start, pos = pos + 1, pos + 1 + n
            else:
                start, pos = _opaque_span(raw, pos)
            encryption_key = raw[start:pos]
            n = raw[pos]
            if n < 0x40:
                start, pos = pos + 1, pos + 1 + n
            else:
                start, pos = _opaque_span(raw, pos)
            if pos > end:
                raise DecodeError("truncated UpdatePathNode")
            cts = raw[start:pos]
            # As UpdatePathNode.decode, without its keyword-argument dataclass call.
            node = new(UpdatePathNode)
            setattr_(node, "encryption_key", encryption_key)
            setattr_(node, "encrypted_path_secret", _pull_ciphertexts(cts))
            setattr_(node, "_encoded_cts", cts)
            out.append(node)
    except IndexError:
        raise DecodeError("truncated UpdatePathNode") from None
    return tuple(out)
