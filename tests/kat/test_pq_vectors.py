"""The post-quantum vector files: what must pass, and exactly what may be unsupported.

Every case also runs one by one in ``test_vectors.py`` (the Wycheproof files in full under
``--runslow``). Here each file is run whole and its unsupported cases are pinned to the reasons
we know (ML-KEM-512 and TurboSHAKE are not offered; external-mu ML-DSA
signing is not in cryptography), so a new gap cannot hide as "unsupported".
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from mls.conformance.core import locate_vectors, run_file
from mls.crypto import pq


def _need_pq() -> None:
    why = pq.mlkem_unavailable() or pq.mldsa_unavailable()
    if why is not None:
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI=true but post-quantum primitives are unavailable: {why}")
        pytest.skip(f"post-quantum primitives unavailable: {why}")


def _file(rel: str) -> Path:
    path = dict(locate_vectors()).get(rel)
    if path is None:
        if os.environ.get("CI") == "true":
            pytest.fail(f"vector file {rel} missing under CI")
        pytest.skip(f"vector file {rel} not found (the checkout's vectors/ or MLS_VECTORS)")
    return path


def test_hpke_pq_file() -> None:
    _need_pq()
    res = run_file(_file("pq/hpke-pq/test-vectors.json"), "hpke-pq")
    assert not res.error and res.count("failed") == 0, res.failures()
    passed = sorted(r.case_id.rsplit("-#", 1)[0] for r in res.results if r.status == "passed")
    assert passed == [
        "kem0x0010-kdf0x0010-aead0x0001",  # DHKEM(P-256), SHAKE128 one-stage key schedule
        "kem0x0011-kdf0x0011-aead0x0002",  # DHKEM(P-384), SHAKE256
        "kem0x0041-kdf0x0001-aead0x0001",  # ML-KEM-768
        "kem0x0042-kdf0x0002-aead0x0002",  # ML-KEM-1024
        "kem0x0050-kdf0x0001-aead0x0001",  # MLKEM768-P256
        "kem0x0050-kdf0x0010-aead0x0002",  # MLKEM768-P256, SHAKE128
        "kem0x0051-kdf0x0002-aead0x0002",  # MLKEM1024-P384
        "kem0x647a-kdf0x0001-aead0x0003",  # X-Wing
        "kem0x647a-kdf0x0011-aead0x0003",  # X-Wing, SHAKE256
    ]
    for r in res.results:
        if r.status == "unsupported":
            assert any(w in r.detail for w in ("ML-KEM-512", "TurboSHAKE")), r


def test_xwing_file() -> None:
    _need_pq()
    res = run_file(_file("pq/xwing/test-vectors.json"), "xwing")
    assert (res.cases, res.count("passed")) == (3, 3), res.failures()


@pytest.mark.parametrize(
    "name",
    [
        *(
            f"mlkem_{n}_{k}"
            for n in (768, 1024)
            for k in ("keygen_seed_test", "test", "encaps_test")
        ),
        *(f"mldsa_{n}_{k}" for n in (44, 65, 87) for k in ("sign_seed_test", "verify_test")),
    ],
)
def test_wycheproof_file(name: str) -> None:
    _need_pq()
    res = run_file(_file(f"pq/wycheproof/{name}.json"), name)
    assert not res.error and res.count("failed") == 0, res.failures()
    assert res.count("passed") > 0
    for r in res.results:
        if r.status == "unsupported":
            assert "external-mu" in r.detail, r


@pytest.mark.parametrize(
    "name", ["crypto-basics", "key-schedule", "secret-tree", "tree-operations", "welcome"]
)
def test_generated_pq_mls_vectors_cover_every_suite(name: str) -> None:
    """Our PQ MLS vectors (tools/gen_pq_mls_vectors.py; each case runs in test_vectors.py)
    cover every supported suite of the openmls profile."""
    import json

    from mls.crypto import registry

    _need_pq()
    path = _file(f"pq-mls/{name}.json")
    suites = {c["cipher_suite"] for c in json.loads(path.read_text())}
    assert suites == set(registry.PROFILES["openmls"].suites)
