"""The group state machine of ``test_group_stateful.py`` in post-quantum suites: one hybrid
(X-Wing) and one pure ML-KEM suite (openmls profile ids).

Examples: ``MLS_PQ_STATEFUL_EXAMPLES`` (default 40; CI sets ``MLS_STATEFUL_EXAMPLES=300`` for
suite 1, and a PQ step costs the same protocol work plus larger KEM operations).
"""

from __future__ import annotations

import os

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import initialize, invariant

from mls.crypto import pq
from mls.group import GroupConfig
from tests.harness import GroupHarness
from tests.test_group_stateful import GroupMachine

EXAMPLES = int(os.environ.get("MLS_PQ_STATEFUL_EXAMPLES", "40"))
_WHY = pq.mlkem_unavailable() or pq.mldsa_unavailable()
if _WHY is not None and os.environ.get("CI") == "true":
    raise RuntimeError(f"CI=true but post-quantum primitives are unavailable: {_WHY}")
pytestmark = pytest.mark.skipif(
    _WHY is not None, reason=f"post-quantum primitives unavailable: {_WHY}"
)
_SETTINGS = settings(
    max_examples=EXAMPLES,
    stateful_step_count=20,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


class XWingMachine(GroupMachine):
    suite = 0x004F  # MLS_128_MLKEM768X25519_AES128GCM_SHA256_Ed25519 (draft TBD1)

    @initialize(size=st.integers(1, 4), private=st.booleans())
    def setup(self, size: int, private: bool) -> None:
        # The machine delivers application messages after later commits, also after their
        # sender's removal: the delivery the "flag" policy is for (the default "refuse" raises
        # RemovedSender for them, which the inherited rules do not expect).
        config = GroupConfig(
            private_handshake=private, past_epochs=1, removed_sender_messages="flag"
        )
        self.h = GroupHarness.with_members(size, suite=self.suite, config=config)

    @invariant()
    def in_the_pq_suite(self) -> None:
        if hasattr(self, "h"):
            assert self.h.any_member().cipher_suite == self.suite


class MlKemMachine(XWingMachine):
    suite = 0x0051  # MLS_192_MLKEM768_AES256GCM_SHA384_MLDSA65 (draft TBD10)


XWingMachine.TestCase.settings = _SETTINGS
MlKemMachine.TestCase.settings = _SETTINGS
TestXWingConvergence = XWingMachine.TestCase
TestMlKemConvergence = MlKemMachine.TestCase
