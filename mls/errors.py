"""The single exception hierarchy of ``mls``.

Every error the library raises is an :class:`MLSError`. The tree below splits them by cause:

- :class:`PeerError`: the *input* was bad (a peer, a server or a file sent it). The message is
  rejected and every group, tree and key is left exactly as it was.

  - :class:`DecodeError`: the bytes do not parse (truncated, trailing bytes, bad varint, ...).
  - :class:`AuthError`: a cryptographic check failed (signature, MAC, AEAD tag, HPKE open).
  - :class:`ValidationError`: well-formed and authentic, but breaks a rule of RFC 9420.

- :class:`UsageError`: the caller asked for something the API refuses (local misuse).
- :class:`UnsupportedError`: a cipher suite, credential type or feature we do not implement.
- :class:`InternalError`: a bug in this library. Any exception that is *not* an ``MLSError``
  escaping a ``process`` call is a bug too.

Leaves carry the data that explains them. Messages never contain secret material.
"""

from __future__ import annotations


class MLSError(Exception):
    """Root of every error raised by this library."""


# ---------------------------------------------------------------------------------------------
# Errors caused by the input.


class PeerError(MLSError):
    """The input is invalid; reject it and keep the current state."""


class DecodeError(PeerError):
    """The bytes are not a valid TLS-presentation encoding of the expected structure."""


class AuthError(PeerError):
    """A cryptographic verification failed."""


class BadSignature(AuthError):
    """A signature did not verify (RFC 9420 §5.1.2)."""


class BadMembershipTag(AuthError):
    """The membership tag of a PublicMessage is wrong (RFC 9420 §6.2)."""


class BadConfirmationTag(AuthError):
    """The confirmation tag of a commit or GroupInfo is wrong (RFC 9420 §8.1)."""


class DecryptFailed(AuthError):
    """An AEAD or HPKE decryption failed: wrong key, tampered ciphertext or tag."""


class BadSenderData(DecryptFailed):
    """The sender data of a PrivateMessage did not decrypt (RFC 9420 §6.3.2)."""


class ValidationError(PeerError):
    """The input is authentic and well-formed but violates a rule of RFC 9420."""


class InvalidKey(ValidationError):
    """A public key is not a valid point or has the wrong length."""


class WrongEpoch(ValidationError):
    """The message is for an epoch this member cannot process."""

    def __init__(self, message: str, *, expected: int | None = None, got: int | None = None):
        super().__init__(message)
        self.expected = expected
        self.got = got


class WrongGroup(ValidationError):
    """The message names another group."""


class UnknownSender(ValidationError):
    """The sender is not a member, or not a known external sender."""


class BadPadding(ValidationError):
    """Received PrivateMessage padding is not all zero bytes (RFC 9420 §6.3.1)."""


class ReplayedMessage(ValidationError):
    """A message whose ratchet key was already consumed (RFC 9420 §9.2)."""


class GenerationOutOfWindow(ValidationError):
    """A message generation too far behind (already deleted) or too far ahead (DoS bound)."""


class ReuseGuardMismatch(ValidationError):
    """Internal consistency of the reuse guard failed (RFC 9420 §6.3.1)."""


class InvalidContentType(ValidationError):
    """A content type is not allowed in this wire format (e.g. plain application data)."""


class InvalidSender(ValidationError):
    """The sender type is not allowed for this content (RFC 9420 §6, §12.1)."""


# Tree (RFC 9420 §7).


class TreeError(ValidationError):
    """The ratchet tree is invalid."""


class TreeHashMismatch(TreeError):
    """The tree hash does not match the one in the GroupContext or GroupInfo (§7.8)."""


class ParentHashMismatch(TreeError):
    """A parent-hash chain does not verify (§7.9.2)."""


class DuplicateEncryptionKey(TreeError):
    """Two nodes share an HPKE encryption key (§7.3)."""


class DuplicateSignatureKey(TreeError):
    """Two leaves share a signature key (§7.3)."""


class InvalidLeafNode(TreeError):
    """A leaf node breaks a rule of §7.3 (source, lifetime, capabilities, extensions)."""


class UnsupportedCredential(InvalidLeafNode):
    """A credential type is not supported by every member (§7.3, §13.4)."""


class InvalidUnmergedLeaves(TreeError):
    """A parent node's unmerged_leaves list is inconsistent (§7.9.2)."""


class InvalidUpdatePath(TreeError):
    """An UpdatePath has the wrong length or its public keys do not match (§12.4.2)."""


