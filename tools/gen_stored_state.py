"""Write tests/data/stored_state_v1.json: a stored Client and a mid-conversation Group.

Run once, before a change to how ``mls.group`` persists its state; the file is then kept as it
is, so that tests/test_stored_state.py proves state saved by the old code still loads, re-encodes
byte-identically and processes the next message (OpenMLS ``kat_storage_stability`` in spirit).
Regenerating it defeats its purpose: only do so together with a new state version.
"""

from __future__ import annotations

import json
from pathlib import Path

from mls.group import ApplicationMessage, Client, CommitMerged, Group, default_capabilities

NOW = 1_750_000_000
OUT = Path(__file__).resolve().parents[1] / "tests" / "data" / "stored_state_v1.json"


def _client(name: bytes) -> Client:
    c = Client.create(name, 1, capabilities=default_capabilities())
    c.add_external_psk(b"team-psk", b"0123456789abcdef0123456789abcdef")
    return c


def main() -> None:
    alice, bob, carol, dave = (_client(n) for n in (b"alice", b"bob", b"carol", b"dave"))
    bob_spare = bob.key_package(NOW)  # stays in Bob's pool: the stored client has a pool
    del bob_spare
    ga = Group.create(alice, b"stored-state-group", now=NOW)
    out = ga.commit(add=[bob.key_package(NOW), carol.key_package(NOW)], now=NOW)
    ga.merge_pending_commit()
    assert out.welcome is not None
    tree = ga.export_tree()
    gb = Group.join(bob, out.welcome, ratchet_tree=tree, now=NOW)
    gc = Group.join(carol, out.welcome, ratchet_tree=tree, now=NOW)
    members = {0: ga, 1: gb, 2: gc}

    def deliver(msg: bytes, sender: int) -> None:
        for leaf, g in members.items():
            if leaf != sender:
                g.process(msg, now=NOW)

    # A few epochs of conversation: past epochs, resumption PSKs and used ratchets in the state.
    deliver(ga.protect(b"hello from alice"), 0)
    deliver(gb.protect(b"hello from bob"), 1)
    out = gc.commit(add=[dave.key_package(NOW)], now=NOW)
    gc.merge_pending_commit()
    deliver(out.commit, 2)
    assert out.welcome is not None
    members[3] = Group.join(dave, out.welcome, ratchet_tree=gc.export_tree(), now=NOW)
    out = gb.commit(psks=[b"team-psk"], now=NOW)
    gb.merge_pending_commit()
    deliver(out.commit, 1)
    deliver(members[3].protect(b"hello from dave"), 3)
    # Sent now, read by the restored Bob: its ratchet key must still be in his stored state.
    app = ga.protect(b"after the save", b"aad")
    # A cached proposal by reference (Carol's Update) that the next commit covers.
    deliver(gc.propose_update(), 2)

    stored_client = bob.to_bytes()
    stored_group = gb.to_bytes()

    # The next messages, which the restored Bob must process.
    commit = ga.commit(remove=[3], now=NOW)
    ga.merge_pending_commit()
    exporter = ga.export_secret("stored-state", b"", 32)

    # Bob as he is now processes them the same way.
    ev = gb.process(app, now=NOW)
    assert isinstance(ev, ApplicationMessage) and ev.data == b"after the save"
    merged = gb.process(commit.commit, now=NOW)
    assert isinstance(merged, CommitMerged) and merged.removed == (3,)
    assert gb.export_secret("stored-state", b"", 32) == exporter

    doc = {
        "comment": "Written once by tools/gen_stored_state.py; never regenerate (see there).",
        "now": NOW,
        "client": stored_client.hex(),
        "group": stored_group.hex(),
        "application": app.hex(),
        "application_data": b"after the save".hex(),
        "commit": commit.commit.hex(),
        "epoch_after": gb.epoch,
        "exporter_after": exporter.hex(),
    }
    OUT.write_text(json.dumps(doc, indent=1) + "\n")
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
