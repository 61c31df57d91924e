"""The delivery service's state and rules, one database transaction per request.

Every method checks its request inside the transaction and raises
:class:`~mls.ds.errors.Refused` before writing anything (or the transaction rolls back), so a
refused request changes nothing. See ``docs/ds.md`` for the rules in prose.
"""

from __future__ import annotations

import hashlib
import secrets
import time
from collections.abc import Sequence
from dataclasses import dataclass

from mls.ds.db import Database, Tx
from mls.ds.errors import Refused
from mls.ds.wire import CheckedKeyPackage, Header

__all__ = ["Client", "Entry", "GroupState", "Limits", "Store"]


@dataclass(frozen=True, slots=True, kw_only=True)
class Limits:
    """Bounds on what one client may store (see also the HTTP limits in the server)."""

    max_key_packages: int = 1000
    #: Seconds an authentication challenge stays valid.
    challenge_ttl: int = 60
    #: Seconds a token stays valid.
    token_ttl: int = 3600
    #: Messages of an epoch older than ``current - past_epochs`` are refused; the server
    #: remembers digests (to refuse replays) for these epochs only.
    past_epochs: int = 16
    max_group_size: int = 10_000


@dataclass(frozen=True, slots=True)
class Client:
    identity: bytes
    signature_key: bytes
    cipher_suite: int


@dataclass(frozen=True, slots=True)
class Entry:
    """One inbox entry: ``seq`` increases by one per entry of this client's inbox."""

    seq: int
    kind: str
    group_id: bytes
    group_seq: int
    epoch: int
    data: bytes


@dataclass(frozen=True, slots=True)
class GroupState:
    epoch: int
    group_seq: int
    members: list[bytes]


@dataclass(frozen=True, slots=True)
class Posted:
    group_seq: int
    epoch: int
    recipients: int


def _now() -> int:
    return int(time.time())


