"""Welcome messages (RFC 9420 §12.4.3.1): ``Welcome``, ``EncryptedGroupSecrets``,
``GroupSecrets`` and ``PathSecret``.

Only the structs; encrypting and decrypting them (EncryptWithLabel "Welcome", the welcome
key and nonce) belongs to the group layer. Secret fields are hidden from ``repr``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Self

from mls.codec.buffer import Buffer, Writer
from mls.messages.proposals import PreSharedKeyID
from mls.tree.nodes import HPKECiphertext

__all__ = ["PathSecret", "GroupSecrets", "EncryptedGroupSecrets", "Welcome"]


@dataclass(frozen=True, slots=True, kw_only=True)
class PathSecret:
    """RFC 9420 §12.4.3.1: ``struct { opaque path_secret<V>; } PathSecret;``"""

    path_secret: bytes = field(repr=False)

    def encode(self, w: Writer) -> None:
        w.push_opaque(self.path_secret)

    @classmethod
    def decode(cls, buf: Buffer) -> Self:
        return cls(path_secret=buf.pull_opaque())


@dataclass(frozen=True, slots=True, kw_only=True)
class GroupSecrets:
    """RFC 9420 §12.4.3.1::

    struct {
      opaque joiner_secret<V>;
      optional<PathSecret> path_secret;
      PreSharedKeyID psks<V>;
    } GroupSecrets;
    """

    joiner_secret: bytes = field(repr=False)
    path_secret: PathSecret | None = None
    psks: tuple[PreSharedKeyID, ...] = ()

    def encode(self, w: Writer) -> None:
        w.push_opaque(self.joiner_secret)
        if self.path_secret is None:
            w.push_uint8(0)
        else:
            w.push_uint8(1)
            w.push_opaque(self.path_secret.path_secret)
        body = Writer()
        for psk in self.psks:
            psk.encode(body)
        w.push_opaque(body.getvalue())

    @classmethod
    def decode(cls, buf: Buffer) -> Self:
        return cls(
            joiner_secret=buf.pull_opaque(),
            path_secret=buf.pull_optional(PathSecret.decode),
            psks=tuple(buf.pull_vector(PreSharedKeyID.decode)),
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class EncryptedGroupSecrets:
    """RFC 9420 §12.4.3.1::

    struct {
      KeyPackageRef new_member;
      HPKECiphertext encrypted_group_secrets;
    } EncryptedGroupSecrets;
    """

    new_member: bytes
    encrypted_group_secrets: HPKECiphertext

    def encode(self, w: Writer) -> None:
        w.push_opaque(self.new_member)
        self.encrypted_group_secrets.encode(w)

    @classmethod
    def decode(cls, buf: Buffer) -> Self:
        return cls(new_member=buf.pull_opaque(), encrypted_group_secrets=HPKECiphertext.decode(buf))


@dataclass(frozen=True, slots=True, kw_only=True)
class Welcome:
    """RFC 9420 §12.4.3.1::

    struct {
      CipherSuite cipher_suite;
      EncryptedGroupSecrets secrets<V>;
      opaque encrypted_group_info<V>;
    } Welcome;
    """

    cipher_suite: int
    secrets: tuple[EncryptedGroupSecrets, ...]
    encrypted_group_info: bytes

    def encode(self, w: Writer) -> None:
        w.push_uint16(self.cipher_suite)
        body = Writer()
        for s in self.secrets:
            s.encode(body)
        w.push_opaque(body.getvalue())
        w.push_opaque(self.encrypted_group_info)

    @classmethod
    def decode(cls, buf: Buffer) -> Self:
        return cls(
            cipher_suite=buf.pull_uint16(),
            secrets=tuple(buf.pull_vector(EncryptedGroupSecrets.decode)),
            encrypted_group_info=buf.pull_opaque(),
        )

    def find_secrets(self, key_package_ref: bytes) -> EncryptedGroupSecrets | None:
        """The entry addressed to ``key_package_ref`` (§12.4.3.1), or ``None``."""
        for s in self.secrets:
            if s.new_member == key_package_ref:
                return s
        return None
