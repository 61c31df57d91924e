"""Generate ``vectors/pq-mls/*.json``: MLS test vectors (mlswg formats) for the post-quantum suites.

There are no public RFC 9420-format vectors for the suites of draft-ietf-mls-pq-ciphersuites;
these let other implementations check themselves against this one. Files, in the formats of
mlswg/mls-implementations ``test-vectors.md``:

- ``crypto-basics.json``: RefHash, ExpandWithLabel, DeriveSecret, DeriveTreeSecret,
  SignWithLabel, EncryptWithLabel (the KEM is ML-KEM or X-Wing; the signature Ed25519, ECDSA
  or ML-DSA);
- ``key-schedule.json``: three epochs each, including ``external_pub``, which is
  ``DeriveKeyPair(external_secret)`` in the suite's KEM (draft-ietf-hpke-pq);
- ``secret-tree.json``: sender data and ratchets (generations 0, 1, 15, 100) for 1, 8, 16 leaves;
- ``tree-operations.json``: Add, Update and Remove applied to a tree of real PQ leaves;
- ``welcome.json``: a Welcome for one KeyPackage, with ``init_priv`` and ``signer_pub``.

Suite ids are those of the ``openmls`` profile (``mls.crypto.registry``); each case also names
its suite in ``cipher_suite_name`` (ignored by readers of the mlswg format). The values come from
this library (``mls``), with every random draw taken from a SHA-256 counter stream over a fixed
seed, so keys, secrets and signatures of Ed25519/ECDSA are reproducible. Two things are not:
ML-KEM encapsulation and ML-DSA signing draw from OpenSSL (cryptography offers no derandomized
variants), so ``kem_output``/``ciphertext``/``welcome`` and ML-DSA signatures differ on each
run. ``--check`` therefore does not compare bytes: it runs the conformance handlers over the
checked-in files (as CI does) and fails on any mismatch.

Usage: ``python tools/gen_pq_mls_vectors.py [--check] [OUTDIR]`` (default ``vectors/pq-mls``).
"""

from __future__ import annotations

import hashlib
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from mls.codec.wire import decode, encode
from mls.constants import ContentType
from mls.crypto import (
    CipherSuite,
    CryptoProvider,
    derive_secret,
    derive_tree_secret,
    encrypt_with_label,
    expand_with_label,
    ref_hash,
    registry,
    sign_with_label,
)
from mls.framing.message import MLSMessage
from mls.framing.public import PublicMessage
from mls.group import Client, Group, GroupConfig
from mls.messages.proposals import Add, Remove, Update, encode_proposal
from mls.schedule.group_context import GroupContext
from mls.schedule.key_schedule import (
    derive_epoch_secrets,
    external_key_pair,
    joiner_secret,
    mls_exporter,
    sender_data_key_nonce,
    welcome_secret,
)
from mls.schedule.secret_tree import SecretTree
from mls.tree.ratchet_tree import RatchetTree

NOW = 1_750_000_000
FILES = ("crypto-basics", "key-schedule", "secret-tree", "tree-operations", "welcome")


class Stream:
    """A reproducible byte stream: SHA-256(seed || counter) blocks."""

    def __init__(self, seed: str) -> None:
        self._seed = seed.encode()
        self._n = 0

    def __call__(self, n: int) -> bytes:
        out = b""
        while len(out) < n:
            out += hashlib.sha256(self._seed + self._n.to_bytes(8, "big")).digest()
            self._n += 1
        return out[:n]


def _suite(sid: int, seed: str) -> tuple[CipherSuite, Stream]:
    rng = Stream(f"{seed}/{sid}")
    return CryptoProvider(rng, native_hpke=False).suite(sid), rng


def _head(cs: CipherSuite) -> dict[str, Any]:
    return {"cipher_suite": cs.suite_id, "cipher_suite_name": cs.name}


