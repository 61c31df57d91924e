"""The interop driver ``python -m mls interop`` (/work/shared/interop/PROTOCOL.md).

Two levels:

- in process: :class:`mls.interop.Driver` answers request lines (framing, id echo, error kinds,
  every op, the failure rule "a failed request leaves every group and client as it was");
- end to end: two ``python -m mls interop`` subprocesses play different members, and a small
  coordinator here forwards the hex wire bytes between them, running the reference scenario of
  PROTOCOL.md and its variants. After every epoch change all members must agree on epoch,
  epoch_authenticator, an exporter value, tree_hash and member count.

The subprocesses are started once per module and reused for every scenario; each scenario makes
fresh clients and groups and drops its groups at the end.
"""

from __future__ import annotations

import io
import json
import os
import select
import subprocess
import sys
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Protocol

import pytest

from mls.crypto import supported_suites
from mls.errors import (
    BadSignature,
    DecodeError,
    InternalError,
    InvalidState,
    MLSError,
    NoMatchingKeyPackage,
    UnsupportedError,
    UsageError,
)
from mls.group import Group
from mls.interop import Driver, error_kind, main, serve

ROOT = Path(__file__).resolve().parents[1]
ALL_SUITES = [1, 2, 3, 4, 5, 6, 7]
HELLO_SUITES = list(supported_suites())  # 1-7 and the PQ suites of the default profile
WIRES = ["public", "private"]
# The state fields every member must agree on after an epoch change (own_leaf_index differs).
AGREED = (
    "epoch",
    "epoch_authenticator",
    "exporter",
    "tree_hash",
    "confirmed_transcript_hash",
    "members",
    "group_id",
    "cipher_suite",
)


# ---------------------------------------------------------------------------------------------
# Endpoints: the same coordinator code talks to an in-process Driver or to a subprocess.


class Endpoint(Protocol):
    def call(self, req: dict[str, Any]) -> dict[str, Any]: ...


class InProcess:
    """A Driver behind the line codec, as the subprocess would see it."""

    def __init__(self) -> None:
        self.driver = Driver()

    def call(self, req: dict[str, Any]) -> dict[str, Any]:
        line = self.driver.handle_line(json.dumps(req))
        assert line is not None and "\n" not in line
        resp: dict[str, Any] = json.loads(line)
        return resp


class Subprocess:
    """``python -m mls interop`` with a request counter; every response must echo its id."""

    def __init__(self) -> None:
        env = dict(os.environ, PYTHONPATH=str(ROOT))
        self.stderr = tempfile.TemporaryFile()  # closed in close()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "mls", "interop"],
            cwd=ROOT,
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self.stderr,
            text=True,
            encoding="utf-8",
            bufsize=1,
        )
        self.next_id = 0

    def _stdin(self) -> IO[str]:
        assert self.proc.stdin is not None
        return self.proc.stdin

    def _stdout(self) -> IO[str]:
        assert self.proc.stdout is not None
        return self.proc.stdout

    def diagnostics(self) -> str:
        self.stderr.seek(0)
        return self.stderr.read().decode("utf-8", "replace")[-4000:]

    def call(self, req: dict[str, Any]) -> dict[str, Any]:
        self.next_id += 1
        rid = f"r{self.next_id}"
        self._stdin().write(json.dumps({"id": rid, **req}) + "\n")
        self._stdin().flush()
        ready, _, _ = select.select([self._stdout()], [], [], 120)
        assert ready, f"driver did not answer {req.get('op')}: {self.diagnostics()}"
        line = self._stdout().readline()
        assert line, f"driver exited: {self.diagnostics()}"
        resp: dict[str, Any] = json.loads(line)  # nothing but JSON responses on stdout
        assert resp.pop("id") == rid
        return resp

    def close(self) -> None:
        """End of input: the driver must exit 0 with nothing more on stdout."""
        self._stdin().close()
        rest = self._stdout().read()
        self._stdout().close()
        code = self.proc.wait(timeout=30)
        self.stderr.close()
        assert rest == ""
        assert code == 0


def ok(ep: Endpoint, op: str, **fields: Any) -> dict[str, Any]:
    resp = ep.call({"op": op, **fields})
    assert resp.get("ok") is True, (op, resp)
    return resp


def fail(ep: Endpoint, op: str, **fields: Any) -> dict[str, Any]:
    resp = ep.call({"op": op, **fields})
    assert resp.get("ok") is False, (op, resp)
    assert set(resp) == {"ok", "error", "error_type", "error_kind"}, resp
    return resp