class TreeShapeError(TreeError):
    """The encoded tree has an impossible shape (blank last leaf, wrong node kind, ...)."""


# Proposals and commits (RFC 9420 §12).


class ProposalError(ValidationError):
    """A proposal or a list of proposals breaks a rule of §12.1 or §12.2."""


class DuplicateAdd(ProposalError):
    """Two Adds for the same client, or an Add of an existing member."""


class InvalidRemove(ProposalError):
    """A Remove of a blank or non-existent leaf, or several removes of one leaf."""


class InvalidUpdate(ProposalError):
    """An Update from the committer, or several updates from one leaf."""


class InvalidPSK(ProposalError):
    """A PreSharedKey proposal or PSK id breaks a rule of §8.4 or §12.1.4."""


class InvalidReInit(ProposalError):
    """A ReInit proposal breaks a rule of §12.1.5 or §12.2."""


class InvalidExternalInit(ProposalError):
    """An ExternalInit proposal or external commit breaks a rule of §12.1.6 or §12.4.3.2."""


class InvalidGroupContextExtensions(ProposalError):
    """A GroupContextExtensions proposal breaks a rule of §12.1.7 or §11.1."""


class UnsupportedCapability(ProposalError):
    """A member or joiner does not support a required extension, proposal or credential."""


class MissingProposal(ProposalError):
    """A commit refers to a proposal by reference that this member does not have."""


class CommitError(ValidationError):
    """A commit breaks a rule of §12.4.2."""


class PathRequired(CommitError):
    """The commit has no UpdatePath although its proposals require one (§12.4)."""


class InvalidKeyPackage(ValidationError):
    """A KeyPackage breaks a rule of §10.1."""


class InvalidWelcome(ValidationError):
    """A Welcome or its GroupInfo breaks a rule of §12.4.3.1."""


class NoMatchingKeyPackage(InvalidWelcome):
    """No EncryptedGroupSecrets in the Welcome is addressed to one of our KeyPackages."""


class InvalidGroupInfo(ValidationError):
    """A GroupInfo breaks a rule of §12.4.3."""


class InvalidCredential(ValidationError):
    """The identity provider rejected a credential."""


class InvalidExtension(ValidationError):
    """An extension is malformed, duplicated or not allowed where it appears (§13)."""


class LifetimeError(InvalidLeafNode):
    """A leaf node or KeyPackage is outside its lifetime (§7.2)."""


class MemberRemoved(ValidationError):
    """This member was removed from the group and can no longer process messages."""


# ---------------------------------------------------------------------------------------------
# Errors that are not caused by peer input.


class UsageError(MLSError):
    """The caller asked for something the API refuses."""


class InvalidState(UsageError):
    """The operation is not allowed in the group's current state."""


class UnsupportedError(MLSError):
    """The requested cipher suite, credential type or feature is not implemented."""


class InternalError(MLSError):
    """A bug in this library. Please report it."""


# Leaves added by later layers go below this line (append only).


class DuplicateExtension(InvalidExtension, DecodeError):
    """An extension list holds two extensions of the same type (RFC 9420 §13.4: "Any field
    containing a list of extensions MUST NOT have more than one extension of any given type").

    Raised while decoding, so it is also a :class:`DecodeError`: the list is malformed."""


class MalformedExtension(InvalidExtension, DecodeError):
    """An extension's ``extension_data`` does not parse as the struct its type defines
    (RFC 9420 §13.4, §17.3). Also a :class:`DecodeError`."""


class UnknownKeyID(UnknownSender):
    """No SFrame key for this KID (RFC 9605 §4.4.3): its epoch bits name no epoch we hold (or
    one past its grace period), its sender index is outside the group, or it is our own send-only
    KID (§4.4.1). The application MAY buffer the frame and retry once the key arrives."""

    def __init__(self, message: str, *, kid: int | None = None):
        super().__init__(message)
        self.kid = kid


class TooManyKeyIDs(UnknownKeyID):
    """A frame under a KID new to its epoch, when the epoch already holds the configured maximum
    of receive contexts: no key is created for it (a bound on the memory any member, who knows
    the shared ``base_key`` and can mint any KID, can make a receiver spend; RFC 9605 §7.2)."""


class NonceSpaceExhausted(InvalidState):
    """An SFrame sender has no unused (``base_key``, KID, CTR) left (RFC 9605 §9.1: each MUST be
    used at most once): its CTR reached 2^64 - 1, or its call session no longer fits the KID's
    context bits. A commit (new epoch, new ``base_key``) or a new group is needed."""


