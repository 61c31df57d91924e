# ruff: noqa: N802 (the methods are named after the RPCs of the service)
"""The 34 RPCs of ``mls_client.MLSClient`` on the public :mod:`mls.group` API.

Handles. Every state, pending join (``transaction_id``), ReInit in progress (``reinit_id``) and
external signer (``signer_id``) is an entry of one table under an opaque uint32 id, so ``Free``
releases any of them. A call that answers a new ``state_id`` (JoinGroup, HandleCommit,
HandlePendingCommit, the ReInit and branch calls, ExternalJoin with ``remove_prior``) retires the
handles it consumed: a ``Group`` is one mutable member state, so an old id could only alias the
new state. The runner frees only the last handle of each actor; the handles it never frees
(signers, and transactions or ReInits of a run that failed) are "detached" and at most
``MAX_DETACHED`` of them are kept, the oldest dropped first, so a long-running server stays
bounded.

Atomicity. A call that fails answers an error status and changes no handle. The library's own
operations already stage and merge (a failed one changes nothing); where one RPC makes several
library calls that each change the group (processing by-reference proposals, then a commit), the
state is saved first (``Group.to_bytes``) and restored if a later call fails.

Errors are :class:`RpcFailure` (status code and message) or :class:`~mls.errors.MLSError`;
:mod:`mls.interop_grpc.server` maps the latter by the library's exception hierarchy.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace

import grpc

from mls import __version__
from mls.codec.wire import decode, encode
from mls.constants import (
    ContentType,
    ExtensionType,
    ProposalType,
    ProtocolVersion,
    ResumptionPSKUsage,
)
from mls.credentials import Credential
from mls.crypto import CipherSuite, get_suite
from mls.crypto.registry import supported_suites
from mls.errors import DecodeError
from mls.extensions import Extension, ExternalSender, ExternalSenders
from mls.framing.message import MLSMessage
from mls.framing.private import PrivateMessage
from mls.framing.public import PublicMessage
from mls.group import (
    ApplicationMessage,
    Client,
    CommitMerged,
    CommitOutput,
    Group,
    GroupConfig,
    ProposalReceived,
)
from mls.group.config import allow_external_proposals
from mls.group.external import external_proposal
from mls.interop import IMPL
from mls.interop_grpc import mls_client_pb2 as pb
from mls.messages.group_info import GroupInfo as GroupInfoMessage
from mls.messages.key_package import KeyPackage
from mls.messages.proposals import (
    Add,
    GroupContextExtensions,
    PreSharedKey,
    PreSharedKeyID,
    Proposal,
    ReInit,
    Remove,
)
from mls.tree.nodes import LeafNode, decode_ratchet_tree

__all__ = ["MAX_DETACHED", "RPC_NAMES", "MLSClientService", "RpcFailure"]

#: Handles the runner never frees (signers; transactions and ReInits of failed runs) kept at most.
MAX_DETACHED = 1024

#: The methods of the service, in the order of the service definition.
RPC_NAMES: tuple[str, ...] = tuple(
    m.name for m in pb.DESCRIPTOR.services_by_name["MLSClient"].methods
)

# §12.4: a commit covering one of these (or no proposal at all) needs an UpdatePath; the table
# of §17.4 ("Path Required"). Types outside §17.4 are treated as requiring one.
_PATH_OPTIONAL = frozenset({ProposalType.add, ProposalType.psk, ProposalType.reinit})


class RpcFailure(Exception):
    """An error status for the request itself (unknown handle, malformed field, misuse)."""

    def __init__(self, code: grpc.StatusCode, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def _invalid(message: str) -> RpcFailure:
    return RpcFailure(grpc.StatusCode.INVALID_ARGUMENT, message)


def _precondition(message: str) -> RpcFailure:
    return RpcFailure(grpc.StatusCode.FAILED_PRECONDITION, message)


# -- handle entries ----------------------------------------------------------------------------


@dataclass(eq=False)
class _State:
    """One member state. ``sent`` maps the proposal messages this member sent in the current
    epoch to their type: the runner hands them back in by-reference lists, and a member does not
    process its own messages (its group cached them when it made them)."""

    group: Group
    sent: dict[bytes, int] = field(default_factory=dict, repr=False)
    # Types of the proposals from others this member cached in the current epoch.
    received: list[int] = field(default_factory=list, repr=False)
    # The ReInit proposed in the current epoch (by this member or received), if any.
    reinit: ReInit | None = None
    # The pending commit is a ReInit commit (ReInitCommit rather than Commit).
    pending_reinit: bool = False


@dataclass(eq=False)
class _Join:
    """A client waiting for a Welcome with the KeyPackage it published."""

    client: Client


@dataclass(eq=False)
class _ReInit:
    """A member whose group was re-initialised (§11.2): the old group (status REINIT) and the
    client, in the new cipher suite, whose KeyPackage joins the new group."""

    group: Group
    client: Client


@dataclass(eq=False)
class _Signer:
    """An external sender (§12.1.8.1): a signature key and the ExternalSender struct."""

    suite: CipherSuite
    signature_private_key: bytes = field(repr=False)
    sender: ExternalSender


_Entry = _State | _Join | _ReInit | _Signer


# -- request fields ----------------------------------------------------------------------------


def _now() -> int:
    # The library is sans-I/O: lifetimes (§7.2) are checked against the caller's clock.
    return int(time.time())


def _suite(value: int) -> CipherSuite:
    if not 0 < value <= 0xFFFF:
        raise _invalid(f"cipher suite {value} is not a uint16 code point")
    return get_suite(value)


def _extensions(items: Sequence[pb.Extension]) -> list[Extension]:
    out = []
    for e in items:
        if e.extension_type > 0xFFFF:
            raise _invalid(f"extension type {e.extension_type} is not a uint16")
        out.append(Extension(extension_type=e.extension_type, extension_data=e.extension_data))
    return out


def _message(data: bytes, what: str) -> MLSMessage:
    if not data:
        raise _invalid(f"{what} is empty")
    return decode(MLSMessage, data)


def _key_package(data: bytes) -> KeyPackage:
    body = _message(data, "key_package").body
    if not isinstance(body, KeyPackage):
        raise DecodeError("expected an MLSMessage carrying a KeyPackage")
    return body


def _group_info(data: bytes) -> GroupInfoMessage:
    body = _message(data, "group_info").body
    if not isinstance(body, GroupInfoMessage):
        raise DecodeError("expected an MLSMessage carrying a GroupInfo")
    return body


def _content_type(data: bytes, what: str) -> int:
    """The ContentType of a PublicMessage or PrivateMessage (visible without decrypting, §6)."""
    body = _message(data, what).body
    if isinstance(body, PublicMessage):
        return body.content.content_type
    if isinstance(body, PrivateMessage):
        return body.content_type
    raise DecodeError(f"{what} is neither a PublicMessage nor a PrivateMessage")


def _expect(data: bytes, content_type: ContentType, what: str) -> None:
    if _content_type(data, what) != content_type:
        raise _invalid(f"{what} is not a {content_type.name} message")


def _kind(description: pb.ProposalDescription) -> str:
    try:
        return description.proposal_type.decode("ascii")
    except UnicodeDecodeError:
        raise _invalid("proposal_type is not ASCII") from None


def _leaf_of(leaves: Sequence[tuple[int, Credential]], identity: bytes) -> int:
    """The leaf of the member whose Basic identity is ``identity`` (the runner names members)."""
    found = [leaf for leaf, cred in leaves if cred.identity == identity]
    if not found:
        raise _precondition(f"no member has the identity {identity!r}")
    if len(found) > 1:
        raise _precondition(f"{len(found)} members have the identity {identity!r}")
    return found[0]


def _private_keys(client: Client) -> tuple[bytes, bytes, bytes, bytes]:
    """The one KeyPackage of a fresh client, as an MLSMessage, and its raw private keys."""
    (ref,) = client.key_package_refs()
    private = client.find_key_package(ref)
    assert private is not None
    return (
        MLSMessage(body=private.key_package).to_bytes(),
        private.init_private_key,
        private.encryption_private_key,
        client.signature_private_key,
    )


# §7.2 leaves the maximum total lifetime of a KeyPackage to the application. Other stacks in the
# working group's matrix publish KeyPackages valid from 0 to 2**64-1 by default (MLSpp,
# BouncyCastle), so this test server accepts any total lifetime; validity at ``now`` is still
# checked.
_ANY_LIFETIME = (1 << 64) - 1
# Our own KeyPackages stay within the strictest bound seen in the matrix (OpenMLS: 84 days plus
# the one-hour margin before now that Client.key_package also uses).
_KEY_PACKAGE_LIFETIME = 28 * 24 * 3600


def _config(private_handshake: bool) -> GroupConfig:
    # The runner's scenarios have external senders and new members propose (§12.1.8): this
    # server authorizes every authenticated external proposal, as an open test group would.
    return GroupConfig(
        private_handshake=private_handshake,
        ratchet_tree_extension=True,
        external_proposal_policy=allow_external_proposals,
        max_lifetime=_ANY_LIFETIME,
    )


def _path_needed(types: Sequence[int]) -> bool:
    """§12.4: an UpdatePath is required for an empty commit or one covering a type whose
    "Path Required" is Y in §17.4."""
    return not types or any(t not in _PATH_OPTIONAL for t in types)


# -- the service -------------------------------------------------------------------------------


class MLSClientService:
    """The handle table and one method per RPC (request message in, response message out).

    Not thread-safe by itself: the server holds :attr:`lock` around every call.
    """

    def __init__(self, *, max_detached: int = MAX_DETACHED) -> None:
        self.lock = threading.Lock()
        self._handles: dict[int, _Entry] = {}
        self._detached: OrderedDict[int, None] = OrderedDict()
        self._max_detached = max_detached
        self._next = 0

    # -- handle table --------------------------------------------------------------------------

    @property
    def handle_count(self) -> int:
        """Live handles of every kind."""
        return len(self._handles)

    @property
    def state_count(self) -> int:
        """Live member states (``Free`` of every actor's last state brings it back to zero)."""
        return len(self._handles) - len(self._detached)

    def _add(self, entry: _Entry) -> int:
        while True:
            self._next = self._next % 0xFFFFFFFF + 1  # 1 .. 2**32-1; 0 means "none"
            if self._next not in self._handles:
                break
        handle = self._next
        self._handles[handle] = entry
        if not isinstance(entry, _State):
            self._detached[handle] = None
            while len(self._detached) > self._max_detached:
                oldest, _ = self._detached.popitem(last=False)
                del self._handles[oldest]
        return handle

    def _drop(self, handle: int) -> None:
        self._handles.pop(handle, None)
        self._detached.pop(handle, None)

    def _get(self, handle: int, kind: type[_Entry], what: str) -> _Entry:
        entry = self._handles.get(handle)
        if entry is None:
            raise RpcFailure(grpc.StatusCode.NOT_FOUND, f"unknown {what} {handle}")
        if not isinstance(entry, kind):
            raise _invalid(f"handle {handle} is not a {what}")
        return entry

    def _state(self, handle: int) -> _State:
        st = self._get(handle, _State, "state_id")
        assert isinstance(st, _State)
        return st

    def _join(self, handle: int) -> _Join:
        join = self._get(handle, _Join, "transaction_id")
        assert isinstance(join, _Join)
        return join

    def _reinit(self, handle: int) -> _ReInit:
        r = self._get(handle, _ReInit, "reinit_id")
        assert isinstance(r, _ReInit)
        return r

    def _signer(self, handle: int) -> _Signer:
        s = self._get(handle, _Signer, "signer_id")
        assert isinstance(s, _Signer)
        return s

    def _next_epoch(self, old: int, st: _State) -> int:
        """Re-key a state whose group moved to a new epoch; the old id is retired."""
        self._drop(old)
        st.sent.clear()
        st.received.clear()
        st.reinit = None
        st.pending_reinit = False
        return self._add(st)

    @staticmethod
    @contextmanager
    def _atomic(st: _State, enabled: bool = True) -> Iterator[None]:
        """Restore ``st.group`` from a saved copy if the block raises (several library calls)."""
        if not enabled:
            yield
            return
        group = st.group
        saved, config = group.to_bytes(), group.config
        sent, received, reinit = dict(st.sent), list(st.received), st.reinit
        try:
            yield
        except BaseException:
            restored = Group.from_bytes(saved, group.client, config=config)
            st.group, st.sent, st.received, st.reinit = restored, sent, received, reinit
            raise

    # -- identification ------------------------------------------------------------------------

    def Name(self, req: pb.NameRequest) -> pb.NameResponse:
        return pb.NameResponse(name=f"{IMPL} {__version__}")

    def SupportedCiphersuites(
        self, req: pb.SupportedCiphersuitesRequest
    ) -> pb.SupportedCiphersuitesResponse:
        # RFC 9420's suites 1-7, then the post-quantum ones this installation can run (their
        # provisional ids come from the active profile of mls.crypto.registry).
        return pb.SupportedCiphersuitesResponse(ciphersuites=supported_suites())

    # -- becoming a member ---------------------------------------------------------------------

    def CreateGroup(self, req: pb.CreateGroupRequest) -> pb.CreateGroupResponse:
        client = Client.create(req.identity, _suite(req.cipher_suite))
        group = Group.create(
            client, req.group_id, config=_config(req.encrypt_handshake), now=_now()
        )
        return pb.CreateGroupResponse(state_id=self._add(_State(group)))

    def CreateKeyPackage(self, req: pb.CreateKeyPackageRequest) -> pb.CreateKeyPackageResponse:
        client = Client.create(req.identity, _suite(req.cipher_suite))
        client.key_package(_now(), lifetime=_KEY_PACKAGE_LIFETIME)
        kp, init_priv, enc_priv, sig_priv = _private_keys(client)
        return pb.CreateKeyPackageResponse(
            transaction_id=self._add(_Join(client)),
            key_package=kp,
            init_priv=init_priv,
            encryption_priv=enc_priv,
            signature_priv=sig_priv,
        )

    def JoinGroup(self, req: pb.JoinGroupRequest) -> pb.JoinGroupResponse:
        join = self._join(req.transaction_id)
        if req.identity and req.identity != join.client.identity:
            raise _invalid("identity differs from the transaction's KeyPackage")
        group = Group.join(
            join.client,
            req.welcome,
            ratchet_tree=req.ratchet_tree or None,
            config=_config(req.encrypt_handshake),
            now=_now(),
        )
        self._drop(req.transaction_id)
        return pb.JoinGroupResponse(
            state_id=self._add(_State(group)), epoch_authenticator=group.epoch_authenticator
        )

    def ExternalJoin(self, req: pb.ExternalJoinRequest) -> pb.ExternalJoinResponse:
        gi = _group_info(req.group_info)
        cs = _suite(gi.group_context.cipher_suite)
        prior: list[int] = []
        key_pair = None
        if req.remove_prior:
            # §12.4.3.2 resync: the commit removes the joiner's old leaf. The runner places an
            # actor on one server, so the old state is here: the new leaf keeps its signature
            # key (how the library finds the leaf) and the old state is retired.
            prior = [
                h
                for h, e in self._handles.items()
                if isinstance(e, _State)
                and e.group.group_id == gi.group_context.group_id
                and e.group.client.identity == req.identity
            ]
            if not prior:
                raise _precondition("remove_prior: no earlier state of this identity here")
            old = self._handles[prior[-1]]
            assert isinstance(old, _State)
            key_pair = (
                old.group.client.signature_private_key,
                old.group.client.signature_public_key,
            )
        client = Client.create(req.identity, cs, signature_key_pair=key_pair)
        for psk in req.psks:
            client.add_external_psk(psk.psk_id, psk.psk_secret)
        group, commit = Group.external_join(
            client,
            req.group_info,
            ratchet_tree=req.ratchet_tree or None,
            config=_config(req.encrypt_handshake),
            psks=[psk.psk_id for psk in req.psks],
            resync=req.remove_prior,
            now=_now(),
        )
        for h in prior:
            self._drop(h)
        return pb.ExternalJoinResponse(
            state_id=self._add(_State(group)),
            commit=commit,
            epoch_authenticator=group.epoch_authenticator,
        )

    # -- using a state -------------------------------------------------------------------------

    def GroupInfo(self, req: pb.GroupInfoRequest) -> pb.GroupInfoResponse:
        group = self._state(req.state_id).group
        info = group.group_info(with_tree=not req.external_tree)
        tree = group.export_tree() if req.external_tree else b""
        return pb.GroupInfoResponse(group_info=info, ratchet_tree=tree)

    def StateAuth(self, req: pb.StateAuthRequest) -> pb.StateAuthResponse:
        group = self._state(req.state_id).group
        return pb.StateAuthResponse(state_auth_secret=group.epoch_authenticator)

    def Export(self, req: pb.ExportRequest) -> pb.ExportResponse:
        group = self._state(req.state_id).group
        if req.key_length > 0xFFFF:
            raise _invalid("key_length must fit a uint16 (§8.5)")
        secret = group.export_secret(req.label, req.context, req.key_length)
        return pb.ExportResponse(exported_secret=secret)

    def Protect(self, req: pb.ProtectRequest) -> pb.ProtectResponse:
        group = self._state(req.state_id).group
        return pb.ProtectResponse(ciphertext=group.protect(req.plaintext, req.authenticated_data))

    def Unprotect(self, req: pb.UnprotectRequest) -> pb.UnprotectResponse:
        group = self._state(req.state_id).group
        # Checked before processing: a handshake message here would change the state.
        _expect(req.ciphertext, ContentType.application, "ciphertext")
        event = group.process(req.ciphertext, now=_now())
        assert isinstance(event, ApplicationMessage)
        return pb.UnprotectResponse(
            authenticated_data=event.authenticated_data, plaintext=event.data
        )

    def StorePSK(self, req: pb.StorePSKRequest) -> pb.StorePSKResponse:
        handle = req.state_or_transaction_id
        entry = self._handles.get(handle)
        if isinstance(entry, _State):
            clients = [entry.group.client]
        elif isinstance(entry, _Join):
            clients = [entry.client]
        elif isinstance(entry, _ReInit):
            clients = [entry.group.client, entry.client]
        elif entry is None:
            raise RpcFailure(grpc.StatusCode.NOT_FOUND, f"unknown state or transaction {handle}")
        else:
            raise _invalid(f"handle {handle} is not a state or transaction")
        if not req.psk_id:
            raise _invalid("psk_id is empty")
        for client in clients:
            client.add_external_psk(req.psk_id, req.psk_secret)
        return pb.StorePSKResponse()

    # -- proposals by a member -----------------------------------------------------------------

    def _proposed(self, st: _State, kind: int, message: bytes) -> pb.ProposalResponse:
        st.sent[message] = kind
        return pb.ProposalResponse(proposal=message)

    def AddProposal(self, req: pb.AddProposalRequest) -> pb.ProposalResponse:
        st = self._state(req.state_id)
        kp = _key_package(req.key_package)
        return self._proposed(st, ProposalType.add, st.group.propose_add(kp, now=_now()))

    def UpdateProposal(self, req: pb.UpdateProposalRequest) -> pb.ProposalResponse:
        st = self._state(req.state_id)
        return self._proposed(st, ProposalType.update, st.group.propose_update())

    def RemoveProposal(self, req: pb.RemoveProposalRequest) -> pb.ProposalResponse:
        st = self._state(req.state_id)
        leaf = _leaf_of(st.group.members(), req.removed_id)
        return self._proposed(st, ProposalType.remove, st.group.propose_remove(leaf))

    def ExternalPSKProposal(self, req: pb.ExternalPSKProposalRequest) -> pb.ProposalResponse:
        st = self._state(req.state_id)
        return self._proposed(st, ProposalType.psk, st.group.propose_psk(req.psk_id))

    def ResumptionPSKProposal(self, req: pb.ResumptionPSKProposalRequest) -> pb.ProposalResponse:
        st = self._state(req.state_id)
        group = st.group
        if group.resumption_psk(req.epoch_id) is None:
            raise _precondition(f"no resumption PSK kept for epoch {req.epoch_id}")
        message = group.propose_resumption_psk(req.epoch_id)
        return self._proposed(st, ProposalType.psk, message)

    def GroupContextExtensionsProposal(
        self, req: pb.GroupContextExtensionsProposalRequest
    ) -> pb.ProposalResponse:
        st = self._state(req.state_id)
        message = st.group.propose_group_context_extensions(_extensions(req.extensions))
        return self._proposed(st, ProposalType.group_context_extensions, message)

    def ReInitProposal(self, req: pb.ReInitProposalRequest) -> pb.ProposalResponse:
        st = self._state(req.state_id)
        _suite(req.cipher_suite)
        reinit = ReInit(
            group_id=req.group_id,
            version=ProtocolVersion.mls10,
            cipher_suite=req.cipher_suite,
            extensions=tuple(_extensions(req.extensions)),
        )
        message = st.group.propose_reinit(
            group_id=reinit.group_id,
            cipher_suite=reinit.cipher_suite,
            extensions=reinit.extensions,
        )
        st.reinit = reinit
        return self._proposed(st, ProposalType.reinit, message)

    # -- commits -------------------------------------------------------------------------------

    def _receive_proposals(self, st: _State, messages: Sequence[bytes]) -> list[bytes]:
        """Check the by-reference proposal messages; the ones from others, to process."""
        foreign = []
        for message in messages:
            if message in st.sent:
                continue
            _expect(message, ContentType.proposal, "proposal")
            foreign.append(message)
        return foreign

    def _process_proposals(self, st: _State, messages: Sequence[bytes]) -> None:
        now = _now()
        for message in messages:
            event = st.group.process(message, now=now)
            assert isinstance(event, ProposalReceived)
            st.received.append(event.proposal.proposal_type)
            if isinstance(event.proposal, ReInit):
                st.reinit = event.proposal

    def _commit(self, req: pb.CommitRequest, *, reinit: bool) -> pb.CommitResponse:
        st = self._state(req.state_id)
        group = st.group
        add: list[KeyPackage] = []
        remove: list[int] = []
        psks: list[bytes] = []
        resumption: list[tuple[int, int]] = []
        extensions: list[Extension] | None = None
        types: list[int] = []
        for d in req.by_value:
            kind = _kind(d)
            if kind == "add":
                add.append(_key_package(d.key_package))
                types.append(ProposalType.add)
            elif kind == "remove":
                remove.append(_leaf_of(group.members(), d.removed_id))
                types.append(ProposalType.remove)
            elif kind == "externalPSK":
                psks.append(d.psk_id)
                types.append(ProposalType.psk)
            elif kind == "resumptionPSK":
                resumption.append((ResumptionPSKUsage.application, d.epoch_id))
                types.append(ProposalType.psk)
            elif kind == "groupContextExtensions":
                if extensions is not None:
                    raise _invalid("at most one groupContextExtensions proposal by value")
                extensions = _extensions(d.extensions)
                types.append(ProposalType.group_context_extensions)
            else:
                raise _invalid(f"proposal type {kind!r} cannot be committed by value")
        foreign = self._receive_proposals(st, req.by_reference)
        config = group.config
        with self._atomic(st, enabled=bool(foreign)):
            self._process_proposals(st, foreign)
            if reinit:
                if st.reinit is None:
                    raise _precondition("no ReInit proposal to commit in this epoch")
                # Checked now: after the merge the member needs a client in the new suite.
                _suite(st.reinit.cipher_suite)
            # §12.2: the committer's own Update is not committed (its path replaces it).
            own = [t for t in st.sent.values() if t != ProposalType.update]
            path_needed = _path_needed([*types, *own, *st.received])
            if req.force_path:
                path: bool | None = True
            elif reinit:
                path = False  # §11.2: nothing follows the ReInit's epoch
            else:
                path = None if path_needed else False
            # With external_tree the tree travels beside the Welcome, not in it (§12.4.3.3).
            group.set_config(replace(config, ratchet_tree_extension=not req.external_tree))
            try:
                out = group.commit(
                    add=add,
                    remove=remove,
                    psks=psks,
                    resumption_psks=resumption,
                    extensions=extensions,
                    path=path,
                    group_info=req.external_tree,
                    now=_now(),
                )
            finally:
                group.set_config(config)
        st.pending_reinit = reinit
        tree = b""
        if req.external_tree:
            assert out.group_info is not None
            tree = _tree_of(_group_info(out.group_info))
        return pb.CommitResponse(commit=out.commit, welcome=out.welcome or b"", ratchet_tree=tree)

    def Commit(self, req: pb.CommitRequest) -> pb.CommitResponse:
        return self._commit(req, reinit=False)

    def _handle_commit(self, st: _State, req: pb.HandleCommitRequest) -> CommitMerged:
        _expect(req.commit, ContentType.commit, "commit")
        foreign = self._receive_proposals(st, req.proposal)
        with self._atomic(st, enabled=bool(foreign)):
            self._process_proposals(st, foreign)
            event = st.group.process(req.commit, now=_now())
            if not isinstance(event, CommitMerged):
                raise _invalid("commit did not merge")
        return event

    def HandleCommit(self, req: pb.HandleCommitRequest) -> pb.HandleCommitResponse:
        st = self._state(req.state_id)
        self._handle_commit(st, req)
        return pb.HandleCommitResponse(
            state_id=self._next_epoch(req.state_id, st),
            epoch_authenticator=st.group.epoch_authenticator,
        )

    def HandlePendingCommit(self, req: pb.HandlePendingCommitRequest) -> pb.HandleCommitResponse:
        st = self._state(req.state_id)
        if st.pending_reinit:
            raise _precondition("the pending commit is a ReInit: use HandlePendingReInitCommit")
        st.group.merge_pending_commit()
        return pb.HandleCommitResponse(
            state_id=self._next_epoch(req.state_id, st),
            epoch_authenticator=st.group.epoch_authenticator,
        )

    # -- ReInit (§11.2) ------------------------------------------------------------------------

    def ReInitCommit(self, req: pb.CommitRequest) -> pb.CommitResponse:
        return self._commit(req, reinit=True)

    def _reinit_response(self, handle: int, st: _State) -> pb.HandleReInitCommitResponse:
        """After a ReInit commit merged: a client and KeyPackage for the new group."""
        r = st.group.reinit
        assert r is not None
        client = Client.create(st.group.client.identity, _suite(r.cipher_suite))
        client.key_package(_now(), lifetime=_KEY_PACKAGE_LIFETIME)
        kp, _, _, _ = _private_keys(client)
        self._drop(handle)
        return pb.HandleReInitCommitResponse(
            reinit_id=self._add(_ReInit(st.group, client)),
            key_package=kp,
            epoch_authenticator=st.group.epoch_authenticator,
        )

    def HandlePendingReInitCommit(
        self, req: pb.HandlePendingCommitRequest
    ) -> pb.HandleReInitCommitResponse:
        st = self._state(req.state_id)
        if not st.pending_reinit:
            raise _precondition("no pending ReInit commit (ReInitCommit makes one)")
        # The new suite was checked by ReInitCommit, so nothing fails after the merge.
        st.group.merge_pending_commit()
        return self._reinit_response(req.state_id, st)

    def HandleReInitCommit(self, req: pb.HandleCommitRequest) -> pb.HandleReInitCommitResponse:
        st = self._state(req.state_id)
        with self._atomic(st):
            event = self._handle_commit(st, req)
            if event.reinit is None:
                raise _invalid("the commit does not re-initialise the group")
            return self._reinit_response(req.state_id, st)

    def ReInitWelcome(self, req: pb.ReInitWelcomeRequest) -> pb.CreateSubgroupResponse:
        r = self._reinit(req.reinit_id)
        kps = [_key_package(kp) for kp in req.key_package]
        config = replace(r.group.config, ratchet_tree_extension=not req.external_tree)
        # The first commit of the new group always carries a path (force_path holds).
        group, out = r.group.reinit_group(r.client, kps, config=config, now=_now())
        response = self._subgroup(group, out, r.group.config, req.external_tree)
        self._drop(req.reinit_id)
        return response

    def _subgroup(
        self, group: Group, out: CommitOutput, config: GroupConfig, external_tree: bool
    ) -> pb.CreateSubgroupResponse:
        """Merge the new group's first commit, give it back the caller's config and answer
        with its Welcome (and the tree when it travels out of band)."""
        group.merge_pending_commit()
        group.set_config(config)
        return pb.CreateSubgroupResponse(
            state_id=self._add(_State(group)),
            welcome=out.welcome or b"",
            ratchet_tree=group.export_tree() if external_tree else b"",
            epoch_authenticator=group.epoch_authenticator,
        )

    def HandleReInitWelcome(self, req: pb.HandleReInitWelcomeRequest) -> pb.JoinGroupResponse:
        r = self._reinit(req.reinit_id)
        group = r.group.join_reinit(
            r.client, req.welcome, ratchet_tree=req.ratchet_tree or None, now=_now()
        )
        self._drop(req.reinit_id)
        return pb.JoinGroupResponse(
            state_id=self._add(_State(group)), epoch_authenticator=group.epoch_authenticator
        )

    # -- branching (§11.3) ---------------------------------------------------------------------

    def CreateBranch(self, req: pb.CreateBranchRequest) -> pb.CreateSubgroupResponse:
        st = self._state(req.state_id)
        kps = [_key_package(kp) for kp in req.key_packages]
        config = replace(st.group.config, ratchet_tree_extension=not req.external_tree)
        # The branch's first commit always carries a path (force_path holds).
        group, out = st.group.branch(
            req.group_id,
            kps,
            config=config,
            extensions=_extensions(req.extensions),
            now=_now(),
        )
        response = self._subgroup(group, out, st.group.config, req.external_tree)
        self._drop(req.state_id)
        return response

    def HandleBranch(self, req: pb.HandleBranchRequest) -> pb.HandleBranchResponse:
        st = self._state(req.state_id)
        join = self._join(req.transaction_id)
        group = st.group.join_branch(
            join.client,
            req.welcome,
            ratchet_tree=req.ratchet_tree or None,
            config=st.group.config,
            now=_now(),
        )
        self._drop(req.state_id)
        self._drop(req.transaction_id)
        return pb.HandleBranchResponse(
            state_id=self._add(_State(group)), epoch_authenticator=group.epoch_authenticator
        )

    # -- proposals from outside the group (§12.1.8) --------------------------------------------

    def NewMemberAddProposal(
        self, req: pb.NewMemberAddProposalRequest
    ) -> pb.NewMemberAddProposalResponse:
        gi = _group_info(req.group_info)
        client = Client.create(req.identity, _suite(gi.group_context.cipher_suite))
        proposal = Group.new_member_proposal(client, req.group_info, now=_now())
        _, init_priv, enc_priv, sig_priv = _private_keys(client)
        return pb.NewMemberAddProposalResponse(
            transaction_id=self._add(_Join(client)),
            proposal=proposal,
            init_priv=init_priv,
            encryption_priv=enc_priv,
            signature_priv=sig_priv,
        )

    def CreateExternalSigner(
        self, req: pb.CreateExternalSignerRequest
    ) -> pb.CreateExternalSignerResponse:
        cs = _suite(req.cipher_suite)
        if not req.identity:
            raise _invalid("identity is empty")
        sk, pk = cs.generate_signature_key_pair()
        sender = ExternalSender(signature_key=pk, credential=Credential.basic(req.identity))
        return pb.CreateExternalSignerResponse(
            signer_id=self._add(_Signer(cs, sk, sender)), external_sender=encode(sender)
        )

    def AddExternalSigner(self, req: pb.AddExternalSignerRequest) -> pb.ProposalResponse:
        st = self._state(req.state_id)
        sender = decode(ExternalSender, req.external_sender)
        current = st.group.extensions
        found = [e for e in current if e.extension_type == ExternalSenders.extension_type]
        senders = ExternalSenders.from_extension(found[0]).senders if found else ()
        others = [e for e in current if e.extension_type != ExternalSenders.extension_type]
        ext = ExternalSenders(senders=(*senders, sender)).to_extension()
        message = st.group.propose_group_context_extensions([*others, ext])
        return self._proposed(st, ProposalType.group_context_extensions, message)

    def ExternalSignerProposal(self, req: pb.ExternalSignerProposalRequest) -> pb.ProposalResponse:
        signer = self._signer(req.signer_id)
        gi = _group_info(req.group_info)
        ctx = gi.group_context
        if ctx.cipher_suite != signer.suite.suite_id:
            raise _invalid("the group's cipher suite differs from the signer's")
        # The signer's index in the group's external_senders (§12.1.8.1), looked up by key: the
        # runner leaves signer_index at 0.
        found = [e for e in ctx.extensions if e.extension_type == ExternalSenders.extension_type]
        senders = ExternalSenders.from_extension(found[0]).senders if found else ()
        mine = [i for i, s in enumerate(senders) if s.signature_key == signer.sender.signature_key]
        if not mine:
            raise _precondition("the signer is not among the group's external_senders")
        index = req.signer_index if req.signer_index in mine else mine[0]
        proposal = self._describe(signer.suite, gi, req.ratchet_tree, req.description)
        message = external_proposal(
            signer.suite,
            signer.signature_private_key,
            index,
            ctx.group_id,
            ctx.epoch,
            proposal,
        )
        return pb.ProposalResponse(proposal=message)

    def _describe(
        self, cs: CipherSuite, gi: GroupInfoMessage, tree: bytes, d: pb.ProposalDescription
    ) -> Proposal:
        """The proposal a ProposalDescription names, for the group ``gi`` describes."""
        ctx = gi.group_context
        kind = _kind(d)
        if kind == "add":
            return Add(key_package=_key_package(d.key_package))
        if kind == "remove":
            leaves = []
            for i, node in enumerate(decode_ratchet_tree(tree or _tree_of(gi))[::2]):
                if isinstance(node, LeafNode):
                    leaves.append((i, node.credential))
            return Remove(removed=_leaf_of(leaves, d.removed_id))
        nonce = cs.random(cs.hash_len)
        if kind == "externalPSK":
            return PreSharedKey(psk=PreSharedKeyID.external(d.psk_id, nonce))
        if kind == "resumptionPSK":
            return PreSharedKey(
                psk=PreSharedKeyID.resumption(
                    ResumptionPSKUsage.application, ctx.group_id, d.epoch_id, nonce
                )
            )
        if kind == "groupContextExtensions":
            return GroupContextExtensions(extensions=tuple(_extensions(d.extensions)))
        if kind == "reinit":
            _suite(d.cipher_suite)
            return ReInit(
                group_id=d.group_id,
                version=ProtocolVersion.mls10,
                cipher_suite=d.cipher_suite,
                extensions=tuple(_extensions(d.extensions)),
            )
        raise _invalid(f"unknown proposal type {kind!r}")

    # -- cleanup -------------------------------------------------------------------------------

    def Free(self, req: pb.FreeRequest) -> pb.FreeResponse:
        if req.state_id not in self._handles:
            raise RpcFailure(grpc.StatusCode.NOT_FOUND, f"unknown handle {req.state_id}")
        self._drop(req.state_id)
        return pb.FreeResponse()


def _tree_of(gi: GroupInfoMessage) -> bytes:
    """The ``ratchet_tree`` extension of a GroupInfo (§12.4.3.3)."""
    for ext in gi.extensions:
        if ext.extension_type == ExtensionType.ratchet_tree:
            return ext.extension_data
    raise _invalid("the GroupInfo carries no ratchet_tree and none was given")
