"""Every receiver-side MUST of RFC 9420, one forged message each (docs/validation.md).

Each test builds, with :mod:`tests.forge`, a message in which exactly one thing is wrong, and
checks that the receiver raises the exact :mod:`mls.errors` leaf for it and that its whole state
(``Group.to_bytes()``, or ``Client.to_bytes()`` for a joiner) is byte-for-byte what it was
before (§12.4.2 stage-then-merge; STYLE example 5). After each test the group must still work:
the ``h`` fixture commits and checks that every member converges.

The group is three members (leaves 0, 1, 2; leaf 3 blank) with PublicMessage handshakes unless a
test says otherwise; leaf 0 forges, leaf 1 receives.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import replace

import pytest

from mls.codec import decode
from mls.constants import (
    CredentialType,
    ExtensionType,
    LeafNodeSource,
    ProtocolVersion,
    ResumptionPSKUsage,
)
from mls.credentials import Credential
from mls.crypto import get_suite
from mls.errors import (
    BadConfirmationTag,
    BadMembershipTag,
    BadPadding,
    BadSenderData,
    BadSignature,
    DecodeError,
    DecryptFailed,
    DuplicateAdd,
    DuplicateEncryptionKey,
    DuplicateExtension,
    DuplicateSignatureKey,
    GenerationOutOfWindow,
    InvalidContentType,
    InvalidCredential,
    InvalidExternalInit,
    InvalidGroupContextExtensions,
    InvalidGroupInfo,
    InvalidKeyPackage,
    InvalidLeafNodeSource,
    InvalidPSK,
    InvalidReInit,
    InvalidRemove,
    InvalidSender,
    InvalidUnmergedLeaves,
    InvalidUpdate,
    InvalidUpdatePath,
    InvalidWelcome,
    LifetimeError,
    MalformedExtension,
    MemberRemoved,
    MissingProposal,
    MissingRequiredCapability,
    MLSError,
    NoMatchingKeyPackage,
    OwnMessage,
    ParentHashMismatch,
    PathRequired,
    PathSecretMismatch,
    ReplayedMessage,
    TreeHashMismatch,
    TreeShapeError,
    UnknownSender,
    UnsupportedCapability,
    UnsupportedCredential,
    UnsupportedLeafExtension,
    WrongEpoch,
    WrongGroup,
)
from mls.extensions import Extension, ExternalSender, ExternalSenders, RequiredCapabilities
from mls.framing.content import AuthenticatedContent, FramedContentAuthData, Sender
from mls.framing.message import MLSMessage
from mls.framing.public import PublicMessage
from mls.group import (
    ApplicationMessage,
    Client,
    CommitMerged,
    Group,
    GroupConfig,
    KeyPackagePrivate,
    ProposalReceived,
    default_capabilities,
)
from mls.messages.commit import Commit
from mls.messages.key_package import KeyPackage
from mls.messages.proposals import (
    Add,
    CustomProposal,
    ExternalInit,
    GroupContextExtensions,
    PreSharedKey,
    PreSharedKeyID,
    Proposal,
    ReInit,
    Remove,
    Update,
)
from mls.tree.nodes import HPKECiphertext, Lifetime, ParentNode, UpdatePath, encode_ratchet_tree
from mls.tree.ratchet_tree import RatchetTree, TreeDiff
from tests.forge import (
    PRIVATE,
    PUBLIC,
    Forger,
    WelcomeForge,
    encrypt_private,
    resign_key_package,
    resign_leaf,
    to_message,
)
from tests.harness import HARNESS_EXT, NOW, TEAM_PSK, GroupHarness

WIRE_FORMATS = pytest.mark.parametrize("wf", [PUBLIC, PRIVATE], ids=["public", "private"])

REQUIREMENTS = pytest.mark.parametrize(
    "req",
    [
        RequiredCapabilities(extension_types=(0xF2F2,)),
        RequiredCapabilities(proposal_types=(0xF2F2,)),
        RequiredCapabilities(credential_types=(0xF2F2,)),
    ],
    ids=["extension", "proposal", "credential"],
)


# -- helpers ----------------------------------------------------------------------------------


@pytest.fixture
def h() -> Iterator[GroupHarness]:
    h = GroupHarness.with_members(3, config=GroupConfig(private_handshake=False))
    yield h
    if not h.members:  # the test consumed the group
        return
    # Whatever was rejected, the group goes on: a fresh commit reaches every member.
    committer = 2 if 2 in h.members else min(h.members)
    h.commit(committer, include_pending=False)
    h.assert_converged()


def reject(g: Group, message: bytes, exc: type[MLSError]) -> MLSError:
    """``g.process(message)`` raises exactly ``exc`` and leaves ``g`` byte-for-byte unchanged."""
    before = g.to_bytes()
    with pytest.raises(exc) as info:
        g.process(message, now=NOW)
    assert type(info.value) is exc, f"{type(info.value).__name__}: {info.value}"
    assert g.to_bytes() == before, "a rejected message changed the group state"
    return info.value


def reject_join(client: Client, call: Callable[[], object], exc: type[MLSError]) -> MLSError:
    """A join attempt raises exactly ``exc`` and leaves ``client`` (its KeyPackage pool)
    unchanged."""
    before = client.to_bytes()
    with pytest.raises(exc) as info:
        call()
    assert type(info.value) is exc, f"{type(info.value).__name__}: {info.value}"
    assert client.to_bytes() == before, "a rejected join changed the client state"
    return info.value


def deliver_to(h: GroupHarness, message: bytes, *leaves: int) -> list[object]:
    return [h.members[i].process(message, now=NOW) for i in leaves]


def ref_of(event: object) -> bytes:
    assert isinstance(event, ProposalReceived)
    return event.ref


def new_kp(h: GroupHarness, name: str = "dave") -> KeyPackage:
    return h.new_client(name).key_package(NOW)


def kp_with(
    client: Client,
    *,
    leaf: dict[str, object] | None = None,
    sign: bool = True,
    **changes: object,
) -> KeyPackage:
    """A KeyPackage of ``client`` with ``leaf`` changes (leaf re-signed) and KeyPackage
    ``changes`` (re-signed unless ``sign`` is False)."""
    cs, sk = client.suite, client.signature_private_key
    kp = client.key_package(NOW)
    if leaf:
        kp = replace(kp, leaf_node=resign_leaf(cs, kp.leaf_node, sk, **leaf))
    return resign_key_package(cs, kp, sk, sign=sign, **changes)


def with_extensions(h: GroupHarness, *extensions: Extension) -> None:
    """A real GroupContextExtensions commit by leaf 2, delivered to everyone."""
    h.commit(2, extensions=list(extensions))


def psk_id(g: Group, **changes: object) -> PreSharedKeyID:
    pid = PreSharedKeyID.external(TEAM_PSK[0], g.suite.random(g.suite.hash_len))
    return replace(pid, **changes)


# == the forge itself: unmodified forged messages are accepted ===============================
# Every test below changes one thing of one of these; if the forge were broken, the rejection
# tests would pass for the wrong reason.


@WIRE_FORMATS
def test_forged_proposal_is_valid(h: GroupHarness, wf: int) -> None:
    ev = h.members[1].process(Forger(h.members[0]).proposal(Remove(removed=2), wire_format=wf))
    assert isinstance(ev, ProposalReceived)


def test_forged_application_message_is_valid(h: GroupHarness) -> None:
    f = Forger(h.members[0])
    ev = h.members[1].process(f.private(f.authenticated(b"hi", wire_format=PRIVATE)))
    assert isinstance(ev, ApplicationMessage) and ev.data == b"hi"


@WIRE_FORMATS
@pytest.mark.parametrize("path", [True, False])
def test_forged_commit_is_valid(h: GroupHarness, wf: int, path: bool) -> None:
    # An Add and a PSK, plus (with a path) an Update of leaf 2 by reference and a
    # GroupContextExtensions: every proposal kind the forge applies itself.
    g0, g1 = h.members[0], h.members[1]
    props: list[Proposal | bytes] = [Add(key_package=new_kp(h)), PreSharedKey(psk=psk_id(g0))]
    if path:
        props.append(ref_of(deliver_to(h, _update(h, leaf=2), 0, 1)[1]))
        ext = Extension(extension_type=HARNESS_EXT, extension_data=b"")
        props.append(GroupContextExtensions(extensions=(ext,)))
    ev = g1.process(Forger(g0).commit(props, path=path, wire_format=wf), now=NOW)
    assert isinstance(ev, CommitMerged) and ev.added == (3,)
    h.members.clear()


def test_forged_external_commit_is_valid(h: GroupHarness) -> None:
    ev = h.members[1].process(Forger(h.members[0]).external_commit(h.new_client("eve")))
    assert isinstance(ev, CommitMerged) and ev.external
    h.members.clear()


# == §6: framing, membership tag, signature, sender ==========================================


@WIRE_FORMATS
def test_wrong_group_id(h: GroupHarness, wf: int) -> None:
    f = Forger(h.members[0])
    msg = f.proposal(Remove(removed=2), wire_format=wf, group_id=b"another group")
    reject(h.members[1], msg, WrongGroup)


@WIRE_FORMATS
@pytest.mark.parametrize("delta", [1, -1])
def test_wrong_epoch(h: GroupHarness, wf: int, delta: int) -> None:
    g1 = h.members[1]
    f = Forger(h.members[0])
    msg = f.proposal(Remove(removed=2), wire_format=wf, epoch=g1.epoch + delta)
    exc = reject(g1, msg, WrongEpoch)
    assert isinstance(exc, WrongEpoch) and exc.expected == g1.epoch


def test_wrong_epoch_application_from_future(h: GroupHarness) -> None:
    g1 = h.members[1]
    f = Forger(h.members[0])
    msg = f.private(f.authenticated(b"hi", wire_format=PRIVATE, epoch=g1.epoch + 1))
    reject(g1, msg, WrongEpoch)


def test_bad_membership_tag(h: GroupHarness) -> None:
    f = Forger(h.members[0])
    auth = f.authenticated(Remove(removed=2))
    reject(h.members[1], f.public(auth, membership_key=bytes(32)), BadMembershipTag)


def test_membership_tag_of_a_past_epoch(h: GroupHarness) -> None:
    f = Forger(h.members[0])
    old_key = h.members[0]._secrets.membership_key
    h.commit(0)
    auth = Forger(h.members[0]).authenticated(Remove(removed=2))
    reject(h.members[1], f.public(auth, membership_key=old_key), BadMembershipTag)


@WIRE_FORMATS
def test_bad_signature(h: GroupHarness, wf: int) -> None:
    f = Forger(h.members[0])
    other_key = h.members[2].client.signature_private_key
    msg = f.proposal(Remove(removed=2), wire_format=wf, key=other_key)
    reject(h.members[1], msg, BadSignature)


def test_signature_over_another_wire_format(h: GroupHarness) -> None:
    # §6.1: the signature covers wire_format; a private-signed content sent as public fails.
    f = Forger(h.members[0])
    content = f.framed(Remove(removed=2))
    sig = f.sign(content, PRIVATE)
    reject(h.members[1], f.public(f.authenticated(Remove(removed=2), signature=sig)), BadSignature)


def test_signature_over_another_group_context(h: GroupHarness) -> None:
    f = Forger(h.members[0])
    g0 = h.members[0]
    ctx = replace(g0._context, tree_hash=bytes(32))
    content = f.framed(Remove(removed=2))
    sig = f.sign(content, PUBLIC, context=ctx)
    reject(h.members[1], f.public(f.authenticated(Remove(removed=2), signature=sig)), BadSignature)


def test_application_data_in_public_message(h: GroupHarness) -> None:
    f = Forger(h.members[0])
    reject(h.members[1], f.public(f.authenticated(b"secret")), InvalidContentType)


def test_welcome_given_to_process(h: GroupHarness) -> None:
    out = h.members[0].commit(add=[new_kp(h)], now=NOW)
    h.members[0].clear_pending_commit()
    assert out.welcome is not None
    reject(h.members[1], out.welcome, InvalidContentType)


@WIRE_FORMATS
@pytest.mark.parametrize("leaf", [3, 7, 1000])
def test_unknown_sender_leaf(h: GroupHarness, wf: int, leaf: int) -> None:
    f = Forger(h.members[0])
    auth = f.authenticated(Remove(removed=2), wire_format=wf, sender=Sender.member(leaf))
    if wf == PUBLIC:
        msg = f.public(auth)
    else:
        # Keys of leaf 0: the receiver must reject the sender leaf before deriving any key.
        g0 = h.members[0]
        key, nonce = f.ratchet_key(0, auth.content.content_type, 0)
        msg = to_message(
            encrypt_private(
                g0.suite,
                auth,
                key=key,
                nonce=nonce,
                generation=0,
                sender_data_secret=g0._secrets.sender_data_secret,
                leaf_index=leaf,
            )
        )
    reject(h.members[1], msg, UnknownSender)


def test_private_sender_impersonation(h: GroupHarness) -> None:
    # Any member can derive leaf 2's keys, but not sign as leaf 2 (§6.1).
    f = Forger(h.members[0])
    auth = f.authenticated(b"hi", wire_format=PRIVATE, sender=Sender.member(2))
    reject(h.members[1], f.private(auth), BadSignature)


def test_own_public_message(h: GroupHarness) -> None:
    g1 = h.members[1]
    reject(g1, Forger(g1).proposal(Remove(removed=2)), InvalidSender)


def test_own_private_message(h: GroupHarness) -> None:
    g1 = h.members[1]
    f = Forger(g1)
    auth = f.authenticated(b"hi", wire_format=PRIVATE)
    reject(g1, f.private(auth, generation=5), OwnMessage)


def test_bad_sender_data(h: GroupHarness) -> None:
    f = Forger(h.members[0])
    auth = f.authenticated(b"hi", wire_format=PRIVATE)
    reject(h.members[1], f.private(auth, sender_data_secret=bytes(32)), BadSenderData)


def test_content_key_of_another_generation(h: GroupHarness) -> None:
    g0 = h.members[0]
    f = Forger(g0)
    auth = f.authenticated(b"hi", wire_format=PRIVATE)
    key, nonce = f.ratchet_key(0, auth.content.content_type, 1)
    msg = encrypt_private(
        g0.suite,
        auth,
        key=key,
        nonce=nonce,
        generation=0,
        sender_data_secret=g0._secrets.sender_data_secret,
    )
    reject(h.members[1], to_message(msg), DecryptFailed)


def test_non_zero_padding(h: GroupHarness) -> None:
    f = Forger(h.members[0])
    auth = f.authenticated(b"hi", wire_format=PRIVATE)
    reject(h.members[1], f.private(auth, padding=b"\x00\x00\x01"), BadPadding)


def test_replayed_private_message(h: GroupHarness) -> None:
    msg = h.members[0].protect(b"once")
    h.members[1].process(msg, now=NOW)
    reject(h.members[1], msg, ReplayedMessage)


def test_generation_too_far_ahead(h: GroupHarness) -> None:
    g1 = h.members[1]
    f = Forger(h.members[0])
    auth = f.authenticated(b"hi", wire_format=PRIVATE)
    ahead = g1.config.max_forward_distance + 1
    reject(g1, f.private(auth, generation=ahead), GenerationOutOfWindow)


def test_generation_behind_window(h: GroupHarness) -> None:
    g0, g1 = h.members[0], h.members[1]
    f = Forger(g0)
    window = g1.config.out_of_order_window
    g1.process(f.private(f.authenticated(b"x", wire_format=PRIVATE), generation=window + 5))
    reject(
        g1,
        f.private(f.authenticated(b"y", wire_format=PRIVATE), generation=1),
        GenerationOutOfWindow,
    )


def test_private_content_type_reinterpreted(h: GroupHarness) -> None:
    # The application data b"\x00\x03abc" also parses as a custom proposal (type 0x0500, data
    # "abc"): relabelled as a proposal (encrypted under the handshake ratchet), it decrypts and
    # decodes, and only the signature (over content_type, §6.1) catches it.
    f = Forger(h.members[0])
    auth = f.authenticated(b"\x00\x03abc", wire_format=PRIVATE)
    reject(h.members[1], f.private(auth, content_type=2, generation=0), BadSignature)


def test_private_content_does_not_parse(h: GroupHarness) -> None:
    # Application bytes relabelled as a commit: the plaintext is not a Commit (§6.3.1).
    f = Forger(h.members[0])
    auth = f.authenticated(b"\xff\xff\xff", wire_format=PRIVATE)
    reject(h.members[1], f.private(auth, content_type=3, generation=0), DecodeError)


def test_external_sender_without_extension(h: GroupHarness) -> None:
    f = Forger(h.members[0])
    auth = f.authenticated(Remove(removed=2), sender=Sender.external(0), key=bytes(32))
    reject(h.members[1], f.public(auth), UnknownSender)


def _server(h: GroupHarness) -> Client:
    server = Client.create(b"server", h.suite)
    ext = ExternalSenders(
        senders=(
            ExternalSender(signature_key=server.signature_public_key, credential=server.credential),
        )
    ).to_extension()
    with_extensions(h, ext)
    return server


def test_external_sender_bad_signature(h: GroupHarness) -> None:
    _server(h)
    f = Forger(h.members[0])
    # Signed by a member's key, not the external sender's.
    auth = f.authenticated(Remove(removed=2), sender=Sender.external(0))
    reject(h.members[1], f.public(auth), BadSignature)


def test_external_sender_index_out_of_range(h: GroupHarness) -> None:
    server = _server(h)
    f = Forger(h.members[0])
    auth = f.authenticated(
        Remove(removed=2), sender=Sender.external(1), key=server.signature_private_key
    )
    reject(h.members[1], f.public(auth), UnknownSender)


def test_external_sender_update_proposal(h: GroupHarness) -> None:
    # §12.1.8: an external sender cannot propose an Update.
    server = _server(h)
    f = Forger(h.members[0])
    upd = Update(leaf_node=f.update_leaf())
    auth = f.authenticated(upd, sender=Sender.external(0), key=server.signature_private_key)
    reject(h.members[1], f.public(auth), InvalidSender)


def test_external_sender_commit(h: GroupHarness) -> None:
    f = Forger(h.members[0])
    msg = f.commit([], sender=Sender.external(0))
    reject(h.members[1], msg, InvalidSender)


def test_new_member_proposal_not_an_add(h: GroupHarness) -> None:
    f = Forger(h.members[0])
    auth = f.authenticated(Remove(removed=2), sender=Sender.new_member_proposal())
    reject(h.members[1], f.public(auth), InvalidSender)


def test_new_member_proposal_bad_signature(h: GroupHarness) -> None:
    f = Forger(h.members[0])
    kp = new_kp(h)
    # Signed by a member, not by the KeyPackage's own leaf key (§12.1.8).
    auth = f.authenticated(Add(key_package=kp), sender=Sender.new_member_proposal())
    reject(h.members[1], f.public(auth), BadSignature)


def test_new_member_commit_carrying_a_proposal(h: GroupHarness) -> None:
    f = Forger(h.members[0])
    auth = f.authenticated(Remove(removed=2), sender=Sender.new_member_commit())
    reject(h.members[1], f.public(auth), InvalidSender)


# == §12.1.1, §10.1, §7.3: Add proposals and KeyPackages ====================================


def _add(h: GroupHarness, kp: KeyPackage, wf: int = PUBLIC) -> bytes:
    return Forger(h.members[0]).proposal(Add(key_package=kp), wire_format=wf)


@WIRE_FORMATS
def test_key_package_wrong_cipher_suite(h: GroupHarness, wf: int) -> None:
    kp = kp_with(h.new_client("dave"), cipher_suite=2)
    reject(h.members[1], _add(h, kp, wf), InvalidKeyPackage)


def test_key_package_wrong_version(h: GroupHarness) -> None:
    kp = kp_with(h.new_client("dave"), version=2)
    reject(h.members[1], _add(h, kp), InvalidKeyPackage)


def test_key_package_bad_signature(h: GroupHarness) -> None:
    kp = kp_with(
        h.new_client("dave"),
        sign=False,
        extensions=(Extension(extension_type=HARNESS_EXT, extension_data=b"x"),),
    )
    reject(h.members[1], _add(h, kp), BadSignature)


def test_key_package_init_key_equals_encryption_key(h: GroupHarness) -> None:
    c = h.new_client("dave")
    kp = c.key_package(NOW)
    kp = resign_key_package(
        c.suite, kp, c.signature_private_key, init_key=kp.leaf_node.encryption_key
    )
    reject(h.members[1], _add(h, kp), InvalidKeyPackage)


@pytest.mark.parametrize("source", [LeafNodeSource.update, LeafNodeSource.commit])
def test_key_package_leaf_source(h: GroupHarness, source: int) -> None:
    c = h.new_client("dave")
    leaf: dict[str, object] = {
        "leaf_node_source": source,
        "lifetime": None,
        "parent_hash": b"" if source == LeafNodeSource.commit else None,
        "group_id": h.members[0].group_id,
        "leaf_index": 3,
    }
    kp = kp_with(c, leaf=leaf)
    reject(h.members[1], _add(h, kp), InvalidLeafNodeSource)


def test_key_package_leaf_bad_signature(h: GroupHarness) -> None:
    c = h.new_client("dave")
    kp = c.key_package(NOW)
    _, pk = c.suite.generate_key_pair()
    bad_leaf = replace(kp.leaf_node, encryption_key=pk)  # old signature no longer verifies
    kp = resign_key_package(c.suite, kp, c.signature_private_key, leaf_node=bad_leaf)
    reject(h.members[1], _add(h, kp), BadSignature)


def test_key_package_lifetime(h: GroupHarness) -> None:
    # §7.3 on receipt: not valid yet beyond GroupConfig.lifetime_skew (expiry is not checked on
    # receipt; see tests/test_policy.py).
    lifetime = Lifetime(not_before=NOW + 1000, not_after=NOW + 2000)
    kp = kp_with(h.new_client("dave"), leaf={"lifetime": lifetime})
    reject(h.members[1], _add(h, kp), LifetimeError)


def test_key_package_credential_not_in_own_capabilities(h: GroupHarness) -> None:
    c = h.new_client("dave")
    caps = replace(c.capabilities, credentials=(CredentialType.x509,))
    kp = kp_with(c, leaf={"capabilities": caps})
    reject(h.members[1], _add(h, kp), UnsupportedCredential)


def test_key_package_credential_type_unsupported_by_members(h: GroupHarness) -> None:
    # §7.3: the new leaf must support every credential type in use (Basic, here).
    c = h.new_client("dave")
    cred = Credential.x509((b"\x30\x00",))
    caps = replace(c.capabilities, credentials=(CredentialType.x509,))
    kp = kp_with(c, leaf={"credential": cred, "capabilities": caps})
    reject(h.members[1], _add(h, kp), UnsupportedCredential)


def test_key_package_leaf_extension_not_in_capabilities(h: GroupHarness) -> None:
    ext = Extension(extension_type=0xF1F1, extension_data=b"")
    kp = kp_with(h.new_client("dave"), leaf={"extensions": (ext,)})
    reject(h.members[1], _add(h, kp), UnsupportedLeafExtension)


def test_key_package_missing_required_capability(h: GroupHarness) -> None:
    req = RequiredCapabilities(extension_types=(HARNESS_EXT,))
    with_extensions(h, req.to_extension())
    c = Client.create(b"dave", h.suite)  # supports no private extension
    reject(h.members[1], _add(h, c.key_package(NOW)), MissingRequiredCapability)


def test_key_package_lacks_group_extension(h: GroupHarness) -> None:
    # §13.4: the new member's capabilities list every GroupContext extension.
    with_extensions(h, Extension(extension_type=HARNESS_EXT, extension_data=b""))
    c = Client.create(b"dave", h.suite)  # does not list HARNESS_EXT
    reject(h.members[1], _add(h, c.key_package(NOW)), UnsupportedCapability)


def test_key_package_duplicate_encryption_key(h: GroupHarness) -> None:
    taken = h.members[2].tree.leaf(2)
    assert taken is not None
    kp = kp_with(h.new_client("dave"), leaf={"encryption_key": taken.encryption_key})
    reject(h.members[1], _add(h, kp), DuplicateEncryptionKey)


def test_key_package_empty_identity(h: GroupHarness) -> None:
    c = h.new_client("")
    reject(h.members[1], _add(h, c.key_package(NOW)), InvalidCredential)


def test_key_package_credential_unsupported_by_a_member(h: GroupHarness) -> None:
    # Member 3 supports only Basic credentials; an X.509 newcomer breaks §7.3.
    caps = replace(default_capabilities(extensions=(HARNESS_EXT,)), credentials=(1,))
    h.add([Client.create(b"basic-only", h.suite, capabilities=caps)], committer=0)
    c = h.new_client("dave")
    kp = kp_with(c, leaf={"credential": Credential.x509((b"\x30\x00",))})
    reject(h.members[1], _add(h, kp), UnsupportedCredential)


def test_key_package_unknown_credential_type(h: GroupHarness) -> None:
    # BasicIdentityProvider accepts Basic and X.509 only (§5.3.1: the AS decides).
    c = h.new_client("dave")
    caps = replace(c.capabilities, credentials=(1, 2, 0xF3F3))
    kp = kp_with(c, leaf={"credential": Credential.other(0xF3F3, b"x"), "capabilities": caps})
    reject(h.members[1], _add(h, kp), UnsupportedCredential)


def test_key_package_empty_certificate_chain(h: GroupHarness) -> None:
    kp = kp_with(h.new_client("dave"), leaf={"credential": Credential.x509(())})
    reject(h.members[1], _add(h, kp), InvalidCredential)


# == §12.1.2: Update proposals ===============================================================


def _update(h: GroupHarness, leaf: int = 0, wf: int = PUBLIC, **changes: object) -> bytes:
    f = Forger(h.members[leaf])
    return f.proposal(Update(leaf_node=f.update_leaf(**changes)), wire_format=wf)


@WIRE_FORMATS
def test_update_keeps_encryption_key(h: GroupHarness, wf: int) -> None:
    old = h.members[0].tree.leaf(0)
    assert old is not None
    reject(h.members[1], _update(h, wf=wf, encryption_key=old.encryption_key), InvalidUpdate)


def test_update_leaf_source_key_package(h: GroupHarness) -> None:
    life = Lifetime(not_before=0, not_after=NOW + 1000)
    msg = _update(h, leaf_node_source=LeafNodeSource.key_package, lifetime=life)
    reject(h.members[1], msg, InvalidLeafNodeSource)


def test_update_signed_for_another_leaf(h: GroupHarness) -> None:
    f = Forger(h.members[0])
    leaf = f.update_leaf()
    leaf = resign_leaf(f.cs, leaf, f.sk, f.g.group_id, 2)  # LeafNodeTBS names leaf 2
    reject(h.members[1], f.proposal(Update(leaf_node=leaf)), BadSignature)


def test_update_signed_for_another_group(h: GroupHarness) -> None:
    f = Forger(h.members[0])
    leaf = resign_leaf(f.cs, f.update_leaf(), f.sk, b"another group", 0)
    reject(h.members[1], f.proposal(Update(leaf_node=leaf)), BadSignature)


def test_update_takes_another_members_signature_key(h: GroupHarness) -> None:
    # The forger signs its Update with leaf 2's key pair (a stolen key): unique keys, §7.3.
    g2 = h.members[2]
    f = Forger(h.members[0])
    old = f.g.tree.leaf(0)
    assert old is not None
    _, pk = f.cs.generate_key_pair()
    leaf = resign_leaf(
        f.cs,
        old,
        g2.client.signature_private_key,
        f.g.group_id,
        0,
        encryption_key=pk,
        signature_key=g2.client.signature_public_key,
        leaf_node_source=LeafNodeSource.update,
        lifetime=None,
        parent_hash=None,
    )
    auth = f.authenticated(Update(leaf_node=leaf))
    reject(h.members[1], f.public(auth), DuplicateSignatureKey)


def test_update_from_external_sender_via_new_member_commit(h: GroupHarness) -> None:
    # A new_member_commit sender may only carry a commit (§6.1), not an Update proposal.
    f = Forger(h.members[0])
    auth = f.authenticated(Update(leaf_node=f.update_leaf()), sender=Sender.new_member_commit())
    reject(h.members[1], f.public(auth), InvalidSender)


def test_update_drops_group_extension(h: GroupHarness) -> None:
    with_extensions(h, Extension(extension_type=HARNESS_EXT, extension_data=b""))
    caps = default_capabilities()  # without HARNESS_EXT
    reject(h.members[1], _update(h, capabilities=caps), UnsupportedCapability)


# == §12.1.3: Remove ==========================================================================


@pytest.mark.parametrize("leaf", [3, 4, 2**32 - 1])
def test_remove_of_blank_or_unknown_leaf(h: GroupHarness, leaf: int) -> None:
    reject(h.members[1], Forger(h.members[0]).proposal(Remove(removed=leaf)), InvalidRemove)


# == §12.1.4, §8.4: PreSharedKey ==============================================================


def _psk(h: GroupHarness, pid: PreSharedKeyID) -> bytes:
    return Forger(h.members[0]).proposal(PreSharedKey(psk=pid))


@pytest.mark.parametrize("length", [0, 16, 33])
def test_psk_nonce_length(h: GroupHarness, length: int) -> None:
    pid = psk_id(h.members[0], psk_nonce=bytes(length))
    reject(h.members[1], _psk(h, pid), InvalidPSK)


@pytest.mark.parametrize("usage", [ResumptionPSKUsage.reinit, ResumptionPSKUsage.branch, 0, 9])
def test_psk_resumption_usage(h: GroupHarness, usage: int) -> None:
    g0 = h.members[0]
    pid = PreSharedKeyID.resumption(usage, g0.group_id, g0.epoch, bytes(32))
    reject(h.members[1], _psk(h, pid), InvalidPSK)


def test_psk_unknown_external(h: GroupHarness) -> None:
    pid = psk_id(h.members[0], psk_id=b"nobody has this")
    reject(h.members[1], _psk(h, pid), InvalidPSK)


def test_psk_resumption_of_another_group(h: GroupHarness) -> None:
    g0 = h.members[0]
    pid = PreSharedKeyID.resumption(ResumptionPSKUsage.application, b"other", g0.epoch, bytes(32))
    reject(h.members[1], _psk(h, pid), InvalidPSK)


def test_psk_resumption_of_unknown_epoch(h: GroupHarness) -> None:
    g0 = h.members[0]
    pid = PreSharedKeyID.resumption(ResumptionPSKUsage.application, g0.group_id, 99, bytes(32))
    reject(h.members[1], _psk(h, pid), InvalidPSK)


# == §12.1.5 - §12.1.7: ReInit, ExternalInit, GroupContextExtensions, custom types ============


@pytest.mark.parametrize("version", [ProtocolVersion.reserved, 2, 0xFFFF], ids=str)
def test_reinit_to_older_or_unknown_version(h: GroupHarness, version: int) -> None:
    g0 = h.members[0]
    p = ReInit(group_id=b"new", version=version, cipher_suite=1, extensions=())
    reject(h.members[1], Forger(g0).proposal(p), InvalidReInit)


def test_external_init_from_a_member(h: GroupHarness) -> None:
    ext, _ = Forger(h.members[0]).external_init()
    reject(h.members[1], Forger(h.members[0]).proposal(ext), InvalidExternalInit)


@REQUIREMENTS
def test_gce_required_capability_a_member_lacks(h: GroupHarness, req: RequiredCapabilities) -> None:
    p = GroupContextExtensions(extensions=(req.to_extension(),))
    reject(h.members[1], Forger(h.members[0]).proposal(p), InvalidGroupContextExtensions)


def test_gce_extension_a_member_does_not_support(h: GroupHarness) -> None:
    p = GroupContextExtensions(extensions=(Extension(extension_type=0xF2F2, extension_data=b""),))
    reject(h.members[1], Forger(h.members[0]).proposal(p), UnsupportedCapability)


@pytest.mark.parametrize(
    "ext_type", [ExtensionType.external_senders, ExtensionType.required_capabilities], ids=str
)
def test_gce_malformed_extension(h: GroupHarness, ext_type: int) -> None:
    p = GroupContextExtensions(
        extensions=(Extension(extension_type=ext_type, extension_data=b"\x05"),)
    )
    reject(h.members[1], Forger(h.members[0]).proposal(p), MalformedExtension)


def test_custom_proposal_type_unsupported(h: GroupHarness) -> None:
    p = CustomProposal(proposal_type=0xF3F3, data=b"x")
    reject(h.members[1], Forger(h.members[0]).proposal(p), UnsupportedCapability)


# == §12.2: proposal list validation (regular commits) =======================================


@WIRE_FORMATS
def test_commit_update_from_committer(h: GroupHarness, wf: int) -> None:
    g0 = h.members[0]
    ref = ref_of(*deliver_to(h, g0.propose_update(), 1))
    reject(h.members[1], Forger(g0).commit([ref], wire_format=wf), InvalidUpdate)


@WIRE_FORMATS
def test_commit_removes_committer(h: GroupHarness, wf: int) -> None:
    reject(
        h.members[1],
        Forger(h.members[0]).commit([Remove(removed=0)], wire_format=wf),
        InvalidRemove,
    )


@WIRE_FORMATS
def test_commit_update_and_remove_of_one_leaf(h: GroupHarness, wf: int) -> None:
    ref = ref_of(deliver_to(h, _update(h, leaf=2), 0, 1)[1])
    msg = Forger(h.members[0]).commit([ref, Remove(removed=2)], wire_format=wf)
    reject(h.members[1], msg, InvalidRemove)


def test_commit_remove_and_update_of_one_leaf(h: GroupHarness) -> None:
    ref = ref_of(deliver_to(h, _update(h, leaf=2), 0, 1)[1])
    msg = Forger(h.members[0]).commit([Remove(removed=2), ref])
    reject(h.members[1], msg, InvalidUpdate)


def test_commit_two_removes_of_one_leaf(h: GroupHarness) -> None:
    msg = Forger(h.members[0]).commit([Remove(removed=2), Remove(removed=2)])
    reject(h.members[1], msg, InvalidRemove)


def test_commit_two_updates_of_one_leaf(h: GroupHarness) -> None:
    r1 = ref_of(deliver_to(h, _update(h, leaf=2), 0, 1)[1])
    r2 = ref_of(deliver_to(h, _update(h, leaf=2), 0, 1)[1])
    reject(h.members[1], Forger(h.members[0]).commit([r1, r2]), InvalidUpdate)


@WIRE_FORMATS
def test_commit_two_adds_of_one_client(h: GroupHarness, wf: int) -> None:
    dave = h.new_client("dave")
    kps = [Add(key_package=dave.key_package(NOW)) for _ in range(2)]
    reject(h.members[1], Forger(h.members[0]).commit(kps, wire_format=wf), DuplicateAdd)


def test_commit_two_adds_of_one_identity(h: GroupHarness) -> None:
    # Two clients with the same Basic identity and different signature keys: the same client
    # to the application (BasicIdentityProvider.same_client).
    a, b = h.new_client("dave"), h.new_client("dave")
    adds = [Add(key_package=a.key_package(NOW)), Add(key_package=b.key_package(NOW))]
    reject(h.members[1], Forger(h.members[0]).commit(adds), DuplicateAdd)


@WIRE_FORMATS
def test_commit_add_of_existing_member(h: GroupHarness, wf: int) -> None:
    # Member 2's client publishes a new KeyPackage (same signature key) and is added again.
    kp = h.members[2].client.key_package(NOW)
    msg = Forger(h.members[0]).commit([Add(key_package=kp)], wire_format=wf)
    reject(h.members[1], msg, DuplicateAdd)


def test_commit_add_of_existing_member_by_reference(h: GroupHarness) -> None:
    kp = h.members[2].client.key_package(NOW)
    ref = ref_of(deliver_to(h, _add(h, kp), 1)[0])
    # The proposal is cached (it could be committed with a Remove of leaf 2); alone it is not.
    h.members[0]._proposals[ref] = h.members[1]._proposals[ref]
    reject(h.members[1], Forger(h.members[0]).commit([ref]), DuplicateAdd)
    del h.members[0]._proposals[ref]


def test_commit_add_of_existing_member_with_its_remove_is_valid(h: GroupHarness) -> None:
    # §12.2: "... unless there is a Remove proposal in the list removing the matching client".
    g2 = h.members[2]
    kp = g2.client.key_package(NOW)
    msg = Forger(h.members[0]).commit([Remove(removed=2), Add(key_package=kp)])
    events = h.deliver(msg, sender=0)
    assert isinstance(events[1], CommitMerged) and events[1].added == (2,)
    h.members.clear()  # the forger did not follow its own commit


def test_commit_add_of_identity_already_member() -> None:
    # A new client with member 2's Basic identity but a fresh signature key: the same client
    # to the application (BasicIdentityProvider.same_client), so §12.2 forbids the Add.
    h = GroupHarness.with_members(3, config=GroupConfig(private_handshake=False))
    kp = Client.create(h.members[2].client.identity, h.suite).key_package(NOW)
    reject(h.members[1], Forger(h.members[0]).commit([Add(key_package=kp)]), DuplicateAdd)


def test_commit_duplicate_psk_ids(h: GroupHarness) -> None:
    pid = psk_id(h.members[0])
    msg = Forger(h.members[0]).commit([PreSharedKey(psk=pid), PreSharedKey(psk=pid)])
    reject(h.members[1], msg, InvalidPSK)


def test_commit_two_group_context_extensions(h: GroupHarness) -> None:
    gce = GroupContextExtensions(extensions=())
    reject(h.members[1], Forger(h.members[0]).commit([gce, gce]), InvalidGroupContextExtensions)


def test_commit_reinit_with_other_proposals(h: GroupHarness) -> None:
    r = ReInit(group_id=b"new", version=ProtocolVersion.mls10, cipher_suite=1, extensions=())
    msg = Forger(h.members[0]).commit([r, Remove(removed=2)])
    reject(h.members[1], msg, InvalidReInit)


def test_commit_external_init_in_regular_commit(h: GroupHarness) -> None:
    f = Forger(h.members[0])
    ext, _ = f.external_init()
    reject(h.members[1], f.commit([ext]), InvalidExternalInit)


def test_commit_unsupported_proposal_type(h: GroupHarness) -> None:
    p = CustomProposal(proposal_type=0xF3F3, data=b"")
    reject(h.members[1], Forger(h.members[0]).commit([p]), UnsupportedCapability)


def test_commit_update_by_value(h: GroupHarness) -> None:
    # §12.4: Update proposals are committed by reference only (the committer cannot sign for
    # another leaf, and its own Update is the path).
    f = Forger(h.members[0])
    reject(h.members[1], f.commit([Update(leaf_node=f.update_leaf())]), InvalidUpdate)


@WIRE_FORMATS
def test_commit_unknown_proposal_reference(h: GroupHarness, wf: int) -> None:
    reject(h.members[1], Forger(h.members[0]).commit([bytes(32)], wire_format=wf), MissingProposal)


def test_commit_reference_from_another_epoch(h: GroupHarness) -> None:
    ref = ref_of(deliver_to(h, Forger(h.members[2]).proposal(Remove(removed=0)), 1)[0])
    h.commit(2)
    reject(h.members[1], Forger(h.members[0]).commit([ref]), MissingProposal)


def test_commit_add_with_invalid_key_package(h: GroupHarness) -> None:
    kp = kp_with(h.new_client("dave"), cipher_suite=3)
    reject(h.members[1], Forger(h.members[0]).commit([Add(key_package=kp)]), InvalidKeyPackage)


def test_commit_add_lacking_required_capability(h: GroupHarness) -> None:
    req = RequiredCapabilities(extension_types=(HARNESS_EXT,))
    with_extensions(h, req.to_extension())
    kp = Client.create(b"dave", h.suite).key_package(NOW)
    msg = Forger(h.members[0]).commit([Add(key_package=kp)])
    reject(h.members[1], msg, MissingRequiredCapability)


def test_commit_gce_required_capability_a_new_member_lacks(h: GroupHarness) -> None:
    # §12.1.7: "including those added in the same Commit". §12.3: the Add (by value) is judged
    # with the new extensions, so its leaf lacks a required capability.
    req = RequiredCapabilities(extension_types=(HARNESS_EXT,))
    kp = Client.create(b"dave", h.suite).key_package(NOW)
    gce = GroupContextExtensions(extensions=(req.to_extension(),))
    msg = Forger(h.members[0]).commit([gce, Add(key_package=kp)])
    reject(h.members[1], msg, MissingRequiredCapability)


def test_commit_gce_required_capability_a_new_member_by_reference_lacks(
    h: GroupHarness,
) -> None:
    # The same Add received first as a proposal (valid in the current context), then committed
    # by reference with the GroupContextExtensions: the tree after the list fails §12.1.7.
    req = RequiredCapabilities(extension_types=(HARNESS_EXT,))
    kp = Client.create(b"dave", h.suite).key_package(NOW)
    ref = ref_of(deliver_to(h, Forger(h.members[0]).proposal(Add(key_package=kp)), 1)[0])
    gce = GroupContextExtensions(extensions=(req.to_extension(),))
    msg = Forger(h.members[0]).commit([gce, ref])
    reject(h.members[1], msg, InvalidGroupContextExtensions)


def test_commit_remove_of_blank_leaf(h: GroupHarness) -> None:
    reject(h.members[1], Forger(h.members[0]).commit([Remove(removed=3)]), InvalidRemove)


def test_commit_two_adds_share_an_encryption_key(h: GroupHarness) -> None:
    # Two different clients whose KeyPackages carry one encryption key: each is fine against
    # the current tree, but the new tree would hold the key twice (§7.3 uniqueness).
    first = new_kp(h, "dave")
    second = kp_with(h.new_client("erin"), leaf={"encryption_key": first.leaf_node.encryption_key})
    msg = Forger(h.members[0]).commit([Add(key_package=first), Add(key_package=second)])
    reject(h.members[1], msg, DuplicateEncryptionKey)


def test_commit_add_and_update_share_an_encryption_key(h: GroupHarness) -> None:
    upd = Forger(h.members[2]).update_leaf()
    ref = ref_of(deliver_to(h, Forger(h.members[2]).proposal(Update(leaf_node=upd)), 0, 1)[1])
    kp = kp_with(h.new_client("dave"), leaf={"encryption_key": upd.encryption_key})
    msg = Forger(h.members[0]).commit([ref, Add(key_package=kp)])
    reject(h.members[1], msg, DuplicateEncryptionKey)


def test_commit_add_and_update_share_a_signature_key(h: GroupHarness) -> None:
    # Member 2 moves to a new signature key that a KeyPackage added in the same commit uses.
    dave = h.new_client("dave")
    g2 = h.members[2]
    f2 = Forger(g2)
    old = g2.tree.leaf(2)
    assert old is not None
    _, pk = g2.suite.generate_key_pair()
    upd = resign_leaf(
        g2.suite,
        old,
        dave.signature_private_key,
        g2.group_id,
        2,
        encryption_key=pk,
        signature_key=dave.signature_public_key,
        leaf_node_source=LeafNodeSource.update,
        lifetime=None,
        parent_hash=None,
    )
    ref = ref_of(deliver_to(h, f2.proposal(Update(leaf_node=upd)), 0, 1)[1])
    msg = Forger(h.members[0]).commit([ref, Add(key_package=dave.key_package(NOW))])
    reject(h.members[1], msg, DuplicateSignatureKey)


# == §12.4: commit path and confirmation ======================================================


@pytest.mark.parametrize(
    "proposals",
    [
        pytest.param([], id="empty"),
        pytest.param([Remove(removed=2)], id="remove"),
        pytest.param([GroupContextExtensions(extensions=())], id="gce"),
    ],
)
def test_commit_path_required(h: GroupHarness, proposals: list[Proposal]) -> None:
    reject(h.members[1], Forger(h.members[0]).commit(proposals, path=False), PathRequired)


def test_commit_path_required_for_update(h: GroupHarness) -> None:
    ref = ref_of(deliver_to(h, _update(h, leaf=2), 0, 1)[1])
    reject(h.members[1], Forger(h.members[0]).commit([ref], path=False), PathRequired)


def test_commit_add_without_path_is_valid(h: GroupHarness) -> None:
    # The counterpart: Add and PSK proposals do not require a path (§12.4).
    msg = Forger(h.members[0]).commit([Add(key_package=new_kp(h))], path=False)
    assert isinstance(h.members[1].process(msg, now=NOW), CommitMerged)
    h.members.clear()


def _drop_node(path: UpdatePath, _: TreeDiff) -> UpdatePath:
    return replace(path, nodes=path.nodes[:-1])


def _extra_node(path: UpdatePath, diff: TreeDiff) -> UpdatePath:
    _, pk = get_suite(1).generate_key_pair()
    return replace(path, nodes=(*path.nodes, replace(path.nodes[-1], encryption_key=pk)))


@WIRE_FORMATS
@pytest.mark.parametrize("mutate", [_drop_node, _extra_node], ids=["short", "long"])
def test_commit_path_wrong_length(
    h: GroupHarness, wf: int, mutate: Callable[[UpdatePath, TreeDiff], UpdatePath]
) -> None:
    msg = Forger(h.members[0]).commit([], mutate_path=mutate, wire_format=wf)
    reject(h.members[1], msg, InvalidUpdatePath)


def test_commit_path_wrong_ciphertext_count(h: GroupHarness) -> None:
    def mutate(path: UpdatePath, _: TreeDiff) -> UpdatePath:
        top = path.nodes[-1]
        extra = (*top.encrypted_path_secret, top.encrypted_path_secret[0])
        return replace(path, nodes=(*path.nodes[:-1], replace(top, encrypted_path_secret=extra)))

    reject(h.members[1], Forger(h.members[0]).commit([], mutate_path=mutate), InvalidUpdatePath)


def test_commit_path_garbage_ciphertext(h: GroupHarness) -> None:
    # Leaf 1 decrypts the top node's first ciphertext (the resolution of the copath {1}).
    g1 = h.members[1]
    f = Forger(h.members[0])

    def mutate(path: UpdatePath, diff: TreeDiff) -> UpdatePath:
        nodes = list(path.nodes)
        for i, node in enumerate(nodes):
            cts = [
                HPKECiphertext(kem_output=c.kem_output, ciphertext=bytes(len(c.ciphertext)))
                for c in node.encrypted_path_secret
            ]
            nodes[i] = replace(node, encrypted_path_secret=tuple(cts))
        return replace(path, nodes=tuple(nodes))

    reject(g1, f.commit([], mutate_path=mutate), DecryptFailed)


def test_commit_path_public_key_mismatch(h: GroupHarness) -> None:
    def mutate(path: UpdatePath, _: TreeDiff) -> UpdatePath:
        _, pk = h.members[0].suite.generate_key_pair()
        top = replace(path.nodes[-1], encryption_key=pk)
        return replace(path, nodes=(*path.nodes[:-1], top))

    # The leaf's parent hash covers the path keys: a changed key breaks it first.
    reject(h.members[1], Forger(h.members[0]).commit([], mutate_path=mutate), ParentHashMismatch)


def test_commit_path_secret_gives_another_public_key(h: GroupHarness) -> None:
    # The first path node (which leaf 1 decrypts) gets a key that its path secret does not
    # derive; the parent hashes are consistent with it, so only §12.4.2's key check fails.
    def swap_first(keys: list[bytes]) -> list[bytes]:
        _, pk = h.members[0].suite.generate_key_pair()
        return [pk, *keys[1:]]

    msg = Forger(h.members[0]).commit([], path_keys=swap_first)
    reject(h.members[1], msg, InvalidUpdatePath)


def test_commit_path_leaf_source_update(h: GroupHarness) -> None:
    msg = Forger(h.members[0]).commit(
        [], leaf_changes=dict(leaf_node_source=LeafNodeSource.update, parent_hash=None)
    )
    reject(h.members[1], msg, InvalidLeafNodeSource)


def test_commit_path_leaf_keeps_old_encryption_key(h: GroupHarness) -> None:
    old = h.members[0].tree.leaf(0)
    assert old is not None
    msg = Forger(h.members[0]).commit([], leaf_changes=dict(encryption_key=old.encryption_key))
    reject(h.members[1], msg, InvalidUpdate)


def test_commit_path_leaf_encryption_key_of_another_member(h: GroupHarness) -> None:
    other = h.members[0].tree.leaf(2)
    assert other is not None
    msg = Forger(h.members[0]).commit([], leaf_changes=dict(encryption_key=other.encryption_key))
    reject(h.members[1], msg, DuplicateEncryptionKey)


def test_commit_path_node_key_already_in_tree(h: GroupHarness) -> None:
    other = h.members[0].tree.leaf(2)
    assert other is not None

    def mutate(path: UpdatePath, _: TreeDiff) -> UpdatePath:
        top = replace(path.nodes[-1], encryption_key=other.encryption_key)
        return replace(path, nodes=(*path.nodes[:-1], top))

    reject(
        h.members[1], Forger(h.members[0]).commit([], mutate_path=mutate), DuplicateEncryptionKey
    )


def test_commit_path_repeats_a_key(h: GroupHarness) -> None:
    def mutate(path: UpdatePath, _: TreeDiff) -> UpdatePath:
        top = replace(path.nodes[-1], encryption_key=path.leaf_node.encryption_key)
        return replace(path, nodes=(*path.nodes[:-1], top))

    reject(
        h.members[1], Forger(h.members[0]).commit([], mutate_path=mutate), DuplicateEncryptionKey
    )


def test_commit_path_leaf_parent_hash(h: GroupHarness) -> None:
    msg = Forger(h.members[0]).commit([], leaf_changes=dict(parent_hash=bytes(32)))
    reject(h.members[1], msg, ParentHashMismatch)


def test_commit_path_leaf_bad_signature(h: GroupHarness) -> None:
    def mutate(path: UpdatePath, _: TreeDiff) -> UpdatePath:
        return replace(path, leaf_node=replace(path.leaf_node, signature=bytes(64)))

    reject(h.members[1], Forger(h.members[0]).commit([], mutate_path=mutate), BadSignature)


def test_commit_path_leaf_signature_key_of_another_member(h: GroupHarness) -> None:
    g2 = h.members[2]
    g0 = h.members[0]

    def mutate(path: UpdatePath, _: TreeDiff) -> UpdatePath:
        leaf = resign_leaf(
            g0.suite,
            path.leaf_node,
            g2.client.signature_private_key,
            g0.group_id,
            0,
            signature_key=g2.client.signature_public_key,
        )
        return replace(path, leaf_node=leaf)

    reject(h.members[1], Forger(g0).commit([], mutate_path=mutate), DuplicateSignatureKey)


def test_commit_path_leaf_invalid_credential(h: GroupHarness) -> None:
    msg = Forger(h.members[0]).commit([], leaf_changes={"credential": Credential.basic(b"")})
    reject(h.members[1], msg, InvalidCredential)


def test_commit_path_leaf_drops_group_extension(h: GroupHarness) -> None:
    with_extensions(h, Extension(extension_type=HARNESS_EXT, extension_data=b""))
    msg = Forger(h.members[0]).commit([], leaf_changes={"capabilities": default_capabilities()})
    reject(h.members[1], msg, UnsupportedCapability)


def test_commit_path_leaf_unsupported_extension(h: GroupHarness) -> None:
    msg = Forger(h.members[0]).commit(
        [], leaf_changes=dict(extensions=(Extension(extension_type=0xF4F4, extension_data=b""),))
    )
    reject(h.members[1], msg, UnsupportedLeafExtension)


@WIRE_FORMATS
def test_commit_bad_confirmation_tag(h: GroupHarness, wf: int) -> None:
    msg = Forger(h.members[0]).commit([], confirmation_tag=bytes(32), wire_format=wf)
    reject(h.members[1], msg, BadConfirmationTag)


def test_commit_confirmation_tag_of_another_init_secret(h: GroupHarness) -> None:
    msg = Forger(h.members[0]).commit([Remove(removed=2)], init_secret=bytes(32))
    reject(h.members[1], msg, BadConfirmationTag)


@WIRE_FORMATS
def test_commit_bad_signature(h: GroupHarness, wf: int) -> None:
    key = h.members[2].client.signature_private_key
    reject(h.members[1], Forger(h.members[0]).commit([], key=key, wire_format=wf), BadSignature)


def test_commit_bad_membership_tag(h: GroupHarness) -> None:
    msg = Forger(h.members[0]).commit([], membership_key=bytes(32))
    reject(h.members[1], msg, BadMembershipTag)


@WIRE_FORMATS
def test_commit_wrong_epoch(h: GroupHarness, wf: int) -> None:
    msg = Forger(h.members[0]).commit([], epoch=h.members[0].epoch + 1, wire_format=wf)
    reject(h.members[1], msg, WrongEpoch)


@WIRE_FORMATS
def test_commit_wrong_group(h: GroupHarness, wf: int) -> None:
    msg = Forger(h.members[0]).commit([], group_id=b"elsewhere", wire_format=wf)
    reject(h.members[1], msg, WrongGroup)


def test_commit_from_blank_leaf(h: GroupHarness) -> None:
    msg = Forger(h.members[0]).commit(
        [Add(key_package=new_kp(h))], path=False, sender=Sender.member(3)
    )
    reject(h.members[1], msg, UnknownSender)


def test_commit_after_own_removal_is_refused(h: GroupHarness) -> None:
    # A removed member processes no further handshake (§12.4.2: it "cannot send any more").
    h.commit(0, remove=[1])
    gone = h.removed[0]
    reject(gone, Forger(h.members[0]).commit([]), MemberRemoved)


def test_private_handshake_to_removed_member(h: GroupHarness) -> None:
    h.commit(0, remove=[1])
    gone = h.removed[0]
    reject(gone, Forger(h.members[0]).commit([], wire_format=PRIVATE), MemberRemoved)


# == §12.4.3.2: external commits =============================================================


def _joiner(h: GroupHarness) -> Client:
    return h.new_client("eve")


def test_external_commit_without_external_init(h: GroupHarness) -> None:
    msg = Forger(h.members[0]).external_commit(_joiner(h), [])
    reject(h.members[1], msg, InvalidExternalInit)


def test_external_commit_two_external_inits(h: GroupHarness) -> None:
    f = Forger(h.members[0])
    a, _ = f.external_init()
    b, _ = f.external_init()
    reject(h.members[1], f.external_commit(_joiner(h), [a, b]), InvalidExternalInit)


def test_external_commit_proposal_by_reference(h: GroupHarness) -> None:
    f = Forger(h.members[0])
    ref = ref_of(deliver_to(h, Forger(h.members[2]).proposal(Remove(removed=0)), 1)[0])
    ext, _ = f.external_init()
    reject(h.members[1], f.external_commit(_joiner(h), [ext, ref]), InvalidExternalInit)


def test_external_commit_removes_another_member(h: GroupHarness) -> None:
    f = Forger(h.members[0])
    ext, _ = f.external_init()
    reject(
        h.members[1], f.external_commit(_joiner(h), [ext, Remove(removed=2)]), InvalidExternalInit
    )


def test_external_commit_two_removes(h: GroupHarness) -> None:
    # A resync by member 2's own client, removing its old leaf twice.
    f = Forger(h.members[0])
    ext, _ = f.external_init()
    props = [ext, Remove(removed=2), Remove(removed=2)]
    reject(h.members[1], f.external_commit(h.members[2].client, props), InvalidExternalInit)


@pytest.mark.parametrize(
    "extra",
    [
        pytest.param(lambda h: Add(key_package=new_kp(h)), id="add"),
        pytest.param(lambda h: GroupContextExtensions(extensions=()), id="gce"),
        pytest.param(
            lambda h: ReInit(group_id=b"n", version=1, cipher_suite=1, extensions=()), id="reinit"
        ),
    ],
)
def test_external_commit_forbidden_proposal(
    h: GroupHarness, extra: Callable[[GroupHarness], Proposal]
) -> None:
    f = Forger(h.members[0])
    ext, _ = f.external_init()
    reject(h.members[1], f.external_commit(_joiner(h), [ext, extra(h)]), InvalidExternalInit)


def test_external_commit_without_path(h: GroupHarness) -> None:
    msg = Forger(h.members[0]).external_commit(_joiner(h), path=False)
    reject(h.members[1], msg, InvalidExternalInit)


def test_external_commit_not_signed_by_path_leaf(h: GroupHarness) -> None:
    # §12.4.3.2: the signature MUST verify with the path leaf's key; here a member signed it.
    msg = Forger(h.members[0]).external_commit(
        _joiner(h), key=h.members[0].client.signature_private_key
    )
    reject(h.members[1], msg, BadSignature)


def test_external_commit_bad_kem_output(h: GroupHarness) -> None:
    f = Forger(h.members[0])
    msg = f.external_commit(_joiner(h), [ExternalInit(kem_output=b"\x01" * 5)])
    reject(h.members[1], msg, InvalidExternalInit)


def test_external_commit_other_init_secret(h: GroupHarness) -> None:
    # A well-formed kem_output whose init secret the joiner does not know: the tag fails.
    f = Forger(h.members[0])
    ext, _ = f.external_init()
    reject(h.members[1], f.external_commit(_joiner(h), [ext]), BadConfirmationTag)


def test_external_commit_path_leaf_source_update(h: GroupHarness) -> None:
    msg = _external_with_leaf(
        h, _joiner(h), leaf_node_source=LeafNodeSource.update, parent_hash=None
    )
    reject(h.members[1], msg, InvalidLeafNodeSource)


def test_external_commit_path_leaf_bad_signature(h: GroupHarness) -> None:
    # The path leaf is signed over leaf index 2, but the joiner sits at leaf 3 (§7.2).
    reject(h.members[1], _external_with_leaf(h, _joiner(h), leaf_index=2), BadSignature)


def _external_with_leaf(
    h: GroupHarness, joiner: Client, leaf_index: int = 3, **changes: object
) -> bytes:
    """An external commit whose path leaf has ``changes`` (re-signed by the joiner)."""
    f = Forger(h.members[0])
    msg = decode(MLSMessage, f.external_commit(joiner))
    pub = msg.body
    assert isinstance(pub, PublicMessage)
    commit = pub.content.content
    assert isinstance(commit, Commit) and commit.path is not None
    leaf = resign_leaf(
        f.cs,
        commit.path.leaf_node,
        joiner.signature_private_key,
        f.g.group_id,
        leaf_index,
        **changes,
    )
    body = replace(commit, path=replace(commit.path, leaf_node=leaf))
    content = replace(pub.content, content=body)
    sig = f.sign(content, PUBLIC, key=joiner.signature_private_key)
    auth = AuthenticatedContent(
        wire_format=PUBLIC,
        content=content,
        auth=FramedContentAuthData(signature=sig, confirmation_tag=pub.auth.confirmation_tag),
    )
    return to_message(PublicMessage(content=content, auth=auth.auth, membership_tag=None))


def test_external_commit_in_private_message(h: GroupHarness) -> None:
    # A PrivateMessage sender is a member leaf by construction (§6.3.2): an external joiner
    # cannot produce one, and a member cannot send ExternalInit.
    f = Forger(h.members[0])
    ext, _ = f.external_init()
    reject(h.members[1], f.commit([ext], wire_format=PRIVATE), InvalidExternalInit)


def _resync(h: GroupHarness, receiver: int, **leaf_changes: object) -> bytes:
    """Member 2's client rejoins by external commit, removing its old leaf 2."""
    f = Forger(h.members[receiver])
    ext, init_secret = f.external_init()
    return f.external_commit(
        h.members[2].client,
        [ext, Remove(removed=2)],
        init_secret=init_secret,
        leaf_changes=leaf_changes or None,
    )


