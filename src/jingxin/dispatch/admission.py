"""Admission of campaign rows: the tenant's policy rules and the batch decision per chunk.

Loads what policy needs from the store (contact state of the chunk's numbers and their
contact-ledger rows) and runs :func:`jingxin.policy.batch.decide_batch` over the chunk.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING

import pyarrow as pa
from sqlalchemy import select

from jingxin.data.store.engine import Store, store_errors
from jingxin.errors import SpecError

if TYPE_CHECKING:
    from jingxin.dispatch.campaign import CampaignSpec
    from jingxin.policy.config import PolicyConfig

CHUNK = 500
EPOCH = datetime(2000, 1, 1, tzinfo=UTC)


def policy_for(store: Store, *, spec: CampaignSpec) -> tuple[PolicyConfig, str | None]:
    """The tenant's rules and signature; an unknown tenant is a SpecError."""
    from jingxin.data.store.tenants import ensure_default_tenant, get_tenant
    from jingxin.policy.config import PolicyConfig

    with store.transaction() as session:
        tenant = (ensure_default_tenant(session) if spec.tenant == "default"
                  else get_tenant(session, tenant_id=spec.tenant))  # fmt: skip
        if tenant is None:
            raise SpecError(f"tenant: unknown tenant {spec.tenant!r} (create it first)")
        own = dict(tenant.settings.get("policy", {})) if tenant.settings else {}
        defaults = {"implied_consent": tenant.implied_consent,
                    "default_timezone": tenant.timezone}  # fmt: skip
        signature = spec.signature if spec.signature is not None else tenant.signature
    return PolicyConfig.build({spec.tenant: own}, defaults=defaults), signature


def decide_chunk(
    store: Store, *, spec: CampaignSpec, campaign_id: int,
    rows: Sequence[tuple[str, str, int]], config: PolicyConfig, now: datetime,
) -> list[tuple[str, datetime | None, str]]:  # fmt: skip
    """(outcome, send_at, reasons) for each (msisdn, text, parts) row, in order."""
    from jingxin.data.store.contact import load_contact_states
    from jingxin.policy.batch import decide_batch

    if not rows:
        return []
    msisdns = [r[0] for r in rows]
    with store.sessions() as session:
        stored = load_contact_states(session, msisdns=msisdns, tenant_id=spec.tenant)
    keys = [f"campaign:{campaign_id}:{m}" for m in msisdns]
    table = _batch_table(spec, campaign_id, msisdns, keys, stored, now)
    decided = decide_batch(
        table, now=now, config=config, ledger=_ledger(store, msisdns)
    )
    return list(zip(decided.column("outcome").to_pylist(), decided.column("send_at").to_pylist(),
                    decided.column("reasons").to_pylist(), strict=True))  # fmt: skip


def _batch_table(spec, campaign_id, msisdns, keys, stored, now) -> pa.Table:
    """The policy batch in columns; only numbers the store knows something about go through
    the per-row state view (most of an audience is clean: constant columns)."""
    from jingxin.data.store.contact import ContactState as StoreState
    from jingxin.domain.candidate import Candidate
    from jingxin.policy.columns import BATCH_SCHEMA, VIEW_COLUMNS
    from jingxin.policy.localtime import from_us, to_us
    from jingxin.policy.state import ContactState, StateView, state_view

    n = len(msisdns)
    default = StateView()
    view = {f.name: [getattr(default, f.name, None)] * n for f in VIEW_COLUMNS}
    now_us = to_us(now)
    for i, msisdn in enumerate(msisdns):
        known = stored.get(msisdn)
        if known is None or known == StoreState(msisdn=msisdn):
            continue
        candidate = Candidate(
            msisdn, spec.tenant, spec.category, "campaign", keys[i], campaign_id
        )
        facts = state_view(candidate, _policy_state(ContactState, known), now_us)
        for name, values in view.items():
            if name == "last_complaint_at":
                us = facts.last_complaint_us
                values[i] = None if us is None else from_us(us)
            else:
                values[i] = getattr(facts, name)
    columns = {
        "msisdn": msisdns, "tenant_id": [spec.tenant] * n, "category": [spec.category] * n,
        "source": ["campaign"] * n, "source_id": [campaign_id] * n, "priority": [0] * n,
        "score": [0.0] * n, "wanted_at": [spec.start_at] * n, "idempotency_key": keys, **view,
    }  # fmt: skip
    return pa.table(columns, schema=BATCH_SCHEMA)


def _policy_state(cls, stored):
    """The store's ContactState in the policy package's shape. The store keeps active
    marks only, without times: they are dated at the epoch, i.e. in force now."""
    from jingxin.policy.state import BlacklistMark, ConsentMark, OptOutMark

    return cls(
        msisdn=stored.msisdn, in_service=stored.in_service, invalid_since=stored.invalid_since,
        blacklist=tuple(BlacklistMark(t, EPOCH) for t in stored.blacklisted_by),
        consents=tuple(ConsentMark(t, c, EPOCH) for t, c in stored.consents),
        opt_outs=tuple(OptOutMark(t, c, EPOCH) for t, c in stored.opt_outs),
        complaint_sensitive=stored.complaint_sensitive,
        last_complaint_at=stored.last_complaint_at, timezone=stored.timezone,
        roaming_country=stored.roaming_country,
    )  # fmt: skip


def _ledger(store: Store, msisdns: Sequence[str]) -> pa.Table:
    from jingxin.data.store.models import LedgerEntry
    from jingxin.policy.columns import LEDGER_SCHEMA

    rows: dict[str, list] = {f.name: [] for f in LEDGER_SCHEMA}
    with store_errors("loading the contact ledger"), store.sessions() as session:
        for start in range(0, len(msisdns), CHUNK):
            query = select(LedgerEntry.msisdn, LedgerEntry.category, LedgerEntry.campaign_id,
                           LedgerEntry.local_date).where(
                LedgerEntry.msisdn.in_(msisdns[start : start + CHUNK]))  # fmt: skip
            for msisdn, category, campaign, day in session.execute(query):
                for name, value in zip(
                    rows, (msisdn, category, campaign, day), strict=True
                ):
                    rows[name].append(value)
    return pa.table(rows, schema=LEDGER_SCHEMA)
