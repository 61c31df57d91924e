"""Generate ``vectors/sframe-mls.json``: SFrame keys and frames derived from an MLS exporter secret.

RFC 9605 §5.2 keys SFrame from MLS::

    base_key = MLS-Exporter("SFrame 1.0 Base Key", "", AEAD.Nk)
    KID      = (context << (S + E)) + (sender_index << E) + (epoch % (1 << E))

and RFC 9605 §4.4 turns (base_key, KID) into ``sframe_key``/``sframe_salt`` and frames. This script
is an *independent* implementation of all of that: it imports only the standard library and
pyca/cryptography (not the ``mls`` package), so that the conformance handler
(``mls/conformance/sframe.py``), which uses ``mls.crypto`` and ``mls.sframe``, checks one
implementation against another. MLS-Exporter follows RFC 9420 §8.5 and §8::

    MLS-Exporter(Label, Context, Length) =
        ExpandWithLabel(DeriveSecret(exporter_secret, Label), "exported", Hash(Context), Length)
    DeriveSecret(Secret, Label) = ExpandWithLabel(Secret, Label, "", Nh)
    ExpandWithLabel(Secret, Label, Context, Length) = HKDF-Expand(Secret, KDFLabel, Length)
    KDFLabel = struct { uint16 length; opaque label<V> = "MLS 1.0 " + Label; opaque context<V>; }

Usage: ``python tools/gen_sframe_mls_vectors.py [--check] [OUT]`` (default OUT:
``vectors/sframe-mls.json``). ``--check`` regenerates and fails if the file differs. All inputs
are derived from fixed seed strings, so the output is reproducible byte for byte.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import sys
from pathlib import Path

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDFExpand

# RFC 9420 §17.1: the hash of each MLS cipher suite used here.
MLS_HASH = {1: "sha256", 5: "sha512", 7: "sha384"}
MLS_SUITE_NAME = {
    1: "MLS_128_DHKEMX25519_AES128GCM_SHA256_Ed25519",
    5: "MLS_256_DHKEMP521_AES256GCM_SHA512_P521",
    7: "MLS_256_DHKEMP384_AES256GCM_SHA384_P384",
}

# RFC 9605 §4.5 (suites 1-5) and the SFrame WG's post-RFC AES-256-CTR suites 6-8:
# id: (name, hash, Nka, Nk, Nn, Nt); Nka = 0 marks AES-GCM.
SFRAME = {
    1: ("AES_128_CTR_HMAC_SHA256_80", "sha256", 16, 48, 12, 10),
    2: ("AES_128_CTR_HMAC_SHA256_64", "sha256", 16, 48, 12, 8),
    3: ("AES_128_CTR_HMAC_SHA256_32", "sha256", 16, 48, 12, 4),
    4: ("AES_128_GCM_SHA256_128", "sha256", 0, 16, 12, 16),
    5: ("AES_256_GCM_SHA512_128", "sha512", 0, 32, 12, 16),
    6: ("AES_256_CTR_HMAC_SHA512_80", "sha512", 32, 96, 12, 10),
    7: ("AES_256_CTR_HMAC_SHA512_64", "sha512", 32, 96, 12, 8),
    8: ("AES_256_CTR_HMAC_SHA512_32", "sha512", 32, 96, 12, 4),
}

# (name, epoch, E, leaf_count, sender_index, context_id, ctr). B and C are the RFC 9605 §5.2
# figure's examples (E = 4, S = 6: epoch 14 index 20 -> KID 0x14e; epoch 16 index 2 context 3 ->
# KID 0xc20); D exercises a 50,000-member tree, a 64-bit epoch and the largest CTR.
SCENARIOS = [
    ("A", 0, 4, 2, 1, 0, 0),
    ("B", 14, 4, 64, 20, 0, 7),
    ("C", 16, 4, 64, 2, 3, 0),
    ("D", (1 << 40) + 17, 8, 50000, 49999, 5, (1 << 64) - 1),
]

HASHES: dict[str, hashes.HashAlgorithm] = {
    "sha256": hashes.SHA256(),
    "sha384": hashes.SHA384(),
    "sha512": hashes.SHA512(),
}


def hkdf_expand(hash_name: str, prk: bytes, info: bytes, length: int) -> bytes:
    return HKDFExpand(HASHES[hash_name], length, info).derive(prk)


def varint(n: int) -> bytes:
    # RFC 9420 §2.1.2 (only the lengths used here: < 2^14).
    return bytes([n]) if n < 64 else (0x4000 | n).to_bytes(2, "big")


def expand_with_label(hash_name: str, secret: bytes, label: str, ctx: bytes, length: int) -> bytes:
    full = b"MLS 1.0 " + label.encode()
    kdf_label = length.to_bytes(2, "big") + varint(len(full)) + full + varint(len(ctx)) + ctx
    return hkdf_expand(hash_name, secret, kdf_label, length)


def mls_exporter(mls_suite: int, exporter_secret: bytes, label: str, ctx: bytes, n: int) -> bytes:
    hn = MLS_HASH[mls_suite]
    nh = hashlib.new(hn).digest_size
    derived = expand_with_label(hn, exporter_secret, label, b"", nh)
    return expand_with_label(hn, derived, "exported", hashlib.new(hn, ctx).digest(), n)


def header(kid: int, ctr: int) -> bytes:
    # RFC 9605 §4.3, written independently of mls.sframe.header.
    out = bytearray([0])
    for shift, value in ((4, kid), (0, ctr)):
        if value < 8:
            out[0] |= value << shift
        else:
            raw = value.to_bytes((value.bit_length() + 7) // 8, "big")
            out[0] |= (0x8 | (len(raw) - 1)) << shift
            out += raw
    return bytes(out)


def seal(suite: int, key: bytes, nonce: bytes, aad: bytes, pt: bytes) -> bytes:
    _, hn, nka, _, _, nt = SFRAME[suite]
    if nka == 0:
        return AESGCM(key).encrypt(nonce, pt, aad)
    enc_key, auth_key = key[:nka], key[nka:]
    enc = Cipher(algorithms.AES(enc_key), modes.CTR(nonce + bytes(4))).encryptor()
    ct = enc.update(pt) + enc.finalize()
    lens = len(aad).to_bytes(8, "big") + len(ct).to_bytes(8, "big") + nt.to_bytes(8, "big")
    tag = hmac.new(auth_key, lens + nonce + aad + ct, hn).digest()[:nt]
    return ct + tag


def seeded(hash_name: str, seed: str, n: int) -> bytes:
    out = b""
    i = 0
    while len(out) < n:
        out += hashlib.new(hash_name, f"{seed}/{i}".encode()).digest()
        i += 1
    return out[:n]


def make_case(
    mls_suite: int, suite: int, scenario: tuple[str, int, int, int, int, int, int]
) -> dict[str, object]:
    name, epoch, e_bits, leaf_count, sender, context_id, ctr = scenario
    _, hn, _, nk, nn, _ = SFRAME[suite]
    mls_hash = MLS_HASH[mls_suite]
    exporter_secret = seeded(
        mls_hash,
        f"sframe-mls exporter_secret {mls_suite} {name}",
        hashlib.new(mls_hash).digest_size,
    )
    label = "SFrame 1.0 Base Key"
    base_key = mls_exporter(mls_suite, exporter_secret, label, b"", nk)
    s_bits = (leaf_count - 1).bit_length()
    kid = (context_id << (s_bits + e_bits)) + (sender << e_bits) + (epoch % (1 << e_bits))
    secret = hmac.new(b"", base_key, hn).digest()  # HKDF-Extract("", base_key)
    tail = kid.to_bytes(8, "big") + suite.to_bytes(2, "big")
    sframe_key = hkdf_expand(hn, secret, b"SFrame 1.0 Secret key " + tail, nk)
    sframe_salt = hkdf_expand(hn, secret, b"SFrame 1.0 Secret salt " + tail, nn)
    nonce = (int.from_bytes(sframe_salt, "big") ^ ctr).to_bytes(nn, "big")
    metadata = f"meta {name}".encode()
    pt = seeded("sha256", f"sframe-mls plaintext {mls_suite} {suite} {name}", 37)
    hdr = header(kid, ctr)
    ct = hdr + seal(suite, sframe_key, nonce, hdr + metadata, pt)
    return {
        "mls_cipher_suite": mls_suite,
        "sframe_cipher_suite": suite,
        "exporter_secret": exporter_secret.hex(),
        "exporter_label": label,
        "exporter_context": "",
        "base_key": base_key.hex(),
        "epoch": epoch,
        "epoch_bits": e_bits,
        "leaf_count": leaf_count,
        "index_bits": s_bits,
        "sender_index": sender,
        "context_id": context_id,
        "kid": kid,
        "sframe_key": sframe_key.hex(),
        "sframe_salt": sframe_salt.hex(),
        "ctr": ctr,
        "nonce": nonce.hex(),
        "metadata": metadata.hex(),
        "aad": (hdr + metadata).hex(),
        "pt": pt.hex(),
        "ct": ct.hex(),
    }


def generate() -> str:
    cases = [make_case(1, suite, sc) for suite in SFRAME for sc in SCENARIOS]
    cases += [make_case(m, suite, SCENARIOS[3]) for m in (5, 7) for suite in SFRAME]
    doc = {
        "format": "sframe-mls",
        "version": 1,
        "description": (
            "SFrame (RFC 9605 §5.2) keys and frames derived from an MLS exporter secret "
            "(RFC 9420 §8.5). Hex byte strings; kid/ctr/epoch are JSON integers up to 2^64-1."
        ),
        "generator": "tools/gen_sframe_mls_vectors.py",
        "mls_cipher_suites": {str(k): v for k, v in MLS_SUITE_NAME.items()},
        "sframe_cipher_suites": {str(k): v[0] for k, v in SFRAME.items()},
        "cases": cases,
    }
    return json.dumps(doc, indent=2) + "\n"


def main(argv: list[str]) -> int:
    check = "--check" in argv
    rest = [a for a in argv if a != "--check"]
    out = (
        Path(rest[0])
        if rest
        else Path(__file__).resolve().parents[1] / "vectors" / "sframe-mls.json"
    )
    text = generate()
    n = len(json.loads(text)["cases"])
    if check:
        if not out.is_file() or out.read_text() != text:
            print(
                f"{out} is out of date: run python tools/gen_sframe_mls_vectors.py", file=sys.stderr
            )
            return 1
        print(f"{out} is up to date ({n} cases)")
        return 0
    out.write_text(text)
    print(f"wrote {out} ({n} cases)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
