"""Which handler module runs which vector file (paths relative to the vectors root)."""

from __future__ import annotations

_WYCHEPROOF = tuple(
    f"mlkem_{n}_{kind}" for n in (768, 1024) for kind in ("keygen_seed_test", "test", "encaps_test")
) + tuple(f"mldsa_{n}_{kind}" for n in (44, 65, 87) for kind in ("sign_seed_test", "verify_test"))
# Our MLS-level vectors for the post-quantum suites (tools/gen_pq_mls_vectors.py, openmls
# profile ids), in the mlswg formats, checked by the handlers of the official files.
_PQ_MLS = {
    "crypto-basics": "crypto_basics",
    "key-schedule": "key_schedule",
    "secret-tree": "secret_tree",
    "tree-operations": "tree_operations",
    "welcome": "welcome",
}

HANDLERS: dict[str, str] = {
    "mlswg/tree-math.json": "tree_math",
    "mlswg/crypto-basics.json": "crypto_basics",
    "mlswg/deserialization.json": "deserialization",
    "mlswg/messages.json": "messages",
    "mlswg/tree-operations.json": "tree_operations",
    "mlswg/tree-validation.json": "tree_validation",
    "mlswg/treekem.json": "treekem",
    "mlswg/key-schedule.json": "key_schedule",
    "mlswg/psk_secret.json": "psk_secret",
    "mlswg/transcript-hashes.json": "transcript_hashes",
    "mlswg/secret-tree.json": "secret_tree",
    "mlswg/message-protection.json": "message_protection",
    "mlswg/welcome.json": "welcome",
    "mlswg/passive-client-welcome.json": "passive_client",
    "mlswg/passive-client-handling-commit.json": "passive_client",
    "mlswg/passive-client-random.json": "passive_client",
    "hpke/test-vectors.json": "hpke",
    "sframe/test-vectors.json": "sframe",
    "sframe/test-vectors-aes256.json": "sframe",
    # Post-quantum primitives (draft-ietf-hpke-pq, X-Wing, Wycheproof ML-KEM / ML-DSA).
    "pq/hpke-pq/test-vectors.json": "pq_hpke",
    "pq/xwing/test-vectors.json": "pq_hpke",
    **{f"pq/wycheproof/{_w}.json": "pq_wycheproof" for _w in _WYCHEPROOF},
    # Vectors this project generates (repo folder vectors/).
    "sframe-mls.json": "sframe",
    **{f"pq-mls/{_n}.json": _h for _n, _h in _PQ_MLS.items()},
}

# Files this project generates: they live in the checkout's vectors/ folder only, so they are
# found there even when MLS_VECTORS points at a folder of official files.
GENERATED = frozenset({"sframe-mls.json", *(f"pq-mls/{n}.json" for n in _PQ_MLS)})

# Files large or slow enough that pytest runs them only under the ``slow`` marker.
SLOW_FILES = frozenset(
    {
        "mlswg/messages.json",
        "mlswg/treekem.json",
        "mlswg/tree-validation.json",
        "mlswg/passive-client-welcome.json",
        "mlswg/passive-client-handling-commit.json",
        "mlswg/passive-client-random.json",
        "hpke/test-vectors.json",
        *(f"pq/wycheproof/{w}.json" for w in _WYCHEPROOF),
    }
)


def handler_name(path: str) -> str | None:
    """Handler module for a vector file, matched by its last three or two path parts, then its
    name."""
    parts = path.replace("\\", "/").rstrip("/").split("/")
    for n in (3, 2):
        tail = "/".join(parts[-n:])
        if tail in HANDLERS:
            return HANDLERS[tail]
    matches = {v for k, v in HANDLERS.items() if k.rsplit("/", 1)[-1] == parts[-1]}
    return matches.pop() if len(matches) == 1 else None
