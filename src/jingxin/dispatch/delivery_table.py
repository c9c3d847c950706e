"""The delivery entry's bulk form: a table of candidates (a campaign's audience) to the outbox.

:func:`deliver_table` works in chunks of :data:`CHUNK` rows, vectorised: normalise the
numbers, render each row (each distinct tuple of values once; a row that does not render
is rejected with ``render_error``, one too long with ``too_long``, never the batch),
decide the chunk with the batch policy, count the admitted rows in the contact ledger,
then write their outbox rows and every row's decision (``jingxin why`` reads them) while
the next chunk is rendered and decided. See :mod:`jingxin.dispatch.deliver` for the
crash-safety contract.

A field of :data:`FIELDS` is a column of the table or, for every row alike, a value in
``defaults``; template variables are the columns named like them. Without an
``idempotency_key`` column the key is ``<source>:<source_id>:<msisdn>``.

``link`` (a target URL) gives a row a short link (:mod:`jingxin.analytics.links`): its
template's ``link`` variable, or its text's ``{link}``, is rendered with a placeholder of
the short URL's fixed length and the row's own token spliced in after policy
(:mod:`jingxin.dispatch.short_links`), so rows still render once per distinct tuple and
their parts do not change. A template or text with no place for the link is an
InputError before anything is written (the link would be lost); a row whose target is
not an http(s) URL is rejected (``invalid_link``), as is a row without a link whose text
needs one (``no_link``) or whose template hides it (``link_lost``).
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Self

import pyarrow as pa
import pyarrow.compute as pc
from sqlalchemy.pool import StaticPool

from jingxin.data.store.engine import Store
from jingxin.dispatch.admission import TS, candidate_table, contact_rows, decide_chunk
from jingxin.dispatch.approval import ApprovedTemplate, check_category
from jingxin.dispatch.deliver import LINK_MARK, LINK_VARIABLE, DeliveryContext, check_fields
from jingxin.dispatch.short_links import LinkPlan, check_place, relinked, splice, targets, usable
from jingxin.errors import InputError, TemplateError

CHUNK = 50_000
DEFAULT_VALIDITY = timedelta(hours=24)
FIELDS = {"tenant_id": pa.string(), "category": pa.string(), "source": pa.string(),
          "source_id": pa.string(), "template": pa.string(), "text": pa.string(),
          "wanted_at": TS, "sender": pa.string(), "arm": pa.string(),
          "link": pa.string()}  # fmt: skip
# Fields whose value changes what a row renders to.
RENDER_FIELDS = ("tenant_id", "category", "template", "text")


@dataclass
class DeliverySummary:
    """What :func:`deliver_table` did, by outcome; ``stages`` are seconds per stage."""

    campaign_id: int | None = None
    rows: int = 0
    accepted: int = 0
    deferred: int = 0
    duplicates: int = 0
    parts: int = 0
    cost: float = 0.0
    rejected: Counter[str] = field(default_factory=Counter)
    stages: Counter[str] = field(default_factory=Counter)

    @contextmanager
    def timing(self, stage: str) -> Iterator[None]:
        """Add the wall time of the ``with`` body to ``stages[stage]``."""
        started = time.perf_counter()
        try:
            yield
        finally:
            self.stages[stage] += time.perf_counter() - started

    def as_dict(self) -> dict[str, Any]:
        return {"campaign_id": self.campaign_id, "rows": self.rows, "accepted": self.accepted,
                "deferred": self.deferred, "duplicates": self.duplicates, "parts": self.parts,
                "cost": round(self.cost, 4), "rejected": dict(self.rejected)}  # fmt: skip


@dataclass
class _Job:
    """The bulk call's fixed inputs."""

    store: Store
    context: DeliveryContext
    now: datetime
    defaults: Mapping[str, Any]
    templates: dict[tuple[str, str], ApprovedTemplate]
    signatures: dict[str, str | None]
    campaign_id: int | None
    tariff: float | None
    validity: timedelta
    msisdn_column: str
    where: str
    links: LinkPlan | None = None  # set once a row has a link
    checked: dict[str, bool] = field(default_factory=dict)  # link target -> usable


