"""Handler for ``mlswg/psk_secret.json`` (RFC 9420 §8.4): the ``psk_secret`` chain."""

from __future__ import annotations

from typing import Any

from mls.conformance.core import expect_eq, h, suite_for
from mls.messages.proposals import PreSharedKeyID
from mls.schedule.psk import psk_secret


def case_ids(data: Any) -> list[str]:
    return [f"suite{c['cipher_suite']}-{len(c['psks'])}psks-{i}" for i, c in enumerate(data)]


def check(case: Any) -> None:
    cs = suite_for(case["cipher_suite"])
    psks = [
        (PreSharedKeyID.external(h(p["psk_id"]), h(p["psk_nonce"])), h(p["psk"]))
        for p in case["psks"]
    ]
    expect_eq("psk_secret", psk_secret(cs, psks), h(case["psk_secret"]))
