"""Mutated real messages: only MLSError escapes, and a rejection changes nothing (RFC 9420 §6,
§12.4.2, §12.4.3; STYLE examples 5, 8, 15).

A real four-member group (once with PublicMessage, once with PrivateMessage handshakes) produces
valid messages for member 1: commits with and without a path, Add/Update/Remove/PreSharedKey
proposals, an application message, an external commit, a Welcome and a GroupInfo. Hypothesis
flips, truncates, inserts, deletes and overwrites bytes of one of them and feeds the result to
``Group.process`` / ``Group.join`` / ``Group.external_join``. Every outcome must be a rejection
with an :class:`~mls.errors.MLSError` that is not an :class:`~mls.errors.InternalError` (that
would be a bug), after which the receiver's ``to_bytes()`` is unchanged. A mutated message being
*accepted* fails the test too: every byte of these messages is authenticated.

Byte flips mostly stop at the first MAC or signature. The ``*_resigned`` tests go deeper: they
mutate the *content* (the Proposal or Commit, the GroupInfo) and sign, MAC or encrypt it again
with the real keys (:mod:`tests.forge`), so the mutated structure reaches proposal validation,
tree updates, path decryption and tree validation. Such a message may be valid (a flipped byte
in a PSK nonce, say); it must then be accepted, and otherwise rejected as above.

``MLS_FUZZ_EXAMPLES`` sets the number of examples per test (default 200).
"""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass, replace

import pytest
from hypothesis import HealthCheck, assume, event, given, settings
from hypothesis import strategies as st

from mls.codec import Buffer, Writer, decode, encode
from mls.constants import ExtensionType
from mls.crypto import CipherSuite
from mls.errors import InternalError, MLSError
from mls.extensions import find_extension
from mls.framing.content import AuthenticatedContent, pull_content, push_content
from mls.framing.message import MLSMessage
from mls.framing.private import PrivateMessage
from mls.framing.protection import decrypt_private_message
from mls.framing.public import PublicMessage
from mls.group import Client, Group, GroupConfig
from mls.messages.group_info import GroupInfo
from mls.tree.ratchet_tree import RatchetTree
from tests.forge import Forger, WelcomeForge
from tests.harness import NOW, GroupHarness

# Hypothesis's failure report imports a deprecated mypy_extensions name; under
# filterwarnings=error that would hide the falsifying example behind an INTERNALERROR.
pytestmark = pytest.mark.filterwarnings(
    "ignore:mypy_extensions.TypedDict is deprecated:DeprecationWarning"
)

EXAMPLES = int(os.environ.get("MLS_FUZZ_EXAMPLES", "200"))
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


@dataclass(frozen=True)
class Scene:
    """Valid messages for member 1 of a four-member group, and what is needed to replay them
    against a fresh copy of member 1 (or of a joiner) for each example."""

    receiver: bytes  # Group.to_bytes() of member 1
    receiver_client: Client
    group_messages: dict[str, bytes]
    welcome: bytes
    joiner: bytes  # Client.to_bytes() of the Welcome's addressee
    tree: bytes  # ratchet tree for the Welcome (sent out of band)
    group_info: bytes
    outsider: bytes  # Client.to_bytes() of an external joiner
    signers: dict[str, bytes]  # message name -> signature private key of its sender
    gi_signer: Group  # member 0 (signs GroupInfos), at the epoch of the messages
    welcome_forge: WelcomeForge  # a Welcome's ingredients (for re-signed GroupInfos)
    forge_joiner: bytes  # Client.to_bytes() of welcome_forge.joiner