# ---------------------------------------------------------------------------------------------
# The coordinator: members live on endpoints, only hex bytes travel between them.

CLIENT_OPS = frozenset({"key_package", "add_psk", "create_group", "join", "external_join"})


@dataclass
class Member:
    ep: Endpoint
    name: str
    client: str
    group: str | None = None

    def __call__(self, op: str, **fields: Any) -> dict[str, Any]:
        if op in CLIENT_OPS:
            fields.setdefault("client", self.client)
        elif self.group is not None:
            fields.setdefault("group", self.group)
        return ok(self.ep, op, **fields)

    def state(self) -> dict[str, Any]:
        return self("state")

    def snapshot(self) -> tuple[Any, ...]:
        """Everything observable about this member's group (for "state unchanged" checks)."""
        return (self.state(), self("members"), self("export_tree"))

    def leaf(self, other: Member) -> int:
        ident = other.name.encode().hex()
        leaves = [m["leaf_index"] for m in self("members")["members"] if m["identity"] == ident]
        assert len(leaves) == 1
        return int(leaves[0])


_counter = iter(range(1 << 30))


def new_member(ep: Endpoint, name: str, suite: int) -> Member:
    # Unique identities: endpoints are reused across scenarios.
    ident = f"{name}-{next(_counter)}"
    return Member(ep, ident, ok(ep, "new_client", suite=suite, identity=ident)["client"])


def agree(members: Sequence[Member], epoch: int) -> dict[str, Any]:
    states = [m.state() for m in members]
    first = {k: states[0][k] for k in AGREED}
    for s in states[1:]:
        assert {k: s[k] for k in AGREED} == first
    assert first["epoch"] == epoch
    assert first["members"] == len(members)
    assert len(bytes.fromhex(first["exporter"])) == 32
    assert sorted(s["own_leaf_index"] for s in states) == sorted(m.leaf(m) for m in members)
    rosters = [m("members")["members"] for m in members]
    assert all(r == rosters[0] for r in rosters)
    assert sorted(e["identity"] for e in rosters[0]) == sorted(
        m.name.encode().hex() for m in members
    )
    trees = {m("export_tree")["ratchet_tree"] for m in members}
    assert len(trees) == 1
    return first


def deliver_commit(message: str, receivers: Sequence[Member], epoch: int) -> None:
    for r in receivers:
        resp = r("process", message=message)
        assert resp["kind"] == "commit"
        assert resp["epoch"] == epoch
        assert resp["removed"] is False
        assert resp["t_ms"] >= 0


def chat(members: Sequence[Member], tag: str) -> None:
    """Every member sends one application message; every other member reads it."""
    for s in members:
        text = f"{tag} from {s.name}".encode().hex()
        msg = s("protect", plaintext=text)["message"]
        for r in members:
            if r is not s:
                resp = r("process", message=msg)
                assert resp["kind"] == "application"
                assert resp["plaintext"] == text
                assert resp["removed"] is False


def create(alice: Member, wire: str, tree_in_welcome: bool) -> None:
    opts = {"wire": wire, "ratchet_tree_extension": tree_in_welcome}
    alice.group = alice(
        "create_group", client=alice.client, group_id=os.urandom(16).hex(), options=opts
    )["group"]
    assert alice("set_options", options={})["options"] == opts


def join(m: Member, added: dict[str, Any], wire: str, tree_in_welcome: bool) -> None:
    tree = None if tree_in_welcome else added["ratchet_tree"]
    m.group = m("join", client=m.client, welcome=added["welcome"], ratchet_tree=tree)["group"]
    assert m("state")["epoch"] == added["epoch"]
    # The joiner sends its handshakes as the group does.
    m("set_options", options={"wire": wire, "ratchet_tree_extension": tree_in_welcome})


def drop(members: Sequence[Member]) -> None:
    for m in members:
        if m.group is not None:
            m("drop_group")
            fail(m.ep, "state", group=m.group)
            m.group = None


