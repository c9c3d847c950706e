"""``jingxin bench receipt-updates``: the receipts' batch updates as receipts back up.

A receipt batch moves its messages and their parts from ``submitted`` to a final state
(``dispatch.receipts._FINISH_PG`` and ``_PARTS_PG``). How many rows wait in ``submitted``
depends on how far the SMSC's receipts lag: a few hundred when they come at once, tens of
thousands when a campaign runs at thousands a second and its receipts come a minute
later. The planner's statistics, meanwhile, are those of the last ``ANALYZE``, often of
a quiet store with none waiting.

This fills a throwaway PostgreSQL database with ``--scale`` delivered messages, one part
each, analyses it quiet, and then for each backlog (400, 5,000, 50,000 waiting, within
the scale) times a batch of 300 receipts through the shipped statements and through the
plain join they replaced (``WHERE m.id = v.mid AND m.state = 'submitted'``), each as
the plan a long-running worker keeps (``plan_cache_mode = force_generic_plan``), the two
taking turns. Figures: the median ms per batch of each, and the ratio.
"""

from __future__ import annotations

import json
import random
import statistics
import time
from typing import Any

from jingxin.bench import benchmark
from jingxin.bench.harness import libpq_url, throwaway_database

BATCH = 300
BACKLOGS = (400, 5_000, 50_000)
# The statements before (the baseline): the state as an indexable equality, no id array.
PLAIN_FINISH = """
    UPDATE messages AS m SET state = v.st, error_code = v.err, finished_at = %(now)s,
        updated_at = %(now)s
    FROM json_to_recordset(CAST(%(rows)s AS json)) AS v(mid bigint, st text, err text)
    WHERE m.id = v.mid AND m.state = 'submitted'
"""
PLAIN_PARTS = """
    UPDATE message_parts AS p SET state = v.st, error_code = v.err, receipt_at = v.at
    FROM json_to_recordset(CAST(%(rows)s AS json)) AS v(pid bigint, st text, err text, at timestamptz)
    WHERE p.id = v.pid AND p.state = 'submitted'
"""


def _shipped() -> tuple[str, str]:
    from sqlalchemy.dialects import postgresql

    from jingxin.dispatch.receipts import _FINISH_PG, _PARTS_PG

    dialect = postgresql.dialect()
    return (str(_FINISH_PG.compile(dialect=dialect)), str(_PARTS_PG.compile(dialect=dialect)))


@benchmark("receipt-updates", summary="the receipts' batch updates (messages and parts) against "
           "the plain join they replaced, as 400 / 5,000 / 50,000 rows wait in 'submitted' after "
           "an ANALYZE of a quiet store (PostgreSQL, JINGXIN_BENCH_PG)", default_scale=300_000)  # fmt: skip
def receipt_updates(scale: int) -> dict[str, Any]:
    import psycopg

    from jingxin.data.store import open_store

    if scale < BATCH:
        raise SystemExit(f"--scale {scale}: at least {BATCH} messages (one batch of receipts)")
    finish, parts = _shipped()
    figures: dict[str, Any] = {"messages": scale, "batch": BATCH}
    with throwaway_database(prefix="bench_receipts") as url:
        open_store(url, upgrade=True).dispose()
        with psycopg.connect(libpq_url(url), autocommit=True) as conn:
            _fill(conn, scale)
            conn.execute("ANALYZE")  # a quiet store: nothing waits for its receipt
            conn.execute("SET plan_cache_mode = force_generic_plan")
            for waiting in (w for w in BACKLOGS if w <= scale):
                figures[f"waiting_{waiting}"] = _backlog(conn, waiting, shipped=(finish, parts))
    return figures


def _fill(conn, scale: int) -> None:
    conn.execute(
        "INSERT INTO messages (tenant_id, msisdn, category, lane, text, parts, idempotency_key,"
        " state, scheduled_at, created_at, updated_at, attempts, unresolved, source)"
        " SELECT 'default', '+86139' || lpad(i::text, 8, '0'), 'marketing', 2, 'x', 1,"
        " 'bench' || i, 'delivered', now(), now(), now(), 1, 0, 'campaign'"
        " FROM generate_series(1, %(n)s) AS i", {"n": scale})  # fmt: skip
    conn.execute(
        "INSERT INTO message_parts (message_id, part_no, channel, smsc_id, state, submitted_at)"
        " SELECT id, 1, 'sim', 'S' || id, 'delivered', now() FROM messages")  # fmt: skip


def _backlog(conn, waiting: int, *, shipped: tuple[str, str], runs: int = 12) -> dict:
    """``runs`` batches of each kind with ``waiting`` rows in ``submitted``, alternated."""
    ids = [row[0] for row in conn.execute("SELECT id FROM messages ORDER BY id")]
    kinds = {"shipped": shipped, "plain": (PLAIN_FINISH, PLAIN_PARTS)}
    times: dict[str, dict[str, list[float]]] = {k: {"finish": [], "parts": []} for k in kinds}
    rng = random.Random(waiting)
    for _ in range(runs):
        for kind, (finish, parts) in kinds.items():
            wait = rng.sample(ids, waiting)
            conn.execute("UPDATE messages SET state = 'submitted' WHERE id = ANY(%(w)s)", {"w": wait})
            conn.execute("UPDATE message_parts SET state = 'submitted' WHERE message_id = ANY(%(w)s)",
                         {"w": wait})  # fmt: skip
            batch = wait[:BATCH]  # message i has part i (one part each, inserted in order)
            now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
            part_rows = json.dumps([{"pid": i, "st": "delivered", "err": None, "at": now} for i in batch])
            rows = json.dumps([{"mid": i, "st": "delivered", "err": None} for i in batch])
            started = time.perf_counter()
            conn.execute(parts, {"rows": part_rows}, prepare=True)
            times[kind]["parts"].append(time.perf_counter() - started)
            started = time.perf_counter()
            done = conn.execute(finish, {"rows": rows, "now": now}, prepare=True)
            times[kind]["finish"].append(time.perf_counter() - started)
            if done.rowcount != BATCH:
                raise SystemExit(f"{kind} finish updated {done.rowcount} of {BATCH} messages")
            conn.execute("UPDATE messages SET state = 'delivered' WHERE id = ANY(%(w)s)", {"w": wait})
            conn.execute("UPDATE message_parts SET state = 'delivered' WHERE message_id = ANY(%(w)s)",
                         {"w": wait})  # fmt: skip
    out: dict[str, Any] = {}
    for statement in ("finish", "parts"):
        for kind in kinds:
            out[f"{statement}_{kind}_ms"] = round(statistics.median(times[kind][statement]) * 1000, 2)
        out[f"{statement}_plain_over_shipped"] = round(
            out[f"{statement}_plain_ms"] / out[f"{statement}_shipped_ms"], 2)
    return out
