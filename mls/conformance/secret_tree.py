"""Handler for ``mlswg/secret-tree.json`` (RFC 9420 §6.3.2, §9).

Sender-data key and nonce from ``sender_data_secret`` and a ciphertext sample; every listed
generation of the handshake and application ratchets of every leaf. Each leaf's generations are
requested in the listed order through the receive path (so a later generation is an
out-of-order forward jump), on a tree whose forward bound admits the largest listed jump.
"""

from __future__ import annotations

from typing import Any

from mls.conformance.core import expect_eq, h, suite_for
from mls.constants import ContentType
from mls.schedule.key_schedule import sender_data_key_nonce
from mls.schedule.secret_tree import DEFAULT_MAX_FORWARD_DISTANCE, SecretTree


def case_ids(data: Any) -> list[str]:
    return [f"suite{c['cipher_suite']}-{len(c['leaves'])}leaves-{i}" for i, c in enumerate(data)]


def check(case: Any) -> None:
    cs = suite_for(case["cipher_suite"])
    sd = case["sender_data"]
    key, nonce = sender_data_key_nonce(cs, h(sd["sender_data_secret"]), h(sd["ciphertext"]))
    expect_eq("sender_data key", key, h(sd["key"]))
    expect_eq("sender_data nonce", nonce, h(sd["nonce"]))

    leaves = case["leaves"]
    largest = max((g["generation"] for leaf in leaves for g in leaf), default=0)
    tree = SecretTree(
        cs,
        h(case["encryption_secret"]),
        len(leaves),
        max_forward_distance=max(DEFAULT_MAX_FORWARD_DISTANCE, largest),
    )
    for i, leaf in enumerate(leaves):
        for entry in leaf:
            g = entry["generation"]
            hk, hn = tree.receive_key(i, ContentType.commit, g)
            ak, an = tree.receive_key(i, ContentType.application, g)
            expect_eq(f"leaf {i} gen {g} handshake_key", hk, h(entry["handshake_key"]))
            expect_eq(f"leaf {i} gen {g} handshake_nonce", hn, h(entry["handshake_nonce"]))
            expect_eq(f"leaf {i} gen {g} application_key", ak, h(entry["application_key"]))
            expect_eq(f"leaf {i} gen {g} application_nonce", an, h(entry["application_nonce"]))
