"""Turning a batch table into numpy columns: conformed types, codes, per-tenant settings.

Strings become dictionary codes (tenant, category, msisdn, idempotency key, zone); each
tenant's :class:`~jingxin.policy.config.TenantRules` become small lookup arrays indexed by
tenant code, broadcast to rows with one ``take``. Nulls get the meaning the single form
gives the same field: a null boolean state column is the state default, a null
``wanted_at`` is "now", a null priority or score is 0.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from jingxin.domain.candidate import Source
from jingxin.errors import InputError
from jingxin.policy.columns import BATCH_SCHEMA, LEDGER_SCHEMA
from jingxin.policy.config import PolicyConfig, TenantRules
from jingxin.policy.localtime import US_PER_DAY, day_of_date
from jingxin.policy.rules import CN_MOBILE_PATTERN, Frame, category_code
from jingxin.policy.vector_caps import Ledger
from jingxin.policy.vector_time import TimingParams, ZoneClock, blackout_key, resolve_zones

STATE_DEFAULTS = {"in_service": True}


@dataclass(frozen=True, slots=True)
class Encoded:
    n: int
    frame: Frame
    category: np.ndarray
    tenant_idx: np.ndarray
    msisdn_id: np.ndarray
    msisdn_values: pa.Array
    key_code: np.ndarray
    key_valid: np.ndarray
    key_rank: np.ndarray
    priority: np.ndarray
    score: np.ndarray
    wanted: np.ndarray  # for ranking: the wanted instant, or now
    earliest: np.ndarray  # max(now, wanted): the first instant the row may go
    campaign: np.ndarray
    has_campaign: np.ndarray
    zone_idx: np.ndarray
    clock: ZoneClock
    timing: TimingParams
    blackout_keys: np.ndarray
    category_caps: np.ndarray  # (tenants + 1, 3 categories, 3 periods), -1: no cap
    campaign_caps: np.ndarray  # (tenants + 1, 3 periods)


REQUIRED = frozenset({"msisdn", "tenant_id", "category", "source", "idempotency_key"})


def conform(
    table: pa.Table, schema: pa.Schema = BATCH_SCHEMA, *, required: frozenset[str] = REQUIRED
) -> pa.Table:
    """Cast to ``schema``; a missing optional column becomes nulls, a missing required
    column or an uncastable one is an :class:`InputError` naming it."""
    columns = []
    for field in schema:
        if field.name not in table.column_names:
            if field.name in required:
                raise InputError(f"batch table: missing column {field.name!r}")
            columns.append(pa.nulls(table.num_rows, field.type))
            continue
        column = table.column(field.name)
        try:
            columns.append(column.cast(field.type) if column.type != field.type else column)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
            raise InputError(
                f"batch table: column {field.name!r} is {column.type}, expected {field.type}: {exc}"
            ) from exc
    chunked = [pa.chunked_array(c) if isinstance(c, pa.Array) else c for c in columns]
    return pa.Table.from_arrays(chunked, schema=schema)


def _array(table: pa.Table, name: str) -> pa.Array:
    return table.column(name).combine_chunks()


def _codes(array: pa.Array) -> tuple[np.ndarray, list]:
    """Dictionary codes (-1 for null) and the distinct values."""
    encoded = pc.dictionary_encode(array)
    codes = encoded.indices.fill_null(-1).to_numpy(zero_copy_only=False).astype(np.int64)
    return codes, encoded.dictionary.to_pylist()


def _bools(table: pa.Table, name: str) -> np.ndarray:
    default = STATE_DEFAULTS.get(name, False)
    return _array(table, name).fill_null(default).to_numpy(zero_copy_only=False).astype(bool)


def _micros(table: pa.Table, name: str, fill: int) -> tuple[np.ndarray, np.ndarray]:
    array = _array(table, name).cast(pa.int64())
    present = array.is_valid().to_numpy(zero_copy_only=False)
    return array.fill_null(fill).to_numpy(zero_copy_only=False), present


def _numpy(array: pa.Array, fill, dtype) -> np.ndarray:
    return pc.fill_null(array, fill).to_numpy(zero_copy_only=False).astype(dtype)


def _limits(values: tuple[int | None, ...]) -> list[int]:
    return [-1 if v is None else v for v in values]


@dataclass(frozen=True, slots=True)
class TenantTables:
    """Each distinct tenant's rules as arrays; the last entry stands for unknown tenants."""

    rules: list[TenantRules]
    known: np.ndarray
    category_caps: np.ndarray
    campaign_caps: np.ndarray
    blackout_keys: np.ndarray

    @classmethod
    def of(cls, found: list[TenantRules | None]) -> TenantTables:
        rules = [r or TenantRules() for r in found]
        categories = ("otp", "notification", "marketing")
        cats = [[_limits(r.category_caps(c)) for c in categories] for r in rules]
        camps = [_limits(r.campaign_caps.limits()) for r in rules]
        blackout = [(i, day_of_date(d)) for i, r in enumerate(found) if r for d in r.blackout_dates]
        keys = blackout_key(
            np.array([i for i, _ in blackout], dtype=np.int64),
            np.array([d for _, d in blackout], dtype=np.int64),
        )
        return cls(
            rules=rules,
            known=np.array([r is not None for r in found], dtype=bool),
            category_caps=np.array(cats, dtype=np.int64).reshape(len(rules), 3, 3),
            campaign_caps=np.array(camps, dtype=np.int64).reshape(len(rules), 3),
            blackout_keys=np.sort(keys),
        )

    def per_row(self, tenant_idx: np.ndarray, attribute, dtype) -> np.ndarray:
        return np.array([attribute(r) for r in self.rules], dtype=dtype)[tenant_idx]


