"""Handler for ``mlswg/welcome.json`` (test-vectors.md "Welcome"; RFC 9420 §12.4.3.1).

Find the ``secrets`` entry for ``key_package``, decrypt the GroupSecrets with ``init_priv`` and
the GroupInfo with the welcome key (no PSKs), verify the GroupInfo signature with
``signer_pub``, and recompute the confirmation tag from a key schedule epoch started from the
``joiner_secret``.

Two more checks exercise the sending side: re-encrypting the decrypted GroupInfo under the same
welcome secret must give the vector's ``encrypted_group_info`` byte for byte (the AEAD is
deterministic for a fixed key and nonce), and a Welcome built anew for ``key_package`` must
open with ``init_priv`` to the same GroupSecrets and GroupInfo.
"""

from __future__ import annotations

from typing import Any

from mls.codec.wire import decode, encode
from mls.conformance.core import CaseFailed, expect_eq, h, suite_for
from mls.framing.message import MLSMessage
from mls.messages.key_package import KeyPackage
from mls.messages.welcome import Welcome
from mls.messages.welcome_crypto import build_welcome, encrypt_group_info, open_welcome
from mls.schedule.key_schedule import (
    epoch_secrets_from_joiner,
    verify_confirmation_tag,
    welcome_secret,
)


def case_ids(data: Any) -> list[str]:
    return [f"suite{c['cipher_suite']}-{i}" for i, c in enumerate(data)]


def check(case: Any) -> None:
    cs = suite_for(case["cipher_suite"])
    init_priv = h(case["init_priv"])
    key_package = decode(MLSMessage, h(case["key_package"])).body
    welcome = decode(MLSMessage, h(case["welcome"])).body
    if not isinstance(key_package, KeyPackage) or not isinstance(welcome, Welcome):
        raise CaseFailed("key_package / welcome do not carry a KeyPackage / Welcome")

    secrets, group_info = open_welcome(cs, welcome, key_package, init_priv)
    if secrets.psks:
        raise CaseFailed("the vector's GroupSecrets name PSKs; test-vectors.md says none")
    group_info.verify(cs, h(case["signer_pub"]))
    context = group_info.group_context
    epoch = epoch_secrets_from_joiner(cs, secrets.joiner_secret, None, context.to_bytes())
    verify_confirmation_tag(
        cs, epoch.confirmation_key, context.confirmed_transcript_hash, group_info.confirmation_tag
    )

    ws = welcome_secret(cs, secrets.joiner_secret, None)
    expect_eq(
        "re-encrypted GroupInfo",
        encrypt_group_info(cs, ws, group_info),
        welcome.encrypted_group_info,
    )
    path_secret = None if secrets.path_secret is None else secrets.path_secret.path_secret
    fresh = build_welcome(cs, group_info, secrets.joiner_secret, [(key_package, path_secret)])
    fresh = decode(Welcome, encode(fresh))
    secrets2, group_info2 = open_welcome(cs, fresh, key_package, init_priv)
    expect_eq("rebuilt GroupSecrets", encode(secrets2), encode(secrets))
    expect_eq("rebuilt GroupInfo", encode(group_info2), encode(group_info))