def test_external_resync_is_valid(h: GroupHarness) -> None:
    ev = h.members[1].process(_resync(h, 1), now=NOW)
    assert isinstance(ev, CommitMerged) and ev.external and ev.removed == (2,)
    h.members.clear()


@pytest.mark.parametrize("blank_first", [False, True], ids=["same-slot", "other-slot"])
def test_external_resync_keeps_old_encryption_key(h: GroupHarness, blank_first: bool) -> None:
    # §12.4.3.2: with a Remove, the path LeafNode "MUST meet the same criteria as would the
    # LeafNode in an Update for the removed leaf"; an Update's encryption_key differs from the
    # replaced leaf's (§7.3). With leaf 1 blank first, the joiner lands on leaf 1, not 2.
    if blank_first:
        h.commit(0, remove=[1])
    old = h.members[0].tree.leaf(2)
    assert old is not None
    reject(h.members[0], _resync(h, 0, encryption_key=old.encryption_key), InvalidUpdate)


# == §12.4.3.1: Welcome ======================================================================


@pytest.fixture
def wf_() -> WelcomeForge:
    """Leaf 0 of a two-member group just added "joiner" (leaf 2) without a path."""
    h = GroupHarness.with_members(2, config=GroupConfig(private_handshake=False))
    return WelcomeForge.make(h.members[0], h.new_client("joiner"))


