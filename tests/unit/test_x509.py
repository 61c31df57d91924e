"""X.509 credentials end to end (RFC 9420 §5.3): a group whose members carry certificate chains
validated by :class:`mls.group.identity.X509IdentityProvider`."""

from __future__ import annotations

import datetime

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519
from cryptography.x509.oid import NameOID

from mls.credentials import Credential
from mls.errors import InvalidCredential, UnsupportedCredential
from mls.group import Client, Group
from mls.group.identity import X509IdentityProvider

NOW = 1_750_000_000
T0 = datetime.datetime.fromtimestamp(NOW, tz=datetime.UTC)


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _cert(
    subject: str,
    public_key: ed25519.Ed25519PublicKey,
    issuer: str,
    issuer_key: ed25519.Ed25519PrivateKey,
    *,
    days: int = 30,
    ca: bool = False,
) -> bytes:
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name(subject))
        .issuer_name(_name(issuer))
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(T0 - datetime.timedelta(days=1))
        .not_valid_after(T0 + datetime.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        .sign(issuer_key, None)
    )
    return cert.public_bytes(serialization.Encoding.DER)


@pytest.fixture(scope="module")
def ca() -> tuple[ed25519.Ed25519PrivateKey, bytes]:
    key = ed25519.Ed25519PrivateKey.generate()
    return key, _cert("Root CA", key.public_key(), "Root CA", key, days=365, ca=True)


def _member(name: str, ca: tuple[ed25519.Ed25519PrivateKey, bytes], **kw: int) -> Client:
    key = ed25519.Ed25519PrivateKey.generate()
    sk = key.private_bytes(
        serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption()
    )
    pk = key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    der = _cert(name, key.public_key(), "Root CA", ca[0], **kw)
    return Client.create(
        name.encode(), 1, credential=Credential.x509((der,)), signature_key_pair=(sk, pk)
    )


def test_group_of_x509_members(ca: tuple[ed25519.Ed25519PrivateKey, bytes]) -> None:
    provider = X509IdentityProvider([ca[1]])
    alice, bob = _member("alice", ca), _member("bob", ca)
    g = Group.create(alice, b"x509", identity=provider, now=NOW)
    out = g.commit(add=[bob.key_package(NOW)], now=NOW)
    g.merge_pending_commit()
    assert out.welcome is not None
    gb = Group.join(bob, out.welcome, ratchet_tree=g.export_tree(), identity=provider, now=NOW)
    assert gb.epoch_authenticator == g.epoch_authenticator


def test_foreign_ca_is_rejected(ca: tuple[ed25519.Ed25519PrivateKey, bytes]) -> None:
    provider = X509IdentityProvider([ca[1]])
    other_key = ed25519.Ed25519PrivateKey.generate()
    other = (other_key, _cert("Root CA", other_key.public_key(), "Root CA", other_key, ca=True))
    alice, mallory = _member("alice", ca), _member("mallory", other)
    g = Group.create(alice, b"x509", identity=provider, now=NOW)
    with pytest.raises(InvalidCredential):
        g.commit(add=[mallory.key_package(NOW)], now=NOW)


def test_certificate_key_must_match_signature_key(
    ca: tuple[ed25519.Ed25519PrivateKey, bytes],
) -> None:
    provider = X509IdentityProvider([ca[1]])
    alice = _member("alice", ca)
    leaf = alice.leaf_template()
    wrong = ed25519.Ed25519PrivateKey.generate().public_key()
    pk = wrong.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    with pytest.raises(InvalidCredential):
        provider.validate_credential(leaf.credential, pk, now=NOW)


def test_expired_certificate(ca: tuple[ed25519.Ed25519PrivateKey, bytes]) -> None:
    provider = X509IdentityProvider([ca[1]])
    alice = _member("alice", ca, days=1)
    leaf = alice.leaf_template()
    provider.validate_credential(leaf.credential, leaf.signature_key, now=NOW)
    with pytest.raises(InvalidCredential):
        provider.validate_credential(leaf.credential, leaf.signature_key, now=NOW + 5 * 86400)


def test_basic_refused_unless_allowed(ca: tuple[ed25519.Ed25519PrivateKey, bytes]) -> None:
    cred = Credential.basic(b"bob")
    with pytest.raises(UnsupportedCredential):
        X509IdentityProvider([ca[1]]).validate_credential(cred, b"k" * 32, now=NOW)
    X509IdentityProvider([ca[1]], allow_basic=True).validate_credential(cred, b"k" * 32, now=NOW)


def test_garbage_certificate(ca: tuple[ed25519.Ed25519PrivateKey, bytes]) -> None:
    with pytest.raises(InvalidCredential):
        X509IdentityProvider([ca[1]]).validate_credential(
            Credential.x509((b"not a certificate",)), b"k" * 32, now=NOW
        )
