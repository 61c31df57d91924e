"""``GroupInfo`` (RFC 9420 §12.4.3) with its ``GroupInfoTBS`` signature.

SignWithLabel(., "GroupInfoTBS", GroupInfoTBS) by the leaf at index ``signer`` (§12.4.3);
finding that leaf's key and checking the confirmation tag are the group layer's job.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Self

from mls.codec.buffer import Buffer, Writer
from mls.crypto.labels import sign_with_label, verify_with_label
from mls.extensions import Extension, pull_extensions, push_extensions
from mls.schedule.group_context import GroupContext

if TYPE_CHECKING:
    from mls.crypto import CipherSuite

__all__ = ["GroupInfo"]


@dataclass(frozen=True, slots=True, kw_only=True)
class GroupInfo:
    """RFC 9420 §12.4.3::

        struct {
            GroupContext group_context;
            Extension extensions<V>;
            MAC confirmation_tag;
            uint32 signer;
            /* SignWithLabel(., "GroupInfoTBS", GroupInfoTBS) */
            opaque signature<V>;
        } GroupInfo;

        struct {
            GroupContext group_context;
            Extension extensions<V>;
            MAC confirmation_tag;
            uint32 signer;
        } GroupInfoTBS;

    Build with ``signature=b""`` and call :meth:`sign`.
    """

    group_context: GroupContext
    extensions: tuple[Extension, ...] = ()
    confirmation_tag: bytes
    signer: int
    signature: bytes = b""

    def tbs(self) -> bytes:
        """The encoded GroupInfoTBS: every field above ``signature``."""
        w = Writer()
        self._push_tbs(w)
        return w.getvalue()

    def _push_tbs(self, w: Writer) -> None:
        self.group_context.encode(w)
        push_extensions(w, self.extensions)
        w.push_opaque(self.confirmation_tag)
        w.push_uint32(self.signer)

    def encode(self, w: Writer) -> None:
        self._push_tbs(w)
        w.push_opaque(self.signature)

    @classmethod
    def decode(cls, buf: Buffer) -> Self:
        return cls(
            group_context=GroupContext.decode(buf),
            extensions=pull_extensions(buf),
            confirmation_tag=buf.pull_opaque(),
            signer=buf.pull_uint32(),
            signature=buf.pull_opaque(),
        )

    def sign(self, cs: CipherSuite, signature_private_key: bytes) -> GroupInfo:
        """A copy with ``signature`` = SignWithLabel(sk, "GroupInfoTBS", GroupInfoTBS)."""
        sig = sign_with_label(cs, signature_private_key, "GroupInfoTBS", self.tbs())
        return replace(self, signature=sig)

    def verify(self, cs: CipherSuite, signer_signature_key: bytes) -> None:
        """VerifyWithLabel with the ``signer`` leaf's signature key; raises BadSignature."""
        verify_with_label(cs, signer_signature_key, "GroupInfoTBS", self.tbs(), self.signature)