def reference_scenario(
    ep_a: Endpoint, ep_b: Endpoint, suite: int, wire: str, tree_in_welcome: bool
) -> None:
    """PROTOCOL.md's reference scenario: Alice on ``ep_a``, Bob and Carol on ``ep_b``."""
    alice = new_member(ep_a, "alice", suite)
    bob = new_member(ep_b, "bob", suite)
    carol = new_member(ep_b, "carol", suite)
    create(alice, wire, tree_in_welcome)
    agree([alice], 0)

    kps = [bob("key_package")["key_package"], carol("key_package")["key_package"]]
    added = alice("add", key_packages=kps)
    assert added["epoch"] == 1 and added["welcome"]
    if not tree_in_welcome:
        # The tree really is out of band: the Welcome alone is not enough.
        rejected = fail(
            ep_b, "join", client=bob.client, welcome=added["welcome"], ratchet_tree=None
        )
        assert rejected["error_kind"] == "peer"
    join(bob, added, wire, tree_in_welcome)
    join(carol, added, wire, tree_in_welcome)
    agree([alice, bob, carol], 1)
    chat([alice, bob, carol], "epoch 1")

    upd = carol("update")
    assert upd["epoch"] == 2 and "welcome" not in upd
    deliver_commit(upd["commit"], [alice, bob], 2)
    agree([alice, bob, carol], 2)
    chat([alice, bob, carol], "epoch 2")

    rem = alice("remove", leaf_index=alice.leaf(bob))
    assert rem["epoch"] == 3
    deliver_commit(rem["commit"], [carol], 3)
    gone = bob("process", message=rem["commit"])
    assert gone["kind"] == "commit" and gone["removed"] is True
    agree([alice, carol], 3)

    for s, r in ((alice, carol), (carol, alice)):
        text = f"secret from {s.name}".encode().hex()
        msg = s("protect", plaintext=text)["message"]
        assert r("process", message=msg)["plaintext"] == text
        blocked = fail(bob.ep, "process", group=bob.group, message=msg)
        assert blocked["error_kind"] == "peer"
    # Bob, removed, can no longer act in the group.
    assert fail(bob.ep, "protect", group=bob.group, plaintext="00")["error_kind"] == "usage"
    drop([alice, bob, carol])


def proposals_scenario(ep_a: Endpoint, ep_b: Endpoint, suite: int, wire: str) -> None:
    """Proposals by reference, sent by some members and committed by another."""
    alice = new_member(ep_a, "alice", suite)
    bob = new_member(ep_b, "bob", suite)
    carol = new_member(ep_b, "carol", suite)
    dave = new_member(ep_a, "dave", suite)
    create(alice, wire, False)
    added = alice(
        "add", key_packages=[bob("key_package")["key_package"], carol("key_package")["key_package"]]
    )
    join(bob, added, wire, False)
    join(carol, added, wire, False)
    agree([alice, bob, carol], 1)

    # Alice proposes to add Dave, Carol proposes an Update; Bob commits both by reference.
    p_add = alice("propose_add", key_package=dave("key_package")["key_package"])["proposal"]
    p_upd = carol("propose_update")["proposal"]
    for msg, receivers in ((p_add, (bob, carol)), (p_upd, (alice, bob))):
        for r in receivers:
            resp = r("process", message=msg)
            assert resp["kind"] == "proposal" and resp["epoch"] == 1
    before = carol.snapshot()
    committed = bob("commit")
    assert committed["epoch"] == 2 and committed["welcome"]
    deliver_commit(committed["commit"], [alice, carol], 2)
    assert carol.snapshot() != before
    dave.group = dave(
        "join",
        client=dave.client,
        welcome=committed["welcome"],
        ratchet_tree=bob("export_tree")["ratchet_tree"],
    )["group"]
    dave("set_options", options={"wire": wire})
    agree([alice, bob, carol, dave], 2)
    chat([alice, bob, carol, dave], "four")

    # Dave proposes removing Carol; Alice's `update` commits it by reference with a path.
    p_rem = dave("propose_remove", leaf_index=dave.leaf(carol))["proposal"]
    for r in (alice, bob, carol):
        assert r("process", message=p_rem)["kind"] == "proposal"
    upd = alice("update")
    assert upd["epoch"] == 3
    deliver_commit(upd["commit"], [bob, dave], 3)
    assert carol("process", message=upd["commit"])["removed"] is True
    agree([alice, bob, dave], 3)
    chat([alice, bob, dave], "three")
    drop([alice, bob, carol, dave])


