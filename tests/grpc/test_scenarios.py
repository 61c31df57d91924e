"""The working group's scenario configs played by our coordinator across two servers of ours.

Actors alternate between the two servers (so every script has members on both), with handshakes
as PrivateMessage and as PublicMessage, as the working group's runner does. Members must agree on
every epoch authenticator and unprotect exactly what was protected; at the end every actor's last
state is freed and no member state is left on either server. The deep random script runs in
full with ``--runslow`` (about a minute here); its first 300 steps always run.
"""

from __future__ import annotations

from typing import Any

import pytest

from mls.crypto.registry import supported_suites
from tests.grpc.conftest import Server, load_config
from tests.grpc.coordinator import Coordinator, actors_of

FAMILIES = (
    "welcome_join",
    "application",
    "commit",
    "external_join",
    "external_proposals",
    "reinit",
    "branch",
)

# Script names per config, as of the harness commit in ../shared/interop/mlswg/SOURCE.md; the
# first test checks the files still hold them.
SCRIPTS = {
    "welcome_join": ["no_path_secret", "with_path_secret", "with_psk", "with_external_tree"],
    "application": ["in_order", "out_of_order_within_epoch", "out_of_order_across_epochs"],
    "commit": [
        "empty",
        "add",
        "remove",
        "update",
        "group_context_extensions",
        "external_psk",
        "resumption_psk",
        "all_together_alice_proposes",
        "all_together_bob_proposes",
    ],
    "external_join": [
        "normal",
        "with_psk",
        "removing_prior",
        "with_external_tree",
        "with_more_members",
    ],
    "external_proposals": [
        "joiner_signed_add",
        "external_add",
        "external_remove",
        "external_psk",
        "resumption_psk",
        "group_context_extensions",
        "multiple_external",
        "external_reinit",
    ],
    "reinit": [
        "change_ciphersuite",
        "change_group_id",
        "change_extensions",
        "all_same_actor",
        "external_tree",
        "force_path",
    ],
    "branch": ["base", "with_extensions", "external_tree", "force_path"],
}
CASES = [(family, name) for family in FAMILIES for name in SCRIPTS[family]]


def play(
    servers: tuple[Server, Server],
    script: list[dict[str, Any]],
    *,
    suite: int = 1,
    encrypt: bool = True,
    first: int = 0,
) -> Coordinator:
    actors = actors_of(script)
    stubs = {actor: servers[(i + first) % 2].stub for i, actor in enumerate(actors)}
    before = [s.service.state_count for s in servers]
    coordinator = Coordinator(stubs, suite, encrypt)
    coordinator.run(script)
    assert [s.service.state_count for s in servers] == before, "a member state was left behind"
    return coordinator


def test_configs_hold_the_known_scripts() -> None:
    for family in FAMILIES:
        assert list(load_config(family)) == SCRIPTS[family], family


@pytest.mark.parametrize("encrypt", [True, False], ids=["private", "public"])
@pytest.mark.parametrize(("family", "name"), CASES, ids=[f"{f}.{n}" for f, n in CASES])
def test_script(servers: tuple[Server, Server], family: str, name: str, encrypt: bool) -> None:
    coordinator = play(servers, load_config(family)[name], encrypt=encrypt)
    assert coordinator.agreements > 0
    if family == "application":
        assert coordinator.plaintexts >= 3


@pytest.mark.parametrize("family", FAMILIES)
def test_first_script_in_every_suite(
    servers: tuple[Server, Server], family: str, suite_id: int
) -> None:
    """Every suite (with ``--all-suites``), with the roles on the other server than above."""
    name = SCRIPTS[family][0]
    play(servers, load_config(family)[name], suite=suite_id, first=1)


@pytest.mark.parametrize("family", FAMILIES)
def test_all_actors_on_one_server(servers: tuple[Server, Server], family: str) -> None:
    """The runner also places every actor on the same implementation."""
    name, script = next(iter(load_config(family).items()))
    before = servers[0].service.state_count
    coordinator = Coordinator({actor: servers[0].stub for actor in actors_of(script)}, 1, False)
    coordinator.run(script)
    assert coordinator.agreements > 0, name
    assert servers[0].service.state_count == before


@pytest.mark.parametrize("family", FAMILIES)
def test_post_quantum_suites(servers: tuple[Server, Server], family: str) -> None:
    """The post-quantum suites the server advertises (``SupportedCiphersuites``) play too;
    ``change_ciphersuite`` moves from each to suite 1."""
    pq = [s for s in supported_suites() if s > 7]
    if not pq:
        pytest.skip("this installation runs no post-quantum suite (ML-KEM/ML-DSA unavailable)")
    name, script = next(iter(load_config(family).items()))
    for suite in pq:
        actors = actors_of(script)
        stubs = {actor: servers[i % 2].stub for i, actor in enumerate(actors)}
        coordinator = Coordinator(stubs, suite, True, suites=(suite, 1))
        coordinator.run(script)
        assert coordinator.agreements > 0, (suite, name)


def test_short_random(servers: tuple[Server, Server]) -> None:
    """The first 300 steps of the deep random script: a group grown to dozens of members by
    adds by value and by reference, Updates from many members and external joins."""
    script = load_config("deep_random")["random"][:300]
    coordinator = play(servers, script)
    assert coordinator.agreements > 100


@pytest.mark.slow
def test_deep_random(request: pytest.FixtureRequest, servers: tuple[Server, Server]) -> None:
    if not request.config.getoption("--runslow"):
        pytest.skip("the full deep random script (~1 min): run with --runslow")
    script = load_config("deep_random")["random"]
    assert len(script) > 1600
    coordinator = play(servers, script, encrypt=False)
    assert coordinator.agreements > 4000
