"""Message protection (RFC 9420 §6.2, §6.3): AuthenticatedContent <-> PublicMessage /
PrivateMessage.

Owns the *symmetric* layer of the §6 pipeline: the membership tag of a PublicMessage (§6.2),
and for a PrivateMessage the content encryption with the secret-tree key of the sender's
handshake or application ratchet, the reuse guard, the padding policy (§6.3.1) and the sender
data encryption keyed from a ciphertext sample (§6.3.2). Signatures (§6.1) are
:mod:`mls.framing.content`'s; which key verifies them, and the group_id / epoch checks, are the
group layer's.

Receiving is side-effect free: :func:`decrypt_private_message` returns the content together
with a :class:`~mls.schedule.secret_tree.PendingKey`; the caller hands it to
``SecretTree.confirm_receive`` only once the whole message (signature, content rules) was
accepted, so a rejected message leaves every ratchet as it was (§9.2 counts a key as consumed
only by a *successful* decryption).

Every failure on the receive path is an :class:`~mls.errors.MLSError`: ``BadMembershipTag``,
``BadSenderData``, ``DecryptFailed``, ``DecodeError``, ``BadPadding``, ``UnknownSender``,
``OwnMessage``, ``ReplayedMessage``, ``GenerationOutOfWindow``, ``InvalidContentType``,
``InvalidSender``. Local misuse on the send path is a ``UsageError``.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from typing import TYPE_CHECKING, TypeAlias

from mls.codec.buffer import encode_varint, opaque
from mls.constants import ContentType, ProtocolVersion, SenderType, WireFormat
from mls.crypto.labels import sign_with_label
from mls.errors import (
    BadMembershipTag,
    BadSenderData,
    DecodeError,
    DecryptFailed,
    InvalidContentType,
    InvalidSender,
    MLSError,
    OwnMessage,
    UnknownSender,
    UsageError,
)
from mls.framing.content import AuthenticatedContent, FramedContent, Sender
from mls.framing.private import (
    PrivateMessage,
    PrivateMessageContent,
    SenderData,
    encode_content_aad,
    encode_sender_data,
    encode_sender_data_aad,
)
from mls.framing.public import PublicMessage, membership_tag
from mls.messages.commit import Commit
from mls.messages.proposals import Add
from mls.schedule.group_context import GroupContext
from mls.schedule.key_schedule import sender_data_key_nonce
from mls.schedule.secret_tree import PendingKey, SecretTree

if TYPE_CHECKING:
    from mls.crypto import CipherSuite

__all__ = [
    "DEFAULT_PADDING_BLOCK",
    "PaddingPolicy",
    "decrypt_private_message",
    "decrypt_sender_data",
    "encrypt_private_message",
    "padding_length",
    "public_message_from",
    "verify_membership_tag",
]

PaddingPolicy: TypeAlias = int | Callable[[int], int]
"""How many zero bytes to append to a PrivateMessageContent (§6.3.1).

An ``int`` is a block size: the plaintext (content, auth and padding) is padded up to a
multiple of it (0 or 1: no padding). A callable receives the unpadded plaintext length and
returns the number of padding bytes.
"""

DEFAULT_PADDING_BLOCK = 32
"""Default block size for PrivateMessageContent padding (§6.3.1, §16.4.2 leaves the choice open).

