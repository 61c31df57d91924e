"""A small coordinator for the working group's scenario configs (``configs/*.json``).

It plays a script's steps against ``mls_client.MLSClient`` servers through generated stubs, the
way the working group's runner does (README of the harness): each actor lives on one server, a
step's outputs are kept by step index for later steps, members must agree on the epoch
authenticator after every epoch change and an unprotected message must equal what was
protected. At the end every actor's last state is freed. Written for these tests from the
config format; not the working group's runner.
"""

from __future__ import annotations

import base64
import os
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from mls.interop_grpc import mls_client_pb2 as pb

Step = dict[str, Any]


class ScenarioError(AssertionError):
    """A member disagreed, or a step could not be played."""


def actors_of(script: Sequence[Step]) -> list[str]:
    """Every actor a script names, in order of first mention."""
    seen: dict[str, None] = {}
    for step in script:
        for key in ("actor", "joiner", "signer", "proposer", "committer", "welcomer"):
            if isinstance(step.get(key), str):
                seen.setdefault(step[key], None)
        for key in ("members", "joiners", "clients"):
            for name in step.get(key, []):
                seen.setdefault(name, None)
    return list(seen)


def _extensions(items: Iterable[dict[str, Any]]) -> list[pb.Extension]:
    # The configs carry extension_data as base64 (Go's encoding of []byte).
    return [
        pb.Extension(
            extension_type=e["extension_type"],
            extension_data=base64.b64decode(e.get("extension_data", "")),
        )
        for e in items
    ]