@functools.cache
def scene(private: bool) -> Scene:
    h = GroupHarness.with_members(4, config=GroupConfig(private_handshake=private))
    g0, g1, g2, g3 = (h.members[i] for i in range(4))
    msgs: dict[str, bytes] = {}
    # Application data and proposals from members 0 and 2 (each sender's copy stays local;
    # a member with pending proposals may not send data, §12.4).
    msgs["application"] = g2.protect(b"hello, fuzz", b"aad")
    msgs["update"] = g2.propose_update()
    msgs["remove"] = g0.propose_remove(3)
    msgs["add"] = g0.propose_add(h.new_client("frank").key_package(NOW), now=NOW)
    msgs["psk"] = g2.propose_psk(b"team-psk")
    # Commits by value from member 3 (it holds no pending proposals of its own to include).
    out = g3.commit(add=[h.new_client("grace").key_package(NOW)], remove=[2], now=NOW)
    msgs["commit_path"] = out.commit
    g3.clear_pending_commit()
    out = g3.commit(add=[h.new_client("heidi").key_package(NOW)], path=False, now=NOW)
    msgs["commit_no_path"] = out.commit
    g3.clear_pending_commit()
    outsider = h.new_client("ivan")
    outsider_state = outsider.to_bytes()
    _, msgs["external_commit"] = Group.external_join(outsider, g0.group_info(), now=NOW)
    sk = {i: h.members[i].client.signature_private_key for i in range(4)}
    signers = {
        "application": sk[2],
        "update": sk[2],
        "remove": sk[0],
        "add": sk[0],
        "psk": sk[2],
        "commit_path": sk[3],
        "commit_no_path": sk[3],
        "external_commit": outsider.signature_private_key,
    }
    gi_signer = Group.from_bytes(g0.to_bytes(), g0.client)
    # A Welcome for one joiner, and a GroupInfo for an external join (a fresh client each time).
    joiner = h.new_client("judy")
    kp = joiner.key_package(NOW)
    out = g3.commit(add=[kp], now=NOW)
    assert out.welcome is not None
    g3.merge_pending_commit()
    # Member 2 adds "kim" without a path: the ingredients of Welcomes to re-sign.
    wf = WelcomeForge.make(g2, h.new_client("kim"))
    return Scene(
        receiver=g1.to_bytes(),
        receiver_client=g1.client,
        group_messages=msgs,
        welcome=out.welcome,
        joiner=joiner.to_bytes(),
        tree=g3.export_tree(),
        group_info=g0.group_info(),
        outsider=outsider_state,
        signers=signers,
        gi_signer=gi_signer,
        welcome_forge=wf,
        forge_joiner=wf.joiner.to_bytes(),
    )


@st.composite
def mutated(draw: st.DrawFn, data: bytes) -> bytes:
    """``data`` with one to three byte-level mutations; never ``data`` itself."""
    out = bytearray(data)
    for _ in range(draw(st.integers(1, 3))):
        kind = draw(st.sampled_from(["flip", "truncate", "insert", "delete", "overwrite"]))
        n = len(out)
        if kind == "flip" and n:
            i = draw(st.integers(0, n - 1))
            out[i] ^= draw(st.integers(1, 255))
        elif kind == "truncate" and n:
            del out[draw(st.integers(0, n - 1)) :]
        elif kind == "insert":
            i = draw(st.integers(0, n))
            out[i:i] = draw(st.binary(min_size=1, max_size=8))
        elif kind == "delete" and n:
            i = draw(st.integers(0, n - 1))
            del out[i : i + draw(st.integers(1, 8))]
        elif n:
            i = draw(st.integers(0, n - 1))
            chunk = draw(st.binary(min_size=1, max_size=8))
            out[i : i + len(chunk)] = chunk
    if bytes(out) == data:
        out.append(0)  # an appended byte is trailing garbage: still a different message
    return bytes(out)


def assert_rejected(exc: BaseException | None) -> None:
    assert exc is not None, "a mutated message was accepted"
    event(type(exc).__name__)  # which check stopped it (--hypothesis-show-statistics)
    assert isinstance(exc, MLSError), f"{type(exc).__name__} escaped: {exc}"
    assert not isinstance(exc, InternalError), (
        f"InternalError (a bug): {exc!r} from {exc.__cause__!r}"
    )


@pytest.mark.parametrize("private", [False, True], ids=["public", "private"])
@FUZZ
@given(data=st.data())
def test_process_mutated_group_message(private: bool, data: st.DataObject) -> None:
    sc = scene(private)
    name = data.draw(st.sampled_from(sorted(sc.group_messages)), label="message")
    message = data.draw(mutated(sc.group_messages[name]), label="mutated")
    g = Group.from_bytes(sc.receiver, sc.receiver_client)
    before = g.to_bytes()
    caught: BaseException | None = None
    try:
        g.process(message, now=NOW)
    except Exception as exc:
        caught = exc
    assert_rejected(caught)
    assert g.to_bytes() == before, f"rejected {name} changed the state"