def join(
    w: WelcomeForge, welcome: bytes, *, tree: bool = False, **kw: object
) -> Callable[[], object]:
    ratchet_tree = w.tree().encode_tree() if tree else None
    return lambda: Group.join(w.joiner, welcome, ratchet_tree=ratchet_tree, now=NOW, **kw)  # type: ignore[arg-type]


def test_welcome_valid(wf_: WelcomeForge) -> None:
    # The baseline every test below changes one thing of.
    g = Group.join(wf_.joiner, wf_.welcome(), now=NOW)
    assert g.epoch_authenticator == wf_.adder.epoch_authenticator


def test_welcome_not_for_us(wf_: WelcomeForge) -> None:
    reject_join(wf_.joiner, join(wf_, wf_.welcome(new_member=bytes(32))), NoMatchingKeyPackage)


def test_welcome_cipher_suite_differs(wf_: WelcomeForge) -> None:
    reject_join(wf_.joiner, join(wf_, wf_.welcome(cipher_suite=3)), InvalidWelcome)


def test_welcome_key_package_cipher_suite_differs(wf_: WelcomeForge) -> None:
    # A KeyPackage of another suite in the pool under the ref the Welcome names (§12.4.3.1:
    # "if the cipher suite indicated in the KeyPackage does not match ... return an error").
    c = wf_.joiner
    other = c.key_package(NOW)
    ref = other.ref(c.suite)
    entry = c._pool.pop(ref)
    odd = replace(other, cipher_suite=2)
    c._pool[ref] = KeyPackagePrivate(odd, entry.init_private_key, entry.encryption_private_key)
    reject_join(c, join(wf_, wf_.welcome(new_member=ref, init_key=other.init_key)), InvalidWelcome)


