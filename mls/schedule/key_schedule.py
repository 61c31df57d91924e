"""The epoch key schedule (RFC 9420 §8) and the secrets derived from it.

Owns: ``joiner_secret`` / ``welcome_secret`` / ``epoch_secret`` and the epoch-derived secrets of
the §8 table (:class:`EpochSecrets`), the MLS-Exporter (§8.5), the external key pair (§8.3), the
Welcome key and nonce (§12.4.3.1), the confirmation tag (§6.1, §8.1) and the sender-data key and
nonce (§6.3.2).

The GroupContext is taken *serialized* (``encode(group_context)``): it is only ever a KDF
context here. Callers own deletion of consumed values (§9.2): ``EpochSecrets`` is immutable, so
drop it (or ``dataclasses.replace`` the consumed fields with ``b""``) once its secrets are used.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from mls.crypto import CipherSuite
from mls.crypto.labels import derive_secret, encode_label, encode_opaque, expand_with_label
from mls.errors import BadConfirmationTag

__all__ = [
    "EpochSecrets",
    "confirmation_tag",
    "derive_epoch_secrets",
    "epoch_secrets_from_joiner",
    "external_key_pair",
    "joiner_secret",
    "mls_exporter",
    "sender_data_key_nonce",
    "verify_confirmation_tag",
    "welcome_key_nonce",
    "welcome_secret",
    "zero_secret",
]


@dataclass(frozen=True, slots=True, kw_only=True)
class EpochSecrets:
    """Every secret of one epoch of the §8 key schedule. Nothing here is ever printed."""

    joiner_secret: bytes = field(repr=False)
    """Sent to new members in GroupSecrets (§12.4.3.1)."""
    welcome_secret: bytes = field(repr=False)
    """Source of the Welcome key and nonce (:func:`welcome_key_nonce`)."""
    sender_data_secret: bytes = field(repr=False)
    """"sender data": keys for PrivateMessage sender data (:func:`sender_data_key_nonce`)."""
    encryption_secret: bytes = field(repr=False)
    """"encryption": root of the secret tree (:class:`mls.schedule.secret_tree.SecretTree`)."""
    exporter_secret: bytes = field(repr=False)
    """"exporter": input of :func:`mls_exporter`."""
    external_secret: bytes = field(repr=False)
    """"external": seed of the external HPKE key pair (:func:`external_key_pair`)."""
    confirmation_key: bytes = field(repr=False)
    """"confirm": key of the confirmation tag MAC (:func:`confirmation_tag`)."""
    membership_key: bytes = field(repr=False)
    """"membership": key of the PublicMessage membership tag (§6.2)."""
    resumption_psk: bytes = field(repr=False)
    """"resumption": this epoch's resumption PSK (§8.6)."""
    epoch_authenticator: bytes = field(repr=False)
    """"authentication": compared out of band to detect impersonation (§8.7)."""
    init_secret: bytes = field(repr=False)
    """"init": ``init_secret`` of the *next* epoch."""


def zero_secret(cs: CipherSuite) -> bytes:
    """The all-zero string of length ``KDF.Nh``: the "0" of the §8 figures."""
    return bytes(cs.hash_len)


def joiner_secret(
    cs: CipherSuite, init_secret: bytes, commit_secret: bytes | None, group_context: bytes
) -> bytes:
    """``joiner_secret`` from the previous epoch's ``init_secret`` (§8).

    ``commit_secret`` is ``None`` (all zeros) for a commit without an UpdatePath; the
    ``group_context`` is the serialized GroupContext of the *new* epoch.
    """
    if commit_secret is None:
        commit_secret = zero_secret(cs)
    # §8: KDF.Extract takes its salt from the top (init_secret) and its IKM from the left.
    extracted = cs.kdf_extract(init_secret, commit_secret)
    return expand_with_label(cs, extracted, "joiner", group_context, cs.hash_len)


def _member_secret(cs: CipherSuite, joiner: bytes, psk_secret: bytes | None) -> bytes:
    # The unnamed value between joiner_secret and epoch_secret in the §8 figure.
    return cs.kdf_extract(joiner, zero_secret(cs) if psk_secret is None else psk_secret)


def welcome_secret(cs: CipherSuite, joiner: bytes, psk_secret: bytes | None) -> bytes:
    """``welcome_secret`` (§8): a joiner needs it before it can read the GroupContext."""
    return derive_secret(cs, _member_secret(cs, joiner, psk_secret), "welcome")