def external_join_scenario(ep_a: Endpoint, ep_b: Endpoint, suite: int, wire: str) -> None:
    """External joins through group_info, the tree in the GroupInfo or out of band."""
    alice = new_member(ep_a, "alice", suite)
    bob = new_member(ep_b, "bob", suite)
    create(alice, wire, False)
    added = alice("add", key_packages=[bob("key_package")["key_package"]])
    join(bob, added, wire, False)
    members = [alice, bob]
    epoch = 1
    for ep, with_tree in ((ep_b, True), (ep_a, False)):
        eve = new_member(ep, "eve", suite)
        info = bob("group_info")["group_info"]
        tree = None if with_tree else bob("export_tree")["ratchet_tree"]
        joined = ok(ep, "external_join", client=eve.client, group_info=info, ratchet_tree=tree)
        eve.group = joined["group"]
        epoch += 1
        assert joined["epoch"] == epoch
        eve("set_options", options={"wire": wire})
        deliver_commit(joined["commit"], members, epoch)
        members.append(eve)
        agree(members, epoch)
        chat(members, f"epoch {epoch}")
    # The newcomer can commit too.
    upd = members[-1]("update")
    deliver_commit(upd["commit"], members[:-1], epoch + 1)
    agree(members, epoch + 1)
    drop(members)


def self_remove_scenario(ep: Endpoint, suite: int, wire: str) -> None:
    """Carol leaves by SelfRemove; an external joiner includes it; Bob leaves next and
    Alice's commit removes him (issue 16)."""
    alice, bob, carol = (new_member(ep, n, suite) for n in ("alice", "bob", "carol"))
    create(alice, wire, False)
    kps = [m("key_package")["key_package"] for m in (bob, carol)]
    added = alice("add", key_packages=kps)
    join(bob, added, wire, False)
    join(carol, added, wire, False)
    leave = carol("self_remove")["proposal"]
    assert fail(carol.ep, "self_remove", group=carol.group)["error_kind"] == "usage"
    for m in (alice, bob):
        assert m("process", message=leave)["kind"] == "proposal"
    eve = new_member(ep, "eve", suite)
    info = alice("group_info")["group_info"]
    joined = ok(ep, "external_join", client=eve.client, group_info=info, self_removes=[leave])
    eve.group = joined["group"]
    eve("set_options", options={"wire": wire})
    deliver_commit(joined["commit"], [alice, bob], 2)
    assert carol("process", message=joined["commit"])["removed"] is True
    agree([alice, bob, eve], 2)
    leave = bob("self_remove")["proposal"]
    for m in (alice, eve):
        assert m("process", message=leave)["kind"] == "proposal"
    out = alice("commit")
    deliver_commit(out["commit"], [eve], 3)
    assert bob("process", message=out["commit"])["removed"] is True
    agree([alice, eve], 3)
    chat([alice, eve], "two")
    drop([alice, bob, carol, eve])


def psk_scenario(ep_a: Endpoint, ep_b: Endpoint, suite: int, wire: str) -> None:
    """An external PSK in a commit; a member without the PSK cannot process it until it has it."""
    alice = new_member(ep_a, "alice", suite)
    bob = new_member(ep_b, "bob", suite)
    carol = new_member(ep_b, "carol", suite)
    create(alice, wire, True)
    added = alice(
        "add", key_packages=[bob("key_package")["key_package"], carol("key_package")["key_package"]]
    )
    join(bob, added, wire, True)
    join(carol, added, wire, True)
    psk_id, secret = os.urandom(8).hex(), os.urandom(32).hex()
    for m in (alice, bob):
        ok(m.ep, "add_psk", client=m.client, psk_id=psk_id, secret=secret)
    out = alice("commit_psk", psk_id=psk_id)
    assert out["epoch"] == 2
    deliver_commit(out["commit"], [bob], 2)
    before = carol.snapshot()
    assert (
        fail(carol.ep, "process", group=carol.group, message=out["commit"])["error_kind"] == "peer"
    )
    assert carol.snapshot() == before
    ok(carol.ep, "add_psk", client=carol.client, psk_id=psk_id, secret=secret)
    deliver_commit(out["commit"], [carol], 2)
    agree([alice, bob, carol], 2)
    chat([alice, bob, carol], "psk")
    drop([alice, bob, carol])


# ---------------------------------------------------------------------------------------------
# End to end: two driver subprocesses.


@pytest.fixture(scope="module")
def procs() -> Iterator[tuple[Subprocess, Subprocess]]:
    a, b = Subprocess(), Subprocess()
    try:
        yield a, b
    finally:
        a.close()
        b.close()


def _reference_ids(case: tuple[int, str, bool]) -> str:
    suite, wire, tree = case
    return f"suite{suite}-{wire}-{'tree_in_welcome' if tree else 'tree_out_of_band'}"


REFERENCE_MATRIX = [(s, w, t) for s in ALL_SUITES for w in WIRES for t in (True, False)]


