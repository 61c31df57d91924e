"""State stored by an earlier version still loads (OpenMLS ``kat_storage_stability`` in spirit).

``tests/data/stored_state_v1.json`` was written once by ``tools/gen_stored_state.py``, before
``mls.group`` was reorganised: a Client and a mid-conversation Group (past epochs, a cached
proposal, used ratchets, a KeyPackage pool). Loading must give back the same bytes, and the
restored member must read the next application message and commit exactly as the original did.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mls.errors import DecodeError
from mls.group import ApplicationMessage, Client, CommitMerged, Group

DATA = json.loads((Path(__file__).parent / "data" / "stored_state_v1.json").read_text())


def _load() -> tuple[Client, Group]:
    client = Client.from_bytes(bytes.fromhex(DATA["client"]))
    return client, Group.from_bytes(bytes.fromhex(DATA["group"]), client)


def test_stored_state_reencodes_byte_identically() -> None:
    client, group = _load()
    assert client.to_bytes() == bytes.fromhex(DATA["client"])
    assert group.to_bytes() == bytes.fromhex(DATA["group"])


def test_stored_state_processes_the_next_messages() -> None:
    _, group = _load()
    now = DATA["now"]
    ev = group.process(bytes.fromhex(DATA["application"]), now=now)
    assert isinstance(ev, ApplicationMessage)
    assert (ev.data, ev.authenticated_data) == (bytes.fromhex(DATA["application_data"]), b"aad")
    merged = group.process(bytes.fromhex(DATA["commit"]), now=now)
    assert isinstance(merged, CommitMerged)
    assert merged.removed == (3,) and merged.epoch == DATA["epoch_after"]
    assert group.export_secret("stored-state", b"", 32) == bytes.fromhex(DATA["exporter_after"])


def test_stored_state_truncated_is_refused() -> None:
    client, _ = _load()
    with pytest.raises(DecodeError):  # StateError
        Group.from_bytes(bytes.fromhex(DATA["group"])[:-7], client)
