"""The application-message fast path builds exactly the bytes of the general path (§6.1, §6.3):
sign a FramedContent, then encrypt it as a PrivateMessage."""

from __future__ import annotations

import pytest

from mls.constants import WireFormat
from mls.crypto import CryptoProvider
from mls.framing.content import (
    AuthenticatedContent,
    FramedContent,
    FramedContentAuthData,
    Sender,
    sign_framed_content,
)
from mls.framing.message import MLSMessage
from mls.framing.protection import encrypt_private_message, protect_application_data
from mls.schedule.group_context import GroupContext
from mls.schedule.secret_tree import SecretTree


def _rng(seed: int):  # type: ignore[no-untyped-def]
    state = [seed]

    def rng(n: int) -> bytes:
        state[0] += 1
        return bytes((state[0] + i) & 0xFF for i in range(n))

    return rng


@pytest.mark.parametrize("size", [0, 1, 63, 64, 1024, 20000])
@pytest.mark.parametrize("ad", [b"", b"authenticated"])
def test_fast_path_equals_general_path(suite_id: int, size: int, ad: bytes) -> None:
    cs_a = CryptoProvider(rng=_rng(7)).suite(suite_id)
    cs_b = CryptoProvider(rng=_rng(7)).suite(suite_id)
    sk, _ = CryptoProvider().suite(suite_id).generate_signature_key_pair()
    ctx = GroupContext(
        cipher_suite=suite_id,
        group_id=b"group",
        epoch=5,
        tree_hash=b"t" * cs_a.hash_len,
        confirmed_transcript_hash=b"c" * cs_a.hash_len,
    )
    enc = b"e" * cs_a.hash_len
    sd = b"s" * cs_a.hash_len
    data = bytes(range(256)) * (size // 256) + bytes(size % 256)
    fast = protect_application_data(
        cs_a, sk, ctx, SecretTree(cs_a, enc, 4, own_leaf=2), sd, data, authenticated_data=ad
    )
    content = FramedContent(
        group_id=b"group", epoch=5, sender=Sender.member(2), authenticated_data=ad, content=data
    )
    wf = WireFormat.mls_private_message
    sig = sign_framed_content(cs_b, sk, wf, content, ctx)
    auth = AuthenticatedContent(
        wire_format=wf, content=content, auth=FramedContentAuthData(signature=sig)
    )
    general = encrypt_private_message(cs_b, auth, SecretTree(cs_b, enc, 4, own_leaf=2), sd)
    if suite_id in (2, 5, 7):
        # ECDSA is deterministic only where OpenSSL implements RFC 6979; compare lengths then.
        assert len(fast) == len(MLSMessage(body=general).to_bytes())
    else:
        assert fast == MLSMessage(body=general).to_bytes()
