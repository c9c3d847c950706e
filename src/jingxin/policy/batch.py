"""The batch form: a whole campaign's candidates decided at once, vectorised.

``decide_batch(table, now=..., config=..., ledger=...)`` takes an Arrow table shaped like
:data:`~jingxin.policy.columns.BATCH_SCHEMA` (candidate fields plus the subscriber's state
columns) and the contact ledger, and returns one decision row per input row
(:data:`~jingxin.policy.columns.DECISION_SCHEMA`). It makes exactly the decisions of
:func:`jingxin.policy.arbitration.decide_many` over the same candidates, without a Python
loop per row: rules are numpy masks (``policy.rules``), timing is ``policy.vector_time``,
caps and arbitration are ``policy.vector_caps``.

A broken row (missing key, unknown category, null tenant, malformed number) gets a reason
code; it never stops the batch. A missing or mistyped *column* is an
:class:`~jingxin.errors.InputError` naming the column.
"""

from __future__ import annotations

from datetime import datetime

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from jingxin.domain.candidate import Reason
from jingxin.policy.batch_frame import Encoded, encode, encode_ledger
from jingxin.policy.codes import factorize, first_occurrences
from jingxin.policy.columns import DECISION_SCHEMA, TS
from jingxin.policy.config import PolicyConfig
from jingxin.policy.localtime import US_PER_DAY, to_us
from jingxin.policy.rules import OTP, RULES
from jingxin.policy.vector_caps import arbitrate, windows
from jingxin.policy.vector_time import plan_times

REASONS = list(Reason)


def bit(reason: Reason) -> np.int32:
    return np.int32(1) << np.int32(REASONS.index(reason))


def decide_batch(
    table: pa.Table, *, now: datetime, config: PolicyConfig, ledger: pa.Table | None = None
) -> pa.Table:
    """Decide every row of ``table`` as of ``now``; rows come back in input order."""
    now_us = to_us(now)
    enc = encode(table, config=config, now_us=now_us)
    n = enc.n
    reject = _eligibility_bits(enc)
    delays = np.zeros(n, dtype=np.int32)
    send = enc.earliest.copy()
    winner = np.full(n, -1, dtype=np.int64)

    order = np.lexsort((np.arange(n), enc.key_rank, enc.wanted, -enc.score, -enc.priority))
    rank = np.empty(n, dtype=np.int64)
    rank[order] = np.arange(n)
    dup = _duplicates(enc, order)
    reject[dup] = bit(Reason.DUPLICATE)

    rows = np.flatnonzero(reject == 0)
    if len(rows):
        row_send, row_delays, blackout = plan_times(
            rows=rows,
            category=enc.category,
            send=enc.earliest,
            zone_idx=enc.zone_idx,
            tenant_idx=enc.tenant_idx,
            params=enc.timing,
            blackout_keys=enc.blackout_keys,
            clock=enc.clock,
        )
        send[rows], delays[rows] = row_send, row_delays
        reject[rows[blackout]] = bit(Reason.BLACKOUT)
        rows = rows[~blackout]
        _caps(enc, rows[enc.category[rows] != OTP], send, rank, reject, winner, ledger)
    return _assemble(table, enc, reject, delays, send, winner)


def _eligibility_bits(enc: Encoded) -> np.ndarray:
    frame = enc.frame
    bits = np.zeros(enc.n, dtype=np.int32)
    for rule in RULES:
        bits |= np.where(rule.mask(frame), bit(rule.reason), np.int32(0))
    bits = np.where(frame.tenant_known, bits, bit(Reason.UNKNOWN_TENANT))
    return np.where(frame.well_formed, bits, bit(Reason.BAD_CANDIDATE)).astype(np.int32)


def _duplicates(enc: Encoded, order: np.ndarray) -> np.ndarray:
    """Rows whose idempotency key a better-ranked row of this batch already carries."""
    ranked = order[enc.key_valid[order]]
    first = first_occurrences(enc.key_code[ranked])
    keep = np.zeros(enc.n, dtype=bool)
    keep[ranked[first]] = True
    return enc.key_valid & ~keep


def _caps(enc, rows, send, rank, reject, winner, ledger) -> None:
    if not len(rows):
        return
    tenant, category = enc.tenant_idx[rows], enc.category[rows]
    day = enc.clock.local(enc.zone_idx[rows], send[rows]) // US_PER_DAY
    has_campaign = enc.has_campaign[rows]
    limits = np.concatenate(
        [enc.category_caps[tenant, category], enc.campaign_caps[tenant]], axis=1
    )
    found = windows(
        msisdn_id=enc.msisdn_id[rows],
        category=category.astype(np.int64),
        campaign=enc.campaign[rows],
        has_campaign=has_campaign,
        day=day,
        limits=limits,
        ledger=encode_ledger(ledger, enc),
    )
    verdicts = arbitrate(msisdn_id=enc.msisdn_id[rows], rank=rank[rows], found=found)
    reject[rows] |= verdicts.cap_bits
    lost = np.flatnonzero(verdicts.outranked)
    reject[rows[lost]] |= bit(Reason.OUTRANKED)
    winner[rows[lost]] = rows[verdicts.winner[lost]]


def _reason_text(bits: np.ndarray) -> pa.Array:
    inverse, uniq = factorize(bits.astype(np.int64))
    texts = [",".join(r.value for i, r in enumerate(REASONS) if int(u) >> i & 1) for u in uniq]
    return pa.array(texts, pa.string()).take(pa.array(inverse))


def _assemble(table, enc, reject, delays, send, winner) -> pa.Table:
    rejected = reject != 0
    outcome = np.where(rejected, 2, np.where(delays != 0, 1, 0))
    outcomes = pa.array(["send", "defer", "reject"]).take(pa.array(outcome))
    send_at = pa.array(send, type=pa.int64(), mask=rejected).cast(TS)
    keys = table.column("idempotency_key").combine_chunks()
    has_winner = winner >= 0
    winners = pc.if_else(
        pa.array(has_winner), keys.take(pa.array(np.where(has_winner, winner, 0))), None
    )
    if table.num_rows == 0:
        winners = pa.array([], pa.string())
    columns = [
        table.column(name)
        for name in ("msisdn", "tenant_id", "idempotency_key", "source", "category")
    ]
    return pa.Table.from_arrays(
        [*columns, outcomes, send_at, _reason_text(np.where(rejected, reject, delays)), winners],
        schema=DECISION_SCHEMA,
    )
