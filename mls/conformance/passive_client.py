"""Handler for ``mlswg/passive-client-{welcome,handling-commit,random}.json`` (test-vectors.md
"Passive Client Scenarios"; RFC 9420 §12.4.2, §12.4.3.1).

A client is built from the vector's signature key and KeyPackage (whose private keys must match
the KeyPackage's public ones), joins with the Welcome (the ratchet tree given or in the
GroupInfo, with the external PSKs), and then follows the group epoch by epoch: each proposal
message is processed and cached, then the commit, and every epoch's ``epoch_authenticator``
must match. The vectors come from other implementations and their leaf lifetimes may have
expired, so no time is given (``now=None``: lifetimes are not checked, §7.2).
"""

from __future__ import annotations

from typing import Any

from mls.codec.wire import decode
from mls.conformance.core import CaseFailed, expect_eq, h, suite_for
from mls.crypto import CipherSuite
from mls.errors import MLSError
from mls.framing.message import MLSMessage
from mls.group import Client, CommitMerged, Group, KeyPackagePrivate, ProposalReceived
from mls.messages.key_package import KeyPackage


def case_ids(data: Any) -> list[str]:
    return [f"suite{c['cipher_suite']}-{i}-epochs{len(c['epochs'])}" for i, c in enumerate(data)]


def _client(cs: CipherSuite, case: Any) -> Client:
    """A client holding the vector's signature key, KeyPackage and external PSKs."""
    kp = decode(MLSMessage, h(case["key_package"])).body
    if not isinstance(kp, KeyPackage):
        raise CaseFailed("key_package does not carry a KeyPackage")
    leaf = kp.leaf_node
    # Some generators write scalars without leading zeros (65-byte P-521 keys in suite 5); the
    # scalar is the same once left-padded to its fixed width (RFC 9180 §7.1.2 Nsk).
    sig_priv = h(case["signature_priv"]).rjust(cs.signature_sk_len, b"\0")
    init_priv = h(case["init_priv"]).rjust(cs.hpke_sk_len, b"\0")
    enc_priv = h(case["encryption_priv"]).rjust(cs.hpke_sk_len, b"\0")
    sig_pub = cs.signature_public_key(sig_priv)
    expect_eq("signature_priv's public key", sig_pub, leaf.signature_key)
    expect_eq("init_priv's public key", cs.hpke_public_key(init_priv), kp.init_key)
    expect_eq("encryption_priv's public key", cs.hpke_public_key(enc_priv), leaf.encryption_key)
    client = Client(
        suite=cs,
        credential=leaf.credential,
        signature_private_key=sig_priv,
        signature_public_key=sig_pub,
        capabilities=leaf.capabilities,
    )
    client.adopt_key_package(
        KeyPackagePrivate(
            key_package=kp, init_private_key=init_priv, encryption_private_key=enc_priv
        )
    )
    for psk in case["external_psks"]:
        client.add_external_psk(h(psk["psk_id"]), h(psk["psk"]))
    return client


def check(case: Any) -> None:
    cs = suite_for(case["cipher_suite"])
    client = _client(cs, case)
    tree = case["ratchet_tree"]
    try:
        group = Group.join(
            client, h(case["welcome"]), ratchet_tree=None if tree is None else h(tree), now=None
        )
    except MLSError as exc:
        raise CaseFailed(f"join: {type(exc).__name__}: {exc}") from exc
    expect_eq(
        "initial epoch_authenticator",
        group.epoch_authenticator,
        h(case["initial_epoch_authenticator"]),
    )
    for n, epoch in enumerate(case["epochs"]):
        where = f"epoch entry {n} (group epoch {group.epoch})"
        for k, proposal in enumerate(epoch["proposals"]):
            try:
                event = group.process(h(proposal), now=None)
            except MLSError as exc:
                raise CaseFailed(f"{where}, proposal {k}: {type(exc).__name__}: {exc}") from exc
            if not isinstance(event, ProposalReceived):
                raise CaseFailed(f"{where}, proposal {k}: got {type(event).__name__}")
        try:
            event = group.process(h(epoch["commit"]), now=None)
        except MLSError as exc:
            raise CaseFailed(f"{where}, commit: {type(exc).__name__}: {exc}") from exc
        if not isinstance(event, CommitMerged):
            raise CaseFailed(f"{where}, commit: got {type(event).__name__}")
        expect_eq(
            f"{where}: epoch_authenticator",
            group.epoch_authenticator,
            h(epoch["epoch_authenticator"]),
        )
