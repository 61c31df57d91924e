"""Persistent form of a :class:`~mls.group.Client` and a :class:`~mls.group.Group`.

The owners produce and consume plain snapshot values (:class:`ClientSnapshot`,
:class:`GroupSnapshot`); this module converts them to and from a versioned CBOR map (``cbor2``)
holding the wire encodings of the protocol structs and the secrets a member still holds: nothing
that forward secrecy says is gone is written (consumed ratchet keys are absent from the secret
tree's own encoding, §9.2). A pending (unmerged) commit is not part of the state: the caller
keeps its CommitOutput until the delivery service decides. It imports neither ``client`` nor
``group`` (mls-rs ``Snapshot``).

These bytes are as sensitive as the keys they hold; the application stores them encrypted.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from typing import TypeVar

import cbor2

from mls.codec import Buffer, Writer, decode, encode
from mls.credentials import Credential
from mls.crypto import CipherSuite, get_suite
from mls.errors import DecodeError, MLSError
from mls.framing.content import Sender
from mls.group.config import GroupConfig
from mls.group.epoch import EpochState, GroupStatus, PastEpoch
from mls.group.proposal_list import CachedProposal
from mls.messages.key_package import KeyPackage
from mls.messages.proposals import ReInit, pull_proposal, push_proposal
from mls.schedule.group_context import GroupContext
from mls.schedule.key_schedule import EpochSecrets
from mls.schedule.secret_tree import SecretTree
from mls.tree.nodes import Capabilities, LeafNode
from mls.tree.ratchet_tree import RatchetTree
from mls.tree.treekem import TreePrivate

__all__ = [
    "CLIENT_STATE_VERSION",
    "GROUP_PARTS_VERSION",
    "GROUP_STATE_VERSION",
    "ClientSnapshot",
    "GroupDelta",
    "GroupSnapshot",
    "PoolEntry",
    "SecretRows",
    "StateError",
    "split_state",
]

GROUP_STATE_VERSION = 1
CLIENT_STATE_VERSION = 1
#: Version of the parts form (:class:`GroupDelta`): the epoch part and the rest part.
GROUP_PARTS_VERSION = 1

#: One KeyPackage of a client's pool: (KeyPackage, init private key, leaf private key,
#: last resort).
PoolEntry = tuple[KeyPackage, bytes, bytes, bool]

_T = TypeVar("_T")
# A decoded CBOR map: values are CBOR items whose shape the decoder checks as it goes.
_Obj = dict[str, object]


class StateError(DecodeError):
    """Stored state that does not parse or has an unknown version."""


def _loads(data: bytes, version: int, kind: str) -> _Obj:
    try:
        obj = cbor2.loads(data)
    except Exception as exc:  # cbor2 raises many types on garbage
        raise StateError(f"{kind} state is not valid CBOR") from exc
    if not isinstance(obj, dict) or obj.get("v") != version or obj.get("kind") != kind:
        raise StateError(f"unknown {kind} state format or version")
    return obj


def _guard(kind: str, fn: Callable[[], _T]) -> _T:
    try:
        return fn()
    except MLSError:
        raise
    except (KeyError, TypeError, ValueError, IndexError, AttributeError) as exc:
        raise StateError(f"malformed {kind} state: {type(exc).__name__}") from exc


def _list(obj: _Obj, key: str) -> list[list[object]]:
    items = obj[key]
    if not isinstance(items, list):
        raise TypeError(key)
    return items


def _bytes(x: object) -> bytes:
    if not isinstance(x, bytes):
        raise TypeError("bytes expected")
    return x


def _int(x: object) -> int:
    if not isinstance(x, int):
        raise TypeError("int expected")
    return x


# -- client -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ClientSnapshot:
    suite: CipherSuite
    credential: Credential
    signature_private_key: bytes = field(repr=False)
    signature_public_key: bytes
    capabilities: Capabilities
    pool: tuple[PoolEntry, ...] = field(repr=False)
    psks: tuple[tuple[bytes, bytes], ...] = field(repr=False)

    def to_bytes(self) -> bytes:
        return cbor2.dumps(
            {
                "v": CLIENT_STATE_VERSION,
                "kind": "client",
                "suite": self.suite.suite_id,
                "credential": encode(self.credential),
                "sig_sk": self.signature_private_key,
                "sig_pk": self.signature_public_key,
                "caps": encode(self.capabilities),
                "pool": [[kp.to_bytes(), i, e, last] for kp, i, e, last in self.pool],
                "psks": [[k, v] for k, v in self.psks],
            }
        )

    @classmethod
    def from_bytes(cls, data: bytes, suite: CipherSuite | None = None) -> ClientSnapshot:
        obj = _loads(data, CLIENT_STATE_VERSION, "client")
        return _guard("client", lambda: cls._from_obj(obj, suite))

    @classmethod
    def _from_obj(cls, obj: _Obj, suite: CipherSuite | None) -> ClientSnapshot:
        cs = suite or get_suite(_int(obj["suite"]))
        return cls(
            suite=cs,
            credential=decode(Credential, _bytes(obj["credential"])),
            signature_private_key=_bytes(obj["sig_sk"]),
            signature_public_key=_bytes(obj["sig_pk"]),
            capabilities=decode(Capabilities, _bytes(obj["caps"])),
            pool=tuple(
                (decode(KeyPackage, _bytes(kp)), _bytes(i), _bytes(e), bool(last))
                for kp, i, e, last in _list(obj, "pool")
            ),
            psks=tuple((_bytes(k), _bytes(v)) for k, v in _list(obj, "psks")),
        )


# -- group ------------------------------------------------------------------------------------


#: Secret-tree rows of a group in the parts form: (epoch, node index) -> SecretTreeRow.
SecretRows = Mapping[tuple[int, int], bytes]


@dataclass(frozen=True, slots=True)
class GroupDelta:
    """What changed in a group's stored form since the previous delta (``Group.storage_delta``).

    The parts form splits a group's state so that a store writes what an operation changed:

    - ``state``: the epoch part (GroupContext, ratchet tree, private keys, epoch secrets,
      transcript hashes): rewritten once per epoch;
    - ``rest``: the small part (status, cached proposals, what is kept of past epochs,
      resumption PSKs, options);
    - ``secrets``: the secret trees of the current and past epochs, one row per node that
      holds a secret (``SecretTree.take_changed_rows``), keyed ``(epoch, node)``.

    A store applies a delta in one transaction: when ``full``, it first deletes every secret
    row of the group; it deletes the rows of ``drop_epochs`` and every row whose new value is
    ``None`` (a consumed secret, §9.2), and writes the others.
    """

    group_id: bytes
    epoch: int
    full: bool
    state: bytes | None = field(repr=False)
    rest: bytes | None = field(repr=False)
    secrets: Mapping[tuple[int, int], bytes | None] = field(repr=False)
    drop_epochs: tuple[int, ...] = ()


@dataclass(frozen=True, slots=True)
class GroupSnapshot:
    suite_id: int
    config: GroupConfig
    epoch: EpochState = field(repr=False)
    status: GroupStatus
    reinit: ReInit | None
    proposals: tuple[tuple[bytes, CachedProposal], ...] = field(repr=False)
    past: tuple[tuple[int, PastEpoch], ...] = field(repr=False)
    resumption: tuple[tuple[int, bytes], ...] = field(repr=False)

    # -- the whole state in one blob (GROUP_STATE_VERSION) -----------------------------------

    def to_bytes(self) -> bytes:
        rest = self._rest_fields(lambda _, tree: tree.to_bytes())
        # The key order is the stored format's (tests/test_stored_state.py): keep it.
        return cbor2.dumps(
            {
                "v": GROUP_STATE_VERSION,
                "kind": "group",
                "suite": self.suite_id,
                "config": rest.pop("config"),
                **self._epoch_fields(),
                "secret_tree": self.epoch.secret_tree.to_bytes(),
                **rest,
            }
        )

    def _epoch_fields(self) -> _Obj:
        e = self.epoch
        return {
            "context": e.context.to_bytes(),
            "tree": e.tree.encode_tree(),
            "leaf": e.private.leaf_index,
            "priv": [[x, sk, pk] for x, (sk, pk) in sorted(e.private.key_pairs().items())],
            "secrets": {f.name: getattr(e.secrets, f.name) for f in fields(EpochSecrets)},
            "interim": e.interim_transcript_hash,
            "tag": e.confirmation_tag,
        }

    def _rest_fields(self, tree: Callable[[int, SecretTree], bytes]) -> _Obj:
        proposals = []
        for ref, cached in self.proposals:
            w = Writer()
            push_proposal(w, cached.proposal)
            proposals.append([ref, w.getvalue(), encode(cached.sender), cached.update_private_key])
        past = [
            [
                ep,
                p.context.to_bytes(),
                tree(ep, p.secret_tree),
                p.sender_data_secret,
                [[leaf, n.to_bytes() if n is not None else None] for leaf, n in p.leaves.items()],
                p.retired_at,
                [[leaf, g] for leaf, g in p.removed_limits.items()],
            ]
            for ep, p in self.past
        ]
        return {
            # Callables (the external-proposal policy) are code, not state: the application
            # passes them again when it loads the group (``Group.from_bytes(config=...)``).
            # (Every option is a plain value: a shallow copy encodes as asdict() would.)
            "config": {
                f.name: v
                for f in fields(self.config)
                if not callable(v := getattr(self.config, f.name))
            },
            "status": self.status.value,
            "reinit": encode(self.reinit) if self.reinit is not None else None,
            "proposals": proposals,
            "past": past,
            "resumption": [[ep, s] for ep, s in self.resumption],
        }

    @classmethod
    def from_bytes(
        cls, data: bytes, cs: CipherSuite, config: GroupConfig | None = None
    ) -> GroupSnapshot:
        """Decode a stored group of suite ``cs``. The stored options are restored unless
        ``config`` replaces them."""
        obj = _loads(data, GROUP_STATE_VERSION, "group")
        return _guard(
            "group",
            lambda: cls._from_obj(
                obj, cs, config, lambda _, v: SecretTree.from_bytes(cs, _bytes(v))
            ),
        )

    # -- the parts form (GroupDelta) --------------------------------------------------------

    def epoch_part(self) -> bytes:
        """The epoch part of the parts form (the current secret tree's header only)."""
        return cbor2.dumps(
            {
                "v": GROUP_PARTS_VERSION,
                "kind": "group-epoch",
                "suite": self.suite_id,
                **self._epoch_fields(),
                "secret_tree": self.epoch.secret_tree.header(),
            }
        )

    def rest_part(self) -> bytes:
        """The small part of the parts form (past epochs with their secret-tree headers)."""
        return cbor2.dumps(
            {
                "v": GROUP_PARTS_VERSION,
                "kind": "group-rest",
                **self._rest_fields(lambda _, tree: tree.header()),
            }
        )

    def secret_trees(self) -> list[tuple[int, SecretTree]]:
        """The secret trees held, by epoch: the current one first."""
        return [(self.epoch.context.epoch, self.epoch.secret_tree)] + [
            (ep, p.secret_tree) for ep, p in self.past
        ]

    @classmethod
    def from_parts(
        cls,
        state: bytes,
        rest: bytes,
        secrets: SecretRows,
        cs: CipherSuite,
        config: GroupConfig | None = None,
    ) -> GroupSnapshot:
        """Decode a group stored in the parts form (see :class:`GroupDelta`). Rows of an epoch
        the group does not keep are refused: they would be keys that should have been
        deleted."""
        epoch_obj = _loads(state, GROUP_PARTS_VERSION, "group-epoch")
        rest_obj = _loads(rest, GROUP_PARTS_VERSION, "group-rest")
        by_epoch: dict[int, dict[int, bytes]] = {}
        for (ep, node), row in secrets.items():
            by_epoch.setdefault(ep, {})[node] = row
        used: set[int] = set()

        def tree(ep: int, header: object) -> SecretTree:
            used.add(ep)
            return SecretTree.from_rows(cs, _bytes(header), by_epoch.get(ep, {}))

        snap = _guard("group", lambda: cls._from_obj({**epoch_obj, **rest_obj}, cs, config, tree))
        if set(by_epoch) - used:
            raise StateError("stored secret-tree rows of an epoch the group does not keep")
        return snap

    @classmethod
    def _from_obj(
        cls,
        obj: _Obj,
        cs: CipherSuite,
        override: GroupConfig | None,
        secret_tree: Callable[[int, object], SecretTree],
    ) -> GroupSnapshot:
        if _int(obj["suite"]) != cs.suite_id:
            raise StateError("stored group uses another cipher suite than the client")
        stored = obj["config"]
        if not isinstance(stored, dict):
            raise TypeError("config")
        known = {f.name for f in fields(GroupConfig)}
        config = override or GroupConfig(**{k: v for k, v in stored.items() if k in known})
        secrets = obj["secrets"]
        if not isinstance(secrets, dict):
            raise TypeError("secrets")
        context = decode(GroupContext, _bytes(obj["context"]))
        epoch = EpochState(
            context=context,
            tree=RatchetTree.decode(cs, _bytes(obj["tree"])),
            private=TreePrivate(
                _int(obj["leaf"]),
                {_int(x): (_bytes(sk), _bytes(pk)) for x, sk, pk in _list(obj, "priv")},
            ),
            secrets=EpochSecrets(**{k: _bytes(v) for k, v in secrets.items()}),
            secret_tree=secret_tree(context.epoch, obj["secret_tree"]),
            interim_transcript_hash=_bytes(obj["interim"]),
            confirmation_tag=_bytes(obj["tag"]),
        )
        status = GroupStatus(obj["status"])
        reinit = obj["reinit"]
        proposals = []
        for ref, pbytes, sbytes, ukey in _list(obj, "proposals"):
            buf = Buffer(_bytes(pbytes))
            proposal = pull_proposal(buf)
            if not buf.eof():
                raise StateError("trailing bytes after a stored proposal")
            cached = CachedProposal(
                proposal, decode(Sender, _bytes(sbytes)), _bytes(ukey) if ukey is not None else None
            )
            proposals.append((_bytes(ref), cached))
        past = []
        for entry in _list(obj, "past"):
            # Entries stored before past-epoch bounds existed have five fields.
            ep, ctx_bytes, st_bytes, sds, keys = entry[:5]
            retired_at, limits = (entry[5], entry[6]) if len(entry) >= 7 else (None, [])
            if not isinstance(keys, list) or not isinstance(limits, list):
                raise TypeError("past")
            p = PastEpoch(
                context=decode(GroupContext, _bytes(ctx_bytes)),
                secret_tree=secret_tree(_int(ep), st_bytes),
                sender_data_secret=_bytes(sds),
                leaves={
                    _int(leaf): (decode(LeafNode, _bytes(n)) if n is not None else None)
                    for leaf, n in keys
                },
                retired_at=None if retired_at is None else _int(retired_at),
                removed_limits={_int(leaf): _int(g) for leaf, g in limits},
            )
            past.append((_int(ep), p))
        return cls(
            suite_id=cs.suite_id,
            config=config,
            epoch=epoch,
            status=status,
            reinit=decode(ReInit, _bytes(reinit)) if reinit is not None else None,
            proposals=tuple(proposals),
            past=tuple(past),
            resumption=tuple((_int(ep), _bytes(s)) for ep, s in _list(obj, "resumption")),
        )


def split_state(data: bytes) -> tuple[bytes, bytes, dict[tuple[int, int], bytes]]:
    """A stored ``Group.to_bytes()`` in the parts form: ``(state, rest, secret rows)`` (see
    :class:`GroupDelta`), for stores migrating from whole-state blobs."""
    obj = _loads(data, GROUP_STATE_VERSION, "group")
    cs = _guard("group", lambda: get_suite(_int(obj["suite"])))
    snap = GroupSnapshot.from_bytes(data, cs)
    rows = {
        (ep, node): row for ep, tree in snap.secret_trees() for node, row in tree.rows().items()
    }
    return snap.epoch_part(), snap.rest_part(), rows
