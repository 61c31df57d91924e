"""The ``Commit`` struct (RFC 9420 §12.4).

``UpdatePath``, ``UpdatePathNode`` and ``HPKECiphertext`` (§7.6) are defined in
:mod:`mls.tree.nodes` so TreeKEM (a lower layer) can use them, and re-exported here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Self

from mls.codec.buffer import Buffer, Writer
from mls.messages.proposals import ProposalOrRef
from mls.tree.nodes import HPKECiphertext, UpdatePath, UpdatePathNode

__all__ = ["Commit", "UpdatePath", "UpdatePathNode", "HPKECiphertext"]


@dataclass(frozen=True, slots=True, kw_only=True)
class Commit:
    """RFC 9420 §12.4::

    struct {
        ProposalOrRef proposals<V>;
        optional<UpdatePath> path;
    } Commit;
    """

    proposals: tuple[ProposalOrRef, ...] = ()
    path: UpdatePath | None = None

    def encode(self, w: Writer) -> None:
        body = Writer()
        for p in self.proposals:
            p.encode(body)
        w.push_opaque(body.getvalue())
        if self.path is None:
            w.push_uint8(0)
        else:
            w.push_uint8(1)
            self.path.encode(w)

    @classmethod
    def decode(cls, buf: Buffer) -> Self:
        proposals = tuple(buf.pull_vector(ProposalOrRef.decode))
        return cls(proposals=proposals, path=buf.pull_optional(UpdatePath.decode))
