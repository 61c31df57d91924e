"""Extensions (RFC 9420 §13.4, §17.3): the generic ``Extension`` and the typed default ones.

Every extension list travels as ``Extension extensions<V>`` with opaque ``extension_data``;
unknown and GREASE types (§13.5) pass through decode and re-encode untouched. The typed parsers
(:class:`ApplicationId`, :class:`RequiredCapabilities`, :class:`ExternalPub`,
:class:`ExternalSenders`) read ``extension_data`` on demand. The ``ratchet_tree`` extension's data
is the encoded ``optional<Node> ratchet_tree<V>``, which the tree layer parses
(:func:`mls.tree.nodes.decode_ratchet_tree`); here it stays opaque.

§13.4: "Any field containing a list of extensions MUST NOT have more than one extension of any
given type." :func:`pull_extensions` enforces it while decoding (:class:`DuplicateExtension`),
so no decoded struct can hold a duplicate.

This module also holds the ``uint16 items<V>`` list codec shared by ``Capabilities`` and
``RequiredCapabilities``.
"""

from __future__ import annotations

import functools
import struct
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar, Self

from mls.codec.buffer import Buffer, Writer
from mls.codec.wire import decode, encode
from mls.constants import ExtensionType
from mls.credentials import Credential
from mls.errors import DecodeError, DuplicateExtension, MalformedExtension, UsageError

__all__ = [
    "Extension",
    "pull_extensions",
    "push_extensions",
    "check_unique_extensions",
    "find_extension",
    "ApplicationId",
    "RequiredCapabilities",
    "ExternalPub",
    "ExternalSender",
    "ExternalSenders",
    "pull_uint16s",
    "push_uint16s",
]


# -- uint16 lists ---------------------------------------------------------------------------


def pull_uint16s(buf: Buffer) -> tuple[int, ...]:
    """``uint16 items<V>`` in one slice and one unpack."""
    data = buf.pull_opaque()
    n = len(data)
    if n & 1:
        raise DecodeError("uint16 vector with an odd byte length")
    return _uint16s(n >> 1)(data) if n else ()


@functools.lru_cache(maxsize=64)
def _uint16s(count: int) -> Callable[[bytes], tuple[int, ...]]:
    # Capability lists are short and repeat their lengths; reuse one compiled Struct per count.
    return struct.Struct(f">{count}H").unpack


def push_uint16s(w: Writer, items: Sequence[int]) -> None:
    try:
        w.push_opaque(struct.pack(f">{len(items)}H", *items))
    except struct.error as exc:
        raise UsageError(f"uint16 vector value out of range: {exc}") from None


# -- Extension --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class Extension:
    """RFC 9420 §7.2::

    struct {
        ExtensionType extension_type;
        opaque extension_data<V>;
    } Extension;
    """

    extension_type: int
    extension_data: bytes

    def encode(self, w: Writer) -> None:
        w.push_uint16(self.extension_type)
        w.push_opaque(self.extension_data)

    @classmethod
    def decode(cls, buf: Buffer) -> Self:
        return cls(extension_type=buf.pull_uint16(), extension_data=buf.pull_opaque())


def pull_extensions(buf: Buffer) -> tuple[Extension, ...]:
    """``Extension extensions<V>``; raises :class:`DuplicateExtension` on a repeated type."""
    raw = buf.pull_opaque()
    if not raw:
        return ()  # The common case for leaves; skip building a sub-reader.
    inner = Buffer(raw)
    out: list[Extension] = []
    seen: set[int] = set()
    while not inner.eof():
        ext_type = inner.pull_uint16()
        if ext_type in seen:
            raise DuplicateExtension(f"extension type {ext_type:#06x} appears twice")
        seen.add(ext_type)
        out.append(Extension(extension_type=ext_type, extension_data=inner.pull_opaque()))
    return tuple(out)


def push_extensions(w: Writer, extensions: Sequence[Extension]) -> None:
    body = Writer()
    for ext in extensions:
        body.push_uint16(ext.extension_type)
        body.push_opaque(ext.extension_data)
    w.push_opaque(body.getvalue())


def check_unique_extensions(extensions: Iterable[Extension]) -> None:
    """Raise :class:`DuplicateExtension` if two extensions share a type (§13.4).

    Decoding already checks this; call it on lists built locally before sending them.
    """
    seen: set[int] = set()
    for ext in extensions:
        if ext.extension_type in seen:
            raise DuplicateExtension(f"extension type {ext.extension_type:#06x} appears twice")
        seen.add(ext.extension_type)


def find_extension(extensions: Iterable[Extension], extension_type: int) -> Extension | None:
    """The extension of ``extension_type`` in the list, or ``None``."""
    for ext in extensions:
        if ext.extension_type == extension_type:
            return ext
    return None