class InvalidContent(DecodeError):
    """MIMI content (draft-ietf-mimi-content) that is not deterministic CBOR (§ CBOR Data Model
    and Encoding Restrictions) or does not match the ``mimiContent`` CDDL (Appendix B)."""


class PathSecretMismatch(TreeError):
    """A path secret derives a key pair whose public key is not the one in the tree node it is
    for (RFC 9420 §12.4.3.1: "The private key MUST be the private key that corresponds to the
    public key in the node"; also a private TreeKEM state inconsistent with its tree)."""


class MissingRequiredCapability(InvalidLeafNode):
    """A LeafNode's capabilities omit an extension, proposal or credential type listed in the
    group's ``required_capabilities`` extension (RFC 9420 §7.3, §11.1)."""


class UnsupportedLeafExtension(InvalidLeafNode):
    """A LeafNode carries a non-default extension whose type its own ``capabilities.extensions``
    does not list (RFC 9420 §7.2, §7.3)."""


class InvalidLeafNodeSource(InvalidLeafNode):
    """A LeafNode's ``leaf_node_source`` does not fit where it appears (RFC 9420 §7.3: key_package
    in a KeyPackage, update in an Update, commit in an UpdatePath)."""


class MessageLimitReached(UsageError):
    """An HPKE context's sequence number would overflow (RFC 9180 §5.2 MessageLimitReachedError)."""


class OwnMessage(ReplayedMessage):
    """A PrivateMessage whose sender data names this member's own leaf. A sender deletes each
    key/nonce as it encrypts (RFC 9420 §9.2), so it can never decrypt its own messages: this is
    an echo of one of them (or a forgery). A DS that echoes messages makes this benign."""

    def __init__(self, message: str, *, generation: int | None = None):
        super().__init__(message)
        self.generation = generation


class GroupReinitialized(ValidationError):
    """A handshake message for a group whose ReInit commit was merged (RFC 9420 §11.2: the old
    group MUST NOT be used any more; its members move to the new group)."""


class UnauthorizedProposal(ProposalError):
    """A proposal from outside the group (an ``external`` or ``new_member_proposal`` sender) that
    the group's ``external_proposal_policy`` does not authorize (RFC 9420 §12.1.8: "External
    proposals that are not authorized are considered invalid")."""


class InvalidSuccessor(InvalidCredential):
    """A leaf's new credential is not a valid successor of the one it replaces (RFC 9420 §5.3.1:
    an Update, a commit's path leaf or an external resync may not change who the member is)."""


class DuplicateIdentity(ValidationError):
    """A new or replaced leaf claims the identity of another member (RFC 9420 §5.3.1, §12.2):
    identities stay unique across Adds, Updates and commit path leaves."""


class LifetimeTooLong(LifetimeError):
    """A LeafNode's total lifetime (``not_after - not_before``) exceeds the application's maximum
    (RFC 9420 §7.2: "reject any LeafNode where the total lifetime is longer")."""


class UnlistedExtension(InvalidKeyPackage):
    """A KeyPackage carries a non-default extension its LeafNode's capabilities do not list
    (RFC 9420 §10: "Extensions included in the extensions or leaf_node.extensions fields MUST be
    included in the leaf_node.capabilities field")."""


class RemovedSender(ValidationError):
    """A late application message from a member that a later commit removed, with a generation
    it had not reached when the removal was processed: written after the removal, so refused
    (RFC 9420 §9.2, §12.4.2)."""


class SizeLimitExceeded(ValidationError):
    """An identity, credential, group id or ratchet tree larger than the group's configured
    bound (a denial-of-service and poison-message defence)."""


class RejectedByApplication(ValidationError):
    """A message that ``Group.process`` accepted but the application layer cannot take (e.g. a
    sender identity too long for a MIMI URI, content a storage refuses). Its effects on the group
    (the consumed ratchet key, a merged commit) are kept and stored, and the inbox entry is
    acknowledged: refused once, never retried (no poison message)."""


class InvalidSelfRemove(ProposalError):
    """A SelfRemove proposal (draft-ietf-mls-extensions, "SelfRemove Proposal") broke a rule of
    its own: not in a PublicMessage, by value in a commit, the committer's own, a second one
    of a sender in one epoch or commit, or a Remove/Update of a leaf it removes."""
