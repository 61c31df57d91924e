"""Every RPC of ``mls_client.MLSClient`` through generated grpcio stubs against servers of ours
started by the tests (loopback ports), with what each answers checked."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from typing import Any

import grpc
import pytest

from mls import __version__
from mls.codec.wire import decode
from mls.crypto import get_suite
from mls.crypto.registry import supported_suites
from mls.errors import MLSError
from mls.extensions import ExternalSender
from mls.framing.message import MLSMessage
from mls.group import Client, Group
from mls.interop_grpc import mls_client_pb2 as pb
from mls.interop_grpc import mls_client_pb2_grpc as pb_grpc
from mls.interop_grpc.service import RPC_NAMES
from mls.messages.group_info import GroupInfo
from mls.messages.key_package import KeyPackage
from mls.messages.welcome import Welcome
from tests.grpc.conftest import Server


class Recorder:
    """A stub that remembers which RPCs were called (the tour must call all 34)."""

    def __init__(self, stub: Any, called: set[str]) -> None:
        self._stub, self._called = stub, called

    def __getattr__(self, name: str) -> Any:
        self._called.add(name)
        return getattr(self._stub, name)


def _kp(stub: Any, identity: bytes, suite: int = 1) -> pb.CreateKeyPackageResponse:
    return stub.CreateKeyPackage(pb.CreateKeyPackageRequest(cipher_suite=suite, identity=identity))


def test_tour_of_every_rpc(servers: tuple[Server, Server]) -> None:
    called: set[str] = set()
    a = Recorder(servers[0].stub, called)
    b = Recorder(servers[1].stub, called)
    cs = get_suite(1)

    name = a.Name(pb.NameRequest()).name
    assert name == f"mls-python {__version__}"
    suites = list(a.SupportedCiphersuites(pb.SupportedCiphersuitesRequest()).ciphersuites)
    assert suites[:7] == [1, 2, 3, 4, 5, 6, 7] and suites == list(supported_suites())

    # alice creates the group; bob's KeyPackage and its raw private keys.
    alice = a.CreateGroup(
        pb.CreateGroupRequest(group_id=b"tour", cipher_suite=1, identity=b"alice")
    ).state_id
    kp = _kp(b, b"bob")
    body = decode(MLSMessage, kp.key_package).body
    assert isinstance(body, KeyPackage) and body.leaf_node.credential.identity == b"bob"
    assert cs.hpke.kem.public_key(kp.init_priv) == body.init_key  # raw X25519 private keys
    assert cs.signature_public_key(kp.signature_priv) == body.leaf_node.signature_key
    assert len(kp.encryption_priv) == cs.hpke_sk_len

    # Add by reference, commit with the tree out of band, join.
    add = a.AddProposal(pb.AddProposalRequest(state_id=alice, key_package=kp.key_package))
    commit = a.Commit(
        pb.CommitRequest(state_id=alice, by_reference=[add.proposal], external_tree=True)
    )
    assert commit.ratchet_tree and isinstance(decode(MLSMessage, commit.welcome).body, Welcome)
    done = a.HandlePendingCommit(pb.HandlePendingCommitRequest(state_id=alice))
    assert done.state_id != alice
    alice = done.state_id
    joined = b.JoinGroup(
        pb.JoinGroupRequest(
            transaction_id=kp.transaction_id,
            welcome=commit.welcome,
            encrypt_handshake=True,
            identity=b"bob",
            ratchet_tree=commit.ratchet_tree,
        )
    )
    bob = joined.state_id
    assert joined.epoch_authenticator == done.epoch_authenticator

    # Secrets both members derive.
    auth_a = a.StateAuth(pb.StateAuthRequest(state_id=alice)).state_auth_secret
    assert auth_a == b.StateAuth(pb.StateAuthRequest(state_id=bob)).state_auth_secret
    export = pb.ExportRequest(label="interop test", context=b"\x01\x02", key_length=40)
    export.state_id = alice
    secret = a.Export(export).exported_secret
    export.state_id = bob
    assert len(secret) == 40 and b.Export(export).exported_secret == secret

    # Application data with authenticated data, both ways.
    ct = a.Protect(
        pb.ProtectRequest(state_id=alice, authenticated_data=b"aad", plaintext=b"hi bob")
    ).ciphertext
    out = b.Unprotect(pb.UnprotectRequest(state_id=bob, ciphertext=ct))
    assert (out.authenticated_data, out.plaintext) == (b"aad", b"hi bob")

    # PSKs on both states; every proposal kind by a member, committed by the other.
    for sid, stub in ((alice, a), (bob, b)):
        stub.StorePSK(
            pb.StorePSKRequest(state_or_transaction_id=sid, psk_id=b"psk", psk_secret=b"s" * 32)
        )
    proposals = [
        b.UpdateProposal(pb.UpdateProposalRequest(state_id=bob)).proposal,
        b.ExternalPSKProposal(pb.ExternalPSKProposalRequest(state_id=bob, psk_id=b"psk")).proposal,
        b.ResumptionPSKProposal(pb.ResumptionPSKProposalRequest(state_id=bob, epoch_id=1)).proposal,
        b.GroupContextExtensionsProposal(
            pb.GroupContextExtensionsProposalRequest(
                state_id=bob, extensions=[pb.Extension(extension_type=3, extension_data=b"\0\0\0")]
            )
        ).proposal,
    ]
    commit = a.Commit(pb.CommitRequest(state_id=alice, by_reference=proposals))
    alice_done = a.HandlePendingCommit(pb.HandlePendingCommitRequest(state_id=alice))
    alice = alice_done.state_id
    handled = b.HandleCommit(
        pb.HandleCommitRequest(state_id=bob, proposal=proposals, commit=commit.commit)
    )
    bob = handled.state_id
    assert handled.epoch_authenticator == alice_done.epoch_authenticator

    # An external signer joins external_senders, then proposes adding carol.
    signer = a.CreateExternalSigner(pb.CreateExternalSignerRequest(cipher_suite=1, identity=b"ds"))
    assert decode(ExternalSender, signer.external_sender).credential.identity == b"ds"
    gce = b.AddExternalSigner(
        pb.AddExternalSignerRequest(state_id=bob, external_sender=signer.external_sender)
    ).proposal
    commit = a.Commit(pb.CommitRequest(state_id=alice, by_reference=[gce]))
    alice = a.HandlePendingCommit(pb.HandlePendingCommitRequest(state_id=alice)).state_id
    bob = b.HandleCommit(
        pb.HandleCommitRequest(state_id=bob, proposal=[gce], commit=commit.commit)
    ).state_id
    info = a.GroupInfo(pb.GroupInfoRequest(state_id=alice, external_tree=True))
    gi = decode(MLSMessage, info.group_info).body
    assert isinstance(gi, GroupInfo) and info.ratchet_tree
    assert all(e.extension_type != 2 for e in gi.extensions)  # the tree went out of band
    carol_kp = _kp(a, b"carol")
    ext_add = a.ExternalSignerProposal(
        pb.ExternalSignerProposalRequest(
            signer_id=signer.signer_id,
            group_info=info.group_info,
            ratchet_tree=info.ratchet_tree,
            description=pb.ProposalDescription(
                proposal_type=b"add", key_package=carol_kp.key_package
            ),
        )
    ).proposal
    # dave asks to be added himself; bob also removes nobody but proposes nothing more.
    info = b.GroupInfo(pb.GroupInfoRequest(state_id=bob))
    dave = b.NewMemberAddProposal(
        pb.NewMemberAddProposalRequest(group_info=info.group_info, identity=b"dave")
    )
    assert dave.init_priv and dave.encryption_priv and dave.signature_priv
    by_ref = [ext_add, dave.proposal]
    commit = b.Commit(pb.CommitRequest(state_id=bob, by_reference=by_ref, force_path=True))
    bob_done = b.HandlePendingCommit(pb.HandlePendingCommitRequest(state_id=bob))
    bob = bob_done.state_id
    alice = a.HandleCommit(
        pb.HandleCommitRequest(state_id=alice, proposal=by_ref, commit=commit.commit)
    ).state_id
    carol = a.JoinGroup(
        pb.JoinGroupRequest(transaction_id=carol_kp.transaction_id, welcome=commit.welcome)
    )
    dave_state = b.JoinGroup(
        pb.JoinGroupRequest(transaction_id=dave.transaction_id, welcome=commit.welcome)
    )
    assert carol.epoch_authenticator == dave_state.epoch_authenticator
    assert carol.epoch_authenticator == bob_done.epoch_authenticator

    # Remove dave by identity (by reference).
    remove = a.RemoveProposal(pb.RemoveProposalRequest(state_id=alice, removed_id=b"dave"))
    commit = b.Commit(pb.CommitRequest(state_id=bob, by_reference=[remove.proposal]))
    bob = b.HandlePendingCommit(pb.HandlePendingCommitRequest(state_id=bob)).state_id
    alice = a.HandleCommit(
        pb.HandleCommitRequest(state_id=alice, proposal=[remove.proposal], commit=commit.commit)
    ).state_id
    carol_id = a.HandleCommit(
        pb.HandleCommitRequest(
            state_id=carol.state_id, proposal=[remove.proposal], commit=commit.commit
        )
    ).state_id
    b.Free(pb.FreeRequest(state_id=dave_state.state_id))

    # An external join by erin, processed by everyone.
    info = a.GroupInfo(pb.GroupInfoRequest(state_id=alice))
    erin = b.ExternalJoin(
        pb.ExternalJoinRequest(group_info=info.group_info, identity=b"erin", encrypt_handshake=True)
    )
    alice = a.HandleCommit(pb.HandleCommitRequest(state_id=alice, commit=erin.commit)).state_id
    bob_h = b.HandleCommit(pb.HandleCommitRequest(state_id=bob, commit=erin.commit))
    assert bob_h.epoch_authenticator == erin.epoch_authenticator
    bob = bob_h.state_id
    carol_id = a.HandleCommit(
        pb.HandleCommitRequest(state_id=carol_id, commit=erin.commit)
    ).state_id

    # A branch of alice and bob.
    bob_kp = _kp(b, b"bob")
    branch = a.CreateBranch(
        pb.CreateBranchRequest(
            state_id=alice, group_id=b"tour-branch", key_packages=[bob_kp.key_package]
        )
    )
    bob_branch = b.HandleBranch(
        pb.HandleBranchRequest(
            state_id=bob, transaction_id=bob_kp.transaction_id, welcome=branch.welcome
        )
    )
    assert bob_branch.epoch_authenticator == branch.epoch_authenticator
    alice, bob = branch.state_id, bob_branch.state_id

    # ReInit of the branch into suite 3, with a new group id.
    reinit = b.ReInitProposal(
        pb.ReInitProposalRequest(state_id=bob, cipher_suite=3, group_id=b"tour-3")
    ).proposal
    commit = a.ReInitCommit(pb.CommitRequest(state_id=alice, by_reference=[reinit]))
    done_a = a.HandlePendingReInitCommit(pb.HandlePendingCommitRequest(state_id=alice))
    done_b = b.HandleReInitCommit(
        pb.HandleCommitRequest(state_id=bob, proposal=[reinit], commit=commit.commit)
    )
    assert done_a.epoch_authenticator == done_b.epoch_authenticator
    new_kp = decode(MLSMessage, done_b.key_package).body
    assert isinstance(new_kp, KeyPackage) and new_kp.cipher_suite == 3
    welcome = a.ReInitWelcome(
        pb.ReInitWelcomeRequest(
            reinit_id=done_a.reinit_id, key_package=[done_b.key_package], external_tree=True
        )
    )
    joined = b.HandleReInitWelcome(
        pb.HandleReInitWelcomeRequest(
            reinit_id=done_b.reinit_id, welcome=welcome.welcome, ratchet_tree=welcome.ratchet_tree
        )
    )
    assert joined.epoch_authenticator == welcome.epoch_authenticator

    for stub, sid in (
        (a, welcome.state_id),
        (b, joined.state_id),
        (a, carol_id),
        (b, erin.state_id),
    ):
        stub.Free(pb.FreeRequest(state_id=sid))
    assert called >= set(RPC_NAMES), sorted(set(RPC_NAMES) - called)


def test_key_packages_valid_for_ever_are_accepted(server: Server) -> None:
    """Other stacks publish KeyPackages valid from 0 to 2**64-1 (MLSpp, BouncyCastle): the
    interop server takes them, though a default GroupConfig refuses such a lifetime (§7.2)."""
    now = int(time.time())
    carol = Client.create(b"carol", 1)
    kp = MLSMessage(body=carol.key_package(now, lifetime=(1 << 64) - 1 - now)).to_bytes()
    stub = server.stub
    sid = stub.CreateGroup(
        pb.CreateGroupRequest(group_id=b"life", cipher_suite=1, identity=b"alice")
    ).state_id
    add = stub.AddProposal(pb.AddProposalRequest(state_id=sid, key_package=kp)).proposal
    assert stub.Commit(pb.CommitRequest(state_id=sid, by_reference=[add])).welcome
    stub.Free(pb.FreeRequest(state_id=sid))
    group = Group.create(Client.create(b"alice", 1), b"life", now=now)
    with pytest.raises(MLSError):
        group.propose_add(kp, now=now)


def test_states_and_handles_are_released(servers: tuple[Server, Server]) -> None:
    """Retired and freed handles answer NOT_FOUND; Free brings the server back to no state."""
    server = servers[0]
    stub = server.stub
    before = server.service.state_count
    sid = stub.CreateGroup(pb.CreateGroupRequest(group_id=b"g", cipher_suite=1, identity=b"a"))
    stub.Commit(pb.CommitRequest(state_id=sid.state_id))
    new = stub.HandlePendingCommit(pb.HandlePendingCommitRequest(state_id=sid.state_id)).state_id
    with pytest.raises(grpc.RpcError) as err:
        stub.StateAuth(pb.StateAuthRequest(state_id=sid.state_id))  # retired by the new epoch
    assert err.value.code() == grpc.StatusCode.NOT_FOUND
    assert server.service.state_count == before + 1
    stub.Free(pb.FreeRequest(state_id=new))
    assert server.service.state_count == before
    with pytest.raises(grpc.RpcError) as err:
        stub.Free(pb.FreeRequest(state_id=new))
    assert err.value.code() == grpc.StatusCode.NOT_FOUND


def test_detached_handles_are_bounded() -> None:
    """Handles the runner never frees (external signers) are capped, oldest dropped first."""
    server = Server(max_detached=3)
    try:
        ids = [
            server.stub.CreateExternalSigner(
                pb.CreateExternalSignerRequest(cipher_suite=1, identity=b"ds%d" % i)
            ).signer_id
            for i in range(5)
        ]
        assert server.service.handle_count == 3
        assert server.service.state_count == 0
        with pytest.raises(grpc.RpcError) as err:
            server.stub.Free(pb.FreeRequest(state_id=ids[0]))
        assert err.value.code() == grpc.StatusCode.NOT_FOUND
        server.stub.Free(pb.FreeRequest(state_id=ids[-1]))
        assert server.service.handle_count == 2
    finally:
        server.close()


def test_command_line_serves_until_sigterm() -> None:
    """``python -m mls interop --grpc 0`` listens on loopback, answers, and stops on SIGTERM."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "mls", "interop", "--grpc", "0", "--host", "127.0.0.1"],
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        assert proc.stderr is not None
        line = proc.stderr.readline()
        assert "mls_client.MLSClient listening on 127.0.0.1:" in line, line
        port = int(line.rsplit(":", 1)[1])
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            stub = pb_grpc.MLSClientStub(channel)
            assert stub.Name(pb.NameRequest(), timeout=30).name.startswith("mls-python")
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        assert proc.stderr is not None
        proc.stderr.close()


def test_a_port_in_use_is_refused(server: Server) -> None:
    from mls.interop_grpc.server import build_server
    from mls.interop_grpc.service import MLSClientService

    with pytest.raises(OSError):
        build_server(MLSClientService(), "127.0.0.1", server.port)


def test_import_mls_needs_no_grpc() -> None:
    code = "import sys, mls, mls.group, mls.interop; assert 'grpc' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
