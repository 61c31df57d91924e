"""KeyPackages (RFC 9420 §10): ``KeyPackage``, ``KeyPackageTBS``, its signature and reference.

Signature: SignWithLabel(., "KeyPackageTBS", KeyPackageTBS) by ``leaf_node.signature_key``
(§5.1.2, §10). Reference: MakeKeyPackageRef over the encoded KeyPackage (§5.2). The §10.1 checks
beyond the signature (version/suite match, leaf node validity, init_key != encryption_key) need
group context and live in the group layer.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Self

from mls.codec.buffer import Buffer, Writer, encode_varint
from mls.constants import ProtocolVersion
from mls.crypto.labels import make_key_package_ref, sign_with_label, verify_with_label
from mls.extensions import Extension, pull_extensions, push_extensions
from mls.tree.nodes import LeafNode

if TYPE_CHECKING:
    from mls.crypto import CipherSuite

__all__ = ["KeyPackage"]


@dataclass(frozen=True, slots=True, kw_only=True)
class KeyPackage:
    """RFC 9420 §10::

        struct {
            ProtocolVersion version;
            CipherSuite cipher_suite;
            HPKEPublicKey init_key;
            LeafNode leaf_node;
            Extension extensions<V>;
            /* SignWithLabel(., "KeyPackageTBS", KeyPackageTBS) */
            opaque signature<V>;
        } KeyPackage;

        struct {
            ProtocolVersion version;
            CipherSuite cipher_suite;
            HPKEPublicKey init_key;
            LeafNode leaf_node;
            Extension extensions<V>;
        } KeyPackageTBS;

    Build with ``signature=b""`` and call :meth:`sign`. The encoding is cached.
    """

    version: int = ProtocolVersion.mls10
    cipher_suite: int
    init_key: bytes
    leaf_node: LeafNode
    extensions: tuple[Extension, ...] = ()
    signature: bytes = b""
    _encoded: bytes | None = field(default=None, init=False, repr=False, compare=False)

    def to_bytes(self) -> bytes:
        """The encoded KeyPackage (cached)."""
        enc = self._encoded
        if enc is None:
            w = Writer()
            w.push_bytes(self.tbs())
            w.push_opaque(self.signature)
            enc = w.getvalue()
            object.__setattr__(self, "_encoded", enc)
        return enc

    def encode(self, w: Writer) -> None:
        w.push_bytes(self.to_bytes())

    @classmethod
    def decode(cls, buf: Buffer) -> Self:
        return cls(
            version=buf.pull_uint16(),
            cipher_suite=buf.pull_uint16(),
            init_key=buf.pull_opaque(),
            leaf_node=LeafNode.decode(buf),
            extensions=pull_extensions(buf),
            signature=buf.pull_opaque(),
        )

    def tbs(self) -> bytes:
        """The encoded KeyPackageTBS: every field above ``signature``."""
        enc = self._encoded
        if enc is not None:
            sig_len = len(self.signature)
            return enc[: len(enc) - sig_len - len(encode_varint(sig_len))]
        w = Writer()
        w.push_uint16(self.version)
        w.push_uint16(self.cipher_suite)
        w.push_opaque(self.init_key)
        self.leaf_node.encode(w)
        push_extensions(w, self.extensions)
        return w.getvalue()

    def sign(self, cs: CipherSuite, signature_private_key: bytes) -> KeyPackage:
        """A copy with ``signature`` = SignWithLabel(sk, "KeyPackageTBS", KeyPackageTBS)."""
        sig = sign_with_label(cs, signature_private_key, "KeyPackageTBS", self.tbs())
        return replace(self, signature=sig)

    def verify(self, cs: CipherSuite) -> None:
        """Check the KeyPackage signature with ``leaf_node.signature_key`` (§10.1).

        Raises :class:`~mls.errors.BadSignature`. Does not check the leaf node's own signature
        (``self.leaf_node.verify(cs)``) or the other §10.1 rules.
        """
        verify_with_label(
            cs, self.leaf_node.signature_key, "KeyPackageTBS", self.tbs(), self.signature
        )

    def ref(self, cs: CipherSuite) -> bytes:
        """KeyPackageRef = MakeKeyPackageRef(encoded KeyPackage) (§5.2)."""
        return make_key_package_ref(cs, self.to_bytes())