def _codes_or_last(array: pa.Array) -> tuple[np.ndarray, list]:
    """Dictionary codes with null mapped to one past the last value (which is None)."""
    codes, values = _codes(array)
    return np.where(codes < 0, len(values), codes), values + [None]


def _timing(tenants: TenantTables, tenant_idx: np.ndarray) -> TimingParams:
    def row(attribute, dtype):
        return tenants.per_row(tenant_idx, attribute, dtype)

    return TimingParams(
        quiet_start=row(lambda r: r.quiet_start_minute, np.int64),
        quiet_end=row(lambda r: r.quiet_end_minute, np.int64),
        notification_quiet=row(lambda r: r.notification_quiet_hours, bool),
        day_start=row(lambda r: r.day_start_minute, np.int64),
        blackout_reject=row(lambda r: r.blackout_action == "reject", bool),
        blackout_horizon=row(lambda r: r.blackout_horizon_days, np.int64),
    )


def _frame(table, *, category, well_formed, tenants, tenant_idx, now_us) -> Frame:
    complaint_us, has_complaint = _micros(table, "last_complaint_at", 0)
    shape = pc.match_substring_regex(_array(table, "msisdn"), CN_MOBILE_PATTERN)
    return Frame(
        category=category,
        well_formed=well_formed,
        tenant_known=tenants.known[tenant_idx],
        number_shape_ok=_numpy(shape, False, bool),
        implied_consent=tenants.per_row(tenant_idx, lambda r: r.implied_consent, bool),
        cooloff_us=tenants.per_row(tenant_idx, lambda r: r.cooloff_days * US_PER_DAY, np.int64),
        **{name: _bools(table, name) for name in BOOLEAN_STATE},
        last_complaint_us=complaint_us,
        has_complaint=has_complaint,
        now_us=now_us,
    )


BOOLEAN_STATE = (
    "in_service",
    "invalid",
    "blacklisted",
    "key_used",
    "opted_out",
    "has_consent",
    "complaint_sensitive",
)


