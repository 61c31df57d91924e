"""The one-loop decoders of the receive path against the general Buffer decoders (issue 14).

``UpdatePath.decode`` parses its node vector in one loop (``mls.tree.nodes._pull_path_nodes``)
and ``Buffer.pull_opaque`` reads one-byte lengths inline; both must give the same objects, the
same position and the same exception type as the per-struct ``Buffer`` decoders (RFC 9420
§2.1.2, §7.6), on valid encodings and on mutated or truncated ones.
"""

from __future__ import annotations

import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mls.codec.buffer import Buffer, opaque
from mls.codec.wire import encode
from mls.credentials import Credential
from mls.errors import DecodeError, MLSError
from mls.tree.nodes import (
    Capabilities,
    HPKECiphertext,
    LeafNode,
    UpdatePath,
    UpdatePathNode,
)

_LEAF = LeafNode(
    encryption_key=b"\x01" * 32,
    signature_key=b"\x02" * 32,
    credential=Credential.basic(b"alice"),
    capabilities=Capabilities(versions=(1,), cipher_suites=(1,), credentials=(1,)),
    leaf_node_source=3,
    parent_hash=b"\x03" * 32,
    signature=b"\x04" * 64,
)

# Lengths on both sides of the one-byte / two-byte varint boundary (64).
_LENGTHS = st.sampled_from([0, 1, 32, 49, 63, 64, 65, 97, 300])


def _reference_decode(buf: Buffer) -> UpdatePath:
    """UpdatePath as a chain of general Buffer decoders, one UpdatePathNode at a time."""
    leaf_node = LeafNode.decode(buf)
    nodes: list[UpdatePathNode] = []
    with buf.pull_block() as end:
        while buf.position < end:
            nodes.append(UpdatePathNode.decode(buf))
    return UpdatePath(leaf_node=leaf_node, nodes=tuple(nodes))


def _outcome(decoder: object, data: bytes) -> tuple[object, ...]:
    buf = Buffer(data)
    try:
        value = decoder(buf)  # type: ignore[operator]
    except MLSError as exc:
        return ("error", type(exc))
    return ("ok", value, buf.position)


@st.composite
def _paths(draw: st.DrawFn) -> UpdatePath:
    def blob() -> bytes:
        return draw(_LENGTHS.flatmap(lambda n: st.binary(min_size=n, max_size=n)))

    nodes = []
    for _ in range(draw(st.integers(0, 4))):
        cts = tuple(
            HPKECiphertext(kem_output=blob(), ciphertext=blob())
            for _ in range(draw(st.integers(0, 3)))
        )
        nodes.append(UpdatePathNode(encryption_key=blob(), encrypted_path_secret=cts))
    return UpdatePath(leaf_node=_LEAF, nodes=tuple(nodes))


@given(_paths(), st.integers(0, 2**32 - 1))
def test_update_path_decode_matches_reference(path: UpdatePath, seed: int) -> None:
    rng = random.Random(seed)
    valid = encode(path)
    variants = [valid, valid[: rng.randrange(len(valid) + 1)]]
    for _ in range(3):
        mutated = bytearray(valid)
        mutated[rng.randrange(len(mutated))] = rng.randrange(256)
        variants.append(bytes(mutated))
    for data in variants:
        fast, ref = _outcome(UpdatePath.decode, data), _outcome(_reference_decode, data)
        assert fast == ref
        if fast[0] == "ok":
            got, want = fast[1], ref[1]
            assert isinstance(got, UpdatePath) and isinstance(want, UpdatePath)
            # The cached ciphertext-vector encodings are the bytes received.
            assert [n._encoded_cts for n in got.nodes] == [n._encoded_cts for n in want.nodes]
    assert _outcome(UpdatePath.decode, valid) == ("ok", path, len(valid))


@given(st.binary(max_size=80))
def test_pull_opaque_matches_varint_then_bytes(data: bytes) -> None:
    def reference(buf: Buffer) -> bytes:
        return buf.pull_bytes(buf.pull_varint())

    assert _outcome(Buffer.pull_opaque, data) == _outcome(reference, data)


def test_non_minimal_lengths_in_the_node_vector_are_refused() -> None:
    # §2.1.2: a length MUST use the fewest bytes; 0x40 0x20 is a two-byte 32.
    kem, ct = b"\x05" * 32, b"\x06"
    non_minimal_kem = b"\x40\x20" + kem + b"\x01" + ct
    non_minimal_key = b"\x40\x20" + b"\x07" * 32 + opaque(b"\x20" + kem + b"\x01" + ct)
    for node in (opaque(b"\x07" * 32) + opaque(non_minimal_kem), non_minimal_key):
        data = encode(_LEAF) + opaque(node)
        for decoder in (UpdatePath.decode, _reference_decode):
            with pytest.raises(DecodeError, match="non-minimal"):
                decoder(Buffer(data))
