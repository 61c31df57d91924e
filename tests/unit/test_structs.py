"""Wire structs of RFC 9420 (credentials, extensions, tree nodes, GroupContext, messages,
framing): round trips, decoder robustness, the §2.1.2 varint rules, truncation, and the
signature / membership-tag helpers checked against the official vectors.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import replace
from functools import cache
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mls.codec.buffer import Buffer, Writer, encode_varint
from mls.codec.wire import decode, encode
from mls.conformance.core import default_vectors_root
from mls.constants import ContentType, ExtensionType, ProposalType, SenderType, WireFormat
from mls.credentials import Credential
from mls.crypto import CipherSuite, get_suite
from mls.errors import (
    BadMembershipTag,
    BadPadding,
    BadSignature,
    DecodeError,
    DuplicateExtension,
    MalformedExtension,
    UsageError,
)
from mls.extensions import (
    ApplicationId,
    Extension,
    ExternalPub,
    ExternalSender,
    ExternalSenders,
    RequiredCapabilities,
    find_extension,
)
from mls.framing.content import (
    AuthenticatedContent,
    FramedContent,
    FramedContentAuthData,
    Sender,
    sign_framed_content,
)
from mls.framing.message import MLSMessage
from mls.framing.private import (
    PrivateContentAAD,
    PrivateMessage,
    PrivateMessageContent,
    SenderData,
    SenderDataAAD,
)
from mls.framing.public import PublicMessage, membership_tag
from mls.messages import (
    Add,
    Commit,
    CustomProposal,
    EncryptedGroupSecrets,
    ExternalInit,
    GroupContextExtensions,
    GroupInfo,
    GroupSecrets,
    HPKECiphertext,
    KeyPackage,
    PathSecret,
    PreSharedKey,
    PreSharedKeyID,
    Proposal,
    ProposalOrRef,
    ReInit,
    Remove,
    Update,
    UpdatePath,
    UpdatePathNode,
    Welcome,
    decode_proposal,
    encode_proposal,
    pull_proposal,
)
from mls.schedule.group_context import GroupContext
from mls.tree.nodes import (
    Capabilities,
    LeafNode,
    Lifetime,
    Node,
    ParentNode,
    decode_node,
    decode_ratchet_tree,
    encode_node,
    encode_ratchet_tree,
    pull_node,
    pull_ratchet_tree,
)

# ---------------------------------------------------------------------------------------------
# Vectors


def _vectors(name: str) -> list[dict[str, Any]]:
    root = default_vectors_root()
    path = None if root is None else Path(root) / "mlswg" / name
    if path is None or not path.is_file():
        pytest.skip(f"official vector file mlswg/{name} not found (set MLS_VECTORS)")
    return _load(str(path))


@cache
def _load(path: str) -> list[dict[str, Any]]:
    with open(path) as f:
        data: list[dict[str, Any]] = json.load(f)
    return data


# ---------------------------------------------------------------------------------------------
# Strategies

u8 = st.integers(0, 0xFF)
u16 = st.integers(0, 0xFFFF)
u32 = st.integers(0, 0xFFFF_FFFF)
u64 = st.integers(0, 0xFFFF_FFFF_FFFF_FFFF)
blob = st.binary(max_size=24)
u16s = st.lists(u16, max_size=4).map(tuple)

credentials = st.one_of(
    st.builds(Credential.basic, blob),
    st.builds(Credential.x509, st.lists(blob, max_size=3).map(tuple)),
    st.builds(Credential.other, u16.filter(lambda t: t not in (1, 2)), blob),
)
extension_lists = st.lists(
    st.builds(Extension, extension_type=u16, extension_data=blob),
    max_size=4,
    unique_by=lambda e: e.extension_type,
).map(tuple)
capabilities = st.builds(
    Capabilities,
    versions=u16s,
    cipher_suites=u16s,
    extensions=u16s,
    proposals=u16s,
    credentials=u16s,
)
lifetimes = st.builds(Lifetime, not_before=u64, not_after=u64)


@st.composite
def leaf_nodes(draw: st.DrawFn, source: int | None = None) -> LeafNode:
    src = draw(st.sampled_from((1, 2, 3))) if source is None else source
    return LeafNode(
        encryption_key=draw(blob),
        signature_key=draw(blob),
        credential=draw(credentials),
        capabilities=draw(capabilities),
        leaf_node_source=src,
        lifetime=draw(lifetimes) if src == 1 else None,
        parent_hash=draw(blob) if src == 3 else None,
        extensions=draw(extension_lists),
        signature=draw(blob),
    )


parent_nodes = st.builds(
    ParentNode,
    encryption_key=blob,
    parent_hash=blob,
    unmerged_leaves=st.lists(u32, max_size=4).map(tuple),
)
nodes: st.SearchStrategy[Node] = st.one_of(leaf_nodes(), parent_nodes)
group_contexts = st.builds(
    GroupContext,
    version=u16,
    cipher_suite=u16,
    group_id=blob,
    epoch=u64,
    tree_hash=blob,
    confirmed_transcript_hash=blob,
    extensions=extension_lists,
)
key_packages = st.builds(
    KeyPackage,
    version=u16,
    cipher_suite=u16,
    init_key=blob,
    leaf_node=leaf_nodes(1),
    extensions=extension_lists,
    signature=blob,
)
psk_ids = st.one_of(
    st.builds(PreSharedKeyID.external, blob, blob),
    st.builds(PreSharedKeyID.resumption, u8, blob, u64, blob),
)
proposals: st.SearchStrategy[Proposal] = st.one_of(
    st.builds(Add, key_package=key_packages),
    st.builds(Update, leaf_node=leaf_nodes(2)),
    st.builds(Remove, removed=u32),
    st.builds(PreSharedKey, psk=psk_ids),
    st.builds(ReInit, group_id=blob, version=u16, cipher_suite=u16, extensions=extension_lists),
    st.builds(ExternalInit, kem_output=blob),
    st.builds(GroupContextExtensions, extensions=extension_lists),
    st.builds(CustomProposal, proposal_type=u16.filter(lambda t: not 1 <= t <= 7), data=blob),
)
proposal_or_refs = st.one_of(
    st.builds(ProposalOrRef, proposal=proposals), st.builds(ProposalOrRef, reference=blob)
)
hpke_cts = st.builds(HPKECiphertext, kem_output=blob, ciphertext=blob)
update_paths = st.builds(
    UpdatePath,
    leaf_node=leaf_nodes(3),
    nodes=st.lists(
        st.builds(
            UpdatePathNode,
            encryption_key=blob,
            encrypted_path_secret=st.lists(hpke_cts, max_size=3).map(tuple),
        ),
        max_size=3,
    ).map(tuple),
)
commits = st.builds(
    Commit,
    proposals=st.lists(proposal_or_refs, max_size=3).map(tuple),
    path=st.none() | update_paths,
)
senders = st.one_of(
    st.builds(Sender.member, u32),
    st.builds(Sender.external, u32),
    st.just(Sender.new_member_proposal()),
    st.just(Sender.new_member_commit()),
)
contents = st.one_of(blob, proposals, commits)


@st.composite
def framed_contents(draw: st.DrawFn) -> FramedContent:
    return FramedContent(
        group_id=draw(blob),
        epoch=draw(u64),
        sender=draw(senders),
        authenticated_data=draw(blob),
        content=draw(contents),
    )


def _auth_for(draw: st.DrawFn, content: FramedContent) -> FramedContentAuthData:
    tag = draw(blob) if isinstance(content.content, Commit) else None
    return FramedContentAuthData(signature=draw(blob), confirmation_tag=tag)


@st.composite
def authenticated_contents(draw: st.DrawFn) -> AuthenticatedContent:
    content = draw(framed_contents())
    return AuthenticatedContent(
        wire_format=draw(u16), content=content, auth=_auth_for(draw, content)
    )


@st.composite
def public_messages(draw: st.DrawFn) -> PublicMessage:
    content = draw(framed_contents())
    tag = draw(blob) if content.sender.sender_type == SenderType.member else None
    return PublicMessage(content=content, auth=_auth_for(draw, content), membership_tag=tag)


private_messages = st.builds(
    PrivateMessage,
    group_id=blob,
    epoch=u64,
    content_type=st.sampled_from((1, 2, 3)),
    authenticated_data=blob,
    encrypted_sender_data=blob,
    ciphertext=blob,
)


@st.composite
def private_contents(draw: st.DrawFn) -> PrivateMessageContent:
    content = draw(contents)
    tag = draw(blob) if isinstance(content, Commit) else None
    auth = FramedContentAuthData(signature=draw(blob), confirmation_tag=tag)
    return PrivateMessageContent(content=content, auth=auth, padding=draw(st.integers(0, 40)))


welcomes = st.builds(
    Welcome,
    cipher_suite=u16,
    secrets=st.lists(
        st.builds(EncryptedGroupSecrets, new_member=blob, encrypted_group_secrets=hpke_cts),
        max_size=3,
    ).map(tuple),
    encrypted_group_info=blob,
)
group_secrets = st.builds(
    GroupSecrets,
    joiner_secret=blob,
    path_secret=st.none() | st.builds(PathSecret, path_secret=blob),
    psks=st.lists(psk_ids, max_size=3).map(tuple),
)
group_infos = st.builds(
    GroupInfo,
    group_context=group_contexts,
    extensions=extension_lists,
    confirmation_tag=blob,
    signer=u32,
    signature=blob,
)
mls_messages = st.builds(
    MLSMessage,
    body=st.one_of(public_messages(), private_messages, welcomes, group_infos, key_packages),
)
external_senders = st.builds(
    ExternalSenders,
    senders=st.lists(
        st.builds(ExternalSender, signature_key=blob, credential=credentials), max_size=3
    ).map(tuple),
)
required_caps = st.builds(
    RequiredCapabilities, extension_types=u16s, proposal_types=u16s, credential_types=u16s
)

# ---------------------------------------------------------------------------------------------
# Codecs under test: name -> (decode(buf) -> object, encode(object) -> bytes)

Codec = tuple[Callable[[Buffer], Any], Callable[[Any], bytes]]


def _struct(cls: Any) -> Codec:
    return cls.decode, encode


CODECS: dict[str, Codec] = {
    "Credential": _struct(Credential),
    "Extension": _struct(Extension),
    "ApplicationId": _struct(ApplicationId),
    "RequiredCapabilities": _struct(RequiredCapabilities),
    "ExternalPub": _struct(ExternalPub),
    "ExternalSenders": _struct(ExternalSenders),
    "Capabilities": _struct(Capabilities),
    "Lifetime": _struct(Lifetime),
    "LeafNode": _struct(LeafNode),
    "ParentNode": _struct(ParentNode),
    "Node": (pull_node, encode_node),
    "ratchet_tree": (pull_ratchet_tree, encode_ratchet_tree),
    "GroupContext": _struct(GroupContext),
    "KeyPackage": _struct(KeyPackage),
    "PreSharedKeyID": _struct(PreSharedKeyID),
    "Add": _struct(Add),
    "Update": _struct(Update),
    "Remove": _struct(Remove),
    "PreSharedKey": _struct(PreSharedKey),
    "ReInit": _struct(ReInit),
    "ExternalInit": _struct(ExternalInit),
    "GroupContextExtensions": _struct(GroupContextExtensions),
    "Proposal": (pull_proposal, encode_proposal),
    "ProposalOrRef": _struct(ProposalOrRef),
    "HPKECiphertext": _struct(HPKECiphertext),
    "UpdatePathNode": _struct(UpdatePathNode),
    "UpdatePath": _struct(UpdatePath),
    "Commit": _struct(Commit),
    "PathSecret": _struct(PathSecret),
    "GroupSecrets": _struct(GroupSecrets),
    "EncryptedGroupSecrets": _struct(EncryptedGroupSecrets),
    "Welcome": _struct(Welcome),
    "GroupInfo": _struct(GroupInfo),
    "Sender": _struct(Sender),
    "FramedContent": _struct(FramedContent),
    "AuthenticatedContent": _struct(AuthenticatedContent),
    "PublicMessage": _struct(PublicMessage),
    "PrivateMessage": _struct(PrivateMessage),
    "SenderData": _struct(SenderData),
    "SenderDataAAD": _struct(SenderDataAAD),
    "PrivateContentAAD": _struct(PrivateContentAAD),
    "MLSMessage": _struct(MLSMessage),
}

STRATEGIES: dict[str, st.SearchStrategy[Any]] = {
    "Credential": credentials,
    "ApplicationId": st.builds(ApplicationId, application_id=blob),
    "RequiredCapabilities": required_caps,
    "ExternalPub": st.builds(ExternalPub, external_pub=blob),
    "ExternalSenders": external_senders,
    "Capabilities": capabilities,
    "Lifetime": lifetimes,
    "LeafNode": leaf_nodes(),
    "ParentNode": parent_nodes,
    "Node": nodes,
    "ratchet_tree": st.lists(st.none() | nodes, max_size=5),
    "GroupContext": group_contexts,
    "KeyPackage": key_packages,
    "PreSharedKeyID": psk_ids,
    "Proposal": proposals,
    "ProposalOrRef": proposal_or_refs,
    "UpdatePath": update_paths,
    "Commit": commits,
    "GroupSecrets": group_secrets,
    "Welcome": welcomes,
    "GroupInfo": group_infos,
    "Sender": senders,
    "FramedContent": framed_contents(),
    "AuthenticatedContent": authenticated_contents(),
    "PublicMessage": public_messages(),
    "PrivateMessage": private_messages,
    "SenderData": st.builds(
        SenderData, leaf_index=u32, generation=u32, reuse_guard=st.binary(min_size=4, max_size=4)
    ),
    "SenderDataAAD": st.builds(SenderDataAAD, group_id=blob, epoch=u64, content_type=u8),
    "PrivateContentAAD": st.builds(
        PrivateContentAAD, group_id=blob, epoch=u64, content_type=u8, authenticated_data=blob
    ),
    "MLSMessage": mls_messages,
}


def _decode_exact(name: str, data: bytes) -> Any:
    """Decode with the raw struct decoder (no boundary translation of stray exceptions)."""
    pull, _ = CODECS[name]
    buf = Buffer(data)
    obj = pull(buf)
    if not buf.eof():
        raise DecodeError("trailing bytes")
    return obj


# ---------------------------------------------------------------------------------------------
# Round trips


@pytest.mark.parametrize("name", sorted(STRATEGIES))
@settings(max_examples=60, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_roundtrip(name: str, data: st.DataObject) -> None:
    obj = data.draw(STRATEGIES[name])
    _, enc = CODECS[name]
    wire = enc(obj)
    back = _decode_exact(name, wire)
    assert back == obj
    assert enc(back) == wire


@settings(max_examples=60)
@given(private_contents())
def test_private_message_content_roundtrip(pmc: PrivateMessageContent) -> None:
    wire = pmc.to_bytes()
    back = PrivateMessageContent.decode_plaintext(wire, pmc.content_type)
    assert back == pmc
    assert back.to_bytes() == wire


@given(private_contents(), st.integers(0, 39), st.integers(1, 255))
def test_private_message_content_nonzero_padding(
    pmc: PrivateMessageContent, where: int, byte: int
) -> None:
    pmc = replace(pmc, padding=40)
    wire = bytearray(pmc.to_bytes())
    wire[len(wire) - 40 + where] = byte
    with pytest.raises(BadPadding):
        PrivateMessageContent.decode_plaintext(bytes(wire), pmc.content_type)


def test_typed_extensions_roundtrip_through_extension() -> None:
    rc = RequiredCapabilities(extension_types=(0x0A0A, 7), proposal_types=(), credential_types=(1,))
    ext = rc.to_extension()
    assert ext.extension_type == ExtensionType.required_capabilities
    assert RequiredCapabilities.from_extension(ext) == rc
    assert RequiredCapabilities.find((ApplicationId(application_id=b"a").to_extension(), ext)) == rc
    assert ExternalPub.find(()) is None
    assert find_extension((ext,), ExtensionType.external_pub) is None
    with pytest.raises(MalformedExtension):
        ExternalPub.from_extension(Extension(extension_type=4, extension_data=b"\x05ab"))
    with pytest.raises(UsageError):
        ExternalPub.from_extension(ext)


# ---------------------------------------------------------------------------------------------
# Decoders on arbitrary and mutated input raise only DecodeError


@pytest.mark.parametrize("name", sorted(CODECS))
@settings(max_examples=150)
@given(data=st.binary(max_size=200))
def test_decoders_raise_only_decode_error(name: str, data: bytes) -> None:
    try:
        obj = _decode_exact(name, data)
    except DecodeError:
        return
    # Every encoding here is canonical (minimal varints, 0/1 presence bytes, no duplicate
    # extensions), so whatever decodes must re-encode to the same bytes.
    assert CODECS[name][1](obj) == data


_MESSAGE_FIELDS = {
    "mls_welcome": "MLSMessage",
    "mls_group_info": "MLSMessage",
    "mls_key_package": "MLSMessage",
    "ratchet_tree": "ratchet_tree",
    "group_secrets": "GroupSecrets",
    "add_proposal": "Add",
    "update_proposal": "Update",
    "remove_proposal": "Remove",
    "pre_shared_key_proposal": "PreSharedKey",
    "re_init_proposal": "ReInit",
    "external_init_proposal": "ExternalInit",
    "group_context_extensions_proposal": "GroupContextExtensions",
    "commit": "Commit",
    "public_message_application": "MLSMessage",
    "public_message_proposal": "MLSMessage",
    "public_message_commit": "MLSMessage",
    "private_message": "MLSMessage",
}


@settings(max_examples=400, deadline=None)
@given(data=st.data())
def test_mutated_vectors_raise_only_decode_error(data: st.DataObject) -> None:
    cases = _vectors("messages.json")
    case = cases[data.draw(st.integers(0, len(cases) - 1), label="case")]
    field = data.draw(st.sampled_from(sorted(_MESSAGE_FIELDS)), label="field")
    wire = bytearray(bytes.fromhex(case[field]))
    for _ in range(data.draw(st.integers(1, 4), label="edits")):
        pos = data.draw(st.integers(0, max(len(wire) - 1, 0)), label="pos")
        kind = data.draw(st.sampled_from(("set", "insert", "delete")), label="kind")
        if kind == "set" and wire:
            wire[pos] = data.draw(u8, label="byte")
        elif kind == "insert":
            wire.insert(pos, data.draw(u8, label="byte"))
        elif wire:
            del wire[pos]
    name = _MESSAGE_FIELDS[field]
    try:
        obj = _decode_exact(name, bytes(wire))
    except DecodeError:
        return
    assert CODECS[name][1](obj) == bytes(wire)


@pytest.mark.parametrize("field", sorted(_MESSAGE_FIELDS))
def test_truncation_at_every_offset(field: str) -> None:
    case = _vectors("messages.json")[0]
    wire = bytes.fromhex(case[field])
    name = _MESSAGE_FIELDS[field]
    assert CODECS[name][1](_decode_exact(name, wire)) == wire
    for cut in range(len(wire)):
        with pytest.raises(DecodeError):
            _decode_exact(name, wire[:cut])
    with pytest.raises(DecodeError):
        _decode_exact(name, wire + b"\x00")


# ---------------------------------------------------------------------------------------------
# Variable-length integers (RFC 9420 §2.1.2)


def _pull_varint(data: bytes) -> int:
    buf = Buffer(data)
    value = buf.pull_varint()
    assert buf.eof()
    return value


def test_varint_all_minimal_one_and_two_byte_forms() -> None:
    for v in range(1 << 14):
        enc = encode_varint(v)
        assert len(enc) == (1 if v < 64 else 2)
        assert _pull_varint(enc) == v


def test_varint_rejects_every_non_minimal_form() -> None:
    # 2-byte forms of 0..63 and 4-byte forms of 0..16383: every one must be rejected.
    for v in range(64):
        with pytest.raises(DecodeError):
            _pull_varint((0x4000 | v).to_bytes(2, "big"))
    for v in range(1 << 14):
        with pytest.raises(DecodeError):
            _pull_varint((0x8000_0000 | v).to_bytes(4, "big"))


@given(st.integers(0x4000, (1 << 30) - 1))
def test_varint_four_byte_roundtrip(v: int) -> None:
    enc = encode_varint(v)
    assert len(enc) == 4 and enc[0] >> 6 == 2
    assert _pull_varint(enc) == v


@pytest.mark.parametrize("first", range(0xC0, 0x100))
def test_varint_rejects_0b11_prefix(first: int) -> None:
    for tail in (b"", b"\x00", b"\x00" * 3, b"\xff" * 7):
        with pytest.raises(DecodeError):
            _pull_varint(bytes([first]) + tail)
        with pytest.raises(DecodeError):
            Buffer(bytes([first]) + tail).pull_opaque()


@given(st.integers(0, (1 << 14) - 1), st.sampled_from((2, 4)))
def test_vector_with_non_minimal_header_is_rejected(length: int, width: int) -> None:
    if width == 2 and length >= 64:
        return  # minimal at this width
    header = ((0x4000 if width == 2 else 0x8000_0000) | length).to_bytes(width, "big")
    with pytest.raises(DecodeError):
        decode(ExternalInit, header + bytes(length))


# ---------------------------------------------------------------------------------------------
# Rules of specific structs


def test_duplicate_extension_types_are_rejected() -> None:
    ext = Extension(extension_type=0x0A0A, extension_data=b"x")
    gce = GroupContextExtensions(extensions=(ext, replace(ext, extension_data=b"y")))
    wire = encode(gce)
    with pytest.raises(DuplicateExtension) as info:
        decode(GroupContextExtensions, wire)
    assert isinstance(info.value, DecodeError)


def test_unknown_types_pass_through() -> None:
    cred = Credential.other(0xF00D, b"custom")
    assert decode(Credential, encode(cred)) == cred
    prop = CustomProposal(proposal_type=0xF123, data=b"body")
    assert decode_proposal(encode_proposal(prop)) == prop
    with pytest.raises(UsageError):
        CustomProposal(proposal_type=ProposalType.remove, data=b"")


def test_envelope_rejects_unknown_version_wire_format_and_types() -> None:
    wire = encode(MLSMessage(body=Welcome(cipher_suite=1, secrets=(), encrypted_group_info=b"gi")))
    assert decode(MLSMessage, wire).wire_format == WireFormat.mls_welcome
    with pytest.raises(DecodeError):
        decode(MLSMessage, b"\x00\x02" + wire[2:])  # version 2
    with pytest.raises(DecodeError):
        decode(MLSMessage, wire[:2] + b"\x00\x06" + wire[4:])  # wire_format 6
    with pytest.raises(DecodeError):
        decode(Sender, b"\x05")
    with pytest.raises(DecodeError):
        decode(LeafNode, encode(_a_leaf())[:-1])
    with pytest.raises(DecodeError):
        decode_node(b"\x03")
    with pytest.raises(DecodeError):
        decode(PreSharedKeyID, b"\x03\x00")
    with pytest.raises(DecodeError):
        decode(ProposalOrRef, b"\x00")
    with pytest.raises(DecodeError):
        decode(PrivateMessage, b"\x00" + bytes(8) + b"\x04" + b"\x00\x00\x00")
    with pytest.raises(DecodeError):
        decode_ratchet_tree(b"\x01\x02")  # presence byte 2


def test_public_message_membership_tag_presence() -> None:
    content = FramedContent(group_id=b"g", epoch=1, sender=Sender.member(0), content=b"hi")
    auth = FramedContentAuthData(signature=b"s")
    with pytest.raises(UsageError):
        PublicMessage(content=content, auth=auth)
    ext = replace(content, sender=Sender.external(0))
    with pytest.raises(UsageError):
        PublicMessage(content=ext, auth=auth, membership_tag=b"t")
    with pytest.raises(UsageError):
        AuthenticatedContent(
            wire_format=1, content=content, auth=replace(auth, confirmation_tag=b"c")
        )


# ---------------------------------------------------------------------------------------------
# Signatures and membership tags


def _a_leaf(source: int = 2) -> LeafNode:
    return LeafNode(
        encryption_key=b"\x01" * 32,
        signature_key=b"",
        credential=Credential.basic(b"alice"),
        capabilities=Capabilities(versions=(1,), cipher_suites=(1,), credentials=(1,)),
        leaf_node_source=source,
        lifetime=Lifetime(not_before=0, not_after=2**64 - 1) if source == 1 else None,
        parent_hash=b"ph" if source == 3 else None,
    )


@pytest.fixture
def cs(suite_id: int) -> CipherSuite:
    return get_suite(suite_id)


@pytest.mark.parametrize("source", [1, 2, 3])
def test_leaf_node_sign_verify(cs: CipherSuite, source: int) -> None:
    sk, pk = cs.generate_signature_key_pair()
    leaf = replace(_a_leaf(source), signature_key=pk).sign(cs, sk, b"group", 3)
    leaf.verify(cs, b"group", 3)
    again = decode(LeafNode, encode(leaf))
    again.verify(cs, b"group", 3)
    if source == 1:
        # A key_package leaf is not bound to a group (§7.2).
        leaf.verify(cs, b"other", 9)
    else:
        with pytest.raises(BadSignature):
            leaf.verify(cs, b"other", 3)
        with pytest.raises(BadSignature):
            leaf.verify(cs, b"group", 4)
        with pytest.raises(UsageError):
            leaf.verify(cs)
    with pytest.raises(BadSignature):
        replace(leaf, encryption_key=b"\x02" * 32).verify(cs, b"group", 3)


def test_key_package_and_group_info_sign_verify(cs: CipherSuite) -> None:
    sk, pk = cs.generate_signature_key_pair()
    leaf = replace(_a_leaf(1), signature_key=pk).sign(cs, sk)
    kp = KeyPackage(cipher_suite=cs.suite_id, init_key=b"\x03" * 32, leaf_node=leaf).sign(cs, sk)
    kp.verify(cs)
    kp2 = decode(KeyPackage, encode(kp))
    kp2.verify(cs)
    assert kp2.ref(cs) == kp.ref(cs) and len(kp.ref(cs)) == cs.hash_len
    with pytest.raises(BadSignature):
        replace(kp, init_key=b"\x04" * 32).verify(cs)

    gc = GroupContext(
        cipher_suite=cs.suite_id,
        group_id=b"g",
        epoch=5,
        tree_hash=b"t",
        confirmed_transcript_hash=b"c",
    )
    gi = GroupInfo(group_context=gc, confirmation_tag=b"tag", signer=2).sign(cs, sk)
    gi.verify(cs, pk)
    decode(GroupInfo, encode(gi)).verify(cs, pk)
    with pytest.raises(BadSignature):
        replace(gi, signer=3).verify(cs, pk)
    with pytest.raises(BadSignature):
        replace(gi, group_context=replace(gc, epoch=6)).verify(cs, pk)


def test_framed_content_sign_verify(cs: CipherSuite) -> None:
    sk, pk = cs.generate_signature_key_pair()
    gc = GroupContext(
        cipher_suite=cs.suite_id,
        group_id=b"g",
        epoch=5,
        tree_hash=b"t",
        confirmed_transcript_hash=b"c",
    )
    content = FramedContent(
        group_id=b"g", epoch=5, sender=Sender.member(1), content=Remove(removed=0)
    )
    sig = sign_framed_content(cs, sk, WireFormat.mls_public_message, content, gc)
    ac = AuthenticatedContent(
        wire_format=WireFormat.mls_public_message,
        content=content,
        auth=FramedContentAuthData(signature=sig),
    )
    ac.verify(cs, pk, gc)
    with pytest.raises(BadSignature):
        ac.verify(cs, pk, replace(gc, epoch=6))
    with pytest.raises(BadSignature):
        replace(ac, wire_format=WireFormat.mls_private_message).verify(cs, pk, gc)
    with pytest.raises(UsageError):
        ac.verify(cs, pk, None)
    assert len(ac.proposal_ref(cs)) == cs.hash_len
    # External senders do not sign over the GroupContext (§6.1).
    ext = replace(content, sender=Sender.external(0))
    sig = sign_framed_content(cs, sk, WireFormat.mls_public_message, ext, None)
    AuthenticatedContent(
        wire_format=1, content=ext, auth=FramedContentAuthData(signature=sig)
    ).verify(cs, pk, None)


def test_vector_key_packages_and_leaves_verify() -> None:
    # Independent check against signatures made by other implementations.
    for case in _vectors("messages.json")[:10]:
        kp = decode(MLSMessage, bytes.fromhex(case["mls_key_package"])).body
        assert isinstance(kp, KeyPackage)
        cs = get_suite(kp.cipher_suite)
        kp.verify(cs)
        kp.leaf_node.verify(cs)
        with pytest.raises(BadSignature):
            replace(kp, extensions=(Extension(extension_type=0x0A0A, extension_data=b""),)).verify(
                cs
            )
    case = _vectors("tree-validation.json")[0]
    cs = get_suite(case["cipher_suite"])
    group_id = bytes.fromhex(case["group_id"])
    tree = decode_ratchet_tree(bytes.fromhex(case["tree"]))
    leaves = [(i // 2, n) for i, n in enumerate(tree) if isinstance(n, LeafNode)]
    assert leaves
    for index, leaf in leaves:
        leaf.verify(cs, group_id, index)


def test_vector_public_messages_verify() -> None:
    for case in _vectors("message-protection.json"):
        cs = get_suite(case["cipher_suite"])
        gc = GroupContext(
            cipher_suite=case["cipher_suite"],
            group_id=bytes.fromhex(case["group_id"]),
            epoch=case["epoch"],
            tree_hash=bytes.fromhex(case["tree_hash"]),
            confirmed_transcript_hash=bytes.fromhex(case["confirmed_transcript_hash"]),
        )
        key = bytes.fromhex(case["membership_key"])
        pub = bytes.fromhex(case["signature_pub"])
        for field, want in (("proposal_pub", "proposal"), ("commit_pub", "commit")):
            msg = decode(MLSMessage, bytes.fromhex(case[field])).body
            assert isinstance(msg, PublicMessage)
            msg.verify_membership_tag(cs, key, gc)
            msg.authenticated_content().verify(cs, pub, gc)
            raw = bytes.fromhex(case[want])
            body = msg.content.content
            if isinstance(body, Commit):
                assert encode(body) == raw
            else:
                assert not isinstance(body, bytes)
                assert encode_proposal(body) == raw
            assert membership_tag(cs, key, msg.content, msg.auth, gc) == msg.membership_tag
            with pytest.raises(BadMembershipTag):
                msg.verify_membership_tag(cs, key, replace(gc, epoch=gc.epoch + 1))
            with pytest.raises(BadSignature):
                msg.authenticated_content().verify(cs, pub, replace(gc, tree_hash=b""))


@pytest.mark.parametrize("index", range(7))
def test_vector_public_messages_resign(index: int) -> None:
    # Re-sign with the vector's private key; the result must verify with its public key.
    cases = _vectors("message-protection.json")
    if index >= len(cases):
        pytest.skip("no such case")
    case = cases[index]
    cs = get_suite(case["cipher_suite"])
    gc = GroupContext(
        cipher_suite=case["cipher_suite"],
        group_id=bytes.fromhex(case["group_id"]),
        epoch=case["epoch"],
        tree_hash=bytes.fromhex(case["tree_hash"]),
        confirmed_transcript_hash=bytes.fromhex(case["confirmed_transcript_hash"]),
    )
    key = bytes.fromhex(case["membership_key"])
    pub = bytes.fromhex(case["signature_pub"])
    sk = bytes.fromhex(case["signature_priv"])
    for field in ("proposal_pub", "commit_pub"):
        msg = decode(MLSMessage, bytes.fromhex(case[field])).body
        assert isinstance(msg, PublicMessage)
        sig = sign_framed_content(cs, sk, WireFormat.mls_public_message, msg.content, gc)
        resigned = replace(msg.auth, signature=sig)
        tag = membership_tag(cs, key, msg.content, resigned, gc)
        again = PublicMessage(content=msg.content, auth=resigned, membership_tag=tag)
        again.verify_membership_tag(cs, key, gc)
        again.authenticated_content().verify(cs, pub, gc)


def test_private_message_aads() -> None:
    pm = PrivateMessage(
        group_id=b"g",
        epoch=7,
        content_type=ContentType.application,
        authenticated_data=b"ad",
        encrypted_sender_data=b"esd",
        ciphertext=b"ct",
    )
    assert pm.sender_data_aad() == b"\x01g" + (7).to_bytes(8, "big") + b"\x01"
    assert pm.content_aad() == b"\x01g" + (7).to_bytes(8, "big") + b"\x01" + b"\x02ad"
    sd = SenderData(leaf_index=1, generation=2, reuse_guard=b"abcd")
    assert sd.to_bytes() == b"\x00\x00\x00\x01\x00\x00\x00\x02abcd"
    with pytest.raises(UsageError):
        SenderData(leaf_index=1, generation=2, reuse_guard=b"abc")


def test_leaf_node_encoding_cache_does_not_leak_into_copies() -> None:
    leaf = _a_leaf()
    first = leaf.to_bytes()
    changed = replace(leaf, encryption_key=b"\x09" * 32)
    assert changed.to_bytes() != first
    assert decode(LeafNode, changed.to_bytes()) == changed
    assert leaf == decode(LeafNode, first)


def test_writer_is_used_by_encode() -> None:
    # encode(w) appends to an existing writer rather than replacing its contents.
    w = Writer()
    w.push_uint8(0xAA)
    _a_leaf().encode(w)
    assert w.getvalue() == b"\xaa" + _a_leaf().to_bytes()