def _digest(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


class Store:
    def __init__(self, db: Database, limits: Limits) -> None:
        self.db = db
        self.limits = limits

    async def ping(self) -> None:
        def fn(tx: Tx) -> None:
            tx.execute("SELECT 1")

        await self.db.run(fn)

    # -- clients and authentication --------------------------------------------------------

    async def register(self, client: Client) -> None:
        def fn(tx: Tx) -> None:
            tx.execute(
                "INSERT INTO ds_clients (identity, signature_key, cipher_suite, created) "
                "VALUES (?, ?, ?, ?) ON CONFLICT DO NOTHING",
                (client.identity, client.signature_key, client.cipher_suite, _now()),
            )
            if tx.rowcount != 1:
                raise Refused(409, "identity_taken", "this identity is already registered")

        await self.db.run(fn)

    async def client(self, identity: bytes) -> Client | None:
        def fn(tx: Tx) -> Client | None:
            rows = tx.execute(
                "SELECT signature_key, cipher_suite FROM ds_clients WHERE identity = ?",
                (identity,),
            )
            return Client(identity, bytes(rows[0][0]), int(rows[0][1])) if rows else None

        return await self.db.run(fn)

    async def new_challenge(self, identity: bytes) -> bytes:
        challenge = secrets.token_bytes(32)

        def fn(tx: Tx) -> None:
            now = _now()
            if not tx.execute("SELECT 1 FROM ds_clients WHERE identity = ?", (identity,)):
                raise Refused(404, "unknown_client", "no client has this identity")
            tx.execute("DELETE FROM ds_challenges WHERE expires < ?", (now,))
            tx.execute(
                "INSERT INTO ds_challenges (challenge, identity, expires) VALUES (?, ?, ?)",
                (challenge, identity, now + self.limits.challenge_ttl),
            )

        await self.db.run(fn)
        return challenge

    async def issue_token(self, identity: bytes, challenge: bytes) -> tuple[bytes, int]:
        """Spend the challenge (once: a replayed proof finds it gone) and issue a token.
        The caller has verified the signature over it."""
        token = secrets.token_bytes(32)

        def fn(tx: Tx) -> int:
            now = _now()
            tx.execute(
                "DELETE FROM ds_challenges WHERE challenge = ? AND identity = ? AND expires >= ?",
                (challenge, identity, now),
            )
            if tx.rowcount != 1:
                raise Refused(401, "bad_challenge", "unknown, expired or already used challenge")
            tx.execute("DELETE FROM ds_tokens WHERE expires < ?", (now,))
            expires = now + self.limits.token_ttl
            tx.execute(
                "INSERT INTO ds_tokens (token_hash, identity, expires) VALUES (?, ?, ?)",
                (_digest(token), identity, expires),
            )
            return expires

        return token, await self.db.run(fn)

    async def token_owner(self, token: bytes) -> tuple[bytes, int] | None:
        def fn(tx: Tx) -> tuple[bytes, int] | None:
            rows = tx.execute(
                "SELECT identity, expires FROM ds_tokens WHERE token_hash = ? AND expires >= ?",
                (_digest(token), _now()),
            )
            return (bytes(rows[0][0]), int(rows[0][1])) if rows else None

        return await self.db.run(fn)

    # -- KeyPackages -------------------------------------------------------------------------

    async def publish_key_packages(self, identity: bytes, kps: Sequence[CheckedKeyPackage]) -> int:
        def fn(tx: Tx) -> int:
            (count,) = tx.execute(
                "SELECT COUNT(*) FROM ds_key_packages WHERE identity = ?", (identity,)
            )[0]
            if int(count) + len(kps) > self.limits.max_key_packages:
                raise Refused(
                    409,
                    "key_package_limit",
                    f"at most {self.limits.max_key_packages} KeyPackages per client",
                    stored=int(count),
                )
            added = time.time_ns()
            stored = 0
            for i, kp in enumerate(kps):
                tx.execute(
                    "INSERT INTO ds_key_packages (identity, ref, added, last_resort, data) "
                    "VALUES (?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
                    (identity, kp.ref, added + i, int(kp.last_resort), kp.data),
                )
                stored += tx.rowcount
            return stored

        return await self.db.run(fn)

    async def key_package_counts(self, identity: bytes) -> tuple[int, int]:
        def fn(tx: Tx) -> tuple[int, int]:
            rows = tx.execute(
                "SELECT last_resort, COUNT(*) FROM ds_key_packages WHERE identity = ? "
                "GROUP BY last_resort",
                (identity,),
            )
            counts = {int(lr): int(n) for lr, n in rows}
            return counts.get(0, 0), counts.get(1, 0)

        return await self.db.run(fn)

    async def claim_key_packages(self, identities: Sequence[bytes]) -> dict[bytes, bytes]:
        """One KeyPackage per identity, all or none. A fresh one is deleted as it is handed
        out (row-locked with SKIP LOCKED, so two claimers never get the same one); a
        last-resort one is handed out only when no fresh one is left, and kept (§16.8)."""

        def fn(tx: Tx) -> dict[bytes, bytes]:
            out: dict[bytes, bytes] = {}
            for identity in sorted(identities):
                rows = tx.execute(
                    "SELECT ref, data FROM ds_key_packages WHERE identity = ? AND "
                    "last_resort = 0 ORDER BY added LIMIT 1",
                    (identity,),
                    lock="skip",
                )
                if rows:
                    tx.execute(
                        "DELETE FROM ds_key_packages WHERE identity = ? AND ref = ?",
                        (identity, rows[0][0]),
                    )
                else:
                    rows = tx.execute(
                        "SELECT ref, data FROM ds_key_packages WHERE identity = ? AND "
                        "last_resort = 1 ORDER BY added DESC LIMIT 1",
                        (identity,),
                    )
                if not rows:
                    known = tx.execute("SELECT 1 FROM ds_clients WHERE identity = ?", (identity,))
                    code = "no_key_package" if known else "unknown_client"
                    raise Refused(
                        404, code, "no KeyPackage for a requested identity", identity=identity.hex()
                    )
                out[identity] = bytes(rows[0][1])
            return out

        return await self.db.run(fn)

    # -- groups --------------------------------------------------------------------------------

    async def create_group(self, identity: bytes, group_id: bytes, epoch: int) -> None:
        def fn(tx: Tx) -> None:
            tx.execute(
                "INSERT INTO ds_groups (group_id, epoch, created) VALUES (?, ?, ?) "
                "ON CONFLICT DO NOTHING",
                (group_id, epoch, _now()),
            )
            if tx.rowcount != 1:
                raise Refused(409, "group_exists", "a group with this id exists")
            tx.execute(
                "INSERT INTO ds_members (group_id, identity) VALUES (?, ?)", (group_id, identity)
            )

        await self.db.run(fn)

    def _lock_group(self, tx: Tx, group_id: bytes) -> tuple[int, int]:
        rows = tx.execute(
            "SELECT epoch, last_seq FROM ds_groups WHERE group_id = ?", (group_id,), lock="update"
        )
        if not rows:
            raise Refused(404, "unknown_group", "no such group")
        return int(rows[0][0]), int(rows[0][1])

    @staticmethod
    def _members(tx: Tx, group_id: bytes) -> set[bytes]:
        rows = tx.execute("SELECT identity FROM ds_members WHERE group_id = ?", (group_id,))
        return {bytes(r[0]) for r in rows}

    async def group(self, identity: bytes, group_id: bytes) -> GroupState:
        def fn(tx: Tx) -> GroupState:
            rows = tx.execute(
                "SELECT epoch, last_seq FROM ds_groups WHERE group_id = ?", (group_id,)
            )
            if not rows:
                raise Refused(404, "unknown_group", "no such group")
            members = self._members(tx, group_id)
            if identity not in members:
                raise Refused(403, "not_in_roster", "you are not in this group's roster")
            return GroupState(int(rows[0][0]), int(rows[0][1]), sorted(members))

        return await self.db.run(fn)

    async def is_member(self, identity: bytes, group_id: bytes) -> bool:
        def fn(tx: Tx) -> bool:
            return bool(
                tx.execute(
                    "SELECT 1 FROM ds_members WHERE group_id = ? AND identity = ?",
                    (group_id, identity),
                )
            )

        return await self.db.run(fn)

    def _check_seen(self, tx: Tx, group_id: bytes, digest: bytes) -> None:
        rows = tx.execute(
            "SELECT group_seq, epoch FROM ds_seen WHERE group_id = ? AND digest = ?",
            (group_id, digest),
        )
        if rows:
            raise Refused(
                409,
                "duplicate",
                "this message was accepted before (a replay or a retry); nothing changed",
                group_seq=int(rows[0][0]),
                epoch=int(rows[0][1]),
            )

    async def post_commit(
        self,
        identity: bytes,
        group_id: bytes,
        header: Header,
        commit: bytes,
        *,
        welcome: bytes | None,
        group_info: bytes | None,
        added: Sequence[bytes],
        removed: Sequence[bytes],
    ) -> Posted:
        """Accept the first commit of the group's epoch (RFC 9420 §14) and fan it out.

        The roster changes as the committer declares (``added``/``removed``): the server cannot
        read a PrivateMessage commit, and trusts members with the roster only to route.
        """
        digest = _digest(commit)

        def fn(tx: Tx) -> Posted:
            epoch, last_seq = self._lock_group(tx, group_id)
            self._check_seen(tx, group_id, digest)
            roster = self._members(tx, group_id)
            add = set(added)
            if identity not in roster:
                # An external commit (§12.4.3.2) adds its sender; no other outsider commits.
                if not header.external_commit:
                    raise Refused(403, "not_in_roster", "you are not in this group's roster")
                add.add(identity)
            if header.epoch != epoch:
                raise Refused(409, "epoch_conflict", "another commit won this epoch", epoch=epoch)
            rm = set(removed)
            if not rm <= roster:
                raise Refused(422, "bad_roster", "removed identities are not in the roster")
            after = roster - rm
            if add & after:
                raise Refused(422, "bad_roster", "added identities are already in the roster")
            if len(after) + len(add) > self.limits.max_group_size:
                raise Refused(422, "group_too_large", "the roster would exceed the limit")
            if add:
                marks = ",".join("?" * len(add))
                known = tx.execute(
                    f"SELECT COUNT(*) FROM ds_clients WHERE identity IN ({marks})",  # noqa: S608
                    sorted(add),
                )[0][0]
                if int(known) != len(add):
                    raise Refused(404, "unknown_client", "an added identity is not registered")
            new_epoch, seq = epoch + 1, last_seq + 1
            tx.execute(
                "UPDATE ds_groups SET epoch = ?, last_seq = ? WHERE group_id = ?",
                (new_epoch, seq, group_id),
            )
            # Pending SelfRemoves belong to the epoch that just ended.
            tx.execute("DELETE FROM ds_self_removes WHERE group_id = ?", (group_id,))
            if group_info is not None:
                tx.execute(
                    "UPDATE ds_groups SET group_info = ?, group_info_epoch = ? WHERE group_id = ?",
                    (group_info, new_epoch, group_id),
                )
            if rm:
                tx.executemany(
                    "DELETE FROM ds_members WHERE group_id = ? AND identity = ?",
                    [(group_id, r) for r in sorted(rm)],
                )
            tx.executemany(
                "INSERT INTO ds_members (group_id, identity) VALUES (?, ?)",
                [(group_id, a) for a in sorted(add)],
            )
            self._remember(tx, group_id, digest, seq, epoch, new_epoch)
            # Removed members get the commit too, so they learn that they were removed.
            recipients = sorted(roster - {identity})
            self._fan_out(tx, recipients, "commit", group_id, seq, epoch, commit)
            if welcome is not None:
                joiners = sorted(add - {identity})
                self._fan_out(tx, joiners, "welcome", group_id, seq, new_epoch, welcome)
            return Posted(seq, new_epoch, len(recipients))

        return await self.db.run(fn)

    def _remember(
        self, tx: Tx, group_id: bytes, digest: bytes, seq: int, epoch: int, current: int
    ) -> None:
        tx.execute(
            "INSERT INTO ds_seen (group_id, digest, group_seq, epoch) VALUES (?, ?, ?, ?)",
            (group_id, digest, seq, epoch),
        )
        if current != epoch:  # a commit: forget digests of epochs no longer accepted
            tx.execute(
                "DELETE FROM ds_seen WHERE group_id = ? AND epoch < ?",
                (group_id, current - self.limits.past_epochs),
            )

    async def post_message(
        self,
        identity: bytes,
        group_id: bytes,
        header: Header,
        data: bytes,
        *,
        self_remove: bool = False,
    ) -> Posted:
        """Order a proposal or application message after the group's last message and fan it
        out to the other members. A SelfRemove proposal of the current epoch is also kept for
        external joiners until the epoch ends (draft-ietf-mls-extensions: the DS "SHOULD attach
        any SelfRemove proposals known to the DS to the GroupInfo")."""
        digest = _digest(data)

        def fn(tx: Tx) -> Posted:
            epoch, last_seq = self._lock_group(tx, group_id)
            roster = self._members(tx, group_id)
            if identity not in roster:
                raise Refused(403, "not_in_roster", "you are not in this group's roster")
            self._check_seen(tx, group_id, digest)
            if header.epoch > epoch:
                raise Refused(
                    409, "future_epoch", "the group has not reached this epoch", epoch=epoch
                )
            if header.epoch < epoch - self.limits.past_epochs:
                raise Refused(409, "stale_epoch", "this epoch is too old", epoch=epoch)
            seq = last_seq + 1
            tx.execute("UPDATE ds_groups SET last_seq = ? WHERE group_id = ?", (seq, group_id))
            self._remember(tx, group_id, digest, seq, header.epoch, header.epoch)
            recipients = sorted(roster - {identity})
            self._fan_out(tx, recipients, header.kind, group_id, seq, header.epoch, data)
            if self_remove and header.epoch == epoch:
                tx.execute(
                    "INSERT INTO ds_self_removes (group_id, epoch, digest, data) "
                    "VALUES (?, ?, ?, ?)",
                    (group_id, epoch, digest, data),
                )
            return Posted(seq, epoch, len(recipients))

        return await self.db.run(fn)

    @staticmethod
    def _fan_out(
        tx: Tx,
        recipients: list[bytes],
        kind: str,
        group_id: bytes,
        group_seq: int,
        epoch: int,
        data: bytes,
    ) -> None:
        """Append one entry to each recipient's inbox (recipients sorted: rows are locked in
        identity order, so concurrent fan-outs cannot deadlock on PostgreSQL)."""
        if not recipients:
            return
        for i in range(0, len(recipients), 100):
            chunk = recipients[i : i + 100]
            marks = ",".join("?" * len(chunk))
            if tx.postgres:
                # The subquery locks the rows in identity order before any is updated.
                rows = tx.execute(
                    "UPDATE ds_clients SET last_seq = last_seq + 1 WHERE identity IN ("  # noqa: S608
                    f"SELECT identity FROM ds_clients WHERE identity IN ({marks}) "
                    "ORDER BY identity FOR UPDATE) RETURNING identity, last_seq",
                    chunk,
                )
            else:
                rows = tx.execute(
                    f"UPDATE ds_clients SET last_seq = last_seq + 1 "  # noqa: S608
                    f"WHERE identity IN ({marks}) RETURNING identity, last_seq",
                    chunk,
                )
            values = ",".join(["(?, ?, ?, ?, ?, ?, ?)"] * len(rows))
            params: list[object] = []
            for r in rows:
                params += (bytes(r[0]), int(r[1]), kind, group_id, group_seq, epoch, data)
                entry = Entry(int(r[1]), kind, group_id, group_seq, epoch, data)
                tx.woken.setdefault(bytes(r[0]), []).append(entry)
            insert = "INSERT INTO ds_inbox (identity, seq, kind, group_id, group_seq, epoch, data) "
            tx.execute(insert + "VALUES " + values, params)

    async def put_group_info(
        self, identity: bytes, group_id: bytes, info: bytes, epoch: int
    ) -> None:
        def fn(tx: Tx) -> None:
            current, _ = self._lock_group(tx, group_id)
            if identity not in self._members(tx, group_id):
                raise Refused(403, "not_in_roster", "you are not in this group's roster")
            if epoch != current:
                raise Refused(
                    409,
                    "epoch_conflict",
                    "the GroupInfo is not of the current epoch",
                    epoch=current,
                )
            tx.execute(
                "UPDATE ds_groups SET group_info = ?, group_info_epoch = ? WHERE group_id = ?",
                (info, epoch, group_id),
            )

        await self.db.run(fn)

    async def group_info(self, group_id: bytes) -> tuple[bytes, int, int, list[bytes]]:
        """The latest GroupInfo, its epoch, the group's epoch and the SelfRemove proposals
        pending in the group's epoch (in the order they were posted)."""

        def fn(tx: Tx) -> tuple[bytes, int, int, list[bytes]]:
            rows = tx.execute(
                "SELECT group_info, group_info_epoch, epoch FROM ds_groups WHERE group_id = ?",
                (group_id,),
            )
            if not rows:
                raise Refused(404, "unknown_group", "no such group")
            if rows[0][0] is None:
                raise Refused(404, "no_group_info", "no GroupInfo was published for this group")
            current = int(rows[0][2])
            pending = tx.execute(
                "SELECT r.data FROM ds_self_removes r JOIN ds_seen s "
                "ON s.group_id = r.group_id AND s.digest = r.digest "
                "WHERE r.group_id = ? AND r.epoch = ? ORDER BY s.group_seq",
                (group_id, current),
            )
            return bytes(rows[0][0]), int(rows[0][1]), current, [bytes(r[0]) for r in pending]

        return await self.db.run(fn)

    # -- inboxes -------------------------------------------------------------------------------

    async def fetch(self, identity: bytes, after: int, limit: int) -> tuple[list[Entry], int]:
        def fn(tx: Tx) -> tuple[list[Entry], int]:
            rows = tx.execute(
                "SELECT seq, kind, group_id, group_seq, epoch, data FROM ds_inbox "
                "WHERE identity = ? AND seq > ? ORDER BY seq LIMIT ?",
                (identity, after, limit),
            )
            last = tx.execute("SELECT last_seq FROM ds_clients WHERE identity = ?", (identity,))
            entries = [
                Entry(int(r[0]), str(r[1]), bytes(r[2]), int(r[3]), int(r[4]), bytes(r[5]))
                for r in rows
            ]
            return entries, int(last[0][0]) if last else 0

        return await self.db.run(fn)

    async def ack(self, identity: bytes, seq: int) -> int:
        """Delete the entries up to ``seq``; the client has stored their effects."""

        def fn(tx: Tx) -> int:
            rows = tx.execute(
                "SELECT last_seq, acked FROM ds_clients WHERE identity = ?",
                (identity,),
                lock="update",
            )
            last, acked = int(rows[0][0]), int(rows[0][1])
            if seq > last:
                raise Refused(422, "ack_ahead", "cannot acknowledge entries not sent", last=last)
            if seq > acked:
                tx.execute("DELETE FROM ds_inbox WHERE identity = ? AND seq <= ?", (identity, seq))
                tx.execute("UPDATE ds_clients SET acked = ? WHERE identity = ?", (seq, identity))
                acked = seq
            return acked

        return await self.db.run(fn)