def encode(table: pa.Table, *, config: PolicyConfig, now_us: int) -> Encoded:
    """The batch as numpy columns, with every null given its single-form meaning."""
    table = conform(table)
    tenant_idx, tenant_values = _codes_or_last(_array(table, "tenant_id"))
    tenants = TenantTables.of([config.rules_for(t) for t in tenant_values])
    cat_idx, cat_values = _codes_or_last(_array(table, "category"))
    category = np.array([category_code(v) for v in cat_values], dtype=np.int64)[cat_idx]
    msisdn = pc.dictionary_encode(_array(table, "msisdn"))
    keys, source = _array(table, "idempotency_key"), _array(table, "source")
    key_valid = _numpy(pc.utf8_length(keys), 0, np.int64) > 0
    well_formed = (
        key_valid
        & (_numpy(pc.utf8_length(source), 0, np.int64) > 0)
        & (category >= 0)
        & msisdn.indices.is_valid().to_numpy(zero_copy_only=False)
    )
    wanted, _ = _micros(table, "wanted_at", now_us)
    score = _numpy(_array(table, "score"), 0.0, np.float64)
    campaign = _array(table, "source_id")
    is_campaign = pc.equal(source, Source.CAMPAIGN.value)
    roaming_idx, roaming_values = _codes_or_last(_array(table, "roaming_country"))
    tz_idx, tz_values = _codes_or_last(_array(table, "timezone"))
    zone_idx, zones = resolve_zones(
        roaming_idx,
        roaming_values,
        tz_idx,
        tz_values,
        [r.default_timezone for r in tenants.rules],
        tenant_idx,
    )
    return Encoded(
        n=table.num_rows,
        frame=_frame(
            table,
            category=category,
            well_formed=well_formed,
            tenants=tenants,
            tenant_idx=tenant_idx,
            now_us=now_us,
        ),
        category=category,
        tenant_idx=tenant_idx,
        msisdn_id=_numpy(msisdn.indices, -1, np.int64),
        msisdn_values=msisdn.dictionary,
        key_code=_codes(keys)[0],
        key_valid=key_valid,
        key_rank=pc.rank(keys, sort_keys="ascending", tiebreaker="dense")
        .to_numpy()
        .astype(np.int64),
        priority=_numpy(_array(table, "priority"), 0, np.int64),
        score=np.where(np.isnan(score), -np.inf, score),
        wanted=wanted,
        earliest=np.maximum(wanted, now_us),
        campaign=_numpy(campaign, 0, np.int64),
        has_campaign=campaign.is_valid().to_numpy(zero_copy_only=False)
        & _numpy(is_campaign, False, bool),
        zone_idx=zone_idx,
        clock=ZoneClock(zones),
        timing=_timing(tenants, tenant_idx),
        blackout_keys=tenants.blackout_keys,
        category_caps=tenants.category_caps,
        campaign_caps=tenants.campaign_caps,
    )


def encode_ledger(ledger: pa.Table | None, enc: Encoded) -> Ledger:
    """The ledger's rows about this batch's subscribers, as codes and day numbers."""
    if ledger is None:
        ledger = LEDGER_SCHEMA.empty_table()
    ledger = conform(ledger, LEDGER_SCHEMA, required=frozenset(LEDGER_SCHEMA.names))
    ids = pc.index_in(_array(ledger, "msisdn"), value_set=enc.msisdn_values)
    cat_code, cat_values = _codes(_array(ledger, "category"))
    cat_map = np.array([category_code(v) for v in cat_values] + [-1], dtype=np.int64)
    category = cat_map[np.where(cat_code < 0, len(cat_values), cat_code)]
    day = _array(ledger, "local_date").cast(pa.int32())
    keep = (
        ids.is_valid().to_numpy(zero_copy_only=False)
        & (category >= 0)
        & day.is_valid().to_numpy(zero_copy_only=False)
    )
    campaign = _array(ledger, "campaign_id")
    return Ledger(
        msisdn_id=ids.fill_null(0).to_numpy(zero_copy_only=False).astype(np.int64)[keep],
        category=category[keep],
        campaign=campaign.fill_null(0).to_numpy(zero_copy_only=False).astype(np.int64)[keep],
        has_campaign=campaign.is_valid().to_numpy(zero_copy_only=False)[keep],
        day=day.fill_null(0).to_numpy(zero_copy_only=False).astype(np.int64)[keep],
    )
