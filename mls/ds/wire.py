"""What the delivery service reads of the bytes it is handed: only public framing.

The server is untrusted (RFC 9750 §5): it decodes the clear header of an ``MLSMessage``
(RFC 9420 §6: wire format, group id, epoch, content type and, for a PublicMessage, the sender
type), checks the signatures of KeyPackages and GroupInfos against keys that travel with them,
and checks its own registration and authentication proofs. It never holds a member's key, so
it cannot read a PrivateMessage.
"""

from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass

from mls.codec import decode
from mls.codec.buffer import Writer
from mls.constants import ContentType, CredentialType, SenderType
from mls.crypto import CipherSuite, get_suite
from mls.ds.errors import Refused
from mls.errors import MLSError
from mls.framing.message import MLSMessage
from mls.framing.private import PrivateMessage
from mls.framing.public import PublicMessage
from mls.messages.group_info import GroupInfo
from mls.messages.key_package import KeyPackage
from mls.messages.proposals import SelfRemove
from mls.messages.welcome import Welcome

__all__ = [
    "AUTH_LABEL",
    "LAST_RESORT_EXTENSION",
    "REGISTER_LABEL",
    "CheckedKeyPackage",
    "Header",
    "auth_content",
    "b64d",
    "b64e",
    "check_group_info",
    "check_key_package",
    "check_welcome",
    "parse_group_message",
    "register_content",
    "suite_or_refuse",
]

#: SignWithLabel labels (RFC 9420 §5.1.2) of the two proofs a client gives the server. They
#: differ from every MLS label, so neither proof can be replayed as an MLS signature.
REGISTER_LABEL = "DS register"
AUTH_LABEL = "DS authenticate"

# draft-ietf-mls-extensions: the last_resort KeyPackage extension (IANA 0x000A). RFC 9420 §16.8
# lets a client offer such a KeyPackage more than once, when it has no fresh one left.
LAST_RESORT_EXTENSION = 0x000A

_B64U = re.compile(r"[A-Za-z0-9_-]*")


