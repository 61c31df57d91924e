"""SQLite store schema 1 (one ``Group.to_bytes()`` per group) -> 2 (the parts form).

``tests/data/chat_store_v1.sqlite3`` was written by mls 5615357 (the last version with schema
1): bob's store in a three-member group after two epochs, with the inbox entries that followed
and one application message of the first epoch that bob had not received
(``chat_store_v1.json``). Opening it migrates it in one transaction.
"""

from __future__ import annotations

import json
import shutil
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from mls.app import ChatClient, MessageReceived, SQLiteStorage
from mls.errors import ReplayedMessage
from mls.group import Client, Group
from mls.group.snapshot import StateError

from .world import GROUP

DATA = Path(__file__).parent.parent / "data"


def fixture(tmp_path: Path) -> tuple[Path, dict[str, Any]]:
    db = tmp_path / "bob.sqlite3"
    shutil.copy(DATA / "chat_store_v1.sqlite3", db)
    info = json.loads((DATA / "chat_store_v1.json").read_text())
    return db, info


def v1_rows(db: Path) -> tuple[bytes, bytes, list[tuple[bytes, int, bytes]]]:
    con = sqlite3.connect(db)
    try:
        schema = con.execute("SELECT value FROM kv WHERE key = 'schema'").fetchone()[0]
        client = con.execute("SELECT value FROM kv WHERE key = 'client'").fetchone()[0]
        groups = con.execute("SELECT group_id, epoch, state FROM groups").fetchall()
    finally:
        con.close()
    return schema, client, groups


def test_a_schema_1_store_migrates_and_goes_on(tmp_path: Path) -> None:
    db, info = fixture(tmp_path)
    schema, client_blob, [(gid, epoch, v1_state)] = v1_rows(db)
    assert schema == (1).to_bytes(4, "big") and gid == GROUP and epoch == info["epoch"]
    storage = SQLiteStorage(db)
    # The parts restore exactly the state schema 1 held.
    rec = storage.load().groups[GROUP]
    client = Client.from_bytes(client_blob)
    restored = Group.from_parts(rec.state, rec.rest, rec.secrets, client)
    assert restored.to_bytes() == v1_state
    assert rec.epoch == epoch and rec.previous is None
    tables = {
        r[0] for r in storage._db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
    }
    assert "groups_v1" not in tables and "group_secrets" in tables
    bob = ChatClient.open(storage)
    assert [line.text for line in bob.conversation(GROUP, now=info["now"])] == info["texts"]
    for seq, data in info["inbox"]:
        ev = bob.receive(bytes.fromhex(data), now=info["now"], seq=seq)
        assert isinstance(ev, MessageReceived)
    # A late message of the past epoch reads with the migrated past-epoch keys, once.
    late = bytes.fromhex(info["late"])
    assert isinstance(bob.receive(late, now=info["now"]), MessageReceived)
    bob.close()
    storage = SQLiteStorage(db)
    bob = ChatClient.open(storage)
    assert [line.text for line in bob.conversation(GROUP, now=info["now"])][-2:] == [
        "after the restart",
        "late from the first epoch",
    ]
    with pytest.raises(ReplayedMessage):
        bob.receive(late, now=info["now"])
    bob.close()
    assert SQLiteStorage(db).load().groups[GROUP].epoch == epoch  # opening again: no migration


def test_a_failed_migration_leaves_the_store_at_schema_1(tmp_path: Path) -> None:
    db, _ = fixture(tmp_path)
    con = sqlite3.connect(db)
    con.execute("UPDATE groups SET state = ?", (b"\xa1av\x63bad",))
    con.commit()
    con.close()
    before = v1_rows(db)
    with pytest.raises(StateError):
        SQLiteStorage(db)
    assert v1_rows(db) == before