def crypto_basics(sid: int) -> dict[str, Any]:
    cs, r = _suite(sid, "crypto-basics")
    n = cs.hash_len
    secret, value, context = r(n), r(32), r(32)
    sig_sk, sig_pk = cs.generate_signature_key_pair()
    content = r(40)
    hpke_sk, hpke_pk = cs.generate_key_pair()
    pt, enc_ctx = r(40), r(24)
    kem_output, ct = encrypt_with_label(cs, hpke_pk, "EncryptWithLabel", enc_ctx, pt)
    tree_secret = r(n)
    return {
        **_head(cs),
        "ref_hash": {
            "label": "RefHash",
            "value": value.hex(),
            "out": ref_hash(cs, "RefHash", value).hex(),
        },
        "expand_with_label": {
            "secret": secret.hex(),
            "label": "ExpandWithLabel",
            "context": context.hex(),
            "length": 16,
            "out": expand_with_label(cs, secret, "ExpandWithLabel", context, 16).hex(),
        },
        "derive_secret": {
            "secret": secret.hex(),
            "label": "DeriveSecret",
            "out": derive_secret(cs, secret, "DeriveSecret").hex(),
        },
        "derive_tree_secret": {
            "secret": tree_secret.hex(),
            "label": "DeriveTreeSecret",
            "generation": 2_694_881_440,
            "length": 32,
            "out": derive_tree_secret(cs, tree_secret, "DeriveTreeSecret", 2_694_881_440, 32).hex(),
        },
        "sign_with_label": {
            "priv": sig_sk.hex(),
            "pub": sig_pk.hex(),
            "content": content.hex(),
            "label": "SignWithLabel",
            "signature": sign_with_label(cs, sig_sk, "SignWithLabel", content).hex(),
        },
        "encrypt_with_label": {
            "priv": hpke_sk.hex(),
            "pub": hpke_pk.hex(),
            "label": "EncryptWithLabel",
            "context": enc_ctx.hex(),
            "plaintext": pt.hex(),
            "kem_output": kem_output.hex(),
            "ciphertext": ct.hex(),
        },
    }


def key_schedule(sid: int) -> dict[str, Any]:
    cs, r = _suite(sid, "key-schedule")
    group_id = r(16)
    init_secret = r(cs.hash_len)
    case: dict[str, Any] = {
        **_head(cs),
        "group_id": group_id.hex(),
        "initial_init_secret": init_secret.hex(),
        "epochs": [],
    }
    for epoch in range(3):
        tree_hash, cth = r(cs.hash_len), r(cs.hash_len)
        commit_secret, psk_secret = r(cs.hash_len), r(cs.hash_len)
        ctx = encode(
            GroupContext(
                cipher_suite=sid,
                group_id=group_id,
                epoch=epoch,
                tree_hash=tree_hash,
                confirmed_transcript_hash=cth,
            )
        )
        s = derive_epoch_secrets(
            cs,
            init_secret=init_secret,
            commit_secret=commit_secret,
            psk_secret=psk_secret,
            group_context=ctx,
        )
        joiner = joiner_secret(cs, init_secret, commit_secret, ctx)
        assert joiner == s.joiner_secret
        label, ex_ctx = r(8).hex(), r(16)
        case["epochs"].append(
            {
                "tree_hash": tree_hash.hex(),
                "commit_secret": commit_secret.hex(),
                "psk_secret": psk_secret.hex(),
                "confirmed_transcript_hash": cth.hex(),
                "group_context": ctx.hex(),
                "joiner_secret": s.joiner_secret.hex(),
                "welcome_secret": welcome_secret(cs, s.joiner_secret, psk_secret).hex(),
                "init_secret": s.init_secret.hex(),
                "sender_data_secret": s.sender_data_secret.hex(),
                "encryption_secret": s.encryption_secret.hex(),
                "exporter_secret": s.exporter_secret.hex(),
                "epoch_authenticator": s.epoch_authenticator.hex(),
                "external_secret": s.external_secret.hex(),
                "confirmation_key": s.confirmation_key.hex(),
                "membership_key": s.membership_key.hex(),
                "resumption_psk": s.resumption_psk.hex(),
                "external_pub": external_key_pair(cs, s.external_secret)[1].hex(),
                "exporter": {
                    "label": label,
                    "context": ex_ctx.hex(),
                    "length": 32,
                    "secret": mls_exporter(cs, s.exporter_secret, label, ex_ctx, 32).hex(),
                },
            }
        )
        init_secret = s.init_secret
    return case


def secret_tree(sid: int, n_leaves: int) -> dict[str, Any]:
    cs, r = _suite(sid, f"secret-tree/{n_leaves}")
    sd_secret, sample, enc_secret = r(cs.hash_len), r(cs.aead_key_len), r(cs.hash_len)
    key, nonce = sender_data_key_nonce(cs, sd_secret, sample)
    tree = SecretTree(cs, enc_secret, n_leaves)
    leaves = []
    for i in range(n_leaves):
        entries = []
        for g in (0, 1, 15, 100):
            hk, hn = tree.receive_key(i, ContentType.commit, g)
            ak, an = tree.receive_key(i, ContentType.application, g)
            entries.append(
                {
                    "generation": g,
                    "handshake_key": hk.hex(),
                    "handshake_nonce": hn.hex(),
                    "application_key": ak.hex(),
                    "application_nonce": an.hex(),
                }
            )
        leaves.append(entries)
    return {
        **_head(cs),
        "sender_data": {
            "sender_data_secret": sd_secret.hex(),
            "ciphertext": sample.hex(),
            "key": key.hex(),
            "nonce": nonce.hex(),
        },
        "encryption_secret": enc_secret.hex(),
        "leaves": leaves,
    }


