"""Policy: may this message go, when, and if not, why - decided purely and kept for audit.

The single form, for triggers and the API::

    decide(candidate, state, now, config) -> Decision

``decide_many`` decides several candidates together (arbitration over a subscriber's
remaining caps); ``jingxin.policy.batch.decide_batch`` is its vectorised twin over Arrow
tables, for campaigns. Policy decides on what it is given: loading contact state
(``jingxin.data.store.policy_state``) and writing the audit (``jingxin.data.store.audit``)
belong to the store's side; ``audit`` here shapes the decisions. See docs/policy.md.
"""

from jingxin.policy.arbitration import decide_many
from jingxin.policy.config import CapLimits, PolicyConfig, TenantRules
from jingxin.policy.decide import decide
from jingxin.policy.state import (
    BlacklistMark,
    ConsentMark,
    ContactMark,
    ContactState,
    OptOutMark,
)

__all__ = [
    "BlacklistMark",
    "CapLimits",
    "ConsentMark",
    "ContactMark",
    "ContactState",
    "OptOutMark",
    "PolicyConfig",
    "TenantRules",
    "decide",
    "decide_many",
]