def deliver_table(store: Store, *, table: pa.Table | Iterator[pa.Table], context: DeliveryContext,
                  now: datetime, defaults: Mapping[str, Any] | None = None,
                  templates: Mapping[str, ApprovedTemplate] | None = None,
                  campaign_id: int | None = None, tariff: float | None = None,
                  validity: timedelta = DEFAULT_VALIDITY, msisdn_column: str = "msisdn",
                  where: str = "table", summary: DeliverySummary | None = None,
                  signatures: Mapping[str, str | None] | None = None,
                  progress: Callable[[int], None] | None = None) -> DeliverySummary:  # fmt: skip
    """Deliver every row of ``table`` (or of each table an iterator yields); ``templates``
    are approved templates by code that are not in the catalogue (a campaign's reviewed
    inline body); ``signatures`` override tenants' signatures (a spec's own). Bad input (an unknown source, tenant or category, a row without
    template and text, an unapproved template, a category laxer than the template's) is
    an InputError before anything is written."""
    chunks = [table] if isinstance(table, pa.Table) else table
    summary = summary or DeliverySummary(campaign_id=campaign_id)
    job = None
    with _OutboxWriter(store, now=now, summary=summary, progress=progress) as writer:
        for whole in chunks:
            job = job or _job(store, whole, context, now, dict(defaults or {}), templates,
                              campaign_id, tariff, validity, msisdn_column, where)  # fmt: skip
            job.signatures.update(signatures or {})
            _check_table(job, whole)
            writer.links = job.links
            for start in range(0, whole.num_rows, CHUNK):
                _chunk(job, whole.slice(start, CHUNK), summary, writer, start)
    summary.accepted -= summary.deferred
    return summary


def _job(store, table, context, now, defaults, templates, campaign_id, tariff, validity,
         msisdn_column, where) -> _Job:  # fmt: skip
    if msisdn_column not in table.column_names:
        raise InputError(f"{where}: no column {msisdn_column!r} "
                         f"(columns: {', '.join(table.column_names)})")  # fmt: skip
    kept = {("", code): t for code, t in (templates or {}).items()}
    return _Job(store, context, now, defaults, kept, {}, campaign_id, tariff, validity,
                msisdn_column, where)  # fmt: skip


def _values(job: _Job, table: pa.Table, name: str) -> pa.ChunkedArray | pa.Array:
    """The field as a column: the table's own, else its default repeated."""
    if name in table.column_names:
        return table.column(name).cast(FIELDS[name])
    return pa.repeat(pa.scalar(job.defaults.get(name), FIELDS[name]), table.num_rows)


def _distinct(job: _Job, table: pa.Table, names: tuple[str, ...]) -> list[tuple]:
    if not any(n in table.column_names for n in names):
        return [tuple(job.defaults.get(n) for n in names)]
    columns = {n: _values(job, table, n) for n in names}
    unique = pa.table(columns).group_by(list(names)).aggregate([])
    return list(zip(*(unique.column(n).to_pylist() for n in names), strict=True))


def _check_table(job: _Job, table: pa.Table) -> None:
    """Every distinct source, tenant, category and template of the table, checked once;
    and, where rows have a link, that their template or text has a place for it."""
    from jingxin.analytics.links import check_target

    for source, category in _distinct(job, table, ("source", "category")):
        check_fields(source=source, category=category, where=job.where)
    if job.defaults.get("link") is not None:  # one target for every row: refused up front
        job.defaults["link"] = check_target(job.defaults["link"], where=f"{job.where}: link")
    for tenant, category, code, text, linked in _distinct_renders(job, table):
        if tenant not in job.signatures:
            job.signatures[tenant] = job.context.tenant(job.store, tenant)[1]
        if (code is None) == (text is None):
            raise InputError(f"{job.where}: every row needs exactly one of template and text")
        if code is not None:
            approved = _approved(job, tenant, code)
            check_category(approved=approved.category, sending=category,
                           what=f"template {code}")  # fmt: skip
        if linked:
            job.links = job.links or LinkPlan.make(job.context.links)
            used = _approved(job, tenant, code).compiled.variables if code is not None else None
            check_place(code=code, variables=used, text=text, where=job.where)