def test_welcome_group_secrets_for_another_key(wf_: WelcomeForge) -> None:
    _, pk = wf_.cs.generate_key_pair()
    reject_join(wf_.joiner, join(wf_, wf_.welcome(init_key=pk)), DecryptFailed)


def test_welcome_wrong_joiner_secret(wf_: WelcomeForge) -> None:
    # The GroupInfo is encrypted under the real welcome secret, the GroupSecrets carry another.
    w = wf_.welcome(joiner_secret=bytes(32))
    reject_join(wf_.joiner, join(wf_, w), BadConfirmationTag)


def test_welcome_group_info_under_another_key(wf_: WelcomeForge) -> None:
    w = wf_.welcome(group_info_secret=bytes(32))
    reject_join(wf_.joiner, join(wf_, w), DecryptFailed)


def test_welcome_group_info_bad_signature(wf_: WelcomeForge) -> None:
    other, _ = get_suite(1).generate_signature_key_pair()
    gi = wf_.group_info(key=other)
    reject_join(wf_.joiner, join(wf_, wf_.welcome(gi)), BadSignature)


@pytest.mark.parametrize("signer", [3, 4, 2**32 - 1])
def test_welcome_group_info_signer_not_a_member(wf_: WelcomeForge, signer: int) -> None:
    gi = wf_.group_info(signer=signer)
    reject_join(wf_.joiner, join(wf_, wf_.welcome(gi)), InvalidGroupInfo)