# -- Typed default extensions (§17.3) ------------------------------------------------------------


class _Typed:
    """Mixin for typed extensions: ``to_extension`` / ``from_extension`` / ``find``."""

    __slots__ = ()
    extension_type: ClassVar[int]

    if TYPE_CHECKING:  # Supplied by each dataclass below.

        def encode(self, w: Writer) -> None: ...

        @classmethod
        def decode(cls, buf: Buffer) -> Self: ...

    def to_extension(self) -> Extension:
        return Extension(extension_type=self.extension_type, extension_data=encode(self))

    @classmethod
    def from_extension(cls, ext: Extension) -> Self:
        """Parse ``ext.extension_data``; :class:`MalformedExtension` if it does not parse."""
        if ext.extension_type != cls.extension_type:
            raise UsageError(
                f"extension type {ext.extension_type:#06x} is not {cls.extension_type:#06x}"
            )
        try:
            return decode(cls, ext.extension_data)
        except MalformedExtension:
            raise
        except DecodeError as exc:
            raise MalformedExtension(f"{cls.__name__}: {exc}") from exc

    @classmethod
    def find(cls, extensions: Iterable[Extension]) -> Self | None:
        """Find and parse this extension in a list; ``None`` if absent."""
        ext = find_extension(extensions, cls.extension_type)
        return None if ext is None else cls.from_extension(ext)


@dataclass(frozen=True, slots=True, kw_only=True)
class ApplicationId(_Typed):
    """RFC 9420 §5.3.3: ``opaque application_id<V>;`` (a LeafNode extension)."""

    extension_type: ClassVar[int] = ExtensionType.application_id
    application_id: bytes

    def encode(self, w: Writer) -> None:
        w.push_opaque(self.application_id)

    @classmethod
    def decode(cls, buf: Buffer) -> Self:
        return cls(application_id=buf.pull_opaque())


@dataclass(frozen=True, slots=True, kw_only=True)
class RequiredCapabilities(_Typed):
    """RFC 9420 §11.1 (a GroupContext extension)::

    struct {
        ExtensionType extension_types<V>;
        ProposalType proposal_types<V>;
        CredentialType credential_types<V>;
    } RequiredCapabilities;
    """

    extension_type: ClassVar[int] = ExtensionType.required_capabilities
    extension_types: tuple[int, ...] = ()
    proposal_types: tuple[int, ...] = ()
    credential_types: tuple[int, ...] = ()

    def encode(self, w: Writer) -> None:
        push_uint16s(w, self.extension_types)
        push_uint16s(w, self.proposal_types)
        push_uint16s(w, self.credential_types)

    @classmethod
    def decode(cls, buf: Buffer) -> Self:
        return cls(
            extension_types=pull_uint16s(buf),
            proposal_types=pull_uint16s(buf),
            credential_types=pull_uint16s(buf),
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class ExternalPub(_Typed):
    """RFC 9420 §12.4.3.2 (a GroupInfo extension)::

    struct {
        HPKEPublicKey external_pub;
    } ExternalPub;
    """

    extension_type: ClassVar[int] = ExtensionType.external_pub
    external_pub: bytes

    def encode(self, w: Writer) -> None:
        w.push_opaque(self.external_pub)

    @classmethod
    def decode(cls, buf: Buffer) -> Self:
        return cls(external_pub=buf.pull_opaque())


@dataclass(frozen=True, slots=True, kw_only=True)
class ExternalSender:
    """RFC 9420 §12.1.8.1::

    struct {
        SignaturePublicKey signature_key;
        Credential credential;
    } ExternalSender;
    """

    signature_key: bytes
    credential: Credential

    def encode(self, w: Writer) -> None:
        w.push_opaque(self.signature_key)
        self.credential.encode(w)

    @classmethod
    def decode(cls, buf: Buffer) -> Self:
        return cls(signature_key=buf.pull_opaque(), credential=Credential.decode(buf))


@dataclass(frozen=True, slots=True, kw_only=True)
class ExternalSenders(_Typed):
    """RFC 9420 §12.1.8.1 (a GroupContext extension): ``ExternalSender external_senders<V>;``.

    A Sender of type ``external`` names an entry by its index in ``senders``.
    """

    extension_type: ClassVar[int] = ExtensionType.external_senders
    senders: tuple[ExternalSender, ...]

    def encode(self, w: Writer) -> None:
        w.push_vector(self.senders, _push_external_sender)

    @classmethod
    def decode(cls, buf: Buffer) -> Self:
        return cls(senders=tuple(buf.pull_vector(ExternalSender.decode)))


def _push_external_sender(w: Writer, sender: ExternalSender) -> None:
    sender.encode(w)
