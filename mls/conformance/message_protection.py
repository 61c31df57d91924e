"""Handler for ``mlswg/message-protection.json`` (test-vectors.md "Message Protection";
RFC 9420 §6.1-§6.3).

For each of the proposal, the commit and the application data, with leaf 1 as the sender of a
two-member group whose GroupContext is built from the case (empty extensions):

- the given PublicMessage passes its membership tag and signature and carries the raw value
  (no PublicMessage exists for application data);
- protecting the raw value anew as a PublicMessage verifies again; for application data,
  protecting as a PublicMessage must fail;
- the given PrivateMessage decrypts with a fresh secret tree and verifies;
- protecting anew as a PrivateMessage (sender tree with own leaf 1) decrypts with a fresh
  receiver tree and verifies.

The vector gives no confirmation key, so a re-protected commit carries the confirmation tag of
the given PublicMessage: the tag is opaque to message protection. Every new message also goes
through an MLSMessage encode/decode round trip before it is unprotected.
"""

from __future__ import annotations

from typing import Any

from mls.codec.buffer import Writer
from mls.codec.wire import decode, encode
from mls.conformance.core import CaseFailed, expect_eq, h, suite_for
from mls.constants import WireFormat
from mls.errors import UsageError
from mls.framing.content import (
    AuthenticatedContent,
    Content,
    FramedContent,
    FramedContentAuthData,
    Sender,
    push_content,
    sign_framed_content,
)
from mls.framing.message import MLSMessage
from mls.framing.private import PrivateMessage
from mls.framing.protection import (
    decrypt_private_message,
    encrypt_private_message,
    public_message_from,
    verify_membership_tag,
)
from mls.framing.public import PublicMessage
from mls.messages.commit import Commit
from mls.messages.proposals import decode_proposal
from mls.schedule.group_context import GroupContext
from mls.schedule.secret_tree import SecretTree

_SENDER_LEAF = 1
_LEAVES = 2


def _content_bytes(content: Content) -> bytes:
    w = Writer()
    push_content(w, content)
    return w.getvalue()


def _body(data: bytes, kind: type[PublicMessage] | type[PrivateMessage]) -> Any:
    body = decode(MLSMessage, data).body
    if not isinstance(body, kind):
        raise CaseFailed(f"expected an MLSMessage carrying a {kind.__name__}")
    return body


class _Case:
    def __init__(self, case: Any) -> None:
        self.cs = suite_for(case["cipher_suite"])
        self.context = GroupContext(
            cipher_suite=case["cipher_suite"],
            group_id=h(case["group_id"]),
            epoch=case["epoch"],
            tree_hash=h(case["tree_hash"]),
            confirmed_transcript_hash=h(case["confirmed_transcript_hash"]),
        )
        # Some generators write ECDSA scalars without leading zeros (suite 5 has a 65-byte
        # P-521 key); the scalar is the same once left-padded to its fixed width.
        self.signature_priv = h(case["signature_priv"]).rjust(self.cs.signature_sk_len, b"\0")
        self.signature_pub = h(case["signature_pub"])
        self.encryption_secret = h(case["encryption_secret"])
        self.sender_data_secret = h(case["sender_data_secret"])
        self.membership_key = h(case["membership_key"])

    def check_content(self, what: str, got: AuthenticatedContent, raw: bytes) -> None:
        content = got.content
        expect_eq(f"{what}: content", _content_bytes(content.content), raw)
        expect_eq(f"{what}: group_id", content.group_id, self.context.group_id)
        expect_eq(f"{what}: epoch", content.epoch, self.context.epoch)
        expect_eq(f"{what}: sender", content.sender, Sender.member(_SENDER_LEAF))
        got.verify(self.cs, self.signature_pub, self.context)

    def protect_anew(
        self, wire_format: int, content: Content, confirmation_tag: bytes | None
    ) -> AuthenticatedContent:
        framed = FramedContent(
            group_id=self.context.group_id,
            epoch=self.context.epoch,
            sender=Sender.member(_SENDER_LEAF),
            authenticated_data=b"",
            content=content,
        )
        signature = sign_framed_content(
            self.cs, self.signature_priv, wire_format, framed, self.context
        )
        auth = FramedContentAuthData(signature=signature, confirmation_tag=confirmation_tag)
        return AuthenticatedContent(wire_format=wire_format, content=framed, auth=auth)

    def unprotect_public(self, what: str, data: bytes, raw: bytes) -> AuthenticatedContent:
        msg = _body(data, PublicMessage)
        got = verify_membership_tag(self.cs, msg, self.membership_key, self.context)
        self.check_content(what, got, raw)
        return got

    def unprotect_private(
        self, what: str, data: bytes, raw: bytes, own_leaf: int | None
    ) -> AuthenticatedContent:
        msg = _body(data, PrivateMessage)
        tree = SecretTree(self.cs, self.encryption_secret, _LEAVES, own_leaf=own_leaf)
        got, pending = decrypt_private_message(self.cs, msg, tree, self.sender_data_secret)
        self.check_content(what, got, raw)
        tree.confirm_receive(pending)
        return got

    def run(self, kind: str, raw: bytes, content: Content, case: Any) -> None:
        cs = self.cs
        tag: bytes | None = None
        if kind == "application":
            ac = self.protect_anew(WireFormat.mls_public_message, content, None)
            try:
                public_message_from(cs, ac, self.membership_key, self.context)
            except UsageError:
                pass
            else:
                raise CaseFailed("application data was protected as a PublicMessage")
        else:
            given = self.unprotect_public(f"{kind}_pub", h(case[f"{kind}_pub"]), raw)
            tag = given.auth.confirmation_tag
            ac = self.protect_anew(WireFormat.mls_public_message, content, tag)
            msg = public_message_from(cs, ac, self.membership_key, self.context)
            self.unprotect_public(f"new {kind} PublicMessage", encode(MLSMessage(body=msg)), raw)

        given_priv = self.unprotect_private(f"{kind}_priv", h(case[f"{kind}_priv"]), raw, None)
        if tag is None:
            tag = given_priv.auth.confirmation_tag
        ac = self.protect_anew(WireFormat.mls_private_message, content, tag)
        sender_tree = SecretTree(cs, self.encryption_secret, _LEAVES, own_leaf=_SENDER_LEAF)
        priv = encrypt_private_message(cs, ac, sender_tree, self.sender_data_secret)
        self.unprotect_private(f"new {kind} PrivateMessage", encode(MLSMessage(body=priv)), raw, 0)


def case_ids(data: Any) -> list[str]:
    return [f"suite{c['cipher_suite']}-{i}" for i, c in enumerate(data)]


def check(case: Any) -> None:
    c = _Case(case)
    proposal = h(case["proposal"])
    commit = h(case["commit"])
    application = h(case["application"])
    c.run("proposal", proposal, decode_proposal(proposal), case)
    c.run("commit", commit, decode(Commit, commit), case)
    c.run("application", _content_bytes(application), application, case)
