"""Pre-shared key injection into the key schedule (RFC 9420 §8.4).

Owns ``PSKLabel`` and the ``psk_secret`` chain. The ``PreSharedKeyID`` struct itself lives with
the proposals (:mod:`mls.messages.proposals`, layer L5); this module (L4) must not import it, so
it accepts any :class:`~mls.codec.Encodable` and writes its encoding into ``PSKLabel``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from mls.codec import Encodable, Writer, encode
from mls.crypto import CipherSuite
from mls.crypto.labels import expand_with_label
from mls.errors import InvalidPSK

__all__ = ["PSKLabel", "psk_secret"]

# PSKLabel.index and .count are uint16 (§8.4), which bounds the number of PSKs in one epoch.
MAX_PSKS = 0xFFFF


@dataclass(frozen=True, slots=True, kw_only=True)
class PSKLabel:
    """The context of the "derived psk" expansion (RFC 9420 §8.4).

    ```
    struct {
        PreSharedKeyID id;
        uint16 index;
        uint16 count;
    } PSKLabel;
    ```

    Only ever encoded (it is a KDF input, never sent), so there is no ``decode``.
    """

    id: Encodable
    index: int
    count: int

    def encode(self, w: Writer) -> None:
        self.id.encode(w)
        w.push_uint16(self.index)
        w.push_uint16(self.count)


def psk_secret(cs: CipherSuite, psks: Sequence[tuple[Encodable, bytes]]) -> bytes:
    """``psk_secret`` for ``psks``, a list of ``(PreSharedKeyID, psk)`` in proposal order (§8.4).

    With no PSKs the result is the all-zero string of length ``KDF.Nh`` (``psk_secret_[0]``).
    """
    count = len(psks)
    if count > MAX_PSKS:
        raise InvalidPSK(f"{count} PSKs do not fit PSKLabel.count (uint16)")
    zero = bytes(cs.hash_len)
    secret = zero
    for index, (psk_id, psk) in enumerate(psks):
        extracted = cs.kdf_extract(zero, psk)
        label = encode(PSKLabel(id=psk_id, index=index, count=count))
        psk_input = expand_with_label(cs, extracted, "derived psk", label, cs.hash_len)
        # psk_secret_[i] = KDF.Extract(psk_input_[i-1], psk_secret_[i-1]): the pseudocode's
        # order (salt = psk_input), which the official vectors confirm; the §8.4 figure's
        # top/left convention would suggest the reverse.
        secret = cs.kdf_extract(psk_input, secret)
    return secret
