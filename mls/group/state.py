"""Persistent form of a :class:`~mls.group.Client` and a :class:`~mls.group.Group`.

A versioned CBOR map (``cbor2``) holding the wire encodings of the protocol structs and the
secrets a member still holds: nothing that forward secrecy says is gone is written (consumed
ratchet keys are absent from the secret tree's own encoding, §9.2). A pending (unmerged) commit
is not part of the state: the caller keeps its CommitOutput until the delivery service decides.

These bytes are as sensitive as the keys they hold; the application stores them encrypted.
"""

from __future__ import annotations

from dataclasses import asdict, fields
from typing import Any

import cbor2

from mls.codec import Buffer, Writer, decode, encode
from mls.credentials import Credential
from mls.crypto import CipherSuite, get_suite
from mls.errors import DecodeError, MLSError
from mls.group.config import GroupConfig
from mls.messages.key_package import KeyPackage
from mls.messages.proposals import ReInit, pull_proposal, push_proposal
from mls.schedule.group_context import GroupContext
from mls.schedule.key_schedule import EpochSecrets
from mls.schedule.secret_tree import SecretTree
from mls.tree.nodes import Capabilities, LeafNode
from mls.tree.ratchet_tree import RatchetTree
from mls.tree.treekem import TreePrivate

__all__ = ["CLIENT_STATE_VERSION", "GROUP_STATE_VERSION", "StateError"]

GROUP_STATE_VERSION = 1
CLIENT_STATE_VERSION = 1


class StateError(DecodeError):
    """Stored state that does not parse or has an unknown version."""


def _loads(data: bytes, version: int, kind: str) -> dict[str, Any]:
    try:
        obj = cbor2.loads(data)
    except Exception as exc:  # cbor2 raises many types on garbage
        raise StateError(f"{kind} state is not valid CBOR") from exc
    if not isinstance(obj, dict) or obj.get("v") != version or obj.get("kind") != kind:
        raise StateError(f"unknown {kind} state format or version")
    return obj


def _guard(kind: str, fn: Any, *args: Any) -> Any:
    try:
        return fn(*args)
    except MLSError:
        raise
    except (KeyError, TypeError, ValueError, IndexError, AttributeError) as exc:
        raise StateError(f"malformed {kind} state: {type(exc).__name__}") from exc


# -- client -----------------------------------------------------------------------------------


def client_to_bytes(client: Any) -> bytes:
    from mls.group.client import Client

    assert isinstance(client, Client)
    pool = [
        [p.key_package.to_bytes(), p.init_private_key, p.encryption_private_key, p.last_resort]
        for p in client._pool.values()
    ]
    return cbor2.dumps(
        {
            "v": CLIENT_STATE_VERSION,
            "kind": "client",
            "suite": client.suite.suite_id,
            "credential": encode(client.credential),
            "sig_sk": client.signature_private_key,
            "sig_pk": client.signature_public_key,
            "caps": encode(client.capabilities),
            "pool": pool,
            "psks": [[k, v] for k, v in client._external_psks.items()],
        }
    )


def client_from_bytes(data: bytes, suite: CipherSuite | None = None) -> Any:
    obj = _loads(data, CLIENT_STATE_VERSION, "client")
    return _guard("client", _client_from_obj, obj, suite)


def _client_from_obj(obj: dict[str, Any], suite: CipherSuite | None) -> Any:
    from mls.group.client import Client, KeyPackagePrivate

    cs = suite or get_suite(int(obj["suite"]))
    client = Client(
        suite=cs,
        credential=decode(Credential, obj["credential"]),
        signature_private_key=bytes(obj["sig_sk"]),
        signature_public_key=bytes(obj["sig_pk"]),
        capabilities=decode(Capabilities, obj["caps"]),
    )
    for kp_bytes, init_sk, enc_sk, last_resort in obj["pool"]:
        kp = decode(KeyPackage, kp_bytes)
        client._pool[kp.ref(cs)] = KeyPackagePrivate(kp, init_sk, enc_sk, bool(last_resort))
    for k, v in obj["psks"]:
        client._external_psks[bytes(k)] = bytes(v)
    return client


# -- group ------------------------------------------------------------------------------------


