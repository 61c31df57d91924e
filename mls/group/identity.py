"""Identity providers: the Authentication Service hook (RFC 9420 §5.3.1).

:class:`IdentityProvider` is the protocol the group calls; :class:`BasicIdentityProvider` the
default; ``client_keys_of`` finds the optional :class:`ClientKeys` method that makes the §12.2
duplicate checks linear.

:class:`X509IdentityProvider` accepts an ``x509`` credential (§5.3: a chain of DER certificates,
end-entity first) when

- every certificate parses, and each is directly issued (and signed) by the next one;
- the last certificate is issued by, or is, one of the configured trust anchors;
- every certificate is within its validity period at ``now`` (when the caller gives ``now``);
- the end-entity certificate's public key is the leaf's ``signature_key`` (§5.3.1: "the
  signature key ... MUST be bound to the credential").

Two leaves are the same client when they share a signature key or their end-entity
certificates name the same subject. A new credential succeeds an old one (§5.3.1) when its
end-entity certificate names the same subject and alternative names (plus an optional hook).
Basic credentials are refused unless ``allow_basic``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from itertools import pairwise
from typing import Protocol

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519

from mls.constants import CredentialType
from mls.credentials import Credential
from mls.errors import InvalidCredential, UnsupportedCredential
from mls.tree.nodes import LeafNode
from mls.tree.ratchet_tree import TreeView
from mls.tree.validation import IdentityProvider as TreeIdentityProvider

__all__ = [
    "BasicIdentityProvider",
    "ClientKeys",
    "IdentityProvider",
    "X509IdentityProvider",
    "all_matched",
    "certificate_signature_key",
    "client_keys_of",
]


class IdentityProvider(TreeIdentityProvider, Protocol):
    """The application's Authentication Service hook (§5.3.1), as the tree layer defines it,
    plus the §12.2 notion of two leaves being the same client."""

    def same_client(self, a: LeafNode, b: LeafNode) -> bool:
        """True if two leaves represent the same client (§12.2 duplicate-Add rule)."""
        ...

    def valid_successor(self, old: Credential, new: Credential) -> bool:
        """True if ``new`` may replace ``old`` in a member's leaf (§5.3.1: an Update, a commit's
        path leaf or an external resync must not change who the member is)."""
        ...


class BasicIdentityProvider:
    """Accepts Basic and X.509 credentials with a non-empty identity; two leaves are the same
    client when they share a signature key or a Basic identity (§12.2 example)."""

    def validate_credential(
        self, credential: Credential, signature_key: bytes, *, now: int | None
    ) -> None:
        if credential.credential_type == CredentialType.basic:
            if not credential.identity:
                raise InvalidCredential("empty Basic identity")
        elif credential.credential_type == CredentialType.x509:
            if not credential.certificates:
                raise InvalidCredential("empty X.509 certificate chain")
        else:
            raise UnsupportedCredential(
                f"credential type {credential.credential_type} is not supported"
            )

    def same_client(self, a: LeafNode, b: LeafNode) -> bool:
        return not set(self.client_keys(a)).isdisjoint(self.client_keys(b))

    def valid_successor(self, old: Credential, new: Credential) -> bool:
        """§5.3.1: the same credential type and, for Basic, the same identity. X.509 chains are
        not interpreted here (use :class:`mls.group.identity.X509IdentityProvider`): any chain
        may follow any chain, as any was accepted on its own."""
        if old.credential_type != new.credential_type:
            return False
        if old.credential_type == CredentialType.basic:
            return old.identity == new.identity
        return True

    def client_keys(self, leaf: LeafNode) -> tuple[bytes, ...]:
        """Keys such that two leaves are the same client iff they share one (lets the §12.2
        duplicate-Add check run in linear time)."""
        cred = leaf.credential
        if cred.credential_type == CredentialType.basic:
            return (b"sig:" + leaf.signature_key, b"id:" + cred.identity)
        return (b"sig:" + leaf.signature_key,)


class ClientKeys(Protocol):
    """The optional part of an :class:`IdentityProvider`: keys such that two leaves are the same
    client iff they share one, which makes the §12.2 duplicate checks linear."""

    def client_keys(self, leaf: LeafNode) -> tuple[bytes, ...]: ...


def client_keys_of(identity: IdentityProvider) -> Callable[[LeafNode], tuple[bytes, ...]] | None:
    """The provider's ``client_keys`` method, or None if it does not offer one."""
    keys = getattr(identity, "client_keys", None)
    return keys if callable(keys) else None


