"""Exactly one commit wins each epoch when k members commit at once: on SQLite (one node) and
on PostgreSQL with the committers spread over two server processes."""

from __future__ import annotations

import threading
from pathlib import Path

from mls.constants import ContentType
from mls.ds.wire import b64e
from tests.ds.helpers import DsClient, data_of, fake_message, pg_schema, running

K = 8
ROUNDS = 4


def race(urls: list[str]) -> None:
    members = [DsClient.new(urls[i % len(urls)]) for i in range(K)]
    g = b"race-" + b64e(members[0].identity).encode()
    members[0].create_group(g)
    assert (
        members[0]
        .commit(g, fake_message(g, 0, ContentType.commit), added=[m.identity for m in members[1:]])
        .status_code
        == 200
    )
    winners: list[bytes] = []
    for epoch in range(1, ROUNDS + 1):
        commits = [fake_message(g, epoch, ContentType.commit) for _ in members]
        answers: list[tuple[int, dict[str, int]]] = [(0, {})] * K
        barrier = threading.Barrier(K)

        def commit(
            i: int,
            commits: list[bytes] = commits,
            barrier: threading.Barrier = barrier,
            answers: list[tuple[int, dict[str, int]]] = answers,
        ) -> None:
            barrier.wait()
            r = members[i].commit(g, commits[i])
            answers[i] = (r.status_code, r.json())

        threads = [threading.Thread(target=commit, args=(i,)) for i in range(K)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        won = [i for i, (status, _) in enumerate(answers) if status == 200]
        assert len(won) == 1, answers
        assert answers[won[0]][1]["epoch"] == epoch + 1
        for i, (status, body) in enumerate(answers):
            if i != won[0]:
                assert status == 409 and body["error"] == "epoch_conflict", body
                assert body["epoch"] == epoch + 1
        winners.append(commits[won[0]])
    # Every member received the winning commits, in order, and no losing one.
    for m in members:
        got = [data_of(e) for e in m.fetch_all() if e["kind"] == "commit"]
        mine = set(winners) - set(got)
        assert [c for c in winners if c not in mine] == got
        assert m.req("GET", f"/v1/groups/{b64e(g)}").json()["epoch"] == ROUNDS + 1


def test_one_commit_per_epoch_sqlite(tmp_path: Path) -> None:
    with running(f"sqlite:///{tmp_path}/ds.sqlite3", tmp_path / "log") as s:
        race([s.url])


def test_one_commit_per_epoch_postgres_two_nodes(tmp_path: Path) -> None:
    with (
        pg_schema() as url,
        running(url, tmp_path / "a.log", "--node", "a") as a,
        running(url, tmp_path / "b.log", "--node", "b") as b,
    ):
        race([a.url, b.url])


def test_one_commit_per_epoch_sqlite_two_processes(tmp_path: Path) -> None:
    """Two processes on one SQLite file order commits too (BEGIN IMMEDIATE)."""
    db = f"sqlite:///{tmp_path}/ds.sqlite3"
    with running(db, tmp_path / "a.log") as a, running(db, tmp_path / "b.log") as b:
        race([a.url, b.url])


def test_key_package_claims_across_nodes_postgres(tmp_path: Path) -> None:
    """Claimers on two nodes at once never get the same KeyPackage (SKIP LOCKED)."""
    from mls.ds.wire import b64d
    from tests.ds.test_api import kp_bytes, member

    with (
        pg_schema() as url,
        running(url, tmp_path / "a.log", "--node", "a") as a,
        running(url, tmp_path / "b.log", "--node", "b") as b,
    ):
        bob, bob_mls = member(a)
        fresh = [kp_bytes(bob_mls) for _ in range(6)]
        r = bob.req("POST", "/v1/key_packages", {"key_packages": [b64e(k) for k in fresh]})
        assert r.status_code == 201
        claimers = [DsClient.new(s.url) for s in (a, b, a, b, a, b, a, b)]
        got: list[bytes | None] = [None] * len(claimers)
        barrier = threading.Barrier(len(claimers))

        def claim(i: int) -> None:
            barrier.wait()
            r = claimers[i].req(
                "POST", "/v1/key_packages/claim", {"identities": [b64e(bob.identity)]}
            )
            if r.status_code == 200:
                got[i] = b64d(r.json()["key_packages"][0]["key_package"], "kp", max_len=1 << 16)
            else:
                assert r.json()["error"] == "no_key_package", r.text

        threads = [threading.Thread(target=claim, args=(i,)) for i in range(len(claimers))]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        handed = [k for k in got if k is not None]
        assert sorted(handed) == sorted(fresh)  # each once, none lost
