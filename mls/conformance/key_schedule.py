"""Handler for ``mlswg/key-schedule.json`` (RFC 9420 §8, §8.1, §8.3, §8.5).

Every epoch of every case: the GroupContext encoding built from the given fields, the joiner,
welcome and init secrets, every epoch-derived secret, the external public key and an exporter
value. Each epoch is also re-derived the way a joiner does (from ``joiner_secret``).
"""

from __future__ import annotations

from typing import Any

from mls.codec import encode
from mls.conformance.core import expect_eq, h, suite_for
from mls.schedule.group_context import GroupContext
from mls.schedule.key_schedule import (
    derive_epoch_secrets,
    epoch_secrets_from_joiner,
    external_key_pair,
    mls_exporter,
    welcome_secret,
)

_SECRETS = (
    "joiner_secret",
    "welcome_secret",
    "init_secret",
    "sender_data_secret",
    "encryption_secret",
    "exporter_secret",
    "epoch_authenticator",
    "external_secret",
    "confirmation_key",
    "membership_key",
    "resumption_psk",
)


def check(case: Any) -> None:
    suite_id = case["cipher_suite"]
    cs = suite_for(suite_id)
    group_id = h(case["group_id"])
    init_secret = h(case["initial_init_secret"])
    for n, ep in enumerate(case["epochs"]):
        context = GroupContext(
            cipher_suite=suite_id,
            group_id=group_id,
            epoch=n,
            tree_hash=h(ep["tree_hash"]),
            confirmed_transcript_hash=h(ep["confirmed_transcript_hash"]),
        )
        ctx = encode(context)
        expect_eq(f"epoch {n} group_context", ctx, h(ep["group_context"]))
        psk = h(ep["psk_secret"])
        secrets = derive_epoch_secrets(
            cs,
            init_secret=init_secret,
            commit_secret=h(ep["commit_secret"]),
            psk_secret=psk,
            group_context=ctx,
        )
        for name in _SECRETS:
            expect_eq(f"epoch {n} {name}", getattr(secrets, name), h(ep[name]))
        # A joiner holds only joiner_secret and the PSKs: same epoch, same secrets.
        joiner = h(ep["joiner_secret"])
        expect_eq(
            f"epoch {n} welcome_secret (joiner)",
            welcome_secret(cs, joiner, psk),
            h(ep["welcome_secret"]),
        )
        expect_eq(
            f"epoch {n} secrets (joiner)", epoch_secrets_from_joiner(cs, joiner, psk, ctx), secrets
        )
        _, external_pub = external_key_pair(cs, secrets.external_secret)
        expect_eq(f"epoch {n} external_pub", external_pub, h(ep["external_pub"]))
        ex = ep["exporter"]
        # The label is used as the string it is in the file (its hex look is not an encoding).
        exported = mls_exporter(
            cs, secrets.exporter_secret, ex["label"], h(ex["context"]), ex["length"]
        )
        expect_eq(f"epoch {n} exporter", exported, h(ex["secret"]))
        init_secret = secrets.init_secret