def test_welcome_tree_hash_mismatch(wf_: WelcomeForge) -> None:
    ctx = replace(wf_.adder.context, tree_hash=bytes(32))
    gi = wf_.group_info(group_context=ctx)
    reject_join(wf_.joiner, join(wf_, wf_.welcome(gi, retag=True)), TreeHashMismatch)


def test_welcome_tree_hash_mismatch_out_of_band_tree(wf_: WelcomeForge) -> None:
    # The tree supplied by the delivery service is that of the previous epoch.
    gi = wf_.group_info(with_tree=False)
    tree = wf_.tree().copy()
    d = tree.diff()
    d.remove_leaf(2)
    old_tree = d.merge().encode_tree()
    call = lambda: Group.join(wf_.joiner, wf_.welcome(gi), ratchet_tree=old_tree, now=NOW)  # noqa: E731
    reject_join(wf_.joiner, call, TreeHashMismatch)


def test_welcome_wrong_confirmation_tag(wf_: WelcomeForge) -> None:
    gi = wf_.group_info(confirmation_tag=bytes(32))
    reject_join(wf_.joiner, join(wf_, wf_.welcome(gi)), BadConfirmationTag)


@pytest.mark.parametrize("field", ["cipher_suite", "version"])
def test_welcome_group_info_suite_or_version(wf_: WelcomeForge, field: str) -> None:
    ctx = replace(wf_.adder.context, **{field: 2})
    gi = wf_.group_info(group_context=ctx)
    reject_join(wf_.joiner, join(wf_, wf_.welcome(gi)), InvalidWelcome)