def _distinct_renders(job: _Job, table: pa.Table) -> list[tuple]:
    """The distinct (tenant, category, template, text, has a link) of the table's rows."""
    if "link" not in table.column_names:
        linked = job.defaults.get("link") is not None
        return [(*values, linked) for values in _distinct(job, table, RENDER_FIELDS)]
    columns = {n: _values(job, table, n) for n in RENDER_FIELDS}
    columns["linked"] = pc.is_valid(targets(table.column("link")))
    unique = pa.table(columns).group_by(list(columns)).aggregate([])
    return list(zip(*(unique.column(n).to_pylist() for n in columns), strict=True))


def _approved(job: _Job, tenant: str, code: str) -> ApprovedTemplate:
    found = job.templates.get(("", code)) or job.templates.get((tenant, code))
    if found is None:
        found = job.templates[(tenant, code)] = job.context.approved(
            job.store, tenant_id=tenant, code=code)  # fmt: skip
    return found


def _chunk(job: _Job, chunk: pa.Table, summary: DeliverySummary, writer: _OutboxWriter,
           offset: int) -> None:  # fmt: skip
    from jingxin.data.msisdn import normalise_msisdns

    with summary.timing("render"):
        raw = chunk.column(job.msisdn_column)
        numbers = normalise_msisdns(raw).e164
        link = targets(_values(job, chunk, "link"))
        links = link.to_pylist() if link.null_count < len(link) else None
        made = _render(job, chunk, numbers.to_pylist(), offset, links)
    summary.rows += chunk.num_rows
    keys = _keys(job, chunk, numbers, raw)
    fields = {name: _values(job, chunk, name) for name in FIELDS}
    fields["link"] = link
    ok = pa.array([isinstance(m, tuple) for m in made], pa.bool_())
    early = _early_rejects(chunk, fields, numbers, raw, keys, made, ok, summary)
    rows = {name: column.filter(ok) for name, column in fields.items()}
    msisdns, row_keys = numbers.filter(ok), keys.filter(ok)
    campaign_ids = pa.repeat(pa.scalar(job.campaign_id, pa.int64()), len(msisdns))
    candidates = candidate_table(msisdns=msisdns, tenant_id=rows["tenant_id"],
                                 category=rows["category"], source=rows["source"],
                                 campaign_id=campaign_ids, wanted_at=rows["wanted_at"],
                                 keys=row_keys)  # fmt: skip
    config, _ = job.context.tenant(job.store, next(iter(job.signatures)))  # every tenant's
    decided = decide_chunk(job.store, candidates=candidates, config=config, now=job.now,
                           timing=summary.timing) if len(msisdns) else None  # fmt: skip
    with summary.timing("build"):
        kept = [m for m in made if isinstance(m, tuple)]
        accepted = _accepted(job, decided, candidates, rows, kept, summary)
    writer.wait()  # the previous chunk is queued before this one is counted
    with summary.timing("ledger"):
        _record_contacts(job, config, accepted)
    audit = _audit_table(early, decided)
    writer.submit(accepted, audit, campaign_id=job.campaign_id, rows=chunk.num_rows)


def _keys(job: _Job, chunk: pa.Table, numbers: pa.Array, raw) -> pa.Array:
    if "idempotency_key" in chunk.column_names:
        return chunk.column("idempotency_key").cast(pa.string()).combine_chunks()
    prefix = f"{job.defaults.get('source')}:{job.defaults.get('source_id')}:"
    raw = raw.combine_chunks() if isinstance(raw, pa.ChunkedArray) else raw
    who = pc.coalesce(numbers, raw.cast(pa.string()), pa.scalar(""))
    return pc.binary_join_element_wise(prefix, who, "")