def all_matched(identity: IdentityProvider, members: TreeView, within: TreeView) -> bool:
    """Every member of ``members`` is the same client as some member of ``within`` (the
    identity provider decides, §11.2, §11.3); linear when the provider offers client keys."""
    client_keys = client_keys_of(identity)
    if client_keys is not None:
        known = {k for _, leaf in within.iter_leaves() for k in client_keys(leaf)}
        return all(not known.isdisjoint(client_keys(leaf)) for _, leaf in members.iter_leaves())
    others = [leaf for _, leaf in within.iter_leaves()]
    return all(
        any(identity.same_client(leaf, o) for o in others) for _, leaf in members.iter_leaves()
    )


def certificate_signature_key(cert: x509.Certificate) -> bytes:
    """The certificate's public key in the SignaturePublicKey encoding of RFC 9420 §5.1.1:
    raw bytes for EdDSA, the uncompressed point for ECDSA."""
    key = cert.public_key()
    if isinstance(key, ed25519.Ed25519PublicKey | ed448.Ed448PublicKey):
        return key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    if isinstance(key, ec.EllipticCurvePublicKey):
        return key.public_bytes(
            serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
        )
    raise UnsupportedCredential(f"certificate key type {type(key).__name__} is not an MLS key")


def _parse(der: bytes) -> x509.Certificate:
    try:
        return x509.load_der_x509_certificate(der)
    except ValueError as exc:
        raise InvalidCredential("certificate does not parse") from exc


class X509IdentityProvider:
    """Validates X.509 credentials against a set of trust anchors (DER certificates)."""

    def __init__(
        self,
        trust_anchors: Sequence[bytes],
        *,
        allow_basic: bool = False,
        successor: Callable[[x509.Certificate, x509.Certificate], bool] | None = None,
    ) -> None:
        self._anchors = [_parse(der) for der in trust_anchors]
        self._allow_basic = allow_basic
        self._successor = successor

    def validate_credential(
        self, credential: Credential, signature_key: bytes, *, now: int | None
    ) -> None:
        ctype = credential.credential_type
        if ctype == CredentialType.basic:
            if not self._allow_basic:
                raise UnsupportedCredential("Basic credentials are not accepted")
            if not credential.identity:
                raise InvalidCredential("empty Basic identity")
            return
        if ctype != CredentialType.x509:
            raise UnsupportedCredential(f"credential type {ctype} is not supported")
        if not credential.certificates:
            raise InvalidCredential("empty certificate chain")
        chain = [_parse(der) for der in credential.certificates]
        if certificate_signature_key(chain[0]) != signature_key:
            raise InvalidCredential("the end-entity certificate does not hold the signature key")
        when = datetime.fromtimestamp(now, tz=UTC) if now is not None else None
        for cert in chain:
            if when is not None and not (
                cert.not_valid_before_utc <= when <= cert.not_valid_after_utc
            ):
                raise InvalidCredential("a certificate of the chain is outside its validity")
        for child, issuer in pairwise(chain):
            self._check_issued(child, issuer)
        last = chain[-1]
        for anchor in self._anchors:
            if last == anchor:
                return
            try:
                self._check_issued(last, anchor)
            except InvalidCredential:
                continue
            return
        raise InvalidCredential("the chain does not lead to a trust anchor")

    @staticmethod
    def _check_issued(child: x509.Certificate, issuer: x509.Certificate) -> None:
        try:
            child.verify_directly_issued_by(issuer)
        except (ValueError, TypeError, InvalidSignature, UnsupportedAlgorithm) as exc:
            raise InvalidCredential("a certificate is not issued by the next one") from exc

    def valid_successor(self, old: Credential, new: Credential) -> bool:
        """§5.3.1: a member's new credential names the same subject: the same credential type,
        the same end-entity subject and subject alternative names, and whatever the
        ``successor`` hook (old end-entity, new end-entity) adds."""
        if old.credential_type != new.credential_type:
            return False
        if old.credential_type == CredentialType.basic:
            return old.identity == new.identity
        if old.credential_type != CredentialType.x509:
            return False
        if not old.certificates or not new.certificates:
            return False
        try:
            a, b = _parse(old.certificates[0]), _parse(new.certificates[0])
        except InvalidCredential:
            return False
        if a.subject != b.subject or _alt_names(a) != _alt_names(b):
            return False
        return self._successor is None or self._successor(a, b)

    def same_client(self, a: LeafNode, b: LeafNode) -> bool:
        if a.signature_key == b.signature_key:
            return True
        ca, cb = a.credential, b.credential
        if ca.credential_type != cb.credential_type:
            return False
        if ca.credential_type == CredentialType.basic:
            return ca.identity == cb.identity
        if ca.credential_type == CredentialType.x509 and ca.certificates and cb.certificates:
            try:
                return _parse(ca.certificates[0]).subject == _parse(cb.certificates[0]).subject
            except InvalidCredential:
                return False
        return False


def _alt_names(cert: x509.Certificate) -> frozenset[object]:
    try:
        ext = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName)
    except x509.ExtensionNotFound:
        return frozenset()
    return frozenset(ext.value)
