"""Admission of campaign rows: the tenant's policy rules and the batch decision per chunk.

A chunk is decided exactly as ``jingxin policy batch`` decides: the candidates go through
:func:`jingxin.data.store.policy_state.load_batch` (contact state as of the decision time - an
opt-out, consent or blacklist entry dated later does not apply yet - and the ledger rows
the caps can reach), then :func:`jingxin.policy.batch.decide_batch`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractContextManager, nullcontext
from datetime import datetime
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from jingxin.data.store.engine import Store
from jingxin.errors import SpecError

if TYPE_CHECKING:
    from jingxin.dispatch.campaign import CampaignSpec
    from jingxin.policy.config import PolicyConfig


def policy_for(
    store: Store, *, spec: CampaignSpec, defaults: Mapping[str, Any] | None = None
) -> tuple[PolicyConfig, str | None]:
    """Every tenant's rules (``defaults`` = the ``[policy]`` settings, then each tenant's
    own: the same config ``jingxin policy batch`` decides with) and the campaign's
    signature. An unknown tenant is a SpecError; the operator's own tenant,
    :data:`DEFAULT_TENANT_ID`, is created on first use."""
    from jingxin.data.store.models import DEFAULT_TENANT_ID
    from jingxin.data.store.tenants import ensure_default_tenant, get_tenant
    from jingxin.data.store.policy_state import load_config

    with store.transaction() as session:
        tenant = (ensure_default_tenant(session) if spec.tenant == DEFAULT_TENANT_ID
                  else get_tenant(session, tenant_id=spec.tenant))  # fmt: skip
        if tenant is None:
            raise SpecError(f"tenant: unknown tenant {spec.tenant!r} (create it first)")
        signature = spec.signature if spec.signature is not None else tenant.signature
        config = load_config(session, defaults=defaults)
    return config, signature


def decide_chunk(
    store: Store, *, spec: CampaignSpec, campaign_id: int, msisdns: Sequence[str],
    config: PolicyConfig, now: datetime,
    timing: Callable[[str], AbstractContextManager[None]] = lambda _stage: nullcontext(),
) -> pa.Table:  # fmt: skip
    """The decision (``outcome``, ``send_at``, ``reasons``, ...) of each number, in order.
    ``timing(stage)`` wraps the contact-state load (``state``) and the decision
    (``decide``), so the campaign summary can say where its time went."""
    from jingxin.policy.batch import decide_batch
    from jingxin.data.store.policy_state import load_batch

    candidates = candidate_table(spec, campaign_id, msisdns)
    with timing("state"), store.sessions() as session:
        table, ledger = load_batch(session, candidates=candidates, now=now)
    with timing("decide"):
        return decide_batch(table, now=now, config=config, ledger=ledger)


def candidate_table(spec: CampaignSpec, campaign_id: int, msisdns: Sequence[str]) -> pa.Table:
    """The chunk as policy candidates (idempotency key ``campaign:<id>:<msisdn>``)."""
    from jingxin.policy.columns import CANDIDATE_FIELDS

    n = len(msisdns)
    columns = {
        "msisdn": list(msisdns), "tenant_id": [spec.tenant] * n,
        "category": [spec.category] * n, "source": ["campaign"] * n,
        "source_id": [campaign_id] * n, "priority": [0] * n, "score": [0.0] * n,
        "wanted_at": [spec.start_at] * n,
        "idempotency_key": [f"campaign:{campaign_id}:{m}" for m in msisdns],
    }  # fmt: skip
    return pa.table(columns, schema=pa.schema(CANDIDATE_FIELDS))