def _render(job: _Job, chunk: pa.Table, numbers: list, offset: int,
            links: list[str | None] | None) -> list[tuple | str]:  # fmt: skip
    """(text, parts) per row, or why it is rejected. A table's variables take few distinct
    values, so each distinct tuple of values is rendered once (with or without a link: the
    link itself is spliced in later); a value that cannot be a dict key (a list, a map) is
    rendered for its row alone. ``links``: each row's target, if any row has one."""
    variables = sorted({n for t in job.templates.values() for n in t.compiled.variables
                        if n in chunk.column_names and n != LINK_VARIABLE})  # fmt: skip
    keyed = [n for n in RENDER_FIELDS if n in chunk.column_names]
    names = keyed + variables
    rows = zip(*(chunk.column(n).to_pylist() for n in names), strict=True) if names else None
    done: dict[tuple, tuple[str, int] | str] = {}
    out: list[tuple | str] = []
    for i, msisdn in enumerate(numbers):
        values = next(rows) if rows is not None else ()
        target = links[i] if links is not None else None
        if msisdn is None:
            out.append("invalid_number")
            continue
        if target is not None and not usable(target, job.checked):
            out.append("invalid_link")
            continue
        key = (values, target is not None)
        try:
            made = done.get(key)
        except TypeError:  # unhashable: a list or map value
            made = _one(job, dict(zip(names, values, strict=True)), offset + i, key[1])
        else:
            if made is None:
                made = done[key] = _one(job, dict(zip(names, values, strict=True)), offset + i,
                                        key[1])  # fmt: skip
        out.append(made)
    return out


def _one(job: _Job, values: dict[str, Any], index: int,
         linked: bool) -> tuple[str, int] | str:  # fmt: skip
    """(text, parts) of one row, or the reason it is rejected; with ``linked``, its text
    carries the plan's placeholder short URL where the link goes."""
    from jingxin.content.encoding import count_parts
    from jingxin.content.templates import compose, render

    field_of = {n: values.pop(n) if n in values else job.defaults.get(n) for n in RENDER_FIELDS}
    tenant, category = field_of["tenant_id"], field_of["category"]
    content, signature = job.context.content, job.signatures.get(tenant)
    where = f"{job.where} row {index + 1}"
    placeholder = job.links.placeholder_url if linked and job.links is not None else None
    try:
        if field_of["template"] is not None:
            approved = _approved(job, tenant, field_of["template"])
            # A table may mix templates (a journey trigger's kinds): each row's template
            # gets its own variables, not the columns another template's rows fill.
            own = approved.compiled.variables
            values = {n: v for n, v in values.items() if n in own}
            if placeholder is not None:
                values[LINK_VARIABLE] = placeholder
            elif LINK_VARIABLE in own:
                return "no_link"
            result = render(approved.compiled, values, category=category, signature=signature,
                            unsubscribe_text=content.unsubscribe_text,
                            max_parts=content.max_parts, where=where)  # fmt: skip
            if placeholder is not None and placeholder not in result.text:
                return "link_lost"  # a filter changed it, or a condition left it out
            return (result.text, result.parts.parts) if result.fits else "too_long"
        body = field_of["text"]
        if placeholder is not None:
            body = body.replace(LINK_MARK, placeholder)
        elif LINK_MARK in body:
            return "no_link"
        text = compose(body, category=category, signature=signature,
                       unsubscribe_text=content.unsubscribe_text, where=where)  # fmt: skip
    except TemplateError:
        return "render_error"
    parts = count_parts(text).parts
    return (text, parts) if parts <= content.max_parts else "too_long"


def _early_rejects(chunk, fields, numbers, raw, keys, made, ok, summary) -> pa.Table | None:
    """The decision rows of the rows rejected before policy, where they have a number
    (the normalised one, else what the file said, cut to the column's 20 characters)."""
    bad = pc.invert(ok)
    reasons = pa.array([m if isinstance(m, str) else None for m in made], pa.string())
    summary.rejected.update(Counter(r for r in reasons.to_pylist() if r is not None))
    if not pc.any(bad).as_py():
        return None
    raw = raw.combine_chunks() if isinstance(raw, pa.ChunkedArray) else raw
    who = pc.utf8_slice_codeunits(pc.coalesce(numbers, pc.utf8_trim_whitespace(
        raw.cast(pa.string()))), 0, 20)  # fmt: skip
    has_number = pc.and_(bad, pc.fill_null(pc.greater(pc.utf8_length(who), 0), False))
    n = pc.sum(has_number).as_py() or 0
    return pa.table({
        "msisdn": who.filter(has_number),
        "tenant_id": fields["tenant_id"].filter(has_number),
        "idempotency_key": keys.filter(has_number),
        "source": fields["source"].filter(has_number),
        "category": fields["category"].filter(has_number),
        "outcome": pa.repeat(pa.scalar("reject"), n), "send_at": pa.nulls(n, TS),
        "reasons": reasons.filter(has_number), "winner": pa.nulls(n, pa.string()),
    })  # fmt: skip