@pytest.mark.parametrize("case", REFERENCE_MATRIX, ids=_reference_ids)
def test_e2e_reference(procs: tuple[Subprocess, Subprocess], case: tuple[int, str, bool]) -> None:
    suite, wire, tree_in_welcome = case
    reference_scenario(procs[0], procs[1], suite, wire, tree_in_welcome)


@pytest.mark.parametrize("suite", ALL_SUITES, ids=[f"suite{s}" for s in ALL_SUITES])
@pytest.mark.parametrize("wire", WIRES)
def test_e2e_proposals_by_reference(
    procs: tuple[Subprocess, Subprocess], suite: int, wire: str
) -> None:
    proposals_scenario(*procs, suite, wire)


@pytest.mark.parametrize("suite", ALL_SUITES, ids=[f"suite{s}" for s in ALL_SUITES])
@pytest.mark.parametrize("wire", WIRES)
def test_e2e_external_join(procs: tuple[Subprocess, Subprocess], suite: int, wire: str) -> None:
    external_join_scenario(*procs, suite, wire)


@pytest.mark.parametrize("suite", ALL_SUITES, ids=[f"suite{s}" for s in ALL_SUITES])
@pytest.mark.parametrize("wire", WIRES)
def test_e2e_external_psk(procs: tuple[Subprocess, Subprocess], suite: int, wire: str) -> None:
    psk_scenario(*procs, suite, wire)


def test_e2e_lone_surrogates_are_usage_errors(procs: tuple[Subprocess, Subprocess]) -> None:
    """Issue 11 item 15 over a real pipe: ``\\ud800`` escapes in string fields answer ``usage``."""
    a, _ = procs
    alice = new_member(a, "alice", 1)
    create(alice, "private", False)
    before = alice.snapshot()
    for op, fields in (
        ("new_client", {"suite": 1, "identity": "\ud800"}),
        ("state", {"group": alice.group, "label": "x\udfffy"}),
        ("exporter", {"group": alice.group, "label": "\udc00", "context": "", "length": 8}),
    ):
        resp = fail(a, op, **fields)  # json.dumps writes the lone surrogate as an ASCII escape
        assert (resp["error_type"], resp["error_kind"]) == ("UsageError", "usage"), resp
    assert alice.snapshot() == before
    drop([alice])


def test_e2e_failures_leave_state(procs: tuple[Subprocess, Subprocess]) -> None:
    """The failure rule across processes: tampered and garbage input change nothing."""
    a, b = procs
    alice, bob = new_member(a, "alice", 1), new_member(b, "bob", 1)
    create(alice, "public", False)
    added = alice("add", key_packages=[bob("key_package")["key_package"]])
    join(bob, added, "public", False)
    msg = alice("protect", plaintext="aa")["message"]
    before = bob.snapshot()
    assert fail(b, "process", group=bob.group, message=tamper(msg))["error_kind"] == "peer"
    assert fail(b, "process", group=bob.group, message="zz")["error_kind"] == "usage"
    assert fail(b, "process", group="nope", message=msg)["error_kind"] == "usage"
    assert bob.snapshot() == before
    assert bob("process", message=msg)["plaintext"] == "aa"
    drop([alice, bob])


def test_driver_exits_cleanly_at_eof() -> None:
    p = Subprocess()
    assert ok(p, "hello")["suites"] == HELLO_SUITES
    assert fail(p, "no_such_op")["error_kind"] == "unsupported"
    p.close()


# ---------------------------------------------------------------------------------------------
# In process: framing, error kinds, every op, the failure rule.


def run_lines(lines: Sequence[str]) -> list[dict[str, Any]]:
    out = io.StringIO()
    serve(lines, out)
    text = out.getvalue()
    assert text.endswith("\n") or text == ""
    return [json.loads(line) for line in text.splitlines()]


