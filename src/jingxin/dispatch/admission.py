"""Admission of campaign rows: the tenant's policy rules and the batch decision per chunk.

A chunk is decided exactly as ``jingxin policy batch`` decides: the candidates go through
:func:`jingxin.policy.state_store.load_batch` (contact state as of the decision time - an
opt-out, consent or blacklist entry dated later does not apply yet - and the ledger rows
the caps can reach), then :func:`jingxin.policy.batch.decide_batch`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
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
    from jingxin.policy.state_store import load_config

    with store.transaction() as session:
        tenant = (ensure_default_tenant(session) if spec.tenant == DEFAULT_TENANT_ID
                  else get_tenant(session, tenant_id=spec.tenant))  # fmt: skip
        if tenant is None:
            raise SpecError(f"tenant: unknown tenant {spec.tenant!r} (create it first)")
        signature = spec.signature if spec.signature is not None else tenant.signature
        config = load_config(session, defaults=defaults)
    return config, signature


def decide_chunk(
    store: Store, *, spec: CampaignSpec, campaign_id: int,
    rows: Sequence[tuple[str, str, int]], config: PolicyConfig, now: datetime,
) -> list[tuple[str, datetime | None, str]]:  # fmt: skip
    """(outcome, send_at, reasons) for each (msisdn, text, parts) row, in order."""
    from jingxin.policy.batch import decide_batch
    from jingxin.policy.state_store import load_batch

    if not rows:
        return []
    candidates = candidate_table(spec, campaign_id, [r[0] for r in rows])
    with store.sessions() as session:
        table, ledger = load_batch(session, candidates=candidates, now=now)
    decided = decide_batch(table, now=now, config=config, ledger=ledger)
    return list(zip(decided.column("outcome").to_pylist(), _instants(decided.column("send_at")),
                    decided.column("reasons").to_pylist(), strict=True))  # fmt: skip


def _instants(column: pa.ChunkedArray) -> list[datetime | None]:
    """A UTC timestamp column as datetimes. Arrow's own to_pylist goes through the time
    zone database per value (most of the chunk's decision time); a campaign has few
    distinct send instants, so each is built once."""
    from jingxin.policy.localtime import from_us

    made: dict[int, datetime] = {}
    return [None if us is None else made.get(us) or made.setdefault(us, from_us(us))
            for us in column.cast(pa.int64()).to_pylist()]  # fmt: skip


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