@dataclass
class Coordinator:
    """Plays one script with ``actors`` mapping each actor to a stub."""

    actors: dict[str, Any]
    suite: int
    encrypt: bool
    #: Suites every server supports (for ``changeCiphersuite``).
    suites: Sequence[int] = (1, 2, 3)
    state: dict[str, int] = field(default_factory=dict)
    transaction: dict[str, int] = field(default_factory=dict)
    signer: dict[str, int] = field(default_factory=dict)
    out: list[dict[str, Any]] = field(default_factory=list)
    #: Epoch authenticators checked (a test asserts the coordinator compared something).
    agreements: int = 0
    plaintexts: int = 0

    def run(self, script: Sequence[Step]) -> None:
        self.out = [{} for _ in script]
        try:
            for index, step in enumerate(script):
                action = step["action"]
                try:
                    getattr(self, "_" + action)(index, step)
                except ScenarioError:
                    raise
                except Exception as exc:
                    raise ScenarioError(f"step {index} ({action}): {exc}") from exc
        finally:
            self.free()

    def free(self) -> None:
        for actor, state_id in list(self.state.items()):
            self.actors[actor].Free(pb.FreeRequest(state_id=state_id))
        self.state.clear()

    # -- helpers -------------------------------------------------------------------------------

    def _agree(self, who: str, got: bytes, want: bytes) -> None:
        if got != want:
            raise ScenarioError(f"{who} disagrees on the epoch authenticator")
        self.agreements += 1

    def _key_package(self, actor: str) -> tuple[bytes, int]:
        resp = self.actors[actor].CreateKeyPackage(
            pb.CreateKeyPackageRequest(cipher_suite=self.suite, identity=actor.encode())
        )
        return resp.key_package, resp.transaction_id

    def _join(self, joiner: str, welcome: bytes, tree: bytes, epoch_auth: bytes) -> None:
        resp = self.actors[joiner].JoinGroup(
            pb.JoinGroupRequest(
                transaction_id=self.transaction.pop(joiner),
                welcome=welcome,
                encrypt_handshake=self.encrypt,
                identity=joiner.encode(),
                ratchet_tree=tree,
            )
        )
        self._agree(joiner, resp.epoch_authenticator, epoch_auth)
        self.state[joiner] = resp.state_id

    def _describe(self, d: dict[str, Any]) -> pb.ProposalDescription:
        kind = d["proposalType"]
        desc = pb.ProposalDescription(proposal_type=kind.encode())
        if kind == "add":
            desc.key_package = self.out[d["keyPackage"]]["key_package"]
        elif kind == "remove":
            desc.removed_id = d["removed"].encode()
        elif kind == "externalPSK":
            desc.psk_id = self.out[d["pskID"]]["psk_id"]
        elif kind == "resumptionPSK":
            desc.epoch_id = d["epochID"]
        elif kind == "groupContextExtensions":
            desc.extensions.extend(_extensions(d.get("extensions", [])))
        elif kind == "reinit":
            desc.extensions.extend(_extensions(d.get("extensions", [])))
            if d.get("changeCipherSuite"):
                self._change_suite()
            desc.cipher_suite = self.suite
            desc.group_id = self._group_id(d.get("changeGroupID", False))
        else:
            raise ScenarioError(f"unknown proposal type {kind!r}")
        return desc

    def _group_id(self, change: bool) -> bytes:
        group_id: bytes = self.out[0]["group_id"]
        return group_id + b"++" if change else group_id

    def _change_suite(self) -> None:
        others = [s for s in self.suites if s != self.suite]
        if not others:
            raise ScenarioError("changeCiphersuite needs a second common suite")
        self.suite = others[0]

    def _commit_and_distribute(
        self,
        index: int,
        actor: str,
        by_ref: list[bytes],
        by_value: list[pb.ProposalDescription],
        members: Iterable[str],
        joiners: Iterable[str],
        *,
        force_path: bool = False,
        external_tree: bool = False,
    ) -> None:
        stub = self.actors[actor]
        commit = stub.Commit(
            pb.CommitRequest(
                state_id=self.state[actor],
                by_reference=by_ref,
                by_value=by_value,
                force_path=force_path,
                external_tree=external_tree,
            )
        )
        if external_tree and not commit.ratchet_tree:
            raise ScenarioError("external_tree commit without a ratchet_tree")
        pending = stub.HandlePendingCommit(
            pb.HandlePendingCommitRequest(state_id=self.state[actor])
        )
        self.state[actor] = pending.state_id
        epoch_auth = pending.epoch_authenticator
        self.out[index].update(commit=commit.commit, epoch_authenticator=epoch_auth)
        for member in members:
            resp = self.actors[member].HandleCommit(
                pb.HandleCommitRequest(
                    state_id=self.state[member], proposal=by_ref, commit=commit.commit
                )
            )
            self._agree(member, resp.epoch_authenticator, epoch_auth)
            self.state[member] = resp.state_id
        for joiner in joiners:
            tree = commit.ratchet_tree if external_tree else b""
            self._join(joiner, commit.welcome, tree, epoch_auth)

    # -- actions -------------------------------------------------------------------------------

    def _createGroup(self, index: int, step: Step) -> None:
        actor = step["actor"]
        group_id = str(uuid.uuid4()).encode()
        resp = self.actors[actor].CreateGroup(
            pb.CreateGroupRequest(
                group_id=group_id,
                cipher_suite=self.suite,
                encrypt_handshake=self.encrypt,
                identity=actor.encode(),
            )
        )
        self.state[actor] = resp.state_id
        self.out[index]["group_id"] = group_id
        members = step.get("members", [])
        if not members:
            return
        adds = []
        for member in members:
            kp, tx = self._key_package(member)
            self.transaction[member] = tx
            adds.append(pb.ProposalDescription(proposal_type=b"add", key_package=kp))
        self._commit_and_distribute(index, actor, [], adds, [], members)

    def _createKeyPackage(self, index: int, step: Step) -> None:
        kp, tx = self._key_package(step["actor"])
        self.transaction[step["actor"]] = tx
        self.out[index]["key_package"] = kp

    def _installExternalPSK(self, index: int, step: Step) -> None:
        psk_id, secret = os.urandom(32), os.urandom(32)
        self.out[index].update(psk_id=psk_id, psk_secret=secret)
        for client in step["clients"]:
            handle = self.state.get(client) or self.transaction[client]
            self.actors[client].StorePSK(
                pb.StorePSKRequest(state_or_transaction_id=handle, psk_id=psk_id, psk_secret=secret)
            )

    def _proposal(self, index: int, message: bytes) -> None:
        self.out[index]["proposal"] = message

    def _addProposal(self, index: int, step: Step) -> None:
        actor = step["actor"]
        kp = self.out[step["keyPackage"]]["key_package"]
        resp = self.actors[actor].AddProposal(
            pb.AddProposalRequest(state_id=self.state[actor], key_package=kp)
        )
        self._proposal(index, resp.proposal)

    def _updateProposal(self, index: int, step: Step) -> None:
        actor = step["actor"]
        resp = self.actors[actor].UpdateProposal(
            pb.UpdateProposalRequest(state_id=self.state[actor])
        )
        self._proposal(index, resp.proposal)

    def _removeProposal(self, index: int, step: Step) -> None:
        actor = step["actor"]
        resp = self.actors[actor].RemoveProposal(
            pb.RemoveProposalRequest(
                state_id=self.state[actor], removed_id=step["removed"].encode()
            )
        )
        self._proposal(index, resp.proposal)

    def _externalPSKProposal(self, index: int, step: Step) -> None:
        actor = step["actor"]
        resp = self.actors[actor].ExternalPSKProposal(
            pb.ExternalPSKProposalRequest(
                state_id=self.state[actor], psk_id=self.out[step["pskID"]]["psk_id"]
            )
        )
        self._proposal(index, resp.proposal)

    def _resumptionPSKProposal(self, index: int, step: Step) -> None:
        actor = step["actor"]
        resp = self.actors[actor].ResumptionPSKProposal(
            pb.ResumptionPSKProposalRequest(state_id=self.state[actor], epoch_id=step["epochID"])
        )
        self._proposal(index, resp.proposal)

    def _groupContextExtensionsProposal(self, index: int, step: Step) -> None:
        actor = step["actor"]
        resp = self.actors[actor].GroupContextExtensionsProposal(
            pb.GroupContextExtensionsProposalRequest(
                state_id=self.state[actor], extensions=_extensions(step.get("extensions", []))
            )
        )
        self._proposal(index, resp.proposal)

    def _fullCommit(self, index: int, step: Step) -> None:
        by_ref = [self.out[i]["proposal"] for i in step.get("byReference", [])]
        by_value = [self._describe(d) for d in step.get("byValue", [])]
        self._commit_and_distribute(
            index,
            step["actor"],
            by_ref,
            by_value,
            step.get("members", []),
            step.get("joiners", []),
            force_path=step.get("force_path", False),
            external_tree=step.get("external_tree", False),
        )

    def _protect(self, index: int, step: Step) -> None:
        actor = step["actor"]
        aad, plaintext = step["authenticatedData"].encode(), step["plaintext"].encode()
        resp = self.actors[actor].Protect(
            pb.ProtectRequest(
                state_id=self.state[actor], authenticated_data=aad, plaintext=plaintext
            )
        )
        self.out[index].update(ciphertext=resp.ciphertext, aad=aad, plaintext=plaintext)

    def _unprotect(self, index: int, step: Step) -> None:
        actor = step["actor"]
        sent = self.out[step["ciphertext"]]
        resp = self.actors[actor].Unprotect(
            pb.UnprotectRequest(state_id=self.state[actor], ciphertext=sent["ciphertext"])
        )
        if resp.authenticated_data != sent["aad"] or resp.plaintext != sent["plaintext"]:
            raise ScenarioError(f"{actor} unprotected something else than was protected")
        self.plaintexts += 1

    def _externalJoin(self, index: int, step: Step) -> None:
        actor, joiner = step["actor"], step["joiner"]
        external_tree = step.get("externalTree", False)
        info = self.actors[actor].GroupInfo(
            pb.GroupInfoRequest(state_id=self.state[actor], external_tree=external_tree)
        )
        if external_tree and not info.ratchet_tree:
            raise ScenarioError("GroupInfo with external_tree but no ratchet_tree")
        psks = [
            pb.PreSharedKey(psk_id=self.out[i]["psk_id"], psk_secret=self.out[i]["psk_secret"])
            for i in step.get("psks", [])
        ]
        resp = self.actors[joiner].ExternalJoin(
            pb.ExternalJoinRequest(
                group_info=info.group_info,
                ratchet_tree=info.ratchet_tree,
                encrypt_handshake=self.encrypt,
                identity=joiner.encode(),
                remove_prior=step.get("removePrior", False),
                psks=psks,
            )
        )
        self.state[joiner] = resp.state_id
        self.out[index].update(commit=resp.commit)
        for member in [*step.get("members", []), actor]:
            handled = self.actors[member].HandleCommit(
                pb.HandleCommitRequest(state_id=self.state[member], commit=resp.commit)
            )
            self._agree(member, handled.epoch_authenticator, resp.epoch_authenticator)
            self.state[member] = handled.state_id

    def _newMemberAddProposal(self, index: int, step: Step) -> None:
        actor, joiner = step["actor"], step["joiner"]
        info = self.actors[actor].GroupInfo(pb.GroupInfoRequest(state_id=self.state[actor]))
        resp = self.actors[joiner].NewMemberAddProposal(
            pb.NewMemberAddProposalRequest(group_info=info.group_info, identity=joiner.encode())
        )
        self.transaction[joiner] = resp.transaction_id
        self._proposal(index, resp.proposal)

    def _addExternalSigner(self, index: int, step: Step) -> None:
        actor, name = step["actor"], step["signer"]
        signer = self.actors[name].CreateExternalSigner(
            pb.CreateExternalSignerRequest(cipher_suite=self.suite, identity=name.encode())
        )
        self.signer[name] = signer.signer_id
        resp = self.actors[actor].AddExternalSigner(
            pb.AddExternalSignerRequest(
                state_id=self.state[actor], external_sender=signer.external_sender
            )
        )
        self._proposal(index, resp.proposal)

    def _externalSignerProposal(self, index: int, step: Step) -> None:
        name, member = step["actor"], step["member"]
        info = self.actors[member].GroupInfo(
            pb.GroupInfoRequest(state_id=self.state[member], external_tree=True)
        )
        resp = self.actors[name].ExternalSignerProposal(
            pb.ExternalSignerProposalRequest(
                signer_id=self.signer[name],
                group_info=info.group_info,
                ratchet_tree=info.ratchet_tree,
                description=self._describe(step["description"]),
            )
        )
        self._proposal(index, resp.proposal)

    def _reinit(self, index: int, step: Step) -> None:
        proposer, committer = step.get("proposer", ""), step["committer"]
        welcomer, members = step["welcomer"], step.get("members", [])
        everyone = list(
            dict.fromkeys([*members, welcomer, committer, *([proposer] if proposer else [])])
        )
        if proposer:
            group_id = self._group_id(step.get("changeGroupID", False))
            if step.get("changeCiphersuite"):
                self._change_suite()
            proposal = (
                self.actors[proposer]
                .ReInitProposal(
                    pb.ReInitProposalRequest(
                        state_id=self.state[proposer],
                        cipher_suite=self.suite,
                        group_id=group_id,
                        extensions=_extensions(step.get("extensions", [])),
                    )
                )
                .proposal
            )
        else:
            proposal = self.out[step["externalReinitProposal"]]["proposal"]
        stub = self.actors[committer]
        commit = stub.ReInitCommit(
            pb.CommitRequest(state_id=self.state[committer], by_reference=[proposal])
        )
        done = stub.HandlePendingReInitCommit(
            pb.HandlePendingCommitRequest(state_id=self.state[committer])
        )
        epoch_auth = done.epoch_authenticator
        reinit = {committer: done.reinit_id}
        key_packages = {committer: done.key_package}
        del self.state[committer]
        for member in everyone:
            if member == committer:
                continue
            resp = self.actors[member].HandleReInitCommit(
                pb.HandleCommitRequest(
                    state_id=self.state[member], proposal=[proposal], commit=commit.commit
                )
            )
            del self.state[member]  # retired by the server: the ReInit handle replaces it
            self._agree(member, resp.epoch_authenticator, epoch_auth)
            reinit[member], key_packages[member] = resp.reinit_id, resp.key_package
        external_tree = step.get("externalTree", False)
        welcome = self.actors[welcomer].ReInitWelcome(
            pb.ReInitWelcomeRequest(
                reinit_id=reinit[welcomer],
                key_package=[kp for m, kp in key_packages.items() if m != welcomer],
                force_path=step.get("forcePath", False),
                external_tree=external_tree,
            )
        )
        self.state[welcomer] = welcome.state_id
        for member in everyone:
            if member == welcomer:
                continue
            resp = self.actors[member].HandleReInitWelcome(
                pb.HandleReInitWelcomeRequest(
                    reinit_id=reinit[member],
                    welcome=welcome.welcome,
                    ratchet_tree=welcome.ratchet_tree if external_tree else b"",
                )
            )
            self._agree(member, resp.epoch_authenticator, welcome.epoch_authenticator)
            self.state[member] = resp.state_id

    def _branch(self, index: int, step: Step) -> None:
        actor, members = step["actor"], step["members"]
        transactions, key_packages = {}, []
        for member in members:
            kp, tx = self._key_package(member)
            transactions[member] = tx
            key_packages.append(kp)
        external_tree = step.get("externalTree", False)
        branch = self.actors[actor].CreateBranch(
            pb.CreateBranchRequest(
                state_id=self.state[actor],
                group_id=str(uuid.uuid4()).encode(),
                extensions=_extensions(step.get("extensions", [])),
                key_packages=key_packages,
                force_path=step.get("forcePath", False),
                external_tree=external_tree,
            )
        )
        self.state[actor] = branch.state_id
        for member in members:
            resp = self.actors[member].HandleBranch(
                pb.HandleBranchRequest(
                    state_id=self.state[member],
                    transaction_id=transactions[member],
                    welcome=branch.welcome,
                    ratchet_tree=branch.ratchet_tree if external_tree else b"",
                )
            )
            self._agree(member, resp.epoch_authenticator, branch.epoch_authenticator)
            self.state[member] = resp.state_id