def test_welcome_our_leaf_not_in_tree(wf_: WelcomeForge) -> None:
    # Addressed (and encrypted) to another KeyPackage of the joiner that was never added.
    other = wf_.joiner.key_package(NOW)
    w = wf_.welcome(new_member=other.ref(wf_.cs), init_key=other.init_key)
    reject_join(wf_.joiner, join(wf_, w), InvalidWelcome)


def test_welcome_unknown_psk(wf_: WelcomeForge) -> None:
    pid = PreSharedKeyID.external(b"unknown", bytes(32))
    w = wf_.welcome(psks=[(pid, bytes(32))], retag=True)
    reject_join(wf_.joiner, join(wf_, w), InvalidPSK)


def test_welcome_two_reinit_or_branch_psks(wf_: WelcomeForge) -> None:
    gid = wf_.adder.group_id
    a = PreSharedKeyID.resumption(ResumptionPSKUsage.reinit, gid, 1, bytes(32))
    b = PreSharedKeyID.resumption(ResumptionPSKUsage.branch, gid, 1, bytes(32))
    secrets = {(gid, 1): bytes(32)}
    w = wf_.welcome(psks=[(a, bytes(32)), (b, bytes(32))], retag=True)
    reject_join(wf_.joiner, join(wf_, w, resumption_psks=secrets), InvalidPSK)


