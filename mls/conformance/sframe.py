"""Handler for the SFrame vectors (RFC 9605 Appendix C) and this project's ``sframe-mls.json``.

Files and the case kinds they hold (each case is a ``(kind, entry)`` pair from :func:`cases`):

- ``sframe/test-vectors.json``: ``header`` (KID/CTR <-> header bytes, both directions),
  ``aes_ctr_hmac`` and ``aes_256_ctr_hmac`` (the AES-CTR+HMAC AEAD alone: key split, seal, open),
  ``sframe`` (labels, ``sframe_secret``, key, salt, nonce, AAD, ciphertext, decryption).
- ``sframe/test-vectors-aes256.json``: ``sframe_aes_256_ctr_hmac`` (suites 6-8, same shape).
- ``sframe-mls.json`` (``vectors/`` of this repository, written by
  ``tools/gen_sframe_mls_vectors.py``): ``mls`` cases that start from an MLS
  ``exporter_secret``: the MLS-Exporter output (``base_key``, recomputed with :mod:`mls.crypto`),
  the KID packing of RFC 9605 §5.2, key, salt, nonce, the frame bytes, and decryption through an
  :class:`~mls.sframe.SFrameContext`.

Every decryption check also flips one bit of the ciphertext and expects ``DecryptFailed``.
"""

from __future__ import annotations

from typing import Any

from mls.conformance.core import CaseFailed, CaseUnsupported, expect_eq, h
from mls.crypto import get_suite as get_mls_suite
from mls.crypto.labels import derive_secret, expand_with_label
from mls.errors import DecryptFailed, MLSError
from mls.sframe.cipher import (
    AesCtrHmac,
    FrameKey,
    SFrameSuite,
    derive_key_salt,
    frame_nonce,
    get_suite,
    sframe_key_label,
    sframe_salt_label,
    sframe_secret,
    split_key,
)
from mls.sframe.context import SFrameContext
from mls.sframe.header import encode_header, parse_header
from mls.sframe.keys import BASE_KEY_LABEL, KidLayout, index_bits

_LIST_KINDS = ("header", "aes_ctr_hmac", "aes_256_ctr_hmac", "sframe", "sframe_aes_256_ctr_hmac")


def cases(data: Any) -> list[tuple[str, Any]]:
    """Flatten a vector file into ``(kind, entry)`` pairs."""
    if isinstance(data, dict) and data.get("format") == "sframe-mls":
        return [("mls", c) for c in data["cases"]]
    if not isinstance(data, dict) or not any(k in data for k in _LIST_KINDS):
        raise CaseFailed("not an SFrame vector file: expected keys " + ", ".join(_LIST_KINDS))
    return [(kind, entry) for kind in _LIST_KINDS for entry in data.get(kind, [])]


def case_ids(data: Any) -> list[str]:
    out: list[str] = []
    for i, (kind, c) in enumerate(cases(data)):
        if kind == "header":
            out.append(f"header-kid{c['kid']:#x}-ctr{c['ctr']:#x}")
        elif kind == "mls":
            out.append(
                f"mls-sframe{c['sframe_cipher_suite']}-mls{c['mls_cipher_suite']}"
                f"-epoch{c['epoch']}-sender{c['sender_index']}-{i}"
            )
        else:
            out.append(f"{kind}-suite{c['cipher_suite']}")
    return out


def check(case: Any) -> None:
    kind, c = case
    if kind == "header":
        _check_header(c)
    elif kind in ("aes_ctr_hmac", "aes_256_ctr_hmac"):
        _check_aead(c)
    elif kind in ("sframe", "sframe_aes_256_ctr_hmac"):
        _check_sframe(c)
    elif kind == "mls":
        _check_mls(c)
    else:
        raise CaseUnsupported(f"unknown SFrame case kind {kind!r}")


def _check_header(c: Any) -> None:
    kid, ctr, encoded = c["kid"], c["ctr"], h(c["encoded"])
    expect_eq("encoded header", encode_header(kid, ctr), encoded)
    expect_eq("decoded (kid, ctr, length)", parse_header(encoded), (kid, ctr, len(encoded)))
    # The header is followed by ciphertext on the wire: decoding must stop at its end.
    expect_eq(
        "decode with trailing bytes", parse_header(encoded + b"\xff\x00"), (kid, ctr, len(encoded))
    )


def _expect_tamper_fails(what: str, open_fn: Any, ct: bytes) -> None:
    for pos in (len(ct) - 1, 0):
        bad = bytearray(ct)
        bad[pos] ^= 0x01
        try:
            open_fn(bytes(bad))
        except DecryptFailed:
            continue
        except MLSError as exc:
            raise CaseFailed(f"{what}: tampered byte {pos} raised {type(exc).__name__}") from exc
        raise CaseFailed(f"{what}: tampered byte {pos} still decrypted")


def _check_aead(c: Any) -> None:
    suite = get_suite(c["cipher_suite"])
    key, nonce, aad, pt, ct = h(c["key"]), h(c["nonce"]), h(c["aad"]), h(c["pt"]), h(c["ct"])
    expect_eq("(enc_key, auth_key)", split_key(suite, key), (h(c["enc_key"]), h(c["auth_key"])))
    aead = AesCtrHmac(suite, key)
    expect_eq("AEAD.Encrypt", aead.seal(nonce, aad, pt), ct)
    expect_eq("AEAD.Decrypt", aead.open(nonce, aad, ct), pt)
    _expect_tamper_fails("AEAD.Decrypt", lambda x: aead.open(nonce, aad, x), ct)