def _audit_table(early: pa.Table | None, decided: pa.Table | None) -> pa.Table | None:
    """The decisions to keep: every rejected and deferred row. An admitted row's record is
    its outbox row (``jingxin why`` reads both: :func:`jingxin.data.store.audit.explain`)."""
    from jingxin.policy.columns import DECISION_SCHEMA

    if decided is not None and decided.num_rows:
        decided = decided.filter(pc.not_equal(decided.column("outcome"), "send"))
    parts = [t.select(DECISION_SCHEMA.names).cast(DECISION_SCHEMA)
             for t in (early, decided) if t is not None and t.num_rows]  # fmt: skip
    return pa.concat_tables(parts) if parts else None


def _accepted(job: _Job, decided: pa.Table | None, candidates: pa.Table,
              rows: dict[str, Any], kept: list[tuple], summary: DeliverySummary) -> pa.Table:  # fmt: skip
    """The outbox rows of the rows policy did not reject, sent at the later of the policy's
    send time and the wanted time; counts the rejected (by first reason), the deferred, the
    parts and the cost into ``summary``."""
    from jingxin.dispatch.outbox import _ENTRY_TYPES

    if decided is None:
        return pa.schema([pa.field(n, t) for n, t in _ENTRY_TYPES.items()]).empty_table()
    outcome = decided.column("outcome")
    rejected = pc.equal(outcome, "reject")
    for item in pc.value_counts(decided.column("reasons").filter(rejected)).to_pylist():
        summary.rejected[item["values"].split(",")[0]] += item["counts"]
    summary.deferred += pc.sum(pc.equal(outcome, "defer")).as_py() or 0
    keep = pc.invert(rejected)
    parts = pa.array([k[1] for k in kept], pa.int64()).filter(keep)
    texts = pa.array([k[0] for k in kept], pa.string()).filter(keep)
    keys = candidates.column("idempotency_key").filter(keep)
    link = rows["link"].filter(keep)
    tokens = pa.nulls(len(link), pa.string())
    if job.links is not None and link.null_count < len(link):
        tokens = job.links.tokens(keys, pc.is_valid(link))
        texts = splice(texts, tokens, job.links)
    send_at = decided.column("send_at").filter(keep).fill_null(pa.scalar(job.now, TS))
    wanted = rows["wanted_at"].filter(keep).fill_null(pa.scalar(job.now, TS))
    scheduled = pc.max_element_wise(send_at.cast(pa.int64()), wanted.cast(pa.int64())).cast(TS)
    table = pa.table({
        "tenant_id": rows["tenant_id"].filter(keep),
        "msisdn": candidates.column("msisdn").filter(keep),
        "category": rows["category"].filter(keep),
        "text": texts, "idempotency_key": keys,
        "parts": parts, "scheduled_at": scheduled,
        "expires_at": pc.add(scheduled, pa.scalar(job.validity)),
        "campaign_id": candidates.column("source_id").filter(keep),
        "cost": _costs(parts, job.tariff),
        **{n: rows[n].filter(keep) for n in ("source", "source_id", "sender", "arm")},
        "link_token": tokens, "link_url": link,
    })  # fmt: skip
    summary.parts += pc.sum(parts).as_py() or 0
    summary.cost += pc.sum(table.column("cost")).as_py() or 0.0
    return table


def _costs(parts: pa.Array, tariff: float | None) -> pa.Array:
    """``round(parts * tariff, 4)`` per row (None without a tariff)."""
    if tariff is None:
        return pa.nulls(len(parts), pa.float64())
    return pc.round(pc.multiply(parts.cast(pa.float64()), tariff), 4)