@FUZZ
@given(data=st.data())
def test_join_mutated_welcome(data: st.DataObject) -> None:
    sc = scene(False)
    welcome = data.draw(mutated(sc.welcome), label="welcome")
    mutate_tree = data.draw(st.booleans(), label="mutate the tree too")
    tree = data.draw(mutated(sc.tree), label="tree") if mutate_tree else sc.tree
    client = Client.from_bytes(sc.joiner)
    caught: BaseException | None = None
    try:
        Group.join(client, welcome, ratchet_tree=tree, now=NOW)
    except Exception as exc:
        caught = exc
    assert_rejected(caught)
    assert client.to_bytes() == sc.joiner


@FUZZ
@given(data=st.data())
def test_join_valid_welcome_mutated_tree(data: st.DataObject) -> None:
    # The Welcome is intact but the out-of-band ratchet tree is not (§12.4.3.1 tree checks).
    sc = scene(False)
    tree = data.draw(mutated(sc.tree), label="tree")
    client = Client.from_bytes(sc.joiner)
    caught: BaseException | None = None
    try:
        Group.join(client, sc.welcome, ratchet_tree=tree, now=NOW)
    except Exception as exc:
        caught = exc
    assert_rejected(caught)
    assert client.to_bytes() == sc.joiner


@FUZZ
@given(data=st.data())
def test_external_join_mutated_group_info(data: st.DataObject) -> None:
    sc = scene(False)
    gi = data.draw(mutated(sc.group_info), label="group_info")
    client = Client.from_bytes(sc.outsider)
    caught: BaseException | None = None
    try:
        Group.external_join(client, gi, now=NOW)
    except Exception as exc:
        caught = exc
    assert_rejected(caught)
    assert client.to_bytes() == sc.outsider


@pytest.mark.parametrize("private", [False, True], ids=["public", "private"])
@FUZZ
@given(data=st.data())
def test_process_any_bytes(private: bool, data: st.DataObject) -> None:
    # Not even an MLSMessage: arbitrary bytes, and valid messages of the wrong kind.
    sc = scene(private)
    message = data.draw(
        st.one_of(st.binary(max_size=64), st.sampled_from([sc.welcome, sc.group_info])),
        label="bytes",
    )
    g = Group.from_bytes(sc.receiver, sc.receiver_client)
    before = g.to_bytes()
    caught: BaseException | None = None
    try:
        g.process(message, now=NOW)
    except Exception as exc:
        caught = exc
    assert_rejected(caught)
    assert g.to_bytes() == before


def test_scene_messages_are_valid() -> None:
    # The unmutated messages are accepted: the rejections above are due to the mutations.
    for private in (False, True):
        sc = scene(private)
        for message in sc.group_messages.values():
            g = Group.from_bytes(sc.receiver, sc.receiver_client)
            g.process(message, now=NOW)
        client = Client.from_bytes(sc.joiner)
        Group.join(client, sc.welcome, ratchet_tree=sc.tree, now=NOW)
        Group.external_join(Client.from_bytes(sc.outsider), sc.group_info, now=NOW)


# -- mutated content, re-authenticated ---------------------------------------------------------


@functools.cache
def original(private: bool, name: str) -> AuthenticatedContent:
    """The AuthenticatedContent inside a scene message (decrypted by a copy of member 1)."""
    sc = scene(private)
    body = decode(MLSMessage, sc.group_messages[name]).body
    if isinstance(body, PublicMessage):
        return body.authenticated_content()
    assert isinstance(body, PrivateMessage)
    g = Group.from_bytes(sc.receiver, sc.receiver_client)
    auth, _ = decrypt_private_message(g.suite, body, g._secret_tree, g._secrets.sender_data_secret)
    return auth


