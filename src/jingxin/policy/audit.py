"""Keeping every decision: the :class:`AuditSink` seam and its two implementations.

A sink receives decisions in bulk as an Arrow table shaped like
:data:`~jingxin.policy.columns.DECISION_SCHEMA` (what the batch form returns; the single
form's decisions go through :func:`decision_rows`). :class:`MemoryAuditSink` keeps them in
a list for tests; :class:`jingxin.data.store.audit.StoreAuditSink` writes them to the
store's ``decisions`` table (policy itself never touches the store). The ``detail`` JSON is kept
small: the campaign id and, for ``outranked``, the winner's key.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from typing import Protocol

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from jingxin.domain.candidate import Candidate, Decision
from jingxin.policy.columns import DECISION_SCHEMA, TS

CHUNK = 20_000
COLUMNS = (
    "tenant_id",
    "msisdn",
    "idempotency_key",
    "source",
    "category",
    "outcome",
    "send_at",
    "reasons",
    "detail",
    "decided_at",
)
BLANK = {"tenant_id": "", "msisdn": "", "idempotency_key": "", "source": "", "category": ""}


class AuditSink(Protocol):
    """Where decisions are kept. ``write`` is called once per decided batch."""

    def write(
        self, decisions: pa.Table, *, decided_at: datetime, source_ids: pa.Array | None = None
    ) -> int:
        """Keep every row of ``decisions``; returns how many were kept."""
        ...


def decision_rows(pairs: Sequence[tuple[Candidate, Decision]]) -> tuple[pa.Table, pa.Array]:
    """Single-form decisions as a decision table (and their source ids)."""
    table = pa.table(
        {
            "msisdn": [c.msisdn for c, _ in pairs],
            "tenant_id": [c.tenant_id for c, _ in pairs],
            "idempotency_key": [c.idempotency_key for c, _ in pairs],
            "source": [c.source for c, _ in pairs],
            "category": [c.category for c, _ in pairs],
            "outcome": [d.outcome.value for _, d in pairs],
            "send_at": [d.send_at for _, d in pairs],
            "reasons": [d.reason_text for _, d in pairs],
            "winner": [d.winner for _, d in pairs],
        },
        schema=DECISION_SCHEMA,
    )
    return table, pa.array([c.source_id for c, _ in pairs], pa.int64())


def _details(decisions: pa.Table, source_ids: pa.Array | None) -> pa.Array:
    """The compact ``detail`` JSON text of each row (null when there is nothing to say).

    Built with Arrow string kernels; only the few outranked rows (whose winner key must be
    JSON-escaped) go through :func:`json.dumps`.
    """
    n = decisions.num_rows
    if source_ids is None:
        ids = pa.nulls(n, pa.int64())
    elif isinstance(source_ids, pa.ChunkedArray):
        ids = source_ids.combine_chunks().cast(pa.int64())
    else:
        ids = source_ids.cast(pa.int64())
    plain = pc.binary_join_element_wise('{"source_id":', pc.cast(ids, pa.string()), "}", "")
    winners = decisions.column("winner").combine_chunks()
    has_winner = winners.is_valid()
    if not pc.any(has_winner).as_py():
        return plain
    needs_escape = pc.match_substring_regex(winners, r'["\\\x00-\x1f]')
    if not pc.any(needs_escape).as_py():  # the common case: keys need no JSON escaping
        prefix = pc.if_else(
            ids.is_valid(),
            pc.binary_join_element_wise('{"source_id":', pc.cast(ids, pa.string()), ",", ""),
            "{",
        )
        special = pc.binary_join_element_wise(prefix, '"winner":"', winners, '"}', "")
        return pc.if_else(has_winner, special, plain)
    rows = pc.indices_nonzero(has_winner).to_pylist()
    id_list, winner_list = ids.take(rows).to_pylist(), winners.take(rows).to_pylist()
    texts = [
        json.dumps(
            {"source_id": i, "winner": w} if i is not None else {"winner": w}, separators=(",", ":")
        )
        for i, w in zip(id_list, winner_list, strict=True)
    ]
    positions = np.full(n, -1, dtype=np.int64)
    positions[rows] = np.arange(len(rows))
    special = pa.array(texts, pa.string()).take(pa.array(positions, mask=positions < 0))
    return pc.if_else(has_winner, special, plain)


def decision_columns(decisions: pa.Table, decided_at: datetime, source_ids) -> pa.Table:
    """The ``decisions`` columns, in :data:`COLUMNS` order; NOT NULL text columns blanked
    (a broken candidate's decision is still kept)."""
    arrays = {name: decisions.column(name) for name in COLUMNS[:8]}
    for name, blank in BLANK.items():
        arrays[name] = pc.fill_null(arrays[name], blank)
    arrays["detail"] = _details(decisions, source_ids)
    arrays["decided_at"] = pa.repeat(pa.scalar(decided_at, TS), decisions.num_rows)
    return pa.table(arrays)


def decision_tuples(table: pa.Table) -> list[tuple]:
    return list(zip(*(table.column(c).to_pylist() for c in COLUMNS), strict=True))


class MemoryAuditSink:
    """Keeps decision rows (dicts with the ``decisions`` columns) in a list."""

    def __init__(self) -> None:
        self.rows: list[dict] = []

    def write(
        self, decisions: pa.Table, *, decided_at: datetime, source_ids: pa.Array | None = None
    ) -> int:
        for row in decision_tuples(decision_columns(decisions, decided_at, source_ids)):
            record = dict(zip(COLUMNS, row, strict=True))
            record["detail"] = None if record["detail"] is None else json.loads(record["detail"])
            self.rows.append(record)
        return decisions.num_rows