def _clients(cs: CipherSuite, names: list[str]) -> list[Client]:
    return [Client.create(n.encode(), cs) for n in names]


def tree_operations(sid: int) -> list[dict[str, Any]]:
    cs, _ = _suite(sid, "tree-operations")
    members = _clients(cs, [f"member-{i}" for i in range(4)])
    # Public handshake messages, so the Update proposal can be read off the wire.
    config = GroupConfig(private_handshake=False)
    g = Group.create(members[0], b"pq-tree-operations", config=config, now=NOW)
    g.commit(add=[c.key_package(NOW) for c in members[1:]], now=NOW)
    g.merge_pending_commit()
    before = g.export_tree()
    newcomer = _clients(cs, ["newcomer"])[0]
    cases = []

    def case(proposal: Any, sender: int, apply: Callable[[Any], None]) -> dict[str, Any]:
        tree = RatchetTree.decode(cs, before)  # a fresh tree per case: merge() changes it
        hash_before = tree.tree_hash()
        diff = tree.diff()
        apply(diff)
        after = diff.merge()
        return {
            **_head(cs),
            "tree_before": before.hex(),
            "proposal": encode_proposal(proposal).hex(),
            "proposal_sender": sender,
            "tree_hash_before": hash_before.hex(),
            "tree_after": after.encode_tree().hex(),
            "tree_hash_after": after.tree_hash().hex(),
        }

    add = Add(key_package=newcomer.key_package(NOW))
    cases.append(case(add, 0, lambda d: d.add_leaf(add.key_package.leaf_node)))
    upd_wire = g.propose_update()
    upd = _proposal_of(upd_wire)
    assert isinstance(upd, Update)
    cases.append(case(upd, 0, lambda d: d.update_leaf(0, upd.leaf_node)))
    rem = Remove(removed=2)
    cases.append(case(rem, 1, lambda d: d.remove_leaf(2)))
    return cases


def _proposal_of(wire: bytes) -> Any:
    msg = decode(MLSMessage, wire)
    assert isinstance(msg.body, PublicMessage), "the group sends public handshake messages"
    return msg.body.content.content


def welcome(sid: int) -> dict[str, Any]:
    cs, _ = _suite(sid, "welcome")
    alice, bob = _clients(cs, ["alice", "bob"])
    g = Group.create(alice, b"pq-welcome", now=NOW)
    kp = bob.key_package(NOW)
    out = g.commit(add=[kp], path=False, now=NOW)
    assert out.welcome is not None
    init_priv = next(iter(bob._pool.values())).init_private_key
    return {
        **_head(cs),
        "init_priv": init_priv.hex(),
        "signer_pub": alice.signature_public_key.hex(),
        "key_package": MLSMessage(body=kp).to_bytes().hex(),
        "welcome": out.welcome.hex(),
    }


def generate() -> dict[str, list[dict[str, Any]]]:
    registry.use_profile("openmls")
    suites = list(registry.pq_suite_ids())
    return {
        "crypto-basics": [crypto_basics(s) for s in suites],
        "key-schedule": [key_schedule(s) for s in suites],
        "secret-tree": [secret_tree(s, n) for s in suites for n in (1, 8, 16)],
        "tree-operations": [c for s in suites for c in tree_operations(s)],
        "welcome": [welcome(s) for s in suites],
    }


def check(outdir: Path) -> int:
    from mls.conformance.core import run_file

    bad = 0
    for name in FILES:
        res = run_file(outdir / f"{name}.json", name)
        status = f"{res.count('passed')}/{res.cases} passed"
        print(f"{name}: {status}", file=sys.stderr)
        if res.error or res.count("passed") != res.cases or res.cases == 0:
            bad += 1
            for line in res.failures()[:5] or [str(x) for x in res.results[:3]]:
                print(f"  - {line}", file=sys.stderr)
    return 1 if bad else 0


def main(argv: list[str]) -> int:
    args = [a for a in argv if a != "--check"]
    outdir = Path(args[0]) if args else Path(__file__).resolve().parents[1] / "vectors" / "pq-mls"
    if "--check" in argv:
        return check(outdir)
    outdir.mkdir(parents=True, exist_ok=True)
    for name, cases in generate().items():
        (outdir / f"{name}.json").write_text(json.dumps(cases, indent=2) + "\n")
    return check(outdir)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