def rehashed(cs: CipherSuite, gi: GroupInfo) -> GroupInfo:
    """``gi`` with its tree_hash set to that of its (mutated) ratchet_tree extension, so that
    the tree's inner rules (§7.9.2 parent hashes, unmerged leaves, leaf signatures) are reached
    instead of the tree-hash check; ``gi`` itself if the tree does not parse."""
    ext = find_extension(gi.extensions, ExtensionType.ratchet_tree)
    if ext is None:
        return gi
    try:
        tree = RatchetTree.decode(cs, ext.extension_data)
        tree_hash = tree.tree_hash()
    except MLSError:
        return gi
    return replace(gi, group_context=replace(gi.group_context, tree_hash=tree_hash))


@st.composite
def flipped(draw: st.DrawFn, data: bytes) -> bytes:
    """``data`` with one to four bytes changed in place (structure lengths mostly kept)."""
    out = bytearray(data)
    for _ in range(draw(st.integers(1, 4))):
        i = draw(st.integers(0, len(out) - 1))
        out[i] ^= draw(st.integers(1, 255))
    return bytes(out)


def process_outcome(g: Group, message: bytes, what: str) -> None:
    """Accepted, or rejected with a non-internal MLSError and no state change."""
    before = g.to_bytes()
    try:
        g.process(message, now=NOW)
    except Exception as exc:
        assert_rejected(exc)
        assert g.to_bytes() == before, f"rejected {what} changed the state"
    else:
        event("accepted")


@pytest.mark.parametrize("private", [False, True], ids=["public", "private"])
@FUZZ
@given(data=st.data())
def test_process_mutated_content_resigned(private: bool, data: st.DataObject) -> None:
    sc = scene(private)
    name = data.draw(st.sampled_from(sorted(sc.signers)), label="message")
    auth = original(private, name)
    content = auth.content
    w = Writer()
    push_content(w, content.content)
    raw = data.draw(flipped(w.getvalue()), label="content")
    buf = Buffer(raw)
    try:
        body = pull_content(buf, content.content_type)
    except MLSError:
        body = None
    assume(body is not None and buf.eof())
    assert body is not None
    g = Group.from_bytes(sc.receiver, sc.receiver_client)
    f = Forger(g)
    forged = f.authenticated(
        body,
        wire_format=auth.wire_format,
        key=sc.signers[name],
        sender=content.sender,
        authenticated_data=content.authenticated_data,
        confirmation_tag=auth.auth.confirmation_tag,
    )
    process_outcome(g, f.wrap(forged), name)


@FUZZ
@given(data=st.data())
def test_join_mutated_group_info_resigned(data: st.DataObject) -> None:
    sc = scene(False)
    wf = sc.welcome_forge
    raw = data.draw(flipped(encode(wf.group_info())), label="group_info")
    try:
        mutant: GroupInfo | None = decode(GroupInfo, raw)
    except MLSError:
        mutant = None
    assume(mutant is not None)
    assert mutant is not None
    if data.draw(st.booleans(), label="rehash"):
        mutant = rehashed(wf.cs, mutant)
    resigned = mutant.sign(wf.cs, wf.adder.client.signature_private_key)
    welcome = wf.welcome(resigned, retag=data.draw(st.booleans(), label="retag"))
    client = Client.from_bytes(sc.forge_joiner)
    try:
        Group.join(client, welcome, now=NOW)
    except Exception as exc:
        assert_rejected(exc)
        assert client.to_bytes() == sc.forge_joiner


@FUZZ
@given(data=st.data())
def test_external_join_mutated_group_info_resigned(data: st.DataObject) -> None:
    sc = scene(False)
    f = Forger(sc.gi_signer)
    raw = data.draw(flipped(encode(f.group_info())), label="group_info")
    try:
        mutant: GroupInfo | None = decode(GroupInfo, raw)
    except MLSError:
        mutant = None
    assume(mutant is not None)
    assert mutant is not None
    if data.draw(st.booleans(), label="rehash"):
        mutant = rehashed(f.cs, mutant)
    gi = MLSMessage(body=mutant.sign(f.cs, f.sk)).to_bytes()
    client = Client.from_bytes(sc.outsider)
    try:
        Group.external_join(client, gi, now=NOW)
    except Exception as exc:
        assert_rejected(exc)
        assert client.to_bytes() == sc.outsider
