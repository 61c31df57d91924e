"""Welcome encryption (RFC 9420 §12.4.3.1): the GroupInfo under the welcome key and nonce, and
each new member's GroupSecrets under EncryptWithLabel(init_key, "Welcome", ...).

Owns the symmetric and HPKE layers of a Welcome and the steps of §12.4.3.1 that need no group
state: finding our ``EncryptedGroupSecrets`` entry, decrypting it, resolving the PSKs it names
and decrypting the GroupInfo. Verifying the GroupInfo signature and confirmation tag, the tree
and the joiner's private state is the group layer's job.

::

    welcome_secret --(ExpandWithLabel "key"/"nonce")--> AEAD(GroupInfo), empty AAD
    GroupSecrets --EncryptWithLabel(init_key, "Welcome", encrypted_group_info)--> HPKECiphertext
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, TypeVar

from mls.codec.wire import decode, encode
from mls.constants import PSKType, ResumptionPSKUsage
from mls.crypto.labels import decrypt_with_label, encrypt_with_label
from mls.errors import (
    DecodeError,
    InvalidPSK,
    InvalidWelcome,
    MLSError,
    NoMatchingKeyPackage,
    UsageError,
)
from mls.messages.group_info import GroupInfo
from mls.messages.key_package import KeyPackage
from mls.messages.proposals import PreSharedKeyID
from mls.messages.welcome import EncryptedGroupSecrets, GroupSecrets, PathSecret, Welcome
from mls.schedule.key_schedule import welcome_key_nonce, welcome_secret
from mls.schedule.psk import psk_secret
from mls.tree.nodes import HPKECiphertext

if TYPE_CHECKING:
    from mls.crypto import CipherSuite

__all__ = [
    "build_welcome",
    "decrypt_group_info",
    "decrypt_group_secrets",
    "encrypt_group_info",
    "encrypt_group_secrets",
    "find_group_secrets",
    "open_group_info",
    "open_welcome",
]

_WELCOME_LABEL = "Welcome"
_DECODE_LEAKS = (ValueError, IndexError, KeyError, struct.error, OverflowError, TypeError)

T = TypeVar("T")


def _decode_peer(parse: Callable[[], T], what: str) -> T:
    # decode() already translates codec errors; a struct constructor refusing peer data raises
    # UsageError, which for received bytes means "malformed".
    try:
        return parse()
    except UsageError as exc:
        raise DecodeError(f"invalid {what}: {exc}") from exc
    except MLSError:
        raise
    except _DECODE_LEAKS as exc:
        raise DecodeError(f"cannot decode {what}: {type(exc).__name__}") from exc


def encrypt_group_info(cs: CipherSuite, welcome_secret: bytes, group_info: GroupInfo) -> bytes:
    """``encrypted_group_info`` = AEAD.Seal(welcome_key, welcome_nonce, "", GroupInfo)."""
    key, nonce = welcome_key_nonce(cs, welcome_secret)
    return cs.aead_seal(key, nonce, b"", encode(group_info))


def decrypt_group_info(cs: CipherSuite, welcome_secret: bytes, encrypted: bytes) -> GroupInfo:
    """Open ``encrypted_group_info``; raises :class:`DecryptFailed` or :class:`DecodeError`."""
    key, nonce = welcome_key_nonce(cs, welcome_secret)
    plaintext = cs.aead_open(key, nonce, b"", encrypted)
    return _decode_peer(lambda: decode(GroupInfo, plaintext), "GroupInfo")


def encrypt_group_secrets(
    cs: CipherSuite, init_key: bytes, encrypted_group_info: bytes, group_secrets: GroupSecrets
) -> HPKECiphertext:
    """EncryptWithLabel(init_key, "Welcome", encrypted_group_info, GroupSecrets)."""
    kem_output, ciphertext = encrypt_with_label(
        cs, init_key, _WELCOME_LABEL, encrypted_group_info, encode(group_secrets)
    )
    return HPKECiphertext(kem_output=kem_output, ciphertext=ciphertext)


def decrypt_group_secrets(
    cs: CipherSuite, init_private_key: bytes, encrypted_group_info: bytes, ct: HPKECiphertext
) -> GroupSecrets:
    """DecryptWithLabel(init_key_priv, "Welcome", encrypted_group_info, ...) -> GroupSecrets.

    Raises :class:`DecryptFailed` (or :class:`InvalidKey` for a malformed ``kem_output``) and
    :class:`DecodeError`.
    """
    plaintext = decrypt_with_label(
        cs, init_private_key, _WELCOME_LABEL, encrypted_group_info, ct.kem_output, ct.ciphertext
    )
    return _decode_peer(lambda: decode(GroupSecrets, plaintext), "GroupSecrets")


def build_welcome(
    cs: CipherSuite,
    group_info: GroupInfo,
    joiner_secret: bytes,
    recipients: Sequence[tuple[KeyPackage, bytes | None]],
    *,
    psks: Sequence[tuple[PreSharedKeyID, bytes]] = (),
) -> Welcome:
    """A Welcome for ``recipients``: ``(key_package, path_secret or None)`` per new member.

    ``group_info`` must already be signed. ``psks`` are the epoch's ``(PreSharedKeyID, psk)``
    in proposal order (§8.4); their ids go to every joiner, and their ``psk_secret`` enters the
    welcome secret. Raises :class:`UsageError` for a KeyPackage of another cipher suite.
    """
    suite = cs.suite_id
    if group_info.group_context.cipher_suite != suite:
        raise UsageError("GroupInfo is for another cipher suite")
    ws = welcome_secret(cs, joiner_secret, psk_secret(cs, psks) if psks else None)
    encrypted_group_info = encrypt_group_info(cs, ws, group_info)
    psk_ids = tuple(psk_id for psk_id, _ in psks)
    entries = []
    for key_package, path_secret in recipients:
        if key_package.cipher_suite != suite:
            raise UsageError("KeyPackage is for another cipher suite")
        secrets = GroupSecrets(
            joiner_secret=joiner_secret,
            path_secret=None if path_secret is None else PathSecret(path_secret=path_secret),
            psks=psk_ids,
        )
        entries.append(
            EncryptedGroupSecrets(
                new_member=key_package.ref(cs),
                encrypted_group_secrets=encrypt_group_secrets(
                    cs, key_package.init_key, encrypted_group_info, secrets
                ),
            )
        )
    return Welcome(
        cipher_suite=suite, secrets=tuple(entries), encrypted_group_info=encrypted_group_info
    )


def find_group_secrets(
    cs: CipherSuite, welcome: Welcome, key_package: KeyPackage, init_private_key: bytes
) -> GroupSecrets:
    """Find and decrypt the GroupSecrets addressed to ``key_package`` (§12.4.3.1).

    Raises :class:`InvalidWelcome` if the Welcome's cipher suite is not the KeyPackage's (or
    ``cs``'s), :class:`NoMatchingKeyPackage` if no entry names its KeyPackageRef, then the
    errors of :func:`decrypt_group_secrets`.
    """
    if welcome.cipher_suite != key_package.cipher_suite or welcome.cipher_suite != cs.suite_id:
        raise InvalidWelcome(
            f"Welcome cipher suite {welcome.cipher_suite} does not match the KeyPackage's "
            f"{key_package.cipher_suite}"
        )
    entry = welcome.find_secrets(key_package.ref(cs))
    if entry is None:
        raise NoMatchingKeyPackage("no EncryptedGroupSecrets for this KeyPackage")
    return decrypt_group_secrets(
        cs, init_private_key, welcome.encrypted_group_info, entry.encrypted_group_secrets
    )


def open_group_info(
    cs: CipherSuite, welcome: Welcome, joiner_secret: bytes, psk_secret: bytes | None
) -> GroupInfo:
    """Decrypt the Welcome's GroupInfo from the joiner secret and ``psk_secret`` (``None``: no
    PSKs). Raises :class:`DecryptFailed`, :class:`DecodeError`, and :class:`InvalidWelcome`
    if the GroupInfo's cipher suite is not the Welcome's."""
    ws = welcome_secret(cs, joiner_secret, psk_secret)
    group_info = decrypt_group_info(cs, ws, welcome.encrypted_group_info)
    if group_info.group_context.cipher_suite != welcome.cipher_suite:
        raise InvalidWelcome("GroupInfo cipher suite does not match the Welcome's")
    return group_info


def open_welcome(
    cs: CipherSuite,
    welcome: Welcome,
    key_package: KeyPackage,
    init_private_key: bytes,
    *,
    psk_lookup: Callable[[PreSharedKeyID], bytes | None] | None = None,
) -> tuple[GroupSecrets, GroupInfo]:
    """The decrypting steps of §12.4.3.1: GroupSecrets, PSKs, then the GroupInfo.

    ``psk_lookup`` returns the PSK for an id, or ``None`` if this client does not hold it.
    Raises :class:`InvalidPSK` if a named PSK is missing or if more than one resumption PSK
    has usage ``reinit`` or ``branch`` (§12.4.3.1), plus the errors of
    :func:`find_group_secrets` and :func:`open_group_info`. The GroupInfo signature,
    confirmation tag and ratchet tree are *not* checked here.
    """
    secrets = find_group_secrets(cs, welcome, key_package, init_private_key)
    resolved: list[tuple[PreSharedKeyID, bytes]] = []
    special = 0
    for psk_id in secrets.psks:
        if psk_id.psktype == PSKType.resumption and psk_id.usage in (
            ResumptionPSKUsage.reinit,
            ResumptionPSKUsage.branch,
        ):
            special += 1
        psk = None if psk_lookup is None else psk_lookup(psk_id)
        if psk is None:
            # RFC 9420 §12.4.3.1: a PSK the client does not possess is an error.
            raise InvalidPSK("the Welcome names a PSK this client does not hold")
        resolved.append((psk_id, psk))
    if special > 1:
        raise InvalidPSK("more than one reinit/branch resumption PSK (RFC 9420 §12.4.3.1)")
    group_info = open_group_info(
        cs, welcome, secrets.joiner_secret, psk_secret(cs, resolved) if resolved else None
    )
    return secrets, group_info
