"""Joining candidates with their subscribers' state, as of one instant, in DuckDB.

The SQL below is the set-at-a-time statement of :func:`jingxin.policy.state.state_view`:
each state column of a batch row says the same thing ``state_view`` says for that
candidate (an integration test holds the two together). The raw tables come from the
store (``data.store.policy_state``) or from a test.
"""

from __future__ import annotations

from datetime import datetime

import duckdb
import pyarrow as pa

from jingxin.errors import PolicyError

STATE_SQL = """
SELECT c.* EXCLUDE (row_id),
  coalesce(s.in_service, true) AS in_service,
  coalesce(s.invalid_since <= $now, false) AS invalid,
  EXISTS (SELECT 1 FROM blacklist b WHERE b.msisdn = c.msisdn
          AND (b.tenant_id IS NULL OR b.tenant_id = c.tenant_id) AND b.added_at <= $now)
    AS blacklisted,
  EXISTS (SELECT 1 FROM ledger l WHERE l.msisdn = c.msisdn
          AND l.idempotency_key = c.idempotency_key) AS key_used,
  (c.category IS DISTINCT FROM 'otp') AND EXISTS (
     SELECT 1 FROM opt_outs o WHERE o.msisdn = c.msisdn
       AND (o.tenant_id IS NULL OR o.tenant_id = c.tenant_id)
       AND (o.category = c.category OR (o.category IS NULL AND c.category = 'marketing'))
       AND o.recorded_at <= $now) AS opted_out,
  EXISTS (SELECT 1 FROM consents k WHERE k.msisdn = c.msisdn
          AND k.tenant_id = c.tenant_id AND k.category = c.category
          AND k.given_at <= $now AND (k.revoked_at IS NULL OR k.revoked_at > $now))
    AS has_consent,
  coalesce(s.complaint_sensitive, false) AS complaint_sensitive,
  s.last_complaint_at,
  s.timezone,
  s.roaming_country
FROM candidates c
LEFT JOIN subscribers s ON s.msisdn = c.msisdn
ORDER BY c.row_id
"""


def join_state(candidates: pa.Table, raw: dict[str, pa.Table], *, now: datetime) -> pa.Table:
    """``candidates`` plus the state columns, row order kept."""
    numbered = candidates.append_column("row_id", pa.array(range(candidates.num_rows), pa.int64()))
    connection = duckdb.connect()
    try:
        connection.execute("SET TimeZone = 'UTC'")
        connection.register("candidates", numbered)
        for name in ("consents", "opt_outs", "blacklist", "subscribers", "ledger"):
            connection.register(name, raw[name])
        return connection.sql(STATE_SQL, params={"now": now}).to_arrow_table()
    except duckdb.Error as exc:
        raise PolicyError(f"joining candidates with their contact state failed: {exc}") from exc
    finally:
        connection.close()
