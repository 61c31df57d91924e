"""Bad requests answer an error status, never crash the server, and leave every state as it was:
after each failure the same state (same id) still has its epoch secrets and still takes the
correct request."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import grpc
import pytest

from mls.errors import DecodeError, InternalError, UnsupportedError, UsageError
from mls.interop_grpc import mls_client_pb2 as pb
from mls.interop_grpc.server import status_of
from mls.interop_grpc.service import RpcFailure
from tests.grpc.conftest import Server

CODE = grpc.StatusCode


def fails(code: grpc.StatusCode, call: Callable[[], Any]) -> str:
    with pytest.raises(grpc.RpcError) as err:
        call()
    assert err.value.code() == code, err.value.details()
    details: str = err.value.details()
    return details


@dataclass
class Pair:
    """alice (server a) and bob (server b) in one group, handshakes as PrivateMessage."""

    a: Any
    b: Any
    alice: int
    bob: int

    def secrets(self, stub: Any, state_id: int) -> tuple[bytes, bytes]:
        auth = stub.StateAuth(pb.StateAuthRequest(state_id=state_id)).state_auth_secret
        export = stub.Export(
            pb.ExportRequest(state_id=state_id, label="x", context=b"", key_length=32)
        ).exported_secret
        return auth, export


@pytest.fixture
def pair(servers: tuple[Server, Server]) -> Any:
    a, b = servers[0].stub, servers[1].stub
    alice = a.CreateGroup(
        pb.CreateGroupRequest(
            group_id=b"err", cipher_suite=1, encrypt_handshake=True, identity=b"alice"
        )
    ).state_id
    kp = b.CreateKeyPackage(pb.CreateKeyPackageRequest(cipher_suite=1, identity=b"bob"))
    add = pb.ProposalDescription(proposal_type=b"add", key_package=kp.key_package)
    welcome = a.Commit(pb.CommitRequest(state_id=alice, by_value=[add])).welcome
    alice = a.HandlePendingCommit(pb.HandlePendingCommitRequest(state_id=alice)).state_id
    bob = b.JoinGroup(
        pb.JoinGroupRequest(
            transaction_id=kp.transaction_id,
            welcome=welcome,
            encrypt_handshake=True,
            identity=b"bob",
        )
    ).state_id
    p = Pair(a, b, alice, bob)
    yield p
    for stub, sid in ((a, p.alice), (b, p.bob)):
        stub.Free(pb.FreeRequest(state_id=sid))


def test_unknown_handles(pair: Pair) -> None:
    a = pair.a
    missing = 0xFFFFFFF0
    fails(CODE.NOT_FOUND, lambda: a.StateAuth(pb.StateAuthRequest(state_id=missing)))
    fails(CODE.NOT_FOUND, lambda: a.Protect(pb.ProtectRequest(state_id=missing, plaintext=b"x")))
    fails(CODE.NOT_FOUND, lambda: a.Commit(pb.CommitRequest(state_id=missing)))
    fails(CODE.NOT_FOUND, lambda: a.JoinGroup(pb.JoinGroupRequest(transaction_id=missing)))
    fails(
        CODE.NOT_FOUND,
        lambda: a.HandleReInitWelcome(pb.HandleReInitWelcomeRequest(reinit_id=missing)),
    )
    fails(
        CODE.NOT_FOUND,
        lambda: a.ExternalSignerProposal(pb.ExternalSignerProposalRequest(signer_id=missing)),
    )
    fails(CODE.NOT_FOUND, lambda: a.Free(pb.FreeRequest(state_id=missing)))
    # A handle of another kind: a state is no transaction.
    fails(
        CODE.INVALID_ARGUMENT, lambda: a.JoinGroup(pb.JoinGroupRequest(transaction_id=pair.alice))
    )


def test_malformed_messages_change_nothing(pair: Pair) -> None:
    a, b = pair.a, pair.b
    before = pair.secrets(b, pair.bob)
    for junk in (b"\x00\x01\x00\x03abc", b"\xff" * 40, b"x"):
        fails(
            CODE.INVALID_ARGUMENT,
            lambda junk=junk: b.HandleCommit(
                pb.HandleCommitRequest(state_id=pair.bob, commit=junk)
            ),
        )
        fails(
            CODE.INVALID_ARGUMENT,
            lambda junk=junk: b.Unprotect(pb.UnprotectRequest(state_id=pair.bob, ciphertext=junk)),
        )
        fails(
            CODE.INVALID_ARGUMENT,
            lambda junk=junk: b.AddProposal(
                pb.AddProposalRequest(state_id=pair.bob, key_package=junk)
            ),
        )
        fails(
            CODE.INVALID_ARGUMENT,
            lambda junk=junk: a.ExternalJoin(
                pb.ExternalJoinRequest(group_info=junk, identity=b"e")
            ),
        )
    fails(
        CODE.INVALID_ARGUMENT,
        lambda: b.HandleCommit(pb.HandleCommitRequest(state_id=pair.bob, commit=b"")),
    )
    assert pair.secrets(b, pair.bob) == before
    # The states still work: a message both ways.
    ct = a.Protect(pb.ProtectRequest(state_id=pair.alice, plaintext=b"still here")).ciphertext
    assert b.Unprotect(pb.UnprotectRequest(state_id=pair.bob, ciphertext=ct)).plaintext == (
        b"still here"
    )


def test_a_bad_welcome_keeps_the_transaction(pair: Pair) -> None:
    a, b = pair.a, pair.b
    kp = b.CreateKeyPackage(pb.CreateKeyPackageRequest(cipher_suite=1, identity=b"carol"))
    fails(
        CODE.INVALID_ARGUMENT,
        lambda: b.JoinGroup(pb.JoinGroupRequest(transaction_id=kp.transaction_id, welcome=b"?")),
    )
    add = pb.ProposalDescription(proposal_type=b"add", key_package=kp.key_package)
    commit = a.Commit(pb.CommitRequest(state_id=pair.alice, by_value=[add]))
    pair.alice = a.HandlePendingCommit(pb.HandlePendingCommitRequest(state_id=pair.alice)).state_id
    pair.bob = b.HandleCommit(
        pb.HandleCommitRequest(state_id=pair.bob, commit=commit.commit)
    ).state_id
    carol = b.JoinGroup(
        pb.JoinGroupRequest(transaction_id=kp.transaction_id, welcome=commit.welcome)
    )
    assert carol.epoch_authenticator == pair.secrets(a, pair.alice)[0]
    b.Free(pb.FreeRequest(state_id=carol.state_id))


def test_wrong_suites(pair: Pair) -> None:
    a, b = pair.a, pair.b
    fails(
        CODE.UNIMPLEMENTED,
        lambda: a.CreateGroup(
            pb.CreateGroupRequest(group_id=b"g", cipher_suite=0xFF00, identity=b"x")
        ),
    )
    fails(
        CODE.INVALID_ARGUMENT,
        lambda: a.CreateKeyPackage(pb.CreateKeyPackageRequest(cipher_suite=0x10000, identity=b"x")),
    )
    # A suite-3 KeyPackage cannot be added to this suite-1 group; nothing changes.
    before = pair.secrets(a, pair.alice)
    kp3 = b.CreateKeyPackage(pb.CreateKeyPackageRequest(cipher_suite=3, identity=b"dave"))
    fails(
        CODE.INVALID_ARGUMENT,
        lambda: a.AddProposal(
            pb.AddProposalRequest(state_id=pair.alice, key_package=kp3.key_package)
        ),
    )
    add = pb.ProposalDescription(proposal_type=b"add", key_package=kp3.key_package)
    fails(
        CODE.INVALID_ARGUMENT,
        lambda: a.Commit(pb.CommitRequest(state_id=pair.alice, by_value=[add])),
    )
    assert pair.secrets(a, pair.alice) == before
    # Nor can a suite-3 signer propose to it.
    signer = b.CreateExternalSigner(pb.CreateExternalSignerRequest(cipher_suite=3, identity=b"ds"))
    info = a.GroupInfo(pb.GroupInfoRequest(state_id=pair.alice)).group_info
    fails(
        CODE.INVALID_ARGUMENT,
        lambda: b.ExternalSignerProposal(
            pb.ExternalSignerProposalRequest(
                signer_id=signer.signer_id,
                group_info=info,
                description=pb.ProposalDescription(proposal_type=b"remove", removed_id=b"bob"),
            )
        ),
    )
    b.Free(pb.FreeRequest(state_id=signer.signer_id))
    b.Free(pb.FreeRequest(state_id=kp3.transaction_id))


def test_misuse(pair: Pair) -> None:
    a, b = pair.a, pair.b
    before = pair.secrets(a, pair.alice)
    fails(
        CODE.FAILED_PRECONDITION,
        lambda: a.HandlePendingCommit(pb.HandlePendingCommitRequest(state_id=pair.alice)),
    )
    fails(
        CODE.FAILED_PRECONDITION,
        lambda: a.HandlePendingReInitCommit(pb.HandlePendingCommitRequest(state_id=pair.alice)),
    )
    fails(
        CODE.FAILED_PRECONDITION,
        lambda: a.RemoveProposal(pb.RemoveProposalRequest(state_id=pair.alice, removed_id=b"zed")),
    )
    fails(
        CODE.INVALID_ARGUMENT,
        lambda: a.Commit(
            pb.CommitRequest(
                state_id=pair.alice, by_value=[pb.ProposalDescription(proposal_type=b"reinit")]
            )
        ),
    )
    fails(
        CODE.INVALID_ARGUMENT,
        lambda: a.Commit(
            pb.CommitRequest(
                state_id=pair.alice, by_value=[pb.ProposalDescription(proposal_type=b"nope")]
            )
        ),
    )
    fails(
        CODE.FAILED_PRECONDITION,
        lambda: a.ExternalPSKProposal(
            pb.ExternalPSKProposalRequest(state_id=pair.alice, psk_id=b"unknown")
        ),
    )
    assert pair.secrets(a, pair.alice) == before
    # A commit is pending: a second one is misuse, and handing the commit to Unprotect is
    # refused before it is processed.
    commit = a.Commit(pb.CommitRequest(state_id=pair.alice)).commit
    fails(CODE.FAILED_PRECONDITION, lambda: a.Commit(pb.CommitRequest(state_id=pair.alice)))
    fails(
        CODE.INVALID_ARGUMENT,
        lambda: b.Unprotect(pb.UnprotectRequest(state_id=pair.bob, ciphertext=commit)),
    )
    done = a.HandlePendingCommit(pb.HandlePendingCommitRequest(state_id=pair.alice))
    pair.alice = done.state_id
    handled = b.HandleCommit(pb.HandleCommitRequest(state_id=pair.bob, commit=commit))
    pair.bob = handled.state_id
    assert handled.epoch_authenticator == done.epoch_authenticator
    # The old epoch's commit again: the state has moved on.
    fails(
        CODE.INVALID_ARGUMENT,
        lambda: b.HandleCommit(pb.HandleCommitRequest(state_id=pair.bob, commit=commit)),
    )


def test_a_failed_commit_leaves_its_proposals_unprocessed(pair: Pair) -> None:
    """HandleCommit processes the by-reference proposals, then the commit; when the commit
    fails, the proposals are rolled back too, so the same request, corrected, succeeds (a
    PrivateMessage proposal cannot be decrypted twice)."""
    a, b = pair.a, pair.b
    update = a.UpdateProposal(pb.UpdateProposalRequest(state_id=pair.alice)).proposal
    commit = a.Commit(pb.CommitRequest(state_id=pair.alice, by_reference=[update])).commit
    done = a.HandlePendingCommit(pb.HandlePendingCommitRequest(state_id=pair.alice))
    pair.alice = done.state_id
    before = pair.secrets(b, pair.bob)
    broken = commit[:-1] + bytes([commit[-1] ^ 1])  # the AEAD tag no longer verifies
    fails(
        CODE.INVALID_ARGUMENT,
        lambda: b.HandleCommit(
            pb.HandleCommitRequest(state_id=pair.bob, proposal=[update], commit=broken)
        ),
    )
    assert pair.secrets(b, pair.bob) == before
    handled = b.HandleCommit(
        pb.HandleCommitRequest(state_id=pair.bob, proposal=[update], commit=commit)
    )
    pair.bob = handled.state_id
    assert handled.epoch_authenticator == done.epoch_authenticator


def test_status_mapping() -> None:
    assert status_of(DecodeError("bad"))[0] == CODE.INVALID_ARGUMENT
    assert status_of(UsageError("misuse")) == (CODE.FAILED_PRECONDITION, "UsageError: misuse")
    assert status_of(UnsupportedError("suite"))[0] == CODE.UNIMPLEMENTED
    assert status_of(InternalError("bug"))[0] == CODE.INTERNAL
    assert status_of(RpcFailure(CODE.NOT_FOUND, "gone")) == (CODE.NOT_FOUND, "gone")
    # Any other exception is a bug: its type only, never its message.
    assert status_of(KeyError("secret-ish")) == (CODE.INTERNAL, "internal error (KeyError)")