The plaintext always carries a signature (64 to ~140 bytes), so a PrivateMessage is at least
~100 bytes; 32-byte blocks then hide the low five bits of the content length (the exact size of
short chat texts, typing indicators, receipts) for an average cost of 15.5 bytes, under 10% of a
typical message. Larger blocks (or a length-bucket policy passed as a callable) hide more at a
bandwidth cost the application should choose knowingly.
"""

_EXTERNAL = SenderType.external
_NEW_MEMBER_PROPOSAL = SenderType.new_member_proposal
_NEW_MEMBER_COMMIT = SenderType.new_member_commit
_APPLICATION = ContentType.application
_PRIVATE_CONTENT_TYPES = (ContentType.application, ContentType.proposal, ContentType.commit)

# Low-level exceptions a struct decoder may leak on hostile input; translated to DecodeError.
_DECODE_LEAKS = (ValueError, IndexError, KeyError, struct.error, OverflowError, TypeError)


# -- PublicMessage (§6.2) ----------------------------------------------------------------------


def _check_sender_content(content: FramedContent, error: type[MLSError]) -> None:
    """§6.1: each non-member sender type may carry only one kind of content."""
    st = content.sender.sender_type
    body = content.content
    if st == _EXTERNAL and content.content_type != ContentType.proposal:
        raise error("an external sender may only send proposals (RFC 9420 §6.1)")
    if st == _NEW_MEMBER_PROPOSAL and not isinstance(body, Add):
        raise error("a new_member_proposal sender may only send an Add proposal (RFC 9420 §6.1)")
    if st == _NEW_MEMBER_COMMIT and not isinstance(body, Commit):
        raise error("a new_member_commit sender may only send a commit (RFC 9420 §6.1)")


def public_message_from(
    cs: CipherSuite,
    auth_content: AuthenticatedContent,
    membership_key: bytes | None,
    context: GroupContext,
) -> PublicMessage:
    """Encode signed content as a PublicMessage (§6.2).

    For a ``member`` sender, ``membership_tag = MAC(membership_key, AuthenticatedContentTBM)``
    over the current epoch's ``context``; other sender types carry no tag and
    ``membership_key`` is ignored. Raises :class:`UsageError` for application data (§6:
    "Applications MUST use PrivateMessage to encrypt application messages"), for a
    ``wire_format`` other than ``mls_public_message`` (the signature covers it), or for a
    sender type / content mismatch (§6.1).
    """
    content = auth_content.content
    if auth_content.wire_format != WireFormat.mls_public_message:
        raise UsageError("AuthenticatedContent was signed for another wire format")
    if content.content_type == _APPLICATION:
        raise UsageError("application data MUST be sent as a PrivateMessage (RFC 9420 §6)")
    _check_sender_content(content, UsageError)
    tag: bytes | None = None
    if content.sender.is_member:
        if membership_key is None:
            raise UsageError("a member's PublicMessage needs the epoch's membership_key")
        tag = membership_tag(cs, membership_key, content, auth_content.auth, context)
    return PublicMessage.from_authenticated(auth_content, tag)


def verify_membership_tag(
    cs: CipherSuite,
    msg: PublicMessage,
    membership_key: bytes | None,
    context: GroupContext,
) -> AuthenticatedContent:
    """Decode a PublicMessage into its AuthenticatedContent (§6.2), checking the tag.

    Raises :class:`InvalidContentType` for application data (§6), :class:`InvalidSender` for
    a sender type that may not send this content (§6.1) or a non-member message carrying a tag,
    and :class:`BadMembershipTag` if a member's tag does not verify (constant time). The
    signature (§6.1) is checked afterwards by the caller, with the sender's key.
    """
    content = msg.content
    if content.content_type == _APPLICATION:
        # RFC 9420 §6: application messages MUST be PrivateMessages.
        raise InvalidContentType("application data in a PublicMessage")
    _check_sender_content(content, InvalidSender)
    if content.sender.is_member:
        if msg.membership_tag is None:
            raise BadMembershipTag("a member's PublicMessage has no membership_tag")
        if membership_key is None:
            raise UsageError("a member's PublicMessage needs the epoch's membership_key")
        # RFC 9420 §6.2: the recipient MUST check membership_tag.
        cs.verify_mac(membership_key, msg.tbm(context), msg.membership_tag, BadMembershipTag)
    elif msg.membership_tag is not None:
        raise InvalidSender("only member senders carry a membership_tag (RFC 9420 §6.2)")
    return msg.authenticated_content()


# -- PrivateMessage (§6.3) ---------------------------------------------------------------------


def padding_length(policy: PaddingPolicy, unpadded: int) -> int:
    """Number of zero bytes ``policy`` appends to a plaintext of ``unpadded`` bytes."""
    if isinstance(policy, int):
        if policy < 0:
            raise UsageError("padding block size must be non-negative")
        return 0 if policy <= 1 else -unpadded % policy
    pad = policy(unpadded)
    if not isinstance(pad, int) or pad < 0:
        raise UsageError("a padding policy must return a non-negative int")
    return pad


def _guarded_nonce(nonce: bytes, reuse_guard: bytes) -> bytes:
    # §6.3.1: XOR the 4-byte reuse guard into the first four bytes of the ratchet nonce.
    head = int.from_bytes(nonce[:4], "big") ^ int.from_bytes(reuse_guard, "big")
    return head.to_bytes(4, "big") + nonce[4:]


def encrypt_private_message(
    cs: CipherSuite,
    auth_content: AuthenticatedContent,
    secret_tree: SecretTree,
    sender_data_secret: bytes,
    *,
    padding: PaddingPolicy = DEFAULT_PADDING_BLOCK,
) -> PrivateMessage:
    """Encrypt signed content as a PrivateMessage (§6.3).

    Consumes the next key of this member's handshake (proposal, commit) or application ratchet
    in ``secret_tree``; the nonce is XORed with a fresh 4-byte reuse guard from ``cs.random``
    (§6.3.1). The sender data key and nonce come from ``sender_data_secret`` and the first
    ``KDF.Nh`` bytes of the content ciphertext (§6.3.2).

    Raises :class:`UsageError` unless the sender is a ``member`` at ``secret_tree.own_leaf``
    (§6.3.2) and ``wire_format`` is ``mls_private_message``.
    """
    content = auth_content.content
    sender = content.sender
    if auth_content.wire_format != WireFormat.mls_private_message:
        raise UsageError("AuthenticatedContent was signed for another wire format")
    # RFC 9420 §6.3.2: the sender MUST verify that sender_type is member.
    if not sender.is_member:
        raise UsageError("only member senders can send a PrivateMessage (RFC 9420 §6.3.2)")
    if sender.index != secret_tree.own_leaf:
        raise UsageError(
            f"sender leaf {sender.index} is not the secret tree's own leaf {secret_tree.own_leaf}"
        )
    content_type = content.content_type
    unpadded = PrivateMessageContent(content=content.content, auth=auth_content.auth).to_bytes()
    group_id, epoch, ad = content.group_id, content.epoch, content.authenticated_data
    _, encrypted_sender_data, ciphertext = _seal(
        cs,
        secret_tree,
        sender_data_secret,
        sender.index,
        group_id,
        epoch,
        content_type,
        ad,
        unpadded + bytes(padding_length(padding, len(unpadded))),
    )
    return PrivateMessage(
        group_id=group_id,
        epoch=epoch,
        content_type=content_type,
        authenticated_data=ad,
        encrypted_sender_data=encrypted_sender_data,
        ciphertext=ciphertext,
    )


def _seal(
    cs: CipherSuite,
    secret_tree: SecretTree,
    sender_data_secret: bytes,
    leaf: int,
    group_id: bytes,
    epoch: int,
    content_type: int,
    authenticated_data: bytes,
    plaintext: bytes,
) -> tuple[bytes, bytes, bytes]:
    """The §6.3 encryption of a padded PrivateMessageContent: returns the content AAD (which is
    also the PrivateMessage's leading fields), the encrypted sender data and the ciphertext."""
    reuse_guard = cs.random(4)
    generation, key, nonce = secret_tree.next_send_key(content_type)
    aad = encode_content_aad(group_id, epoch, content_type, authenticated_data)
    ciphertext = cs.aead_seal(key, _guarded_nonce(nonce, reuse_guard), aad, plaintext)
    sender_data = encode_sender_data(leaf, generation, reuse_guard)
    sd_key, sd_nonce = sender_data_key_nonce(cs, sender_data_secret, ciphertext)
    sd_aad = encode_sender_data_aad(group_id, epoch, content_type)
    return aad, cs.aead_seal(sd_key, sd_nonce, sd_aad, sender_data), ciphertext


def protect_application_data(
    cs: CipherSuite,
    signature_private_key: bytes,
    context: GroupContext,
    secret_tree: SecretTree,
    sender_data_secret: bytes,
    data: bytes,
    *,
    authenticated_data: bytes = b"",
    padding: PaddingPolicy = DEFAULT_PADDING_BLOCK,
) -> bytes:
    """An application message from this member as an encoded MLSMessage (PrivateMessage).

    The same bytes as signing a FramedContent and :func:`encrypt_private_message`, built
    directly: this runs once per chat message sent, and its cost beyond the signature and the
    AEAD is what the ``protect`` benchmark measures (§6.1, §6.3).
    """
    leaf = secret_tree.own_leaf
    if leaf is None:
        raise UsageError("this secret tree has no own leaf to send from")
    group_id, epoch = context.group_id, context.epoch
    application_data = opaque(data)
    framed = (
        opaque(group_id)
        + epoch.to_bytes(8, "big")
        + b"\x01"  # sender_type member
        + leaf.to_bytes(4, "big")
        + opaque(authenticated_data)
        + b"\x01"  # content_type application
        + application_data
    )
    tbs = _APP_TBS_HEAD + framed + context.to_bytes()
    signature = sign_with_label(cs, signature_private_key, "FramedContentTBS", tbs)
    unpadded = application_data + opaque(signature)
    aad, encrypted_sender_data, ciphertext = _seal(
        cs,
        secret_tree,
        sender_data_secret,
        leaf,
        group_id,
        epoch,
        ContentType.application,
        authenticated_data,
        unpadded + bytes(padding_length(padding, len(unpadded))),
    )
    return _PRIVATE_MESSAGE_HEAD + aad + opaque(encrypted_sender_data) + opaque(ciphertext)


# version mls10 || wire_format mls_private_message: the head of FramedContentTBS (§6.1) and of
# an MLSMessage (§6) alike.
_APP_TBS_HEAD = _PRIVATE_MESSAGE_HEAD = ProtocolVersion.mls10.to_bytes(
    2, "big"
) + WireFormat.mls_private_message.to_bytes(2, "big")


def decrypt_sender_data(
    cs: CipherSuite, msg: PrivateMessage, sender_data_secret: bytes
) -> SenderData:
    """Decrypt and parse ``msg.encrypted_sender_data`` (§6.3.2).

    Raises :class:`BadSenderData` if it does not decrypt and :class:`DecodeError` if the
    plaintext is not a SenderData.
    """
    plaintext = _open_sender_data(cs, msg, sender_data_secret)
    return SenderData(
        leaf_index=int.from_bytes(plaintext[:4], "big"),
        generation=int.from_bytes(plaintext[4:8], "big"),
        reuse_guard=plaintext[8:],
    )


def _open_sender_data(cs: CipherSuite, msg: PrivateMessage, sender_data_secret: bytes) -> bytes:
    """The encoded SenderData of ``msg``, checked to be 12 bytes (§6.3.2); errors as
    :func:`decrypt_sender_data`."""
    if msg.content_type not in _PRIVATE_CONTENT_TYPES:
        raise InvalidContentType(f"unknown content_type {msg.content_type} in a PrivateMessage")
    sd_key, sd_nonce = sender_data_key_nonce(cs, sender_data_secret, msg.ciphertext)
    try:
        plaintext = cs.aead_open(sd_key, sd_nonce, msg.sender_data_aad(), msg.encrypted_sender_data)
    except DecryptFailed:
        raise BadSenderData("PrivateMessage sender data does not decrypt") from None
    # SenderData is fixed-size (uint32 leaf_index, uint32 generation, opaque reuse_guard[4]).
    if len(plaintext) != 12:
        raise DecodeError(f"SenderData is 12 bytes, got {len(plaintext)}")
    return plaintext


def _parse_content(plaintext: bytes, content_type: int) -> PrivateMessageContent:
    try:
        return PrivateMessageContent.decode_plaintext(plaintext, content_type)
    except MLSError as exc:
        if isinstance(exc, UsageError):  # A constructor refusing peer data: malformed input.
            raise DecodeError(f"invalid PrivateMessageContent: {exc}") from exc
        raise
    except _DECODE_LEAKS as exc:
        raise DecodeError(f"cannot decode PrivateMessageContent: {type(exc).__name__}") from exc


def decrypt_private_message(
    cs: CipherSuite,
    msg: PrivateMessage,
    secret_tree: SecretTree,
    sender_data_secret: bytes,
    *,
    leaf_is_member: Callable[[int], bool] | None = None,
) -> tuple[AuthenticatedContent, PendingKey]:
    """Decrypt a PrivateMessage into its AuthenticatedContent (§6.3), without consuming keys.

    Steps and errors, in order:

    1. sender data: :class:`BadSenderData` / :class:`DecodeError` (§6.3.2);
    2. the sender leaf must lie in the tree and, if ``leaf_is_member`` is given, be non-blank
       (§6.3.2: the recipient MUST verify the leaf is a non-blank node): :class:`UnknownSender`;
       our own leaf is refused with :class:`OwnMessage` (its keys were deleted on sending, §9.2);
    3. the ratchet key for ``generation``: :class:`ReplayedMessage` /
       :class:`GenerationOutOfWindow` (nothing is consumed yet);
    4. content: :class:`DecryptFailed`, then :class:`DecodeError` or :class:`BadPadding`
       (§6.3.1: padding MUST be all zero).

    Returns the content (``wire_format = mls_private_message``) and the pending key; call
    ``secret_tree.confirm_receive(pending)`` once the message is accepted. Checking the
    signature, group_id and epoch is the caller's job.
    """
    sender_data = _open_sender_data(cs, msg, sender_data_secret)
    leaf = int.from_bytes(sender_data[:4], "big")
    generation = int.from_bytes(sender_data[4:8], "big")
    if leaf >= secret_tree.leaf_count:
        raise UnknownSender(f"sender leaf {leaf} is outside a tree of {secret_tree.leaf_count}")
    if leaf_is_member is not None and not leaf_is_member(leaf):
        raise UnknownSender(f"sender leaf {leaf} is blank")
    if leaf == secret_tree.own_leaf:
        raise OwnMessage(f"PrivateMessage from our own leaf {leaf}", generation=generation)
    pending = secret_tree.prepare_receive(leaf, msg.content_type, generation)
    plaintext = cs.aead_open(
        pending.key,
        _guarded_nonce(pending.nonce, sender_data[8:]),
        msg.content_aad(),
        msg.ciphertext,
    )
    body = _parse_content(plaintext, msg.content_type)
    framed = FramedContent(
        group_id=msg.group_id,
        epoch=msg.epoch,
        sender=Sender.member(leaf),
        authenticated_data=msg.authenticated_data,
        content=body.content,
    )
    content_bytes = body._content_bytes
    if content_bytes is not None:
        # The FramedContent encoding from its parts (§6): the content as received.
        object.__setattr__(
            framed,
            "_encoded",
            encode_varint(len(msg.group_id))
            + msg.group_id
            + msg.epoch.to_bytes(8, "big")
            + b"\x01"
            + leaf.to_bytes(4, "big")
            + encode_varint(len(msg.authenticated_data))
            + msg.authenticated_data
            + bytes((msg.content_type,))
            + content_bytes,
        )
    auth_content = AuthenticatedContent(
        wire_format=WireFormat.mls_private_message, content=framed, auth=body.auth
    )
    return auth_content, pending