def _record_contacts(job: _Job, config, accepted: pa.Table) -> None:
    """Count the admitted rows in the contact ledger, on the tenant's local date."""
    from jingxin.data.store.ledger import record_contact_table

    if not accepted.num_rows:
        return
    for tenant in pc.unique(accepted.column("tenant_id")).to_pylist():
        mine = (accepted if len(pc.unique(accepted.column("tenant_id"))) == 1
                else accepted.filter(pc.equal(accepted.column("tenant_id"), tenant)))  # fmt: skip
        rules = config.rules_for(tenant)
        rows = contact_rows(mine, zone=rules.default_timezone if rules else "Asia/Shanghai")
        with job.store.transaction() as session:
            record_contact_table(session, table=rows)


class _OutboxWriter:
    """Writes a chunk's outbox rows, then its decision rows, while the next chunk is
    rendered and decided. The insert is mostly the database's work (PostgreSQL's server
    process; SQLite's B-tree code, which runs without the GIL), so a thread that waits for
    it frees the runner. An in-memory SQLite store has one shared connection: it writes in
    line. At most one chunk is in flight; its error is raised by the next ``wait``.

    A chunk whose short-link token another key's message holds is refused by the store;
    it is written again with its keys' next tokens (:func:`~jingxin.dispatch.deliver.
    with_fresh_tokens`). On PostgreSQL a chunk is one transaction, so the retry is exact;
    on SQLite (5,000 rows a transaction) rows of the refused write already committed are
    counted as duplicates by the retry: the summary's one inexactness, on a small store
    where a collision is all but impossible (see :data:`jingxin.analytics.links.TOKEN_LENGTH`)."""

    def __init__(self, store: Store, *, now: datetime, summary: DeliverySummary,
                 progress: Callable[[int], None] | None) -> None:  # fmt: skip
        self._store, self._now, self._summary, self._progress = store, now, summary, progress
        shared = isinstance(store.engine.pool, StaticPool)  # one connection for everyone
        self._pool = (None if shared
                      else ThreadPoolExecutor(1, thread_name_prefix="delivery-outbox"))  # fmt: skip
        self._pending: tuple[Future, int] | None = None
        self.links: LinkPlan | None = None  # the call's short links, once a row has one

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        if exc_info[0] is None:
            self.wait()
        if self._pool is not None:
            self._pool.shutdown(wait=True)

    def submit(self, accepted: pa.Table, audit: pa.Table | None, *, campaign_id: int | None,
               rows: int) -> None:  # fmt: skip
        self.wait()
        if self._pool is None:
            self._collect(self._write(accepted, audit, campaign_id), rows)
        else:
            self._pending = (self._pool.submit(self._write, accepted, audit, campaign_id), rows)

    def wait(self) -> None:
        if self._pending is None:
            return
        future, rows = self._pending
        self._pending = None
        with self._summary.timing("enqueue_wait"):
            outcome = future.result()
        self._collect(outcome, rows)

    def _write(self, accepted: pa.Table, audit: pa.Table | None,
               campaign_id: int | None) -> tuple[Any, float, float]:  # fmt: skip
        from jingxin.data.store.audit import StoreAuditSink
        from jingxin.dispatch.deliver import with_fresh_tokens
        from jingxin.dispatch.outbox import enqueue_table

        links = self.links
        linked = links is not None and accepted.column("link_token").null_count < accepted.num_rows

        def write(attempt: int) -> Any:
            table = relinked(accepted, links, attempt=attempt) if attempt else accepted
            return enqueue_table(self._store, table=table, now=self._now)

        started = time.perf_counter()
        result = with_fresh_tokens(write, linked=linked)
        queued = time.perf_counter()
        if audit is not None:
            ids = pa.repeat(pa.scalar(campaign_id, pa.int64()), audit.num_rows)
            StoreAuditSink(self._store).write(audit, decided_at=self._now, source_ids=ids)
        return result, queued - started, time.perf_counter() - queued

    def _collect(self, outcome: tuple[Any, float, float], rows: int) -> None:
        result, enqueue_seconds, audit_seconds = outcome
        self._summary.stages["enqueue"] += enqueue_seconds
        self._summary.stages["audit"] += audit_seconds
        self._summary.accepted += result.inserted
        self._summary.duplicates += result.duplicates
        if self._progress is not None:
            self._progress(rows)
