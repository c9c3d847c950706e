"""Policy benchmarks: ``policy-batch`` (a campaign's candidates at once) and ``policy-single``.

``policy-batch`` decides a synthetic campaign batch (``scale`` candidates, about two per
subscriber, a ledger of recent contacts, a few roamers, half of the wanted times inside
quiet hours) with the vectorised batch form, and compares it with the single form looped
in Python over a subset (extrapolated). ``policy-single`` times ``decide`` one candidate
at a time and reports p50 / p99 in microseconds.

Heavy imports stay inside the functions: every ``jingxin`` start imports this module.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from jingxin.bench import Figures, benchmark

NOW = datetime(2026, 6, 1, 12, 30, tzinfo=UTC)  # 20:30 in Shanghai: quiet hours are near
CAMPAIGNS = 20
ROAMING = ["US", "JP", "GB", "TH", "AU"]
BASELINE_ROWS = 5_000


def synthetic_batch(n: int, *, seed: int = 7) -> tuple[Any, Any, Any]:
    """(batch table, ledger table, PolicyConfig) for ``n`` candidates, built with numpy."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    from jingxin.policy.columns import BATCH_SCHEMA, LEDGER_SCHEMA
    from jingxin.policy.config import PolicyConfig, TenantRules
    from jingxin.policy.localtime import to_us

    rng = np.random.default_rng(seed)
    subscribers = max(1, n // 2)
    who = rng.integers(0, subscribers, n)
    numbers = _msisdns(who)
    now_us = to_us(NOW)
    wanted = np.where(rng.random(n) < 0.5, now_us + 3_600_000_000, now_us)
    wanted_mask = rng.random(n) < 0.3
    complaint = now_us - rng.integers(0, 90, n) * 86_400_000_000
    roaming = np.array(ROAMING, dtype=object)[rng.integers(0, len(ROAMING), n)]
    columns = {
        "msisdn": numbers,
        "tenant_id": pa.array(np.where(rng.random(n) < 0.9, "operator", "shop")),
        "category": pa.array(
            np.array(["marketing", "notification", "otp"])[
                np.searchsorted([0.8, 0.95], rng.random(n), side="right")
            ]
        ),
        "source": pa.array(np.full(n, "campaign")),
        "source_id": pa.array(rng.integers(1, CAMPAIGNS + 1, n)),
        "priority": pa.array(rng.integers(0, 4, n)),
        "score": pa.array(rng.random(n)),
        "wanted_at": pa.array(wanted, mask=wanted_mask).cast(pa.timestamp("us", tz="UTC")),
        "idempotency_key": pc.binary_join_element_wise(
            "c", pc.cast(pa.array(np.arange(n)), pa.string()), ""
        ),
        "in_service": pa.array(rng.random(n) < 0.99),
        "invalid": pa.array(rng.random(n) < 0.005),
        "blacklisted": pa.array(rng.random(n) < 0.005),
        "key_used": pa.array(rng.random(n) < 0.001),
        "opted_out": pa.array(rng.random(n) < 0.03),
        "has_consent": pa.array(rng.random(n) < 0.7),
        "complaint_sensitive": pa.array(rng.random(n) < 0.02),
        "last_complaint_at": pa.array(complaint, mask=rng.random(n) > 0.01).cast(
            pa.timestamp("us", tz="UTC")
        ),
        "timezone": pa.nulls(n, pa.string()),
        "roaming_country": pa.array(roaming, mask=rng.random(n) > 0.02, type=pa.string()),
    }
    table = pa.table(columns).cast(BATCH_SCHEMA)
    contacted = rng.random(subscribers) < 0.3
    ids = np.flatnonzero(contacted)
    day = now_us // 86_400_000_000 - rng.integers(0, 30, len(ids))
    ledger = pa.table(
        {
            "msisdn": _msisdns(ids),
            "category": pa.array(np.full(len(ids), "marketing")),
            "campaign_id": pa.array(rng.integers(1, CAMPAIGNS + 1, len(ids))),
            "local_date": pa.array(day.astype(np.int32)).cast(pa.date32()),
        }
    ).cast(LEDGER_SCHEMA)
    config = PolicyConfig(
        tenants={"operator": TenantRules(implied_consent=True), "shop": TenantRules()}
    )
    return table, ledger, config


def _msisdns(ids) -> Any:
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    digits = pc.utf8_lpad(pc.cast(pa.array(np.asarray(ids)), pa.string()), width=8, padding="0")
    return pc.binary_join_element_wise("+86138", digits, "")


def baseline_inputs(table: Any, ledger: Any, rows: int) -> tuple[list, dict]:
    """The first ``rows`` of a batch as Candidates and ContactStates (for the single form)."""
    from collections import defaultdict

    from jingxin.domain.candidate import Candidate
    from jingxin.policy.state import BlacklistMark, ContactMark, ContactState, OptOutMark

    head = table.slice(0, rows).to_pylist()
    contacts = defaultdict(list)
    wanted = {r["msisdn"] for r in head}
    for row in ledger.to_pylist():
        if row["msisdn"] in wanted:
            contacts[row["msisdn"]].append(
                ContactMark("marketing", row["local_date"], row["campaign_id"])
            )
    candidates, states = [], {}
    for r in head:
        candidates.append(
            Candidate(
                r["msisdn"],
                r["tenant_id"],
                r["category"],
                r["source"],
                r["idempotency_key"],
                r["source_id"],
                r["priority"],
                r["score"],
                r["wanted_at"],
            )
        )
        states[r["msisdn"]] = ContactState(
            msisdn=r["msisdn"],
            in_service=r["in_service"],
            invalid_since=NOW if r["invalid"] else None,
            blacklist=(BlacklistMark(None, NOW),) if r["blacklisted"] else (),
            opt_outs=(OptOutMark(None, None, NOW),) if r["opted_out"] else (),
            complaint_sensitive=r["complaint_sensitive"],
            last_complaint_at=r["last_complaint_at"],
            roaming_country=r["roaming_country"],
            contacts=tuple(contacts[r["msisdn"]]),
            used_keys=frozenset({r["idempotency_key"]}) if r["key_used"] else frozenset(),
        )
    return candidates, states


@benchmark(
    "policy-batch",
    summary="Decide a campaign batch with the vectorised batch form",
    default_scale=1_000_000,
)
def policy_batch(scale: int) -> Figures:
    from jingxin.bench import timed
    from jingxin.policy.arbitration import decide_many
    from jingxin.policy.batch import decide_batch

    table, ledger, config = synthetic_batch(scale)
    seconds, decided = timed(lambda: decide_batch(table, now=NOW, config=config, ledger=ledger))
    outcomes = decided.column("outcome").value_counts().to_pylist()
    rows = min(scale, BASELINE_ROWS)
    candidates, states = baseline_inputs(table, ledger, rows)
    base_seconds, _ = timed(lambda: decide_many(candidates, states, NOW, config))
    baseline_rate = rows / base_seconds
    return {
        "seconds": round(seconds, 3),
        "candidates_per_second": round(scale / seconds),
        "outcomes": {o["values"]: o["counts"] for o in outcomes},
        "baseline": "single form + arbitration looped in Python",
        "baseline_rows": rows,
        "baseline_candidates_per_second": round(baseline_rate),
        "baseline_extrapolated_seconds": round(scale / baseline_rate, 3),
        "speedup": round((scale / baseline_rate) / seconds, 1),
    }


@benchmark(
    "policy-single",
    summary="Decide one candidate at a time with the single form (p50/p99 µs)",
    default_scale=20_000,
)
def policy_single(scale: int) -> Figures:
    import time

    import numpy as np

    from jingxin.policy.decide import decide

    table, ledger, config = synthetic_batch(scale, seed=11)
    candidates, states = baseline_inputs(table, ledger, scale)
    for candidate in candidates[:200]:  # warm the zone caches, as a running service has
        decide(candidate, states[candidate.msisdn], NOW, config)
    micros = np.empty(len(candidates))
    for i, candidate in enumerate(candidates):
        state = states[candidate.msisdn]
        start = time.perf_counter_ns()
        decide(candidate, state, NOW, config)
        micros[i] = (time.perf_counter_ns() - start) / 1000
    return {
        "decisions": len(candidates),
        "p50_us": round(float(np.percentile(micros, 50)), 1),
        "p99_us": round(float(np.percentile(micros, 99)), 1),
        "max_us": round(float(micros.max()), 1),
    }
