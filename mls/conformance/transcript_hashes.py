"""Handler for ``mlswg/transcript-hashes.json`` (RFC 9420 §6.1, §8.2).

Decodes the AuthenticatedContent (it must carry a Commit), checks its confirmation tag against
``confirmation_key`` and the new confirmed transcript hash, and both transcript hashes.
"""

from __future__ import annotations

from typing import Any

from mls.codec import decode, encode
from mls.conformance.core import CaseFailed, expect_eq, h, suite_for
from mls.constants import ContentType
from mls.errors import BadConfirmationTag
from mls.framing.content import AuthenticatedContent
from mls.schedule.key_schedule import confirmation_tag, verify_confirmation_tag
from mls.schedule.transcript import ConfirmedTranscriptHashInput, next_transcript_hashes


def check(case: Any) -> None:
    cs = suite_for(case["cipher_suite"])
    ac = decode(AuthenticatedContent, h(case["authenticated_content"]))
    if ac.content.content_type != ContentType.commit:
        raise CaseFailed(f"authenticated_content has content type {ac.content.content_type}")
    tag = ac.auth.confirmation_tag
    if tag is None:
        raise CaseFailed("commit without a confirmation tag")
    hash_input = ConfirmedTranscriptHashInput(
        wire_format=ac.wire_format, content=ac.content, signature=ac.auth.signature
    )
    # Framing's own encoding of the same input must agree with ours.
    expect_eq(
        "ConfirmedTranscriptHashInput", encode(hash_input), ac.confirmed_transcript_hash_input()
    )
    confirmed, interim = next_transcript_hashes(
        cs,
        h(case["interim_transcript_hash_before"]),
        wire_format=ac.wire_format,
        content=ac.content,
        signature=ac.auth.signature,
        confirmation_tag=tag,
    )
    expect_eq(
        "confirmed_transcript_hash_after", confirmed, h(case["confirmed_transcript_hash_after"])
    )
    expect_eq("interim_transcript_hash_after", interim, h(case["interim_transcript_hash_after"]))
    key = h(case["confirmation_key"])
    try:
        verify_confirmation_tag(cs, key, confirmed, tag)
    except BadConfirmationTag as exc:
        raise CaseFailed("confirmation_tag does not verify") from exc
    expect_eq("confirmation_tag", confirmation_tag(cs, key, confirmed), tag)
