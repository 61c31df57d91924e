"""Frankenstein messages: build MLS messages that a correct sender could never produce.

A :class:`Forger` speaks for one member of a real group (a :class:`~tests.harness.GroupHarness`
member): it builds ``FramedContent``/``AuthenticatedContent`` by hand, signs it with that member's
real signature key, MACs it with the real membership key or encrypts it with keys of the real
secret tree, so that a receiver sees a message in which exactly one thing is wrong: the thing a
test is about (openmls ``test_utils/frankenstein``).

Commits are built the way a sender computes them (§12.4): the proposals are applied to a diff of
the sender's tree *without* the §12.2 checks, a real UpdatePath is created and encrypted, and the
confirmation tag comes from the real key schedule, so a receiver that skips a check would accept
the message. Where the proposals cannot be applied at all (a Remove of a blank leaf), no epoch
exists and the confirmation tag is random.

Welcomes and GroupInfos are rebuilt from the state of a member that just committed an Add with no
path, from its real ``joiner_secret``, ``welcome_secret`` and signature key.

The group's private attributes (``_secrets``, ``_secret_tree``, ``_context``, ``_tree``,
``_client``, ``_proposals``, ``_interim``) are read here on purpose; nothing on the receiving side
is touched.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from mls.constants import (
    ExtensionType,
    LeafNodeSource,
    PSKType,
    SenderType,
    WireFormat,
)
from mls.crypto import CipherSuite
from mls.errors import MLSError
from mls.extensions import Extension, ExternalPub
from mls.framing.content import (
    AuthenticatedContent,
    Content,
    FramedContent,
    FramedContentAuthData,
    Sender,
    sign_framed_content,
)
from mls.framing.message import MLSMessage
from mls.framing.private import (
    PrivateContentAAD,
    PrivateMessage,
    PrivateMessageContent,
    SenderData,
    SenderDataAAD,
)
from mls.framing.public import PublicMessage, membership_tag
from mls.group import Client, Group
from mls.group.epoch import next_epoch
from mls.messages.commit import Commit
from mls.messages.group_info import GroupInfo
from mls.messages.key_package import KeyPackage
from mls.messages.proposals import (
    Add,
    ExternalInit,
    GroupContextExtensions,
    PreSharedKey,
    PreSharedKeyID,
    Proposal,
    ProposalOrRef,
    Remove,
    SelfRemove,
    Update,
)
from mls.messages.welcome import EncryptedGroupSecrets, GroupSecrets, PathSecret, Welcome
from mls.messages.welcome_crypto import encrypt_group_info, encrypt_group_secrets
from mls.schedule.group_context import GroupContext
from mls.schedule.key_schedule import (
    confirmation_tag as make_confirmation_tag,
)
from mls.schedule.key_schedule import (
    epoch_secrets_from_joiner,
    external_key_pair,
    sender_data_key_nonce,
    welcome_secret,
)
from mls.schedule.psk import psk_secret
from mls.schedule.secret_tree import SecretTree
from mls.tree.nodes import LeafNode, UpdatePath
from mls.tree.ratchet_tree import RatchetTree, TreeDiff
from mls.tree.treekem import PreparedPath, prepare_update_path
from tests.harness import NOW

__all__ = [
    "PUBLIC",
    "PRIVATE",
    "Forger",
    "WelcomeForge",
    "encrypt_private",
    "resign_leaf",
    "resign_key_package",
]

PUBLIC = WireFormat.mls_public_message
PRIVATE = WireFormat.mls_private_message

_EXTERNAL_INIT_LABEL = b"MLS 1.0 external init secret"

#: A proposal to commit: a Proposal (by value) or a ProposalRef (bytes, by reference).
Item = Proposal | bytes


def resign_leaf(
    cs: CipherSuite,
    leaf: LeafNode,
    sk: bytes,
    group_id: bytes | None = None,
    leaf_index: int | None = None,
    **changes: Any,
) -> LeafNode:
    """``leaf`` with ``changes`` applied and a valid signature (over group_id and leaf_index for
    update/commit leaves), so that only the changed field is wrong."""
    out = replace(leaf, **changes, signature=b"")
    if out.leaf_node_source == LeafNodeSource.key_package:
        return out.sign(cs, sk)
    return out.sign(cs, sk, group_id, leaf_index)


def resign_key_package(
    cs: CipherSuite, kp: KeyPackage, sk: bytes, *, sign: bool = True, **changes: Any
) -> KeyPackage:
    """``kp`` with ``changes`` applied, signed again with ``sk`` (unless ``sign`` is False, in
    which case the old signature stays and no longer verifies)."""
    out = replace(kp, **changes)
    return out.sign(cs, sk) if sign else replace(out, signature=kp.signature)


def _guarded_nonce(nonce: bytes, reuse_guard: bytes) -> bytes:
    head = int.from_bytes(nonce[:4], "big") ^ int.from_bytes(reuse_guard, "big")
    return head.to_bytes(4, "big") + nonce[4:]


def encrypt_private(
    cs: CipherSuite,
    auth: AuthenticatedContent,
    *,
    key: bytes,
    nonce: bytes,
    generation: int,
    sender_data_secret: bytes,
    leaf_index: int | None = None,
    padding: bytes = b"",
    reuse_guard: bytes = b"\x01\x02\x03\x04",
    content_type: int | None = None,
) -> PrivateMessage:
    """§6.3 encryption with explicit keys: ``padding`` may hold non-zero bytes, ``leaf_index``
    (sender data) may differ from the content's sender and ``content_type`` from the body's."""
    content = auth.content
    ct = content.content_type if content_type is None else content_type
    plaintext = PrivateMessageContent(content=content.content, auth=auth.auth).to_bytes() + padding
    aad = PrivateContentAAD(
        group_id=content.group_id,
        epoch=content.epoch,
        content_type=ct,
        authenticated_data=content.authenticated_data,
    ).to_bytes()
    ciphertext = cs.aead_seal(key, _guarded_nonce(nonce, reuse_guard), aad, plaintext)
    sender_data = SenderData(
        leaf_index=content.sender.index if leaf_index is None else leaf_index,
        generation=generation,
        reuse_guard=reuse_guard,
    ).to_bytes()
    sd_key, sd_nonce = sender_data_key_nonce(cs, sender_data_secret, ciphertext)
    sd_aad = SenderDataAAD(group_id=content.group_id, epoch=content.epoch, content_type=ct)
    return PrivateMessage(
        group_id=content.group_id,
        epoch=content.epoch,
        content_type=ct,
        authenticated_data=content.authenticated_data,
        encrypted_sender_data=cs.aead_seal(sd_key, sd_nonce, sd_aad.to_bytes(), sender_data),
        ciphertext=ciphertext,
    )


def _change_leaf(
    cs: CipherSuite,
    diff: TreeDiff,
    prepared: PreparedPath,
    sk: bytes,
    group_id: bytes,
    changes: dict[str, Any],
) -> PreparedPath:
    """``prepared`` with its LeafNode changed (and re-signed), in the diff too."""
    leaf = resign_leaf(cs, prepared.leaf_node, sk, group_id, prepared.sender, **changes)
    diff.set_leaf(prepared.sender, leaf)
    return replace(prepared, leaf_node=leaf)


def _change_path_keys(
    cs: CipherSuite,
    diff: TreeDiff,
    prepared: PreparedPath,
    sk: bytes,
    group_id: bytes,
    change: Callable[[list[bytes]], list[bytes]],
) -> PreparedPath:
    """``prepared`` with other public keys on its path (merged into the diff, with the parent
    hash chain and the leaf's parent hash redone over them); the path secrets are unchanged."""
    keys = change(list(prepared.public_keys))
    parent_hash = diff.apply_path(prepared.sender, keys)
    leaf = resign_leaf(
        cs, prepared.leaf_node, sk, group_id, prepared.sender, parent_hash=parent_hash
    )
    diff.set_leaf(prepared.sender, leaf)
    return replace(prepared, public_keys=tuple(keys), leaf_node=leaf)


def to_message(body: PublicMessage | PrivateMessage | Welcome | GroupInfo | KeyPackage) -> bytes:
    return MLSMessage(body=body).to_bytes()


@dataclass
class Forger:
    """Forges messages as the member ``g`` (its keys, its view of the group)."""

    g: Group

    @property
    def cs(self) -> CipherSuite:
        return self.g.suite

    @property
    def me(self) -> int:
        return self.g.own_leaf_index

    @property
    def sk(self) -> bytes:
        return self.g.client.signature_private_key

    # -- content and signature (§6.1) ---------------------------------------------------------

    def framed(
        self,
        body: Content,
        *,
        sender: Sender | None = None,
        epoch: int | None = None,
        group_id: bytes | None = None,
        authenticated_data: bytes = b"",
    ) -> FramedContent:
        g = self.g
        return FramedContent(
            group_id=g.group_id if group_id is None else group_id,
            epoch=g.epoch if epoch is None else epoch,
            sender=Sender.member(self.me) if sender is None else sender,
            authenticated_data=authenticated_data,
            content=body,
        )

    def sign(
        self,
        content: FramedContent,
        wire_format: int,
        *,
        key: bytes | None = None,
        context: GroupContext | None = None,
    ) -> bytes:
        """SignWithLabel(FramedContentTBS) with our key (or ``key``) over our GroupContext."""
        return sign_framed_content(
            self.cs,
            self.sk if key is None else key,
            wire_format,
            content,
            self.g._context if context is None else context,
        )

    def authenticated(
        self,
        body: Content,
        *,
        wire_format: int = PUBLIC,
        key: bytes | None = None,
        signature: bytes | None = None,
        confirmation_tag: bytes | None = None,
        **framed: Any,
    ) -> AuthenticatedContent:
        content = self.framed(body, **framed)
        sig = self.sign(content, wire_format, key=key) if signature is None else signature
        if isinstance(body, Commit) and confirmation_tag is None:
            confirmation_tag = self.cs.random(self.cs.hash_len)
        return AuthenticatedContent(
            wire_format=wire_format,
            content=content,
            auth=FramedContentAuthData(signature=sig, confirmation_tag=confirmation_tag),
        )

    # -- protection (§6.2, §6.3) --------------------------------------------------------------

    def public(
        self,
        auth: AuthenticatedContent,
        *,
        membership_key: bytes | None = None,
        tag: bytes | None = None,
    ) -> bytes:
        """A PublicMessage, built directly (no sender-side refusal of application data); a
        member sender gets the membership tag under our real membership key."""
        if auth.content.sender.sender_type == SenderType.member and tag is None:
            key = self.g._secrets.membership_key if membership_key is None else membership_key
            tag = membership_tag(self.cs, key, auth.content, auth.auth, self.g._context)
        return to_message(PublicMessage(content=auth.content, auth=auth.auth, membership_tag=tag))

    def ratchet_key(self, leaf: int, content_type: int, generation: int) -> tuple[bytes, bytes]:
        """(key, nonce) of ``leaf``'s ratchet at ``generation``, from a copy of the member's
        secret tree (any member can derive every other leaf's keys; §9). The group itself no
        longer holds the epoch's encryption secret once the tree exists (§9.2)."""
        st = SecretTree.from_bytes(self.cs, self.g._secret_tree.to_bytes())
        st._max_forward = 0xFFFFFFFF  # a forger may pick any generation
        pending = st.prepare_receive(leaf, content_type, generation)
        return pending.key, pending.nonce

    def private(
        self,
        auth: AuthenticatedContent,
        *,
        leaf: int | None = None,
        generation: int | None = None,
        padding: bytes = b"",
        sender_data_secret: bytes | None = None,
        content_type: int | None = None,
    ) -> bytes:
        """A PrivateMessage. By default the next key of our own real ratchet is used (and
        consumed, as a real send would); with ``leaf`` or ``generation`` the key of that leaf's
        ratchet at that generation (0 by default) is derived instead."""
        cs = self.cs
        ct = auth.content.content_type if content_type is None else content_type
        sender_leaf = auth.content.sender.index if leaf is None else leaf
        if sender_leaf == self.me and generation is None:
            generation, key, nonce = self.g._secret_tree.next_send_key(ct)
        else:
            generation = 0 if generation is None else generation
            key, nonce = self.ratchet_key(sender_leaf, ct, generation)
        sds = (
            self.g._secrets.sender_data_secret if sender_data_secret is None else sender_data_secret
        )
        msg = encrypt_private(
            cs,
            auth,
            key=key,
            nonce=nonce,
            generation=generation,
            sender_data_secret=sds,
            leaf_index=sender_leaf,
            padding=padding,
            content_type=ct,
        )
        return to_message(msg)

    def wrap(self, auth: AuthenticatedContent, **kw: Any) -> bytes:
        if auth.wire_format == PRIVATE:
            return self.private(auth, **kw)
        return self.public(auth, **kw)

    # -- proposals (§12.1) --------------------------------------------------------------------

    def proposal(self, p: Proposal, *, wire_format: int = PUBLIC, **kw: Any) -> bytes:
        """A proposal message from us with content ``p`` (signed, MACed or encrypted)."""
        wrap_kw = {k: kw.pop(k) for k in ("leaf", "generation", "padding") if k in kw}
        return self.wrap(self.authenticated(p, wire_format=wire_format, **kw), **wrap_kw)

    def update_leaf(self, **changes: Any) -> LeafNode:
        """A LeafNode for an Update from us: fresh encryption key, source ``update``, signed
        over our group_id and leaf index; ``changes`` are applied before signing."""
        old = self.g._tree.leaf(self.me)
        assert old is not None
        _, pk = self.cs.generate_key_pair()
        fields: dict[str, Any] = {
            "encryption_key": pk,
            "leaf_node_source": LeafNodeSource.update,
            "lifetime": None,
            "parent_hash": None,
        }
        fields.update(changes)
        return resign_leaf(self.cs, old, self.sk, self.g.group_id, self.me, **fields)

    # -- commits (§12.4) ----------------------------------------------------------------------

    def _resolve(self, item: Item, sender: Sender) -> tuple[ProposalOrRef, Proposal | None, Sender]:
        if isinstance(item, bytes):
            cached = self.g._proposals.get(item)
            if cached is None:
                return ProposalOrRef(reference=item), None, sender
            return ProposalOrRef(reference=item), cached.proposal, cached.sender
        return ProposalOrRef(proposal=item), item, sender

    def _apply(
        self, entries: Sequence[tuple[Proposal | None, Sender]]
    ) -> tuple[TreeDiff, list[int], tuple[Extension, ...], bool]:
        """Apply proposals in §12.3 order to a diff of our tree, with no validation. Returns
        (diff, added leaves, new extensions, whether the list could be applied at all)."""
        diff = self.g._tree.diff()
        extensions = self.g._context.extensions
        ok = True
        added: list[int] = []
        props = [(p, s) for p, s in entries if p is not None]
        try:
            for p, _ in props:
                if isinstance(p, GroupContextExtensions):
                    extensions = p.extensions
                    break
            for p, s in props:
                if isinstance(p, Update):
                    diff.update_leaf(s.index, p.leaf_node)
            for p, s in props:
                if isinstance(p, SelfRemove):  # draft-ietf-mls-extensions: its sender
                    diff.remove_leaf(s.index)
            for p, _ in props:
                if isinstance(p, Remove):
                    diff.remove_leaf(p.removed)
            for p, _ in props:
                if isinstance(p, Add):
                    added.append(diff.add_leaf(p.key_package.leaf_node))
        except MLSError:
            ok = False
        return diff, added, tuple(extensions), ok

    def _psks(self, proposals: Sequence[Proposal | None]) -> list[tuple[PreSharedKeyID, bytes]]:
        out = []
        for p in proposals:
            if isinstance(p, PreSharedKey):
                pid = p.psk
                if pid.psktype == PSKType.external:
                    secret = self.g._client.external_psk(pid.psk_id)
                else:
                    secret = self.g._resumption.get(pid.psk_epoch)
                out.append((pid, secret if secret is not None else bytes(self.cs.hash_len)))
        return out

    def commit(
        self,
        proposals: Sequence[Item] = (),
        *,
        path: bool | UpdatePath = True,
        mutate_path: Callable[[UpdatePath, TreeDiff], UpdatePath] | None = None,
        leaf_changes: dict[str, Any] | None = None,
        path_keys: Callable[[list[bytes]], list[bytes]] | None = None,
        wire_format: int = PUBLIC,
        confirmation_tag: bytes | None = None,
        key: bytes | None = None,
        sender: Sender | None = None,
        epoch: int | None = None,
        group_id: bytes | None = None,
        init_secret: bytes | None = None,
        **wrap: Any,
    ) -> bytes:
        """A commit from us of ``proposals`` (Proposals by value, ProposalRefs by reference)
        with no §12.2 checks. ``path=True`` creates a real UpdatePath, an UpdatePath is used as
        given, False omits it. ``leaf_changes`` alter the path's LeafNode (re-signed) before the
        path secrets are encrypted, so the provisional GroupContext covers the changed leaf;
        ``path_keys`` replaces the path's public keys the same way (the leaf's parent hash is
        recomputed over them, the path secrets stay); ``mutate_path`` alters the encrypted
        UpdatePath afterwards. The confirmation tag is the
        real one for the resulting epoch unless ``confirmation_tag`` is given."""
        g, cs = self.g, self.cs
        snd = Sender.member(self.me) if sender is None else sender
        resolved = [self._resolve(i, snd) for i in proposals]
        diff, added, extensions, ok = self._apply([(p, s) for _, p, s in resolved])
        gid = g.group_id if group_id is None else group_id
        ctx = GroupContext(
            cipher_suite=cs.suite_id,
            group_id=g.group_id,
            epoch=g.epoch + 1,
            tree_hash=b"",
            confirmed_transcript_hash=g._context.confirmed_transcript_hash,
            extensions=extensions,
        )
        update_path: UpdatePath | None = None
        commit_secret: bytes | None = None
        if isinstance(path, UpdatePath):
            update_path = path
            ok = False
        elif path:
            template = g._tree.leaf(self.me)
            assert template is not None
            prepared = prepare_update_path(cs, diff, self.me, template, self.sk, g.group_id)
            if path_keys is not None:
                prepared = _change_path_keys(cs, diff, prepared, self.sk, g.group_id, path_keys)
            if leaf_changes:
                prepared = _change_leaf(cs, diff, prepared, self.sk, g.group_id, leaf_changes)
            ctx = replace(ctx, tree_hash=diff.tree_hash())
            update_path = prepared.encrypt(cs, diff, ctx.to_bytes(), exclude=added)
            commit_secret = prepared.commit_secret
            if mutate_path is not None:
                update_path = mutate_path(update_path, diff)
        if ok:
            ctx = replace(ctx, tree_hash=diff.tree_hash())
        body = Commit(proposals=tuple(por for por, _, _ in resolved), path=update_path)
        content = self.framed(body, sender=snd, epoch=epoch, group_id=gid)
        sig = self.sign(content, wire_format, key=key)
        if confirmation_tag is None:
            if ok:
                confirmation_tag = next_epoch(
                    cs,
                    interim_transcript_hash=g._interim,
                    wire_format=wire_format,
                    content=content,
                    signature=sig,
                    context=ctx,
                    commit_secret=commit_secret,
                    psks=self._psks([p for _, p, _ in resolved]),
                    init_secret=g._secrets.init_secret if init_secret is None else init_secret,
                ).confirmation_tag
            else:
                confirmation_tag = cs.random(cs.hash_len)
        auth = AuthenticatedContent(
            wire_format=wire_format,
            content=content,
            auth=FramedContentAuthData(signature=sig, confirmation_tag=confirmation_tag),
        )
        return self.wrap(auth, **wrap)

    # -- external commits (§12.4.3.2) ---------------------------------------------------------

    def external_init(self) -> tuple[ExternalInit, bytes]:
        """A fresh ExternalInit to our epoch's external_pub and the init_secret it gives (§8.3)."""
        cs = self.cs
        _, pub = external_key_pair(cs, self.g._secrets.external_secret)
        enc, hctx = cs.hpke.setup_sender(0, pub, b"", cs.random(cs.hpke_sk_len))
        return ExternalInit(kem_output=enc), hctx.export(_EXTERNAL_INIT_LABEL, cs.hash_len)

    def external_commit(
        self,
        joiner: Client,
        proposals: Sequence[Item] | None = None,
        *,
        path: bool = True,
        key: bytes | None = None,
        leaf_template: LeafNode | None = None,
        leaf_changes: dict[str, Any] | None = None,
        init_secret: bytes | None = None,
        wire_format: int = PUBLIC,
    ) -> bytes:
        """An external commit by ``joiner`` into our group, built from our view of it (what a
        GroupInfo gives). ``proposals=None`` means one fresh ExternalInit; otherwise pass the
        ``init_secret`` that :meth:`external_init` gave with the ExternalInit used (without it
        the confirmation tag is wrong). The signature is by ``key`` (default: the joiner's)."""
        g, cs = self.g, self.cs
        if proposals is None:
            ext, init_secret = self.external_init()
            proposals = [ext]
        if init_secret is None:
            init_secret = g._secrets.init_secret
        snd = Sender.new_member_commit()
        resolved = [self._resolve(i, snd) for i in proposals]
        diff, _, extensions, ok = self._apply([(p, s) for _, p, s in resolved])
        update_path: UpdatePath | None = None
        commit_secret: bytes | None = None
        ctx = GroupContext(
            cipher_suite=cs.suite_id,
            group_id=g.group_id,
            epoch=g.epoch + 1,
            tree_hash=b"",
            confirmed_transcript_hash=g._context.confirmed_transcript_hash,
            extensions=extensions,
        )
        if path:
            me = diff.add_external_leaf_slot()
            template = leaf_template or joiner.key_package(NOW).leaf_node
            prepared = prepare_update_path(
                cs, diff, me, template, joiner.signature_private_key, g.group_id
            )
            if leaf_changes:
                prepared = _change_leaf(
                    cs, diff, prepared, joiner.signature_private_key, g.group_id, leaf_changes
                )
            ctx = replace(ctx, tree_hash=diff.tree_hash())
            update_path = prepared.encrypt(cs, diff, ctx.to_bytes())
            commit_secret = prepared.commit_secret
        ctx = replace(ctx, tree_hash=diff.tree_hash())
        body = Commit(proposals=tuple(por for por, _, _ in resolved), path=update_path)
        content = self.framed(body, sender=snd)
        sig = sign_framed_content(
            cs,
            joiner.signature_private_key if key is None else key,
            wire_format,
            content,
            g._context,
        )
        tag = cs.random(cs.hash_len)
        if ok:
            tag = next_epoch(
                cs,
                interim_transcript_hash=g._interim,
                wire_format=wire_format,
                content=content,
                signature=sig,
                context=ctx,
                commit_secret=commit_secret,
                psks=self._psks([p for _, p, _ in resolved]),
                init_secret=init_secret,
            ).confirmation_tag
        auth = AuthenticatedContent(
            wire_format=wire_format,
            content=content,
            auth=FramedContentAuthData(signature=sig, confirmation_tag=tag),
        )
        return to_message(PublicMessage(content=content, auth=auth.auth, membership_tag=None))

    # -- GroupInfo (§12.4.3) ------------------------------------------------------------------

    def group_info(
        self,
        *,
        with_tree: bool = True,
        external_pub: bool = True,
        key: bytes | None = None,
        sign: bool = True,
        **changes: Any,
    ) -> GroupInfo:
        """A GroupInfo of our current epoch signed by us; ``changes`` replace GroupInfo fields
        (``group_context``, ``confirmation_tag``, ``signer``, ``extensions``) before signing."""
        g, cs = self.g, self.cs
        exts: list[Extension] = []
        if with_tree:
            exts.append(
                Extension(
                    extension_type=ExtensionType.ratchet_tree,
                    extension_data=g._tree.encode_tree(),
                )
            )
        if external_pub:
            _, pub = external_key_pair(cs, g._secrets.external_secret)
            exts.append(ExternalPub(external_pub=pub).to_extension())
        gi = GroupInfo(
            group_context=g._context,
            extensions=tuple(exts),
            confirmation_tag=g._confirmation_tag,
            signer=self.me,
        )
        gi = replace(gi, **changes)
        if sign:
            gi = gi.sign(cs, self.sk if key is None else key)
        return gi


@dataclass
class WelcomeForge:
    """The ingredients of a Welcome for ``joiner``: ``adder`` has just merged a commit adding
    ``key_package`` without a path (so the joiner needs no path secret); ``joiner_secret`` is
    that epoch's, read from the staged commit before the merge scrubbed it (§9.2)."""

    adder: Group
    joiner: Client
    key_package: KeyPackage
    joiner_secret: bytes = field(repr=False)

    @classmethod
    def make(cls, adder: Group, joiner: Client) -> WelcomeForge:
        kp = joiner.key_package(NOW)
        adder.commit(add=[kp], path=False, now=NOW)
        assert adder._pending is not None
        js = adder._pending[0].secrets.joiner_secret
        adder.merge_pending_commit()
        return cls(adder=adder, joiner=joiner, key_package=kp, joiner_secret=js)

    @property
    def cs(self) -> CipherSuite:
        return self.adder.suite

    def tree(self) -> RatchetTree:
        return self.adder._tree

    def group_info(self, **kw: Any) -> GroupInfo:
        return Forger(self.adder).group_info(external_pub=False, **kw)

    def welcome(
        self,
        gi: GroupInfo | None = None,
        *,
        new_member: bytes | None = None,
        cipher_suite: int | None = None,
        joiner_secret: bytes | None = None,
        path_secret: bytes | None = None,
        psks: Sequence[tuple[PreSharedKeyID, bytes]] = (),
        init_key: bytes | None = None,
        retag: bool = False,
        group_info_secret: bytes | None = None,
    ) -> bytes:
        """The Welcome, with any one ingredient replaced. With ``retag`` the GroupInfo's
        confirmation tag is recomputed (and the GroupInfo re-signed by the adder) from the
        joiner secret and ``psks``, as a joiner derives it (§8, §12.4.3.1).
        ``group_info_secret`` encrypts the GroupInfo under another welcome secret."""
        cs = self.cs
        gi = self.group_info() if gi is None else gi
        js = self.joiner_secret if joiner_secret is None else joiner_secret
        psk = psk_secret(cs, list(psks)) if psks else None
        ws = welcome_secret(cs, js, psk)
        if retag:
            ctx = gi.group_context
            secrets = epoch_secrets_from_joiner(cs, js, psk, ctx.to_bytes())
            tag = make_confirmation_tag(cs, secrets.confirmation_key, ctx.confirmed_transcript_hash)
            gi = replace(gi, confirmation_tag=tag).sign(cs, self.adder.client.signature_private_key)
        gi_secret = ws if group_info_secret is None else group_info_secret
        encrypted_gi = encrypt_group_info(cs, gi_secret, gi)
        gs = GroupSecrets(
            joiner_secret=js,
            path_secret=PathSecret(path_secret=path_secret) if path_secret is not None else None,
            psks=tuple(pid for pid, _ in psks),
        )
        kp = self.key_package
        ct = encrypt_group_secrets(
            cs, kp.init_key if init_key is None else init_key, encrypted_gi, gs
        )
        entry = EncryptedGroupSecrets(
            new_member=kp.ref(cs) if new_member is None else new_member,
            encrypted_group_secrets=ct,
        )
        w = Welcome(
            cipher_suite=cs.suite_id if cipher_suite is None else cipher_suite,
            secrets=(entry,),
            encrypted_group_info=encrypted_gi,
        )
        return to_message(w)