def b64e(data: bytes) -> str:
    """base64url without padding (RFC 4648 §5), the encoding of every byte string in the API."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64d(text: object, what: str, *, max_len: int) -> bytes:
    """Strict base64url without padding: only the canonical encoding of a byte string."""
    if not isinstance(text, str):
        raise Refused(400, "bad_request", f"{what} must be a base64url string")
    if len(text) > (max_len * 4 + 2) // 3:
        raise Refused(413, "too_large", f"{what} is longer than {max_len} bytes")
    if not _B64U.fullmatch(text):
        raise Refused(400, "bad_request", f"{what} is not base64url")
    try:
        data = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError):
        raise Refused(400, "bad_request", f"{what} is not base64url") from None
    if b64e(data) != text:  # reject non-zero padding bits: one text per byte string
        raise Refused(400, "bad_request", f"{what} is not canonical base64url")
    return data


def _opaque(data: bytes) -> bytes:
    w = Writer()
    w.push_opaque(data)
    return w.getvalue()


def register_content(identity: bytes, signature_key: bytes) -> bytes:
    """What a client signs to register: ``opaque identity<V> || opaque signature_key<V>``."""
    return _opaque(identity) + _opaque(signature_key)


def auth_content(identity: bytes, challenge: bytes) -> bytes:
    """What a client signs to get a token: ``opaque identity<V> || opaque challenge<V>``."""
    return _opaque(identity) + _opaque(challenge)


def suite_or_refuse(suite_id: object) -> CipherSuite:
    if not isinstance(suite_id, int) or isinstance(suite_id, bool):
        raise Refused(400, "bad_request", "cipher_suite must be an integer")
    try:
        return get_suite(suite_id)
    except MLSError:
        raise Refused(422, "unsupported_cipher_suite", f"cipher suite {suite_id}") from None


_KINDS: dict[int, str] = {
    ContentType.application: "application",
    ContentType.proposal: "proposal",
    ContentType.commit: "commit",
}


@dataclass(frozen=True, slots=True)
class Header:
    """The clear header of a group message (RFC 9420 §6, §6.2, §6.3)."""

    group_id: bytes
    epoch: int
    content_type: int
    #: ``SenderType`` of a PublicMessage; ``None`` for a PrivateMessage (encrypted sender).
    sender_type: int | None

    @property
    def kind(self) -> str:
        return _KINDS[self.content_type]

    @property
    def external_commit(self) -> bool:
        """A commit by a joiner (§12.4.3.2), which only a PublicMessage can carry."""
        return self.sender_type == SenderType.new_member_commit


def _mls_message(data: bytes, what: str) -> MLSMessage:
    try:
        return decode(MLSMessage, data)
    except MLSError as exc:
        raise Refused(400, "malformed_message", f"{what} is not an MLSMessage: {exc}") from None


def parse_group_message(data: bytes) -> Header:
    """The header of a PublicMessage or PrivateMessage; anything else is refused."""
    body = _mls_message(data, "message").body
    if isinstance(body, PrivateMessage):
        return Header(body.group_id, body.epoch, body.content_type, None)
    if isinstance(body, PublicMessage):
        c = body.content
        return Header(c.group_id, c.epoch, c.content_type, c.sender.sender_type)
    raise Refused(400, "malformed_message", "not a group message (PublicMessage/PrivateMessage)")


def self_remove_of(data: bytes) -> bool:
    """Whether a group message is a SelfRemove proposal (draft-ietf-mls-extensions), checked as
    far as a server can: it must be a PublicMessage from a member (the draft: "MUST be sent in
    an MLS PublicMessage"; never an external proposal). Its signature and membership tag need the
    group's tree and keys, which joiners and members check."""
    body = _mls_message(data, "message").body
    if not isinstance(body, PublicMessage) or not isinstance(body.content.content, SelfRemove):
        return False
    if body.content.sender.sender_type != SenderType.member:
        raise Refused(422, "invalid_self_remove", "a SelfRemove is sent by a member")
    return True


def check_welcome(data: bytes) -> None:
    if not isinstance(_mls_message(data, "welcome").body, Welcome):
        raise Refused(400, "malformed_message", "welcome is not an MLSMessage(Welcome)")


def check_group_info(data: bytes, group_id: bytes) -> int:
    """Decode a GroupInfo of ``group_id`` and return its epoch.

    Its signature is by a member's leaf key, which only the ratchet tree names; the server does
    not hold the tree, so joiners verify it (§12.4.3.1).
    """
    body = _mls_message(data, "group_info").body
    if not isinstance(body, GroupInfo):
        raise Refused(400, "malformed_message", "group_info is not an MLSMessage(GroupInfo)")
    if body.group_context.group_id != group_id:
        raise Refused(422, "wrong_group", "the GroupInfo is of another group")
    return body.group_context.epoch


@dataclass(frozen=True, slots=True)
class CheckedKeyPackage:
    ref: bytes
    data: bytes
    last_resort: bool


def check_key_package(
    data: bytes, *, identity: bytes, signature_key: bytes, suite: CipherSuite
) -> CheckedKeyPackage:
    """A KeyPackage (MLSMessage) of the registered client: its suite, Basic credential
    identity and signature key are the client's, and both its signatures verify (§10.1)."""
    body = _mls_message(data, "key package").body
    if not isinstance(body, KeyPackage):
        raise Refused(400, "malformed_message", "not an MLSMessage(KeyPackage)")
    leaf = body.leaf_node
    if body.cipher_suite != suite.suite_id:
        raise Refused(422, "wrong_key_package", "KeyPackage of another cipher suite")
    if leaf.signature_key != signature_key:
        raise Refused(422, "wrong_key_package", "KeyPackage signed by another key")
    cred = leaf.credential
    if cred.credential_type == CredentialType.basic and cred.identity != identity:
        raise Refused(422, "wrong_key_package", "KeyPackage of another identity")
    try:
        body.verify(suite)
        leaf.verify(suite)
    except MLSError:
        raise Refused(422, "bad_signature", "KeyPackage signature does not verify") from None
    last_resort = any(e.extension_type == LAST_RESORT_EXTENSION for e in body.extensions)
    return CheckedKeyPackage(body.ref(suite), data, last_resort)