def epoch_secrets_from_joiner(
    cs: CipherSuite, joiner: bytes, psk_secret: bytes | None, group_context: bytes
) -> EpochSecrets:
    """All secrets of an epoch from its ``joiner_secret`` (§8; Welcome processing, §12.4.3.1).

    ``psk_secret`` is ``None`` (all zeros) when no PSK is injected.
    """
    member = _member_secret(cs, joiner, psk_secret)
    epoch_secret = expand_with_label(cs, member, "epoch", group_context, cs.hash_len)
    return EpochSecrets(
        joiner_secret=joiner,
        welcome_secret=derive_secret(cs, member, "welcome"),
        sender_data_secret=derive_secret(cs, epoch_secret, "sender data"),
        encryption_secret=derive_secret(cs, epoch_secret, "encryption"),
        exporter_secret=derive_secret(cs, epoch_secret, "exporter"),
        external_secret=derive_secret(cs, epoch_secret, "external"),
        confirmation_key=derive_secret(cs, epoch_secret, "confirm"),
        membership_key=derive_secret(cs, epoch_secret, "membership"),
        resumption_psk=derive_secret(cs, epoch_secret, "resumption"),
        epoch_authenticator=derive_secret(cs, epoch_secret, "authentication"),
        init_secret=derive_secret(cs, epoch_secret, "init"),
    )


def derive_epoch_secrets(
    cs: CipherSuite,
    *,
    init_secret: bytes,
    commit_secret: bytes | None,
    psk_secret: bytes | None,
    group_context: bytes,
) -> EpochSecrets:
    """The full §8 schedule for a member moving into the epoch described by ``group_context``.

    ``init_secret`` is the previous epoch's (a fresh random ``KDF.Nh`` value for epoch 0, §11;
    the HPKE-exported value for an external commit, §8.3). ``None`` for ``commit_secret`` or
    ``psk_secret`` stands for the all-zero value.
    """
    joiner = joiner_secret(cs, init_secret, commit_secret, group_context)
    return epoch_secrets_from_joiner(cs, joiner, psk_secret, group_context)


def mls_exporter(
    cs: CipherSuite, exporter_secret: bytes, label: str, context: bytes, length: int
) -> bytes:
    """``MLS-Exporter(Label, Context, Length)`` of §8.5 (``label`` as registered, §17.8)."""
    inner = derive_secret(cs, exporter_secret, label)
    return expand_with_label(cs, inner, "exported", cs.hash(context), length)


def external_key_pair(cs: CipherSuite, external_secret: bytes) -> tuple[bytes, bytes]:
    """``(external_priv, external_pub) = KEM.DeriveKeyPair(external_secret)`` (§8)."""
    return cs.derive_key_pair(external_secret)


def welcome_key_nonce(cs: CipherSuite, welcome_secret: bytes) -> tuple[bytes, bytes]:
    """``(welcome_key, welcome_nonce)`` that protect ``encrypted_group_info`` (§12.4.3.1)."""
    key = expand_with_label(cs, welcome_secret, "key", b"", cs.aead_key_len)
    nonce = expand_with_label(cs, welcome_secret, "nonce", b"", cs.aead_nonce_len)
    return key, nonce


def confirmation_tag(cs: CipherSuite, confirmation_key: bytes, confirmed_hash: bytes) -> bytes:
    """``MAC(confirmation_key, GroupContext.confirmed_transcript_hash)`` (§6.1)."""
    return cs.mac(confirmation_key, confirmed_hash)


def verify_confirmation_tag(
    cs: CipherSuite, confirmation_key: bytes, confirmed_hash: bytes, tag: bytes
) -> None:
    """Check a confirmation tag in constant time; raises :class:`BadConfirmationTag` (§12.4.2)."""
    cs.verify_mac(confirmation_key, confirmed_hash, tag, BadConfirmationTag)


def sender_data_key_nonce(
    cs: CipherSuite, sender_data_secret: bytes, ciphertext: bytes
) -> tuple[bytes, bytes]:
    """``(sender_data_key, sender_data_nonce)`` for a PrivateMessage ``ciphertext`` (§6.3.2).

    The sample is the first ``KDF.Nh`` bytes of the content ciphertext, or all of it if shorter.
    """
    sample = ciphertext[: cs.hash_len]
    # ExpandWithLabel(sender_data_secret, "key" / "nonce", sample, Nk / Nn): the KDFLabel
    # heads are constant per suite and this runs twice per PrivateMessage.
    heads = _SENDER_DATA_HEADS.get((cs.aead_key_len, cs.aead_nonce_len))
    if heads is None:
        heads = _SENDER_DATA_HEADS[(cs.aead_key_len, cs.aead_nonce_len)] = (
            cs.aead_key_len.to_bytes(2, "big") + encode_label("key"),
            cs.aead_nonce_len.to_bytes(2, "big") + encode_label("nonce"),
        )
    context = encode_opaque(sample)
    return (
        cs.kdf_expand(sender_data_secret, heads[0] + context, cs.aead_key_len),
        cs.kdf_expand(sender_data_secret, heads[1] + context, cs.aead_nonce_len),
    )


_SENDER_DATA_HEADS: dict[tuple[int, int], tuple[bytes, bytes]] = {}