def group_to_bytes(group: Any) -> bytes:
    from mls.group.group import Group

    assert isinstance(group, Group)
    # A pending commit is not persisted: the state is the current epoch (with the handshake
    # ratchet already past the commit's key), and the caller keeps the CommitOutput.
    priv = group._private
    proposals = []
    for ref, cached in group._proposals.items():
        w = Writer()
        push_proposal(w, cached.proposal)
        proposals.append([ref, w.getvalue(), encode(cached.sender), cached.update_private_key])
    past = [
        [
            ep,
            p.context.to_bytes(),
            p.secret_tree.to_bytes(),
            p.sender_data_secret,
            [[leaf, n.to_bytes() if n is not None else None] for leaf, n in p.leaves.items()],
            p.retired_at,
            [[leaf, g] for leaf, g in p.removed_limits.items()],
        ]
        for ep, p in group._past.items()
    ]
    return cbor2.dumps(
        {
            "v": GROUP_STATE_VERSION,
            "kind": "group",
            "suite": group._cs.suite_id,
            # Callables (the external-proposal policy) are code, not state: the application
            # passes them again when it loads the group (``Group.from_bytes(config=...)``).
            "config": {k: v for k, v in asdict(group._config).items() if not callable(v)},
            "context": group._context.to_bytes(),
            "tree": group._tree.encode_tree(),
            "leaf": priv.leaf_index,
            "priv": [[x, sk, pk] for x, (sk, pk) in sorted(priv._keys.items())],
            "secrets": {f.name: getattr(group._secrets, f.name) for f in fields(EpochSecrets)},
            "interim": group._interim,
            "tag": group._confirmation_tag,
            "secret_tree": group._secret_tree.to_bytes(),
            "status": group._status.value,
            "reinit": encode(group._reinit) if group._reinit is not None else None,
            "proposals": proposals,
            "past": past,
            "resumption": [[ep, s] for ep, s in group._resumption.items()],
        }
    )


def group_from_bytes(
    data: bytes, client: Any, identity: Any = None, config: GroupConfig | None = None
) -> Any:
    obj = _loads(data, GROUP_STATE_VERSION, "group")
    return _guard("group", _group_from_obj, obj, client, identity, config)


def _group_from_obj(
    obj: dict[str, Any], client: Any, identity: Any, override: GroupConfig | None
) -> Any:
    from mls.framing.content import Sender
    from mls.group.group import Group, GroupStatus, _CachedProposal, _Epoch, _PastEpoch

    cs = client.suite
    if int(obj["suite"]) != cs.suite_id:
        raise StateError("stored group uses another cipher suite than the client")
    known = {f.name for f in fields(GroupConfig)}
    config = override or GroupConfig(**{k: v for k, v in obj["config"].items() if k in known})
    context = decode(GroupContext, obj["context"])
    tree = RatchetTree.decode(cs, obj["tree"])
    private = TreePrivate(
        int(obj["leaf"]), {int(x): (bytes(sk), bytes(pk)) for x, sk, pk in obj["priv"]}
    )
    secrets = EpochSecrets(**{k: bytes(v) for k, v in obj["secrets"].items()})
    epoch = _Epoch(
        context=context,
        tree=tree,
        private=private,
        secrets=secrets,
        interim_transcript_hash=bytes(obj["interim"]),
        confirmation_tag=bytes(obj["tag"]),
    )
    group = Group(
        client=client,
        cs=cs,
        config=config,
        epoch=epoch,
        identity=identity,
        secret_tree=SecretTree.from_bytes(cs, obj["secret_tree"]),
    )
    group._status = GroupStatus(obj["status"])
    group._reinit = decode(ReInit, obj["reinit"]) if obj["reinit"] is not None else None
    for ref, pbytes, sbytes, ukey in obj["proposals"]:
        buf = Buffer(pbytes)
        proposal = pull_proposal(buf)
        if not buf.eof():
            raise StateError("trailing bytes after a stored proposal")
        group._proposals[bytes(ref)] = _CachedProposal(
            proposal, decode(Sender, sbytes), bytes(ukey) if ukey is not None else None
        )
    group._past.clear()
    for entry in obj["past"]:
        # Entries stored before past-epoch bounds existed have five fields.
        ep, ctx_bytes, st_bytes, sds, keys = entry[:5]
        retired_at, limits = (entry[5], entry[6]) if len(entry) >= 7 else (None, [])
        group._past[int(ep)] = _PastEpoch(
            context=decode(GroupContext, ctx_bytes),
            secret_tree=SecretTree.from_bytes(cs, st_bytes),
            sender_data_secret=bytes(sds),
            leaves={
                int(leaf): (decode(LeafNode, n) if n is not None else None) for leaf, n in keys
            },
            retired_at=None if retired_at is None else int(retired_at),
            removed_limits={int(leaf): int(g) for leaf, g in limits},
        )
    group._resumption.clear()
    for ep, s in obj["resumption"]:
        group._resumption[int(ep)] = bytes(s)
    return group