def test_request_lines_in_process() -> None:
    responses = run_lines(
        [
            '{"op": "hello", "id": 1}\n',
            "\n",
            '{"op": "new_client", "suite": 1, "identity": "alice", "id": "a"}\n',
            '{"op": "new_client", "suite": 3, "identity_hex": "626f62"}\n',
            '{"op": "create_group", "client": "c1", "group_id": "abcd", "id": [1, 2]}\n',
            '{"op": "state", "group": "g1", "label": "x", "context": "00", "length": 16}\n',
            '{"op": "members", "group": "g1"}\n',
            '{"op": "key_package", "client": "c2"}\n',
            "not json\n",
            "[1, 2]\n",
            '{"op": "state", "group": "g9", "id": null}\n',
        ]
    )
    assert len(responses) == 10  # the blank line gets no answer
    hello, alice, bob, group, state, members, kp, bad_json, not_obj, unknown = responses
    assert hello == {
        "id": 1,
        "ok": True,
        "impl": "mls-python",
        "suites": HELLO_SUITES,
        "unsupported": {},
        "extra_ops": ["propose_update", "self_remove"],
    }
    assert alice == {"id": "a", "ok": True, "client": "c1"}
    assert bob == {"ok": True, "client": "c2"}
    assert group["id"] == [1, 2] and group["group"] == "g1"
    assert state["epoch"] == 0 and state["members"] == 1 and state["own_leaf_index"] == 0
    assert state["group_id"] == "abcd" and state["cipher_suite"] == 1
    assert len(bytes.fromhex(state["exporter"])) == 16
    assert members["members"] == [{"leaf_index": 0, "identity": b"alice".hex()}]
    assert kp["key_package"].startswith("000100050001" + "0003")  # mls10, mls_key_package, suite 3
    assert kp["t_ms"] >= 0
    for resp in (bad_json, not_obj):
        assert resp["ok"] is False and resp["error_kind"] == "usage"
        assert resp["error_type"] == "UsageError"
    assert unknown == {
        "id": None,
        "ok": False,
        "error": "unknown group 'g9'",
        "error_type": "UsageError",
        "error_kind": "usage",
    }


def test_state_defaults_match_exporter() -> None:
    ep = InProcess()
    alice = new_member(ep, "alice", 1)
    create(alice, "private", False)
    state = alice.state()
    secret = alice("exporter", label="test", context="", length=32)["secret"]
    assert state["exporter"] == secret
    assert alice("exporter", label="test", context="01", length=32)["secret"] != secret
    group = ep.driver.groups[alice.group or ""]
    assert bytes.fromhex(secret) == group.export_secret("test", b"", 32)
    assert bytes.fromhex(state["epoch_authenticator"]) == group.epoch_authenticator


def test_error_kind_mapping() -> None:
    assert error_kind(DecodeError("x")) == "peer"
    assert error_kind(BadSignature("x")) == "peer"
    assert error_kind(NoMatchingKeyPackage("x")) == "peer"
    assert error_kind(UsageError("x")) == "usage"
    assert error_kind(InvalidState("x")) == "usage"
    assert error_kind(UnsupportedError("x")) == "unsupported"
    assert error_kind(InternalError("x")) == "internal"
    assert error_kind(MLSError("x")) == "bug"
    assert error_kind(ValueError("x")) == "bug"
    assert error_kind(KeyError("x")) == "bug"


def test_request_errors() -> None:
    ep = InProcess()
    alice = new_member(ep, "alice", 1)
    create(alice, "private", False)
    assert fail(ep, "frobnicate")["error_kind"] == "unsupported"
    assert fail(ep, "new_client", suite=99, identity="x")["error_kind"] == "unsupported"
    assert fail(ep, "new_client", suite=True, identity="x")["error_kind"] == "usage"
    assert fail(ep, "new_client", suite=1)["error_kind"] == "usage"
    assert fail(ep, "new_client", suite=1, identity_hex="xyz")["error_kind"] == "usage"
    assert fail(ep, "key_package", client="c99")["error_kind"] == "usage"
    assert (
        fail(ep, "set_options", group=alice.group, options={"wire": "carrier pigeon"})["error_kind"]
        == "usage"
    )
    assert (
        fail(ep, "set_options", group=alice.group, options={"colour": 1})["error_kind"] == "usage"
    )
    assert fail(ep, "add", group=alice.group, key_packages=[])["error_kind"] == "usage"
    assert fail(ep, "remove", group=alice.group, leaf_index=-1)["error_kind"] == "usage"
    assert fail(ep, "remove", group=alice.group, leaf_index=[])["error_kind"] == "usage"
    assert fail(ep, "drop_group", group="g77")["error_kind"] == "usage"
    # Nothing above changed the group's options.
    assert alice("set_options", options={})["options"] == {
        "wire": "private",
        "ratchet_tree_extension": False,
    }
    # A failed bulk request creates no client at all.
    count = len(ep.driver.clients)
    assert (
        fail(ep, "new_clients_with_key_packages", suite=42, count=3, prefix="z")["error_kind"]
        == "unsupported"
    )
    assert len(ep.driver.clients) == count
    bulk = ok(ep, "new_clients_with_key_packages", suite=2, count=3, prefix="p")
    assert [c["client"] for c in bulk["clients"]] == [f"c{count + i + 1}" for i in range(3)]
    for i, entry in enumerate(bulk["clients"]):
        assert ep.driver.clients[entry["client"]].identity == f"p{i}".encode()
        assert entry["key_package"].startswith("000100050001" + "0002")


