"""Credentials (RFC 9420 §5.3): the ``Credential`` wire struct.

``basic`` carries an application-defined ``identity``; ``x509`` carries a chain of DER
certificates, end-entity first. Validating a credential (the Authentication Service, §5.3.1) is
the application's job and does not live here.

Unknown credential types. RFC 9420 §5.3 only defines the bodies of ``basic`` and ``x509``; the
body of any other type is defined by whoever registers it (§13.3), so strictly it cannot be
parsed. Both defined bodies are a single varint-length-prefixed field (``opaque identity<V>`` and
``Certificate certificates<V>``), and deployed implementations (mls-rs, OpenMLS) encode custom
credential types the same way. We therefore read the body of an unknown type as one
``opaque content<V>`` and keep it verbatim, so it re-encodes byte-identically; such a leaf is
then rejected by credential validation (``UnsupportedCredential``, §7.3) rather than by the
decoder, which keeps a tree or KeyPackage holding it decodable for a DS or passive observer.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Self

from mls.codec.buffer import Buffer, Writer
from mls.constants import CredentialType
from mls.errors import UsageError

__all__ = ["Credential"]


@dataclass(frozen=True, slots=True, kw_only=True)
class Credential:
    """RFC 9420 §5.3::

        struct {
            opaque cert_data<V>;
        } Certificate;

        struct {
            CredentialType credential_type;
            select (Credential.credential_type) {
                case basic:
                    opaque identity<V>;
                case x509:
                    Certificate certificates<V>;
            };
        } Credential;

    Only the field of ``credential_type`` is meaningful: ``identity`` for ``basic``,
    ``certificates`` (DER, end-entity first) for ``x509`` and ``content`` (the raw ``opaque<V>``
    body, see the module docstring) for any other type. Build them with :meth:`basic`,
    :meth:`x509` and :meth:`other`.
    """

    credential_type: int
    identity: bytes = b""
    certificates: tuple[bytes, ...] = ()
    content: bytes = b""

    @classmethod
    def basic(cls, identity: bytes) -> Self:
        return cls(credential_type=CredentialType.basic, identity=identity)

    @classmethod
    def x509(cls, certificates: tuple[bytes, ...]) -> Self:
        return cls(credential_type=CredentialType.x509, certificates=tuple(certificates))

    @classmethod
    def other(cls, credential_type: int, content: bytes) -> Self:
        """A credential of a type this library does not interpret (kept as ``opaque<V>``)."""
        if credential_type in (CredentialType.basic, CredentialType.x509):
            raise UsageError("use Credential.basic or Credential.x509 for the defined types")
        return cls(credential_type=credential_type, content=content)

    def encode(self, w: Writer) -> None:
        ctype = self.credential_type
        w.push_uint16(ctype)
        if ctype == CredentialType.basic:
            w.push_opaque(self.identity)
        elif ctype == CredentialType.x509:
            body = Writer()
            for cert in self.certificates:
                body.push_opaque(cert)
            w.push_opaque(body.getvalue())
        else:
            w.push_opaque(self.content)

    @classmethod
    def decode(cls, buf: Buffer) -> Self:
        ctype = buf.pull_uint16()
        if ctype == CredentialType.basic:
            return cls(credential_type=ctype, identity=buf.pull_opaque())
        if ctype == CredentialType.x509:
            certs: list[bytes] = []
            with buf.pull_block() as end:
                while buf.position < end:
                    certs.append(buf.pull_opaque())
            return cls(credential_type=ctype, certificates=tuple(certs))
        return cls(credential_type=ctype, content=buf.pull_opaque())