def test_welcome_reinit_psk_not_at_epoch_one(wf_: WelcomeForge) -> None:
    assert wf_.adder.epoch != 1
    pid = PreSharedKeyID.resumption(ResumptionPSKUsage.reinit, b"old group", 5, bytes(32))
    w = wf_.welcome(psks=[(pid, bytes(32))], retag=True)
    reject_join(
        wf_.joiner, join(wf_, w, resumption_psks={(b"old group", 5): bytes(32)}), InvalidWelcome
    )


def test_welcome_path_secret_mismatch(wf_: WelcomeForge) -> None:
    w = wf_.welcome(path_secret=bytes(32))
    reject_join(wf_.joiner, join(wf_, w), PathSecretMismatch)


def test_welcome_without_ratchet_tree(wf_: WelcomeForge) -> None:
    w = wf_.welcome(wf_.group_info(with_tree=False))
    reject_join(wf_.joiner, join(wf_, w), InvalidWelcome)


def test_welcome_joiner_lacks_cipher_suite_capability() -> None:
    h = GroupHarness.with_members(2, config=GroupConfig(private_handshake=False))
    caps = replace(default_capabilities(extensions=(HARNESS_EXT,)), cipher_suites=(2,))
    joiner = Client.create(b"suite-2-only", h.suite, capabilities=caps)
    w = WelcomeForge.make(h.members[0], joiner)
    reject_join(joiner, join(w, w.welcome()), UnsupportedCapability)


def test_welcome_group_extension_unsupported_by_joiner(wf_: WelcomeForge) -> None:
    # §13.4: "A client joining a group MUST verify that it supports every extension in the
    # GroupContext for the group."
    ext = Extension(extension_type=0xF5F5, extension_data=b"")
    ctx = replace(wf_.adder.context, extensions=(ext,))
    gi = wf_.group_info(group_context=ctx)
    reject_join(wf_.joiner, join(wf_, wf_.welcome(gi, retag=True)), UnsupportedCapability)


@REQUIREMENTS
def test_welcome_tree_leaf_lacks_required_capability(
    wf_: WelcomeForge, req: RequiredCapabilities
) -> None:
    # §12.4.3.1 / §7.3: every leaf supports the group's required capabilities; here the
    # GroupContext requires a type (0xF2F2) no leaf lists.
    ctx = replace(wf_.adder.context, extensions=(req.to_extension(),))
    gi = wf_.group_info(group_context=ctx)
    reject_join(wf_.joiner, join(wf_, wf_.welcome(gi, retag=True)), MissingRequiredCapability)


