"""A client: one signature identity, its credential, and its pool of KeyPackages (RFC 9420 §10).

The client owns the private keys of the KeyPackages it published (``init_key`` and the leaf's
``encryption_key``). A KeyPackage's private keys are deleted once a Welcome consumed them
(§10: "KeyPackages are intended to be used only once"), except for a ``last_resort`` one
(draft-ietf-mls-extensions §2.5), which is kept.

Sans-I/O: ``now`` (seconds since the epoch) is always passed in by the caller.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from mls.constants import CredentialType, ExtensionType, LeafNodeSource, ProtocolVersion
from mls.credentials import Credential
from mls.crypto import CipherSuite, get_suite, supported_suites
from mls.errors import NoMatchingKeyPackage, UsageError
from mls.extensions import Extension
from mls.group.snapshot import ClientSnapshot
from mls.messages.key_package import KeyPackage
from mls.messages.proposals import SelfRemove
from mls.tree.nodes import Capabilities, LeafNode, Lifetime

__all__ = [
    "LAST_RESORT_EXTENSION",
    "Client",
    "KeyPackagePrivate",
    "default_capabilities",
]

# draft-ietf-mls-extensions: last_resort KeyPackage extension (IANA 0x000A).
LAST_RESORT_EXTENSION = 0x000A

# Lifetime of our KeyPackages: valid from an hour in the past (peers with clock skew still accept
# it, §7.2) to 12 weeks ahead: a total of 84 days and an hour, the most some implementations
# accept (OpenMLS caps the total there), so our leaves are accepted everywhere.
NOT_BEFORE_SKEW = 3600
DEFAULT_LIFETIME = 84 * 24 * 3600

ALL_SUITES = (1, 2, 3, 4, 5, 6, 7)
_DEFAULT_EXTENSION_TYPES = frozenset(int(e) for e in ExtensionType)


def default_capabilities(
    extensions: tuple[int, ...] = (),
    proposals: tuple[int, ...] = (),
    *,
    self_remove: bool = True,
) -> Capabilities:
    """What this library supports (§7.2): default extension and proposal types need no listing;
    SelfRemove (draft-ietf-mls-extensions, its current code point) is listed unless
    ``self_remove=False``."""
    if self_remove and SelfRemove.proposal_type not in proposals:
        proposals = (*proposals, SelfRemove.proposal_type)
    return Capabilities(
        versions=(ProtocolVersion.mls10,),
        cipher_suites=supported_suites(),  # 1-7 and the active PQ profile's (registry)
        extensions=extensions,
        proposals=proposals,
        credentials=(CredentialType.basic, CredentialType.x509),
    )


@dataclass(frozen=True, slots=True)
class KeyPackagePrivate:
    """The private half of a published KeyPackage."""

    key_package: KeyPackage
    init_private_key: bytes = field(repr=False)
    encryption_private_key: bytes = field(repr=False)
    last_resort: bool = False


@dataclass(eq=False)
class Client:
    """A signature identity and its KeyPackage pool."""

    suite: CipherSuite
    credential: Credential
    signature_private_key: bytes = field(repr=False)
    signature_public_key: bytes
    capabilities: Capabilities = field(default_factory=default_capabilities)
    _pool: dict[bytes, KeyPackagePrivate] = field(default_factory=dict, repr=False)
    _external_psks: dict[bytes, bytes] = field(default_factory=dict, repr=False)

    @classmethod
    def create(
        cls,
        identity: bytes,
        suite: int | CipherSuite = 1,
        *,
        credential: Credential | None = None,
        capabilities: Capabilities | None = None,
        signature_key_pair: tuple[bytes, bytes] | None = None,
    ) -> Client:
        """A client with a fresh signature key pair and a Basic credential for ``identity``."""
        cs = suite if isinstance(suite, CipherSuite) else get_suite(suite)
        sk, pk = signature_key_pair or cs.generate_signature_key_pair()
        return cls(
            suite=cs,
            credential=credential or Credential.basic(identity),
            signature_private_key=sk,
            signature_public_key=pk,
            capabilities=capabilities or default_capabilities(),
        )

    @property
    def identity(self) -> bytes:
        return self.credential.identity

    def key_package(
        self,
        now: int,
        *,
        lifetime: int = DEFAULT_LIFETIME,
        extensions: tuple[Extension, ...] = (),
        leaf_extensions: tuple[Extension, ...] = (),
        last_resort: bool = False,
    ) -> KeyPackage:
        """Create, sign and remember a fresh KeyPackage (§10)."""
        cs = self.suite
        init_sk, init_pk = cs.generate_key_pair()
        enc_sk, enc_pk = cs.generate_key_pair()
        if last_resort and not any(e.extension_type == LAST_RESORT_EXTENSION for e in extensions):
            extensions = (
                *extensions,
                Extension(extension_type=LAST_RESORT_EXTENSION, extension_data=b""),
            )
        caps = self.capabilities
        if last_resort and LAST_RESORT_EXTENSION not in caps.extensions:
            caps = Capabilities(
                versions=caps.versions,
                cipher_suites=caps.cipher_suites,
                extensions=(*caps.extensions, LAST_RESORT_EXTENSION),
                proposals=caps.proposals,
                credentials=caps.credentials,
            )
        # §10, §7.2: every non-default extension of the KeyPackage and its leaf is listed in
        # the leaf's capabilities (receivers refuse it otherwise).
        for ext in (*extensions, *leaf_extensions):
            t = ext.extension_type
            if t not in _DEFAULT_EXTENSION_TYPES and t not in caps.extensions:
                raise UsageError(f"extension type {t:#06x} is not in the client's capabilities")
        leaf = LeafNode(
            encryption_key=enc_pk,
            signature_key=self.signature_public_key,
            credential=self.credential,
            capabilities=caps,
            leaf_node_source=LeafNodeSource.key_package,
            lifetime=Lifetime(not_before=max(0, now - NOT_BEFORE_SKEW), not_after=now + lifetime),
            extensions=leaf_extensions,
        ).sign(cs, self.signature_private_key)
        kp = KeyPackage(
            cipher_suite=cs.suite_id, init_key=init_pk, leaf_node=leaf, extensions=extensions
        ).sign(cs, self.signature_private_key)
        self._pool[kp.ref(cs)] = KeyPackagePrivate(kp, init_sk, enc_sk, last_resort)
        return kp

    def leaf_node(
        self,
        encryption_key: bytes,
        now: int,
        *,
        lifetime: int = DEFAULT_LIFETIME,
        extensions: tuple[Extension, ...] = (),
    ) -> LeafNode:
        """A signed ``key_package``-source LeafNode of this client (§7.2), e.g. a group
        creator's first leaf (§11)."""
        return LeafNode(
            encryption_key=encryption_key,
            signature_key=self.signature_public_key,
            credential=self.credential,
            capabilities=self.capabilities,
            leaf_node_source=LeafNodeSource.key_package,
            lifetime=Lifetime(not_before=max(0, now - NOT_BEFORE_SKEW), not_after=now + lifetime),
            extensions=extensions,
        ).sign(self.suite, self.signature_private_key)

    def leaf_template(self, extensions: tuple[Extension, ...] = ()) -> LeafNode:
        """The unsigned fields of this client's leaves (credential, capabilities, keys) that a
        commit's new LeafNode copies (§12.4.2); TreeKEM fills in the rest and signs."""
        return LeafNode(
            encryption_key=b"",
            signature_key=self.signature_public_key,
            credential=self.credential,
            capabilities=self.capabilities,
            leaf_node_source=LeafNodeSource.commit,
            parent_hash=b"",
            extensions=extensions,
        )

    def find_key_package(self, ref: bytes) -> KeyPackagePrivate | None:
        return self._pool.get(ref)

    def key_package_refs(self) -> list[bytes]:
        return list(self._pool)

    def consume_key_package(self, ref: bytes) -> None:
        """Delete a used KeyPackage's private keys (kept if it is a last-resort one)."""
        entry = self._pool.get(ref)
        if entry is None:
            raise NoMatchingKeyPackage("no such KeyPackage in this client's pool")
        if not entry.last_resort:
            del self._pool[ref]

    def adopt_key_package(self, private: KeyPackagePrivate) -> None:
        """Add an existing KeyPackage with its private keys (tests, vectors, restored state)."""
        if private.key_package.cipher_suite != self.suite.suite_id:
            raise UsageError("KeyPackage cipher suite differs from the client's")
        self._pool[private.key_package.ref(self.suite)] = private

    # External PSKs (RFC 9420 §8.4): provisioned by the application out of band.

    def add_external_psk(self, psk_id: bytes, secret: bytes) -> None:
        self._external_psks[psk_id] = secret

    def external_psk(self, psk_id: bytes) -> bytes | None:
        return self._external_psks.get(psk_id)

    def remove_external_psk(self, psk_id: bytes) -> None:
        self._external_psks.pop(psk_id, None)

    def to_bytes(self) -> bytes:
        """The client (keys, credential, KeyPackage pool, PSKs) as versioned CBOR."""
        return ClientSnapshot(
            suite=self.suite,
            credential=self.credential,
            signature_private_key=self.signature_private_key,
            signature_public_key=self.signature_public_key,
            capabilities=self.capabilities,
            pool=tuple(
                (p.key_package, p.init_private_key, p.encryption_private_key, p.last_resort)
                for p in self._pool.values()
            ),
            psks=tuple(self._external_psks.items()),
        ).to_bytes()

    @classmethod
    def from_bytes(cls, data: bytes, suite: CipherSuite | None = None) -> Client:
        snap = ClientSnapshot.from_bytes(data, suite)
        cs = snap.suite
        client = cls(
            suite=cs,
            credential=snap.credential,
            signature_private_key=snap.signature_private_key,
            signature_public_key=snap.signature_public_key,
            capabilities=snap.capabilities,
        )
        for kp, init_sk, enc_sk, last_resort in snap.pool:
            client._pool[kp.ref(cs)] = KeyPackagePrivate(kp, init_sk, enc_sk, last_resort)
        client._external_psks.update(snap.psks)
        return client
