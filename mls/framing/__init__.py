"""Message framing (RFC 9420 §6): content, signatures, PublicMessage, PrivateMessage, MLSMessage.

Structs, their codecs, the TBS/TBM byte encodings and signature helpers. Encryption (the
secret tree, sender-data keys) and the key schedule live elsewhere. The pipeline, as in §6::

    Proposal | Commit | application data
                 |
                 v
           FramedContent ---- SignWithLabel("FramedContentTBS",      content.py
                 |              FramedContentTBS = version, wire_format,
                 |              content, [GroupContext])
                 v
       AuthenticatedContent  (wire_format, content, auth = signature [+ confirmation_tag])
           |                        |
           | MAC(membership_key,    | AEAD(secret tree key,            private.py
           |  AuthenticatedContentTBM)  PrivateMessageContent + padding)
           v                        v
     PublicMessage            PrivateMessage       Welcome  GroupInfo  KeyPackage
       public.py                    |                 |         |          |
           +------------------------+-----------------+---------+----------+
                                    v
                               MLSMessage                                     message.py

Decoding runs the same arrows upwards: ``MLSMessage.decode`` -> PublicMessage (verify the
membership tag, then the signature) or PrivateMessage (decrypt sender data and content,
``PrivateMessageContent.decode_plaintext`` checks the padding, then verify the signature).
"""

from __future__ import annotations

from mls.framing.content import (
    AuthenticatedContent,
    Content,
    FramedContent,
    FramedContentAuthData,
    Sender,
    framed_content_tbs,
    sign_framed_content,
    verify_framed_content,
)
from mls.framing.message import MessageBody, MLSMessage
from mls.framing.private import (
    PrivateContentAAD,
    PrivateMessage,
    PrivateMessageContent,
    SenderData,
    SenderDataAAD,
)
from mls.framing.public import PublicMessage, membership_tag

__all__ = [
    "Sender",
    "Content",
    "FramedContent",
    "FramedContentAuthData",
    "AuthenticatedContent",
    "framed_content_tbs",
    "sign_framed_content",
    "verify_framed_content",
    "PublicMessage",
    "membership_tag",
    "PrivateMessage",
    "PrivateMessageContent",
    "SenderData",
    "SenderDataAAD",
    "PrivateContentAAD",
    "MLSMessage",
    "MessageBody",
]