def _tree_with(wf_: WelcomeForge, node: int, **changes: object) -> tuple[bytes, bytes]:
    """(ratchet_tree, Welcome) where ``node`` has ``changes`` (a leaf is re-signed by its
    owner: the joiner at leaf 2, else the adder); the GroupInfo carries the changed tree's hash
    (and is re-signed), so only the tree's inner rule is broken."""
    nodes = wf_.tree().to_nodes()
    p = nodes[node]
    if isinstance(p, ParentNode):
        nodes[node] = replace(p, **changes)
    else:
        assert p is not None
        owner = wf_.joiner if node == 4 else wf_.adder.client
        gid = wf_.adder.group_id
        nodes[node] = resign_leaf(wf_.cs, p, owner.signature_private_key, gid, node // 2, **changes)
    tree = RatchetTree.from_nodes(wf_.cs, nodes)
    ctx = replace(wf_.adder.context, tree_hash=tree.tree_hash())
    gi = wf_.group_info(group_context=ctx, with_tree=False)
    return tree.encode_tree(), wf_.welcome(gi, retag=True)


def test_welcome_tree_parent_hash_invalid(wf_: WelcomeForge) -> None:
    tree, w = _tree_with(wf_, 1, parent_hash=b"\x07" * 32)
    call = lambda: Group.join(wf_.joiner, w, ratchet_tree=tree, now=NOW)  # noqa: E731
    reject_join(wf_.joiner, call, ParentHashMismatch)


def test_welcome_tree_unmerged_leaves_invalid(wf_: WelcomeForge) -> None:
    tree, w = _tree_with(wf_, 1, unmerged_leaves=(2,))  # leaf 2 is not below node 1
    call = lambda: Group.join(wf_.joiner, w, ratchet_tree=tree, now=NOW)  # noqa: E731
    reject_join(wf_.joiner, call, InvalidUnmergedLeaves)


def test_welcome_tree_duplicate_encryption_key(wf_: WelcomeForge) -> None:
    leaf0 = wf_.tree().leaf(0)
    assert leaf0 is not None
    tree, w = _tree_with(wf_, 4, encryption_key=leaf0.encryption_key)
    call = lambda: Group.join(wf_.joiner, w, ratchet_tree=tree, now=NOW)  # noqa: E731
    reject_join(wf_.joiner, call, DuplicateEncryptionKey)


def test_welcome_tree_leaf_lacks_credential_in_use(wf_: WelcomeForge) -> None:
    caps = replace(wf_.joiner.capabilities, credentials=(2,))
    cred = Credential.x509((b"\x30\x00",))
    tree, w = _tree_with(wf_, 4, credential=cred, capabilities=caps)
    call = lambda: Group.join(wf_.joiner, w, ratchet_tree=tree, now=NOW)  # noqa: E731
    reject_join(wf_.joiner, call, UnsupportedCredential)


def test_welcome_tree_leaf_bad_signature(wf_: WelcomeForge) -> None:
    # The joiner's own leaf (node 4, covered by no parent hash) with a zeroed signature.
    nodes = wf_.tree().to_nodes()
    leaf = nodes[4]
    assert leaf is not None and not isinstance(leaf, ParentNode)
    nodes[4] = replace(leaf, signature=bytes(len(leaf.signature)))
    tree = RatchetTree.from_nodes(wf_.cs, nodes)
    ctx = replace(wf_.adder.context, tree_hash=tree.tree_hash())
    w = wf_.welcome(wf_.group_info(group_context=ctx, with_tree=False), retag=True)
    data = tree.encode_tree()
    call = lambda: Group.join(wf_.joiner, w, ratchet_tree=data, now=NOW)  # noqa: E731
    reject_join(wf_.joiner, call, BadSignature)


def test_welcome_tree_unmerged_leaves_unsorted(wf_: WelcomeForge) -> None:
    tree, w = _tree_with(wf_, 1, unmerged_leaves=(1, 0))
    call = lambda: Group.join(wf_.joiner, w, ratchet_tree=tree, now=NOW)  # noqa: E731
    reject_join(wf_.joiner, call, InvalidUnmergedLeaves)


def test_welcome_malformed_tree(wf_: WelcomeForge) -> None:
    w = wf_.welcome(wf_.group_info(with_tree=False))
    call = lambda: Group.join(wf_.joiner, w, ratchet_tree=b"\x05garbage", now=NOW)  # noqa: E731
    reject_join(wf_.joiner, call, DecodeError)


# == §12.4.3.2: GroupInfo for an external join ===============================================


def ext_join(client: Client, gi: object, **kw: object) -> Callable[[], object]:
    data = to_message(gi)  # type: ignore[arg-type]
    return lambda: Group.external_join(client, data, now=NOW, **kw)  # type: ignore[arg-type]


def test_group_info_valid(h: GroupHarness) -> None:
    g, _ = ext_join(_joiner(h), Forger(h.members[0]).group_info())()  # type: ignore[misc]
    assert isinstance(g, Group)


def test_group_info_bad_signature(h: GroupHarness) -> None:
    gi = Forger(h.members[0]).group_info(key=h.members[1].client.signature_private_key)
    eve = _joiner(h)
    reject_join(eve, ext_join(eve, gi), BadSignature)


def test_group_info_without_external_pub(h: GroupHarness) -> None:
    eve = _joiner(h)
    reject_join(
        eve, ext_join(eve, Forger(h.members[0]).group_info(external_pub=False)), InvalidGroupInfo
    )


def test_group_info_cipher_suite_differs(h: GroupHarness) -> None:
    ctx = replace(h.members[0].context, cipher_suite=2)
    eve = _joiner(h)
    reject_join(
        eve, ext_join(eve, Forger(h.members[0]).group_info(group_context=ctx)), InvalidGroupInfo
    )


def test_group_info_tree_hash_mismatch(h: GroupHarness) -> None:
    ctx = replace(h.members[0].context, tree_hash=bytes(32))
    eve = _joiner(h)
    reject_join(
        eve, ext_join(eve, Forger(h.members[0]).group_info(group_context=ctx)), TreeHashMismatch
    )


@pytest.mark.parametrize("signer", [3, 9])
def test_group_info_signer_not_a_member(h: GroupHarness, signer: int) -> None:
    eve = _joiner(h)
    reject_join(
        eve, ext_join(eve, Forger(h.members[0]).group_info(signer=signer)), InvalidGroupInfo
    )


def test_group_info_without_ratchet_tree(h: GroupHarness) -> None:
    eve = _joiner(h)
    reject_join(
        eve, ext_join(eve, Forger(h.members[0]).group_info(with_tree=False)), InvalidGroupInfo
    )


def test_group_info_duplicate_extension(h: GroupHarness) -> None:
    # §13.4: no two extensions of one type; caught while decoding.
    f = Forger(h.members[0])
    gi = f.group_info()
    gi = replace(gi, extensions=(*gi.extensions, gi.extensions[-1])).sign(f.cs, f.sk)
    eve = _joiner(h)
    reject_join(eve, ext_join(eve, gi), DuplicateExtension)


def test_group_info_tree_ends_blank(h: GroupHarness) -> None:
    # §12.4.3.3: the encoded tree never ends in a blank node.
    f = Forger(h.members[0])
    nodes = [*h.members[0].tree.to_nodes(), None, None]
    tree_ext = Extension(
        extension_type=ExtensionType.ratchet_tree, extension_data=encode_ratchet_tree(nodes)
    )
    gi = f.group_info(with_tree=False)
    gi = replace(gi, extensions=(tree_ext, *gi.extensions)).sign(f.cs, f.sk)
    eve = _joiner(h)
    reject_join(eve, ext_join(eve, gi), TreeShapeError)


# == §12.4.3.1: Welcomes of a ReInit or a branch (§11.2, §11.3) ==============================


def _reinit_welcome(
    group_id: bytes = b"reborn", creator: str = "old", psk: bool = True
) -> tuple[Group, Client, bytes]:
    """A two-member group re-initialised to group "reborn"; a new group made by member 0's
    client (or a stranger) adds member 1's client, with the reinit PSK (or without).
    Returns (member 1's old group, its client, the Welcome)."""
    h = GroupHarness.with_members(2, config=GroupConfig(private_handshake=False))
    h.commit(0, reinit=ReInit(group_id=b"reborn", version=1, cipher_suite=1, extensions=()))
    old0, old1 = h.members[0], h.members[1]
    maker = old0.client if creator == "old" else h.new_client("stranger")
    new = Group.create(maker, group_id, now=NOW)
    wf = WelcomeForge.make(new, old1.client)
    psks = []
    if psk:
        pid = PreSharedKeyID.resumption(
            ResumptionPSKUsage.reinit, old1.group_id, old1.epoch, bytes(32)
        )
        psks.append((pid, old1._secrets.resumption_psk))
    return old1, old1.client, wf.welcome(psks=psks, retag=True)


def test_join_reinit_valid() -> None:
    old, client, w = _reinit_welcome()
    assert old.join_reinit(client, w, now=NOW).group_id == b"reborn"


@pytest.mark.parametrize(
    "kw",
    [
        pytest.param({"psk": False}, id="no-reinit-psk"),
        pytest.param({"group_id": b"other"}, id="other-group-id"),
        pytest.param({"creator": "stranger"}, id="old-member-missing"),
    ],
)
def test_join_reinit_mismatch(kw: dict[str, object]) -> None:
    old, client, w = _reinit_welcome(**kw)  # type: ignore[arg-type]
    reject_join(client, lambda: old.join_reinit(client, w, now=NOW), InvalidReInit)


def _branch_welcome(creator: str = "old", psk: bool = True) -> tuple[Group, Client, bytes]:
    """Member 0 of a two-member group (or a stranger) branches a subgroup adding member 1."""
    h = GroupHarness.with_members(2, config=GroupConfig(private_handshake=False))
    old0, old1 = h.members[0], h.members[1]
    maker = old0.client if creator == "old" else h.new_client("stranger")
    new = Group.create(maker, b"branch", now=NOW)
    wf = WelcomeForge.make(new, old1.client)
    psks = []
    if psk:
        pid = PreSharedKeyID.resumption(
            ResumptionPSKUsage.branch, old1.group_id, old1.epoch, bytes(32)
        )
        psks.append((pid, old1._secrets.resumption_psk))
    return old1, old1.client, wf.welcome(psks=psks, retag=True)


def test_join_branch_valid() -> None:
    old, client, w = _branch_welcome()
    assert old.join_branch(client, w, now=NOW).group_id == b"branch"


def test_join_branch_without_branch_psk() -> None:
    old, client, w = _branch_welcome(psk=False)
    reject_join(client, lambda: old.join_branch(client, w, now=NOW), InvalidPSK)


def test_join_branch_stranger_in_subgroup() -> None:
    old, client, w = _branch_welcome(creator="stranger")
    reject_join(client, lambda: old.join_branch(client, w, now=NOW), InvalidWelcome)