# Issue 11 item 15: JSON lets a string carry an unpaired surrogate (``"\\ud800"``); it decodes to
# a Python str that no UTF-8 encoder accepts. Every string field must answer ``usage``, not "bug".
LONE = ("\ud800", "\udfff", "ok\udc80", "\ud83d")  # the last: a high half with no low half


@pytest.mark.parametrize("bad", LONE, ids=["high", "low", "trailing", "half-pair"])
def test_lone_surrogates_in_strings_are_usage_errors(bad: str) -> None:
    ep = InProcess()
    alice = new_member(ep, "alice", 1)
    create(alice, "private", False)
    clients, groups, before = dict(ep.driver.clients), dict(ep.driver.groups), alice.snapshot()
    requests: list[tuple[str, dict[str, Any]]] = [
        ("new_client", {"suite": 1, "identity": bad}),
        ("new_clients_with_key_packages", {"suite": 1, "count": 2, "prefix": bad}),
        ("state", {"group": alice.group, "label": bad}),
        ("exporter", {"group": alice.group, "label": bad, "context": "", "length": 16}),
        (bad, {}),
        ("key_package", {"client": bad}),
        ("members", {"group": bad}),
        ("drop_group", {"group": bad}),
    ]
    for op, fields in requests:
        line = json.dumps({"op": op, **fields})  # the surrogate travels as a \\uXXXX escape
        assert "\\u" in line and line.isascii()
        out = ep.driver.handle_line(line)
        assert out is not None
        resp = json.loads(out)
        assert (resp["ok"], resp["error_type"], resp["error_kind"]) == (
            False,
            "UsageError",
            "usage",
        ), (op, resp)
        assert "not valid Unicode" in resp["error"]
    # Nothing was created, dropped or changed; the same requests with valid text still work.
    assert ep.driver.clients == clients and ep.driver.groups == groups
    assert alice.snapshot() == before
    fixed = bad.encode("utf-8", "replace").decode("utf-8")
    ok(ep, "new_client", suite=1, identity=fixed)
    assert alice("exporter", label=fixed, context="", length=16)["secret"]


def test_deeply_nested_request_is_a_usage_error() -> None:
    (resp,) = run_lines(["[" * 100_000 + "\n"])
    assert (resp["error_type"], resp["error_kind"]) == ("UsageError", "usage")


def tamper(message: str) -> str:
    """Flip one bit in the last byte (a tag, MAC or signature byte)."""
    raw = bytearray.fromhex(message)
    raw[-1] ^= 0x01
    return raw.hex()