def _check_frame(suite: SFrameSuite, c: Any, base_key: bytes) -> FrameKey:
    """Key schedule, nonce, AAD, encryption and decryption for one KID/CTR (shared by kinds)."""
    kid, ctr = c["kid"], c["ctr"]
    key, salt = derive_key_salt(suite, kid, base_key)
    expect_eq("sframe_key", key, h(c["sframe_key"]))
    expect_eq("sframe_salt", salt, h(c["sframe_salt"]))
    expect_eq("nonce", frame_nonce(salt, ctr), h(c["nonce"]))
    metadata, pt, ct = h(c["metadata"]), h(c["pt"]), h(c["ct"])
    if "aad" in c:
        expect_eq("aad", encode_header(kid, ctr) + metadata, h(c["aad"]))
    fk = FrameKey.derive(suite, kid, base_key)
    expect_eq("encrypt", fk.encrypt(ctr, metadata, pt), ct)
    expect_eq("decrypt", fk.decrypt(metadata, ct), pt)
    _expect_tamper_fails("decrypt", lambda x: fk.decrypt(metadata, x), ct)
    if metadata:
        try:
            fk.decrypt(metadata[:-1], ct)
        except DecryptFailed:
            pass
        else:
            raise CaseFailed("decrypt accepted altered metadata")
    return fk


def _check_sframe(c: Any) -> None:
    suite = get_suite(c["cipher_suite"])
    kid, base_key = c["kid"], h(c["base_key"])
    expect_eq("sframe_key_label", sframe_key_label(suite, kid), h(c["sframe_key_label"]))
    expect_eq("sframe_salt_label", sframe_salt_label(suite, kid), h(c["sframe_salt_label"]))
    expect_eq("sframe_secret", sframe_secret(suite, base_key), h(c["sframe_secret"]))
    _check_frame(suite, c, base_key)


class _VectorExporter:
    """An :class:`~mls.sframe.Exporter` that returns the vector's ``base_key`` for its label."""

    def __init__(self, c: Any, own_leaf_index: int, base_key: bytes) -> None:
        self.epoch: int = c["epoch"]
        self.own_leaf_index = own_leaf_index
        self.leaf_count: int = c["leaf_count"]
        self._base_key = base_key

    def export_secret(self, label: str, context: bytes, length: int) -> bytes:
        if (label, context, length) != (BASE_KEY_LABEL, b"", len(self._base_key)):
            raise CaseFailed(f"unexpected exporter call {label!r} {context.hex()} {length}")
        return self._base_key


def _mls_exporter(c: Any) -> bytes:
    """``MLS-Exporter`` recomputed with this library's MLS crypto (RFC 9420 §8.5)."""
    cs = get_mls_suite(c["mls_cipher_suite"])
    context = h(c["exporter_context"])
    secret = derive_secret(cs, h(c["exporter_secret"]), c["exporter_label"])
    return expand_with_label(cs, secret, "exported", cs.hash(context), len(h(c["base_key"])))


def _check_mls(c: Any) -> None:
    suite = get_suite(c["sframe_cipher_suite"])
    base_key = h(c["base_key"])
    expect_eq("exporter_label", c["exporter_label"], BASE_KEY_LABEL)
    expect_eq("exporter_context", c["exporter_context"], "")
    expect_eq("base_key length (AEAD.Nk)", len(base_key), suite.nk)
    layout = KidLayout(epoch_bits=c["epoch_bits"], index_bits=index_bits(c["leaf_count"]))
    expect_eq("index_bits (S)", layout.index_bits, c["index_bits"])
    kid = layout.kid(epoch=c["epoch"], sender_index=c["sender_index"], context_id=c["context_id"])
    expect_eq("kid", kid, c["kid"])
    _check_frame(suite, c, base_key)

    # The same frame through a call context: the receiver is another leaf of the same epoch.
    receiver = 0 if c["sender_index"] != 0 else 1
    ctx = SFrameContext(suite, epoch_bits=c["epoch_bits"])
    ctx.epoch_changed(_VectorExporter(c, receiver, base_key), now=0)
    frame = ctx.decrypt(h(c["ct"]), h(c["metadata"]), now=0)
    expect_eq("context decrypt", frame.plaintext, h(c["pt"]))
    expect_eq(
        "context sender",
        (frame.sender_index, frame.context_id),
        (c["sender_index"], c["context_id"]),
    )
    if c["ctr"] == 0:
        # A fresh sender's first frame has CTR 0, so it must reproduce the vector exactly.
        sender = SFrameContext(suite, epoch_bits=c["epoch_bits"])
        sender.epoch_changed(_VectorExporter(c, c["sender_index"], base_key), now=0)
        out = sender.encrypt(h(c["pt"]), h(c["metadata"]), context_id=c["context_id"])
        expect_eq("context encrypt", out, h(c["ct"]))

    # Last, so that a missing mls.crypto leaves every SFrame check above already run.
    expect_eq("base_key = MLS-Exporter(...)", _mls_exporter(c), base_key)
