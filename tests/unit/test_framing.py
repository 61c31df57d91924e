"""Unit tests of message protection (RFC 9420 §6.2, §6.3) and Welcome encryption (§12.4.3.1).

Each rejection path has its precise error leaf; a failed decryption leaves the receiver's
ratchets as they were (the same message, intact, still decrypts afterwards); Hypothesis feeds
mutated messages and arbitrary sender data and expects only ``MLSError`` subclasses.

Messages with chosen plaintexts (non-zero padding, arbitrary sender data) are built by
:func:`_manual_encrypt`, which follows §6.3.1/§6.3.2 step by step with the labeled KDF, the
AEAD and the wire structs, independently of :mod:`mls.framing.protection`.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mls.codec.wire import decode, encode
from mls.conformance.core import default_vectors_root
from mls.constants import ContentType, ResumptionPSKUsage, WireFormat
from mls.crypto import CipherSuite, CryptoProvider, get_suite
from mls.crypto.labels import expand_with_label
from mls.errors import (
    BadMembershipTag,
    BadPadding,
    BadSenderData,
    BadSignature,
    DecodeError,
    DecryptFailed,
    GenerationOutOfWindow,
    InvalidContentType,
    InvalidPSK,
    InvalidSender,
    InvalidWelcome,
    MLSError,
    NoMatchingKeyPackage,
    OwnMessage,
    ReplayedMessage,
    UnknownSender,
    UsageError,
)
from mls.framing.content import (
    AuthenticatedContent,
    Content,
    FramedContent,
    FramedContentAuthData,
    Sender,
    sign_framed_content,
    verify_framed_content,
)
from mls.framing.message import MLSMessage
from mls.framing.private import (
    PrivateContentAAD,
    PrivateMessage,
    PrivateMessageContent,
    SenderData,
    SenderDataAAD,
)
from mls.framing.protection import (
    DEFAULT_PADDING_BLOCK,
    decrypt_private_message,
    decrypt_sender_data,
    encrypt_private_message,
    padding_length,
    public_message_from,
    verify_membership_tag,
)
from mls.framing.public import PublicMessage
from mls.messages.commit import Commit
from mls.messages.key_package import KeyPackage
from mls.messages.proposals import PreSharedKeyID, Remove
from mls.messages.welcome import Welcome
from mls.messages.welcome_crypto import (
    build_welcome,
    decrypt_group_info,
    encrypt_group_info,
    open_welcome,
)
from mls.schedule.group_context import GroupContext
from mls.schedule.key_schedule import welcome_secret
from mls.schedule.secret_tree import SecretTree

PRIVATE = WireFormat.mls_private_message
PUBLIC = WireFormat.mls_public_message
APP = ContentType.application
SENDER = 1
LEAVES = 4
TAG_LEN = 16  # Every RFC 9420 suite's AEAD (AES-GCM, ChaCha20-Poly1305) has a 16-byte tag.


@dataclass
class Env:
    cs: CipherSuite
    sk: bytes
    pk: bytes
    ctx: GroupContext
    encryption_secret: bytes
    sender_data_secret: bytes
    membership_key: bytes

    def content(
        self,
        body: Content,
        *,
        wire_format: int = PRIVATE,
        sender: Sender | None = None,
        authenticated_data: bytes = b"ad",
    ) -> AuthenticatedContent:
        sender = Sender.member(SENDER) if sender is None else sender
        framed = FramedContent(
            group_id=self.ctx.group_id,
            epoch=self.ctx.epoch,
            sender=sender,
            authenticated_data=authenticated_data,
            content=body,
        )
        sig = sign_framed_content(self.cs, self.sk, wire_format, framed, self.ctx)
        tag = self.cs.mac(b"confirm", b"transcript") if isinstance(body, Commit) else None
        auth = FramedContentAuthData(signature=sig, confirmation_tag=tag)
        return AuthenticatedContent(wire_format=wire_format, content=framed, auth=auth)

    def sender_tree(self) -> SecretTree:
        return SecretTree(self.cs, self.encryption_secret, LEAVES, own_leaf=SENDER)

    def receiver_tree(self, **kw: Any) -> SecretTree:
        return SecretTree(self.cs, self.encryption_secret, LEAVES, own_leaf=0, **kw)

    def encrypt(self, ac: AuthenticatedContent, tree: SecretTree, **kw: Any) -> PrivateMessage:
        return encrypt_private_message(self.cs, ac, tree, self.sender_data_secret, **kw)

    def decrypt(
        self, msg: PrivateMessage, tree: SecretTree, **kw: Any
    ) -> tuple[AuthenticatedContent, Any]:
        return decrypt_private_message(self.cs, msg, tree, self.sender_data_secret, **kw)


def _make_env(cs: CipherSuite) -> Env:
    sk, pk = cs.generate_signature_key_pair()
    ctx = GroupContext(
        cipher_suite=cs.suite_id,
        group_id=b"group",
        epoch=7,
        tree_hash=bytes(cs.hash_len),
        confirmed_transcript_hash=b"\x01" * cs.hash_len,
    )
    return Env(
        cs=cs,
        sk=sk,
        pk=pk,
        ctx=ctx,
        encryption_secret=b"\x02" * cs.hash_len,
        sender_data_secret=b"\x03" * cs.hash_len,
        membership_key=b"\x04" * cs.hash_len,
    )


@pytest.fixture
def env(suite_id: int) -> Env:
    return _make_env(get_suite(suite_id))


def _manual_encrypt(
    env: Env,
    ac: AuthenticatedContent,
    plaintext: bytes,
    *,
    leaf: int,
    generation: int,
    key: bytes,
    nonce: bytes,
    reuse_guard: bytes = b"\x10\x20\x30\x40",
) -> PrivateMessage:
    """§6.3.1 and §6.3.2 by hand, with any plaintext and any sender data."""
    cs, c = env.cs, ac.content
    ct_type = c.content_type
    guarded = bytes(a ^ b for a, b in zip(nonce[:4], reuse_guard, strict=True)) + nonce[4:]
    aad = PrivateContentAAD(
        group_id=c.group_id,
        epoch=c.epoch,
        content_type=ct_type,
        authenticated_data=c.authenticated_data,
    ).to_bytes()
    ciphertext = cs.aead_seal(key, guarded, aad, plaintext)
    sample = ciphertext[: cs.hash_len]
    sd_key = expand_with_label(cs, env.sender_data_secret, "key", sample, cs.aead_key_len)
    sd_nonce = expand_with_label(cs, env.sender_data_secret, "nonce", sample, cs.aead_nonce_len)
    sd_aad = SenderDataAAD(group_id=c.group_id, epoch=c.epoch, content_type=ct_type).to_bytes()
    sender_data = SenderData(leaf_index=leaf, generation=generation, reuse_guard=reuse_guard)
    return PrivateMessage(
        group_id=c.group_id,
        epoch=c.epoch,
        content_type=ct_type,
        authenticated_data=c.authenticated_data,
        encrypted_sender_data=cs.aead_seal(sd_key, sd_nonce, sd_aad, sender_data.to_bytes()),
        ciphertext=ciphertext,
    )


def _flip(data: bytes, index: int) -> bytes:
    return data[:index] + bytes([data[index] ^ 0x01]) + data[index + 1 :]


BODIES: list[Content] = [b"hello, group", Remove(removed=2), Commit()]


# -- PrivateMessage round trips -----------------------------------------------------------------


@pytest.mark.parametrize("body", BODIES, ids=["application", "proposal", "commit"])
def test_private_round_trip(env: Env, body: Content) -> None:
    ac = env.content(body)
    msg = env.encrypt(ac, env.sender_tree())
    body_in = decode(MLSMessage, encode(MLSMessage(body=msg))).body
    assert body_in == msg
    assert msg.content_type == ac.content.content_type
    tree = env.receiver_tree()
    got, pending = env.decrypt(msg, tree)
    assert got == ac
    got.verify(env.cs, env.pk, env.ctx)
    tree.confirm_receive(pending)


def test_handshake_and_application_use_separate_ratchets(env: Env) -> None:
    sender = env.sender_tree()
    sd = [
        decrypt_sender_data(env.cs, env.encrypt(env.content(b), sender), env.sender_data_secret)
        for b in (b"a", Remove(removed=0), b"b", Commit(), b"c")
    ]
    assert [s.generation for s in sd] == [0, 0, 1, 1, 2]
    assert {s.leaf_index for s in sd} == {SENDER}


def test_reuse_guard_comes_from_the_suite_rng(suite_id: int) -> None:
    stream = iter(range(256))
    cs = CryptoProvider(rng=lambda n: bytes(next(stream) for _ in range(n))).suite(suite_id)
    env = _make_env(get_suite(suite_id))
    env = dataclasses.replace(env, cs=cs)
    msg = env.encrypt(env.content(b"x"), env.sender_tree())
    guard = decrypt_sender_data(cs, msg, env.sender_data_secret).reuse_guard
    assert guard == bytes([0, 1, 2, 3])
    got, _ = env.decrypt(msg, env.receiver_tree())
    assert got.content.content == b"x"


def test_padding_policies(env: Env) -> None:
    ac = env.content(b"some text")
    unpadded = len(PrivateMessageContent(content=b"some text", auth=ac.auth).to_bytes())
    sender = env.sender_tree()
    default = env.encrypt(ac, sender)
    assert (len(default.ciphertext) - TAG_LEN) % DEFAULT_PADDING_BLOCK == 0
    assert len(env.encrypt(ac, sender, padding=0).ciphertext) - TAG_LEN == unpadded
    assert len(env.encrypt(ac, sender, padding=lambda n: 7).ciphertext) - TAG_LEN == unpadded + 7
    assert (len(env.encrypt(ac, sender, padding=100).ciphertext) - TAG_LEN) % 100 == 0
    # The padding is stripped on receipt.
    got, _ = env.decrypt(default, env.receiver_tree())
    assert got == ac
    assert padding_length(32, 64) == 0 and padding_length(32, 65) == 31
    assert padding_length(1, 65) == 0 and padding_length(0, 65) == 0
    with pytest.raises(UsageError):
        padding_length(-1, 10)
    with pytest.raises(UsageError):
        padding_length(lambda n: -1, 10)


def test_encrypt_refuses_misuse(env: Env) -> None:
    sender = env.sender_tree()
    with pytest.raises(UsageError):  # signed for PublicMessage
        env.encrypt(env.content(Remove(removed=0), wire_format=PUBLIC), sender)
    with pytest.raises(UsageError):  # §6.3.2: only member senders
        env.encrypt(env.content(Remove(removed=0), sender=Sender.external(0)), sender)
    with pytest.raises(UsageError):  # not the tree's own leaf
        env.encrypt(env.content(b"x", sender=Sender.member(2)), sender)


# -- PrivateMessage rejections ----------------------------------------------------------------


def _assert_still_decrypts(env: Env, msg: PrivateMessage, tree: SecretTree) -> None:
    got, pending = env.decrypt(msg, tree)
    tree.confirm_receive(pending)
    got.verify(env.cs, env.pk, env.ctx)


def test_tampered_ciphertext_is_decrypt_failed(env: Env) -> None:
    msg = env.encrypt(env.content(b"secret"), env.sender_tree())
    tree = env.receiver_tree()
    assert len(msg.ciphertext) > env.cs.hash_len
    # Past the sender-data sample, so only the content AEAD sees the change.
    bad = dataclasses.replace(msg, ciphertext=_flip(msg.ciphertext, len(msg.ciphertext) - 1))
    with pytest.raises(DecryptFailed) as info:
        env.decrypt(bad, tree)
    assert type(info.value) is DecryptFailed
    bad = dataclasses.replace(msg, authenticated_data=b"other")  # content AAD only
    with pytest.raises(DecryptFailed) as info:
        env.decrypt(bad, tree)
    assert type(info.value) is DecryptFailed
    _assert_still_decrypts(env, msg, tree)


def test_tampered_sender_data_is_bad_sender_data(env: Env) -> None:
    msg = env.encrypt(env.content(b"secret"), env.sender_tree())
    tree = env.receiver_tree()
    bad_sd = _flip(msg.encrypted_sender_data, 0)
    for bad in (
        dataclasses.replace(msg, encrypted_sender_data=bad_sd),
        dataclasses.replace(msg, ciphertext=_flip(msg.ciphertext, 0)),  # changes the sample
        dataclasses.replace(msg, epoch=msg.epoch + 1),  # SenderDataAAD
        dataclasses.replace(msg, group_id=b"other"),
    ):
        with pytest.raises(BadSenderData):
            env.decrypt(bad, tree)
    with pytest.raises(BadSenderData):
        decrypt_private_message(env.cs, msg, tree, b"\x09" * env.cs.hash_len)
    _assert_still_decrypts(env, msg, tree)


def test_bad_signature(env: Env) -> None:
    msg = env.encrypt(env.content(b"signed"), env.sender_tree())
    got, _ = env.decrypt(msg, env.receiver_tree())
    _, other_pk = env.cs.generate_signature_key_pair()
    with pytest.raises(BadSignature):
        got.verify(env.cs, other_pk, env.ctx)
    # The signature covers the wire format and the GroupContext (§6.1).
    with pytest.raises(BadSignature):
        verify_framed_content(env.cs, env.pk, PUBLIC, got.content, env.ctx, got.auth.signature)
    other_ctx = dataclasses.replace(env.ctx, tree_hash=b"\x05" * env.cs.hash_len)
    with pytest.raises(BadSignature):
        got.verify(env.cs, env.pk, other_ctx)
    forged = dataclasses.replace(got.content, content=b"forged")
    with pytest.raises(BadSignature):
        verify_framed_content(env.cs, env.pk, PRIVATE, forged, env.ctx, got.auth.signature)


def test_non_zero_padding_is_bad_padding(env: Env) -> None:
    ac = env.content(b"padded")
    body = PrivateMessageContent(content=b"padded", auth=ac.auth).to_bytes()
    generation, key, nonce = env.sender_tree().next_send_key(APP)
    kw: dict[str, Any] = {"leaf": SENDER, "generation": generation, "key": key, "nonce": nonce}
    tree = env.receiver_tree()
    # The hand-built message with zero padding decrypts (cross-check of _manual_encrypt).
    got, _ = env.decrypt(_manual_encrypt(env, ac, body + bytes(5), **kw), tree)
    assert got == ac
    for padding in (b"\x00\x00\x01", b"\x80", b"\x00" * 40 + b"\xff"):
        with pytest.raises(BadPadding):
            env.decrypt(_manual_encrypt(env, ac, body + padding, **kw), tree)
    _assert_still_decrypts(env, _manual_encrypt(env, ac, body + bytes(3), **kw), tree)


def test_garbage_plaintext_is_decode_error(env: Env) -> None:
    ac = env.content(b"x")
    generation, key, nonce = env.sender_tree().next_send_key(APP)
    kw: dict[str, Any] = {"leaf": SENDER, "generation": generation, "key": key, "nonce": nonce}
    tree = env.receiver_tree()
    for plaintext in (b"", b"\x40", b"\x05abc", b"\x01x"):  # truncated content or auth
        with pytest.raises(DecodeError):
            env.decrypt(_manual_encrypt(env, ac, plaintext, **kw), tree)


def test_replay_after_confirm(env: Env) -> None:
    msg = env.encrypt(env.content(b"once"), env.sender_tree())
    tree = env.receiver_tree()
    # Not yet confirmed: decrypting again is allowed (the group may have rejected it).
    env.decrypt(msg, tree)
    _, pending = env.decrypt(msg, tree)
    tree.confirm_receive(pending)
    with pytest.raises(ReplayedMessage):
        env.decrypt(msg, tree)


def test_out_of_order_within_window_and_beyond(env: Env) -> None:
    sender = env.sender_tree()
    msgs = [env.encrypt(env.content(bytes([i])), sender) for i in range(8)]
    tree = env.receiver_tree(out_of_order_window=3, max_forward_distance=4)
    with pytest.raises(GenerationOutOfWindow):  # 6 ahead of the expected 0
        env.decrypt(msgs[6], tree)
    for i in (4, 2, 1, 3):  # jump ahead, then earlier ones inside the window
        got, pending = env.decrypt(msgs[i], tree)
        assert got.content.content == bytes([i])
        tree.confirm_receive(pending)
    _assert_still_decrypts(env, msgs[7], tree)
    with pytest.raises(GenerationOutOfWindow):  # 0 is more than 3 behind 7
        env.decrypt(msgs[0], tree)
    _assert_still_decrypts(env, msgs[5], tree)
    with pytest.raises(ReplayedMessage):
        env.decrypt(msgs[4], tree)


def test_unknown_and_own_sender(env: Env) -> None:
    sender = env.sender_tree()
    msg = env.encrypt(env.content(b"hi"), sender)
    with pytest.raises(UnknownSender):  # leaf 1 is outside a one-leaf tree
        env.decrypt(msg, SecretTree(env.cs, env.encryption_secret, 1))
    with pytest.raises(UnknownSender):  # §6.3.2: blank leaf
        env.decrypt(msg, env.receiver_tree(), leaf_is_member=lambda leaf: leaf != SENDER)
    with pytest.raises(OwnMessage) as info:  # the sender's keys are deleted (§9.2)
        env.decrypt(msg, sender)
    assert info.value.generation == 0
    got, _ = env.decrypt(msg, env.receiver_tree(), leaf_is_member=lambda leaf: True)
    assert got.content.sender == Sender.member(SENDER)


def test_invalid_content_type(env: Env) -> None:
    msg = env.encrypt(env.content(b"x"), env.sender_tree())
    with pytest.raises(InvalidContentType):
        env.decrypt(dataclasses.replace(msg, content_type=9), env.receiver_tree())


# -- PublicMessage -----------------------------------------------------------------------------


@pytest.mark.parametrize("body", BODIES[1:], ids=["proposal", "commit"])
def test_public_round_trip(env: Env, body: Content) -> None:
    ac = env.content(body, wire_format=PUBLIC)
    msg = public_message_from(env.cs, ac, env.membership_key, env.ctx)
    assert msg.membership_tag is not None
    assert decode(MLSMessage, encode(MLSMessage(body=msg))).body == msg
    got = verify_membership_tag(env.cs, msg, env.membership_key, env.ctx)
    assert got == ac
    got.verify(env.cs, env.pk, env.ctx)


def test_bad_membership_tag(env: Env) -> None:
    ac = env.content(Remove(removed=3), wire_format=PUBLIC)
    msg = public_message_from(env.cs, ac, env.membership_key, env.ctx)
    assert msg.membership_tag is not None
    bad = dataclasses.replace(msg, membership_tag=_flip(msg.membership_tag, 0))
    with pytest.raises(BadMembershipTag):
        verify_membership_tag(env.cs, bad, env.membership_key, env.ctx)
    with pytest.raises(BadMembershipTag):
        verify_membership_tag(env.cs, msg, b"\x00" * env.cs.hash_len, env.ctx)
    other_ctx = dataclasses.replace(env.ctx, epoch=8)  # the TBM covers the GroupContext
    with pytest.raises(BadMembershipTag):
        verify_membership_tag(env.cs, msg, env.membership_key, other_ctx)
    forged = dataclasses.replace(msg, content=dataclasses.replace(msg.content, epoch=8))
    with pytest.raises(BadMembershipTag):
        verify_membership_tag(env.cs, forged, env.membership_key, env.ctx)


def test_public_non_member_senders(env: Env) -> None:
    ac = env.content(Remove(removed=3), wire_format=PUBLIC, sender=Sender.external(0))
    msg = public_message_from(env.cs, ac, None, env.ctx)
    assert msg.membership_tag is None
    assert verify_membership_tag(env.cs, msg, None, env.ctx) == ac
    # A tag after a non-member PublicMessage is trailing bytes.
    with pytest.raises(MLSError):
        decode(PublicMessage, encode(msg) + b"\x02\xab\xcd")
    # §6.1: an external sender may send only proposals, new_member_commit only commits.
    commit = env.content(Commit(), wire_format=PUBLIC, sender=Sender.external(0))
    with pytest.raises(UsageError):
        public_message_from(env.cs, commit, None, env.ctx)
    bogus = PublicMessage(content=commit.content, auth=commit.auth)
    with pytest.raises(InvalidSender):
        verify_membership_tag(env.cs, bogus, None, env.ctx)
    remove = env.content(Remove(removed=1), wire_format=PUBLIC, sender=Sender.new_member_commit())
    bogus = PublicMessage(content=remove.content, auth=remove.auth)
    with pytest.raises(InvalidSender):
        verify_membership_tag(env.cs, bogus, None, env.ctx)
    nmp = env.content(Remove(removed=1), wire_format=PUBLIC, sender=Sender.new_member_proposal())
    bogus = PublicMessage(content=nmp.content, auth=nmp.auth)
    with pytest.raises(InvalidSender):  # new_member_proposal may only Add
        verify_membership_tag(env.cs, bogus, None, env.ctx)


def test_application_data_is_never_public(env: Env) -> None:
    ac = env.content(b"chat", wire_format=PUBLIC)
    with pytest.raises(UsageError):
        public_message_from(env.cs, ac, env.membership_key, env.ctx)
    tag = env.cs.mac(env.membership_key, b"anything")
    msg = PublicMessage(content=ac.content, auth=ac.auth, membership_tag=tag)
    with pytest.raises(InvalidContentType):
        verify_membership_tag(env.cs, msg, env.membership_key, env.ctx)
    with pytest.raises(UsageError):  # signed for PrivateMessage
        public_message_from(env.cs, env.content(Commit()), env.membership_key, env.ctx)


# -- Hypothesis: hostile input raises only MLSError -------------------------------------------


def _with_field(msg: PrivateMessage, name: str, value: bytes) -> PrivateMessage:
    if name == "group_id":
        return dataclasses.replace(msg, group_id=value)
    if name == "authenticated_data":
        return dataclasses.replace(msg, authenticated_data=value)
    if name == "encrypted_sender_data":
        return dataclasses.replace(msg, encrypted_sender_data=value)
    return dataclasses.replace(msg, ciphertext=value)


def test_mutated_private_messages_raise_only_mls_errors(env: Env) -> None:
    sender = env.sender_tree()
    originals = [env.encrypt(env.content(b), sender, padding=0) for b in BODIES]
    encoded = [encode(m) for m in originals]
    byte_fields = ["group_id", "authenticated_data", "encrypted_sender_data", "ciphertext"]

    def mutate_bytes(data: st.DataObject, value: bytes) -> bytes:
        raw = bytearray(value)
        for _ in range(data.draw(st.integers(1, 3))):
            kind = data.draw(st.sampled_from(["flip", "truncate", "insert"]))
            pos = data.draw(st.integers(0, max(len(raw) - 1, 0)))
            if kind == "flip" and raw:
                raw[pos] ^= data.draw(st.integers(1, 255))
            elif kind == "truncate":
                del raw[pos:]
            else:
                raw[pos:pos] = data.draw(st.binary(min_size=1, max_size=8))
        return bytes(raw)

    @settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))
    @given(st.integers(0, len(BODIES) - 1), st.data())
    def run(i: int, data: st.DataObject) -> None:
        tree = env.receiver_tree()
        where = data.draw(st.sampled_from(["wire", "epoch", "content_type", *byte_fields]))
        try:
            if where == "wire":  # the encoding: mostly DecodeError
                msg = decode(PrivateMessage, mutate_bytes(data, encoded[i]))
            elif where == "epoch":
                msg = dataclasses.replace(originals[i], epoch=data.draw(st.integers(0, 2**64 - 1)))
            elif where == "content_type":
                msg = dataclasses.replace(originals[i], content_type=data.draw(st.integers(0, 255)))
            else:  # one field, past the codec: reaches the AEADs and the plaintext parser
                value = mutate_bytes(data, getattr(originals[i], where))
                msg = _with_field(originals[i], where, value)
            env.decrypt(msg, tree)
        except MLSError:
            # Rejected: the receiver's ratchets are untouched, the original still decrypts.
            got, _ = env.decrypt(originals[i], tree)
            assert got.content.content == BODIES[i]

    run()


def test_arbitrary_sender_data_raises_only_mls_errors(env: Env) -> None:
    ac = env.content(b"x")
    body = PrivateMessageContent(content=b"x", auth=ac.auth).to_bytes()

    @settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
    @given(
        leaf=st.integers(0, 2**32 - 1) | st.integers(0, LEAVES),
        generation=st.integers(0, 2**32 - 1) | st.integers(0, 5),
        key=st.binary(min_size=env.cs.aead_key_len, max_size=env.cs.aead_key_len),
        nonce=st.binary(min_size=env.cs.aead_nonce_len, max_size=env.cs.aead_nonce_len),
        guard=st.binary(min_size=4, max_size=4),
    )
    def run(leaf: int, generation: int, key: bytes, nonce: bytes, guard: bytes) -> None:
        msg = _manual_encrypt(
            env, ac, body, leaf=leaf, generation=generation, key=key, nonce=nonce, reuse_guard=guard
        )
        with pytest.raises(MLSError):
            env.decrypt(msg, SecretTree(env.cs, env.encryption_secret, LEAVES, own_leaf=0))

    run()


def test_mutated_public_messages_raise_only_mls_errors(env: Env) -> None:
    ac = env.content(Remove(removed=2), wire_format=PUBLIC)
    original = encode(public_message_from(env.cs, ac, env.membership_key, env.ctx))

    @settings(max_examples=100, deadline=None, suppress_health_check=list(HealthCheck))
    @given(st.integers(0, len(original) - 1), st.integers(1, 255))
    def run(pos: int, xor: int) -> None:
        raw = bytearray(original)
        raw[pos] ^= xor
        with pytest.raises(MLSError):
            msg = decode(PublicMessage, bytes(raw))
            got = verify_membership_tag(env.cs, msg, env.membership_key, env.ctx)
            got.verify(env.cs, env.pk, env.ctx)

    run()


# -- Welcome encryption (§12.4.3.1), on the official welcome vector ---------------------------


@pytest.fixture(scope="module")
def welcome_case() -> tuple[CipherSuite, KeyPackage, Welcome, bytes]:
    root = default_vectors_root()
    path = None if root is None else root / "mlswg" / "welcome.json"
    if path is None or not path.is_file():
        pytest.skip("official welcome.json vector not found (set MLS_VECTORS)")
    case = json.loads(path.read_text())[0]
    kp = decode(MLSMessage, bytes.fromhex(case["key_package"])).body
    welcome = decode(MLSMessage, bytes.fromhex(case["welcome"])).body
    assert isinstance(kp, KeyPackage) and isinstance(welcome, Welcome)
    return get_suite(case["cipher_suite"]), kp, welcome, bytes.fromhex(case["init_priv"])


def test_welcome_rejections(welcome_case: tuple[CipherSuite, KeyPackage, Welcome, bytes]) -> None:
    cs, kp, welcome, init_priv = welcome_case
    secrets, group_info = open_welcome(cs, welcome, kp, init_priv)
    with pytest.raises(NoMatchingKeyPackage):
        open_welcome(cs, dataclasses.replace(welcome, secrets=()), kp, init_priv)
    with pytest.raises(InvalidWelcome):
        open_welcome(cs, dataclasses.replace(welcome, cipher_suite=cs.suite_id + 1), kp, init_priv)
    egi = welcome.encrypted_group_info
    with pytest.raises(DecryptFailed):  # also the HPKE context: the secrets do not open
        open_welcome(
            cs, dataclasses.replace(welcome, encrypted_group_info=_flip(egi, 0)), kp, init_priv
        )
    with pytest.raises(DecryptFailed):
        open_welcome(cs, welcome, kp, b"\x01" * len(init_priv))
    ws = welcome_secret(cs, secrets.joiner_secret, None)
    with pytest.raises(DecryptFailed):
        decrypt_group_info(cs, ws, _flip(egi, len(egi) - 1))
    assert decrypt_group_info(cs, ws, egi) == group_info
    # An authentic ciphertext of something that is not a GroupInfo.
    key_nonce_ct = cs.aead_seal(
        expand_with_label(cs, ws, "key", b"", cs.aead_key_len),
        expand_with_label(cs, ws, "nonce", b"", cs.aead_nonce_len),
        b"",
        b"\x00\x01",
    )
    with pytest.raises(DecodeError):
        decrypt_group_info(cs, ws, key_nonce_ct)
    assert encrypt_group_info(cs, ws, group_info) == egi


def test_welcome_with_psks(welcome_case: tuple[CipherSuite, KeyPackage, Welcome, bytes]) -> None:
    cs, kp, welcome, init_priv = welcome_case
    secrets, group_info = open_welcome(cs, welcome, kp, init_priv)
    ext = PreSharedKeyID.external(b"psk-1", b"\x07" * cs.hash_len)
    store = {encode(ext): b"\x08" * cs.hash_len}
    psks = [(ext, store[encode(ext)])]
    fresh = build_welcome(
        cs, group_info, secrets.joiner_secret, [(kp, b"\x09" * cs.hash_len)], psks=psks
    )
    got_secrets, got_info = open_welcome(
        cs, fresh, kp, init_priv, psk_lookup=lambda i: store.get(encode(i))
    )
    assert got_info == group_info
    assert got_secrets.psks == (ext,)
    assert got_secrets.path_secret is not None
    assert got_secrets.path_secret.path_secret == b"\x09" * cs.hash_len
    with pytest.raises(InvalidPSK):  # §12.4.3.1: a PSK the client does not hold
        open_welcome(cs, fresh, kp, init_priv)
    # Without the PSK in the schedule the welcome key differs: the GroupInfo does not open.
    with pytest.raises(DecryptFailed):
        decrypt_group_info(
            cs, welcome_secret(cs, secrets.joiner_secret, None), fresh.encrypted_group_info
        )
    reinit = [
        (PreSharedKeyID.resumption(ResumptionPSKUsage.reinit, b"g", e, b"\x00" * cs.hash_len), b"k")
        for e in (1, 2)
    ]
    two = build_welcome(cs, group_info, secrets.joiner_secret, [(kp, None)], psks=reinit)
    with pytest.raises(InvalidPSK):
        open_welcome(cs, two, kp, init_priv, psk_lookup=lambda i: b"k")
    with pytest.raises(UsageError):
        build_welcome(
            cs,
            group_info,
            secrets.joiner_secret,
            [(dataclasses.replace(kp, cipher_suite=99), None)],
        )