@pytest.mark.parametrize("wire", WIRES)
def test_failed_requests_change_nothing(wire: str) -> None:
    ep = InProcess()
    alice, bob, carol = (new_member(ep, n, 1) for n in ("alice", "bob", "carol"))
    create(alice, wire, False)
    kp_bob = bob("key_package")["key_package"]

    # add: a garbage or tampered KeyPackage is rejected; the group is untouched.
    before = alice.snapshot()
    assert fail(ep, "add", group=alice.group, key_packages=["00ff"])["error_kind"] == "peer"
    assert fail(ep, "add", group=alice.group, key_packages=[tamper(kp_bob)])["error_kind"] == "peer"
    assert fail(ep, "add", group=alice.group, key_packages=["0g"])["error_kind"] == "usage"
    assert alice.snapshot() == before
    added = alice("add", key_packages=[kp_bob])

    # join: a Welcome for someone else, garbage, or without the tree, leaves Bob's pool intact.
    assert (
        fail(ep, "join", client=carol.client, welcome=added["welcome"], ratchet_tree=None)[
            "error_kind"
        ]
        == "peer"
    )
    assert (
        fail(ep, "join", client=bob.client, welcome="0001", ratchet_tree=None)["error_kind"]
        == "peer"
    )
    assert (
        fail(ep, "join", client=bob.client, welcome=added["welcome"], ratchet_tree="00")[
            "error_kind"
        ]
        == "peer"
    )
    assert len(ep.driver.groups) == 1
    join(bob, added, wire, False)
    agree([alice, bob], 1)

    # process: garbage hex, garbage bytes, tampered application message and commit.
    msg = alice("protect", plaintext="0102")["message"]
    upd = alice("update")
    before = bob.snapshot()
    for bad, kind in (("zz", "usage"), ("", "peer"), ("00010002", "peer"), (tamper(msg), "peer")):
        assert fail(ep, "process", group=bob.group, message=bad)["error_kind"] == kind
    assert (
        fail(ep, "process", group=bob.group, message=tamper(upd["commit"]))["error_kind"] == "peer"
    )
    assert fail(ep, "process", group="g404", message=msg)["error_kind"] == "usage"
    assert bob.snapshot() == before
    # The untampered messages still go through: no ratchet key or epoch was consumed.
    assert bob("process", message=msg)["plaintext"] == "0102"
    deliver_commit(upd["commit"], [bob], 2)
    agree([alice, bob], 2)
    # A replay is rejected and changes nothing.
    before = bob.snapshot()
    assert fail(ep, "process", group=bob.group, message=upd["commit"])["error_kind"] == "peer"
    assert bob.snapshot() == before

    # Local refusals: removing a blank leaf, a PSK the client lacks.
    before = alice.snapshot()
    assert not alice.ep.call({"op": "remove", "group": alice.group, "leaf_index": 7})["ok"]
    assert fail(ep, "commit_psk", group=alice.group, psk_id="aa")["error_kind"] == "usage"
    assert alice.snapshot() == before
    # The group still works normally afterwards.
    out = alice("commit")
    deliver_commit(out["commit"], [bob], 3)
    agree([alice, bob], 3)


def test_merge_failure_discards_pending_commit(monkeypatch: pytest.MonkeyPatch) -> None:
    """If merging its own commit fails, the committer stays in its epoch, with no pending commit,
    and an exception that is not an MLSError is reported as a bug."""
    ep = InProcess()
    alice = new_member(ep, "alice", 1)
    create(alice, "private", False)
    before = alice.snapshot()

    def broken(self: Group) -> None:
        raise ValueError("disk on fire")

    with monkeypatch.context() as mp:
        mp.setattr(Group, "merge_pending_commit", broken)
        resp = fail(ep, "update", group=alice.group)
    assert resp == {
        "ok": False,
        "error": "disk on fire",
        "error_type": "ValueError",
        "error_kind": "bug",
    }
    assert alice.snapshot() == before
    assert not ep.driver.groups[alice.group or ""].has_pending_commit
    assert alice("update")["epoch"] == 1


def test_stdout_carries_only_responses(monkeypatch: pytest.MonkeyPatch) -> None:
    """``main`` sends stray prints to stderr and answers each line, flushed, until EOF."""
    original = Driver.op_hello

    def noisy(self: Driver, req: dict[str, Any]) -> dict[str, Any]:
        print("library chatter")
        return original(self, req)

    monkeypatch.setattr(Driver, "op_hello", noisy)
    stdin = io.TextIOWrapper(io.BytesIO(b'{"op":"hello","id":7}\n{"op":"hello"}\n'))
    stdout, stderr = io.StringIO(), io.StringIO()
    monkeypatch.setattr(sys, "stdin", stdin)
    monkeypatch.setattr(sys, "stdout", stdout)
    monkeypatch.setattr(sys, "stderr", stderr)
    assert main([]) == 0
    lines = stdout.getvalue().splitlines()
    assert [json.loads(line)["ok"] for line in lines] == [True, True]
    assert json.loads(lines[0])["id"] == 7
    assert "library chatter" in stderr.getvalue()
    assert sys.stdout is stdout
    assert main(["extra"]) == 2


# The scenarios also run in process (fast, and with a debugger-friendly stack).


@pytest.mark.parametrize("wire", WIRES)
@pytest.mark.parametrize(
    "tree_in_welcome", [True, False], ids=["tree_in_welcome", "tree_out_of_band"]
)
def test_reference_in_process(wire: str, tree_in_welcome: bool) -> None:
    ep = InProcess()
    reference_scenario(ep, ep, 1, wire, tree_in_welcome)
    assert ep.driver.groups == {}


def test_variants_in_process() -> None:
    ep = InProcess()
    proposals_scenario(ep, ep, 1, "private")
    external_join_scenario(ep, ep, 1, "public")
    psk_scenario(ep, ep, 1, "private")
    self_remove_scenario(ep, 1, "private")
    assert ep.driver.groups == {}
