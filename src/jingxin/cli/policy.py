"""``jingxin`` commands of the policy area.

- ``jingxin why MSISDN [--days N]``: what was sent, deferred and rejected to a number, and why;
  then the number's churn score with its top reasons when a churn model is trained;
- ``jingxin policy decide ...``: the single form against the store, for staff;
- ``jingxin policy batch CANDIDATES.parquet``: the batch form over a file of candidates;
- ``jingxin policy check``: every tenant's effective rules (fails on bad overrides).

What policy must respect is recorded by :mod:`jingxin.cli.contact`.
"""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from jingxin.cli.arguments import (AtOption, MsisdnOption, TenantOption, UrlOption, console,
                                   instant, number, open_cli_store)  # fmt: skip
from jingxin.errors import InputError

policy_app = typer.Typer(help="Policy: decide candidates, explain decisions.", no_args_is_help=True)


def _config(session):
    from jingxin.config import load_settings
    from jingxin.data.store.tenants import ensure_default_tenant
    from jingxin.data.store.policy_state import load_config

    ensure_default_tenant(session)  # every store has the operator itself
    defaults = load_settings().policy
    return load_config(
        session,
        defaults={
            "quiet_start": defaults.quiet_start,
            "quiet_end": defaults.quiet_end,
            "default_timezone": defaults.default_timezone,
        },
    )


@policy_app.command("decide")
def decide_command(
    msisdn: MsisdnOption,
    category: Annotated[str, typer.Option("--category", help="otp, notification or marketing.")],
    tenant: TenantOption = "operator",
    source: Annotated[
        str, typer.Option("--source", help="campaign, journey, fence, hall, api, probe, inbox.")
    ] = "api",
    source_id: Annotated[int | None, typer.Option("--source-id", help="Campaign id.")] = None,
    priority: int = 0,
    key: Annotated[str | None, typer.Option("--key", help="Idempotency key.")] = None,
    at: AtOption = None,
    audit: Annotated[
        bool, typer.Option("--audit", help="Keep the decision in `decisions`.")
    ] = False,
    url: UrlOption = None,
) -> None:
    """Decide one candidate against the store (single form) and print the decision."""
    from jingxin.domain.candidate import Candidate
    from jingxin.data.store.audit import StoreAuditSink
    from jingxin.policy.audit import decision_rows
    from jingxin.policy.decide import decide
    from jingxin.data.store.contact import require_tenant
    from jingxin.data.store.policy_state import load_states
    from jingxin.data.validate import valid_category, valid_source

    msisdn = number(msisdn)
    category = valid_category(category, field="--category")
    source = valid_source(source, field="--source")
    now = instant(at)
    key = key or f"check-{msisdn}-{category}-{now.isoformat()}"
    candidate = Candidate(msisdn, tenant, category, source, key, source_id, priority)
    store = open_cli_store(url)
    try:
        with store.transaction() as session:
            config = _config(session)
            require_tenant(session, tenant_id=tenant, field="--tenant")
            state = load_states(session, msisdns=[msisdn], now=now, keys=[key])[msisdn]
        decision = decide(candidate, state, now, config)
        if audit:
            table, ids = decision_rows([(candidate, decision)])
            StoreAuditSink(store).write(table, decided_at=now, source_ids=ids)
    finally:
        store.dispose()
    send_at = decision.send_at.isoformat() if decision.send_at else "-"
    console.print(f"outcome: {decision.outcome.value}")
    console.print(f"send_at: {send_at}")
    console.print(f"reasons: {decision.reason_text or '-'}")
    if decision.winner:
        console.print(f"winner:  {decision.winner}")


@policy_app.command("batch")
def batch_command(
    candidates: Annotated[Path, typer.Argument(help="Parquet or CSV file of candidates.")],
    out: Annotated[
        Path | None, typer.Option("--out", help="Write the decisions (Parquet).")
    ] = None,
    at: AtOption = None,
    audit: Annotated[bool, typer.Option("--audit/--no-audit", help="Keep the decisions.")] = True,
    url: UrlOption = None,
) -> None:
    """Decide a file of candidates with the batch form; print the outcome counts."""
    from jingxin.data.store.audit import StoreAuditSink
    from jingxin.policy.batch import decide_batch
    from jingxin.data.store.policy_state import load_batch

    now = instant(at)
    table = _read_candidates(candidates)
    store = open_cli_store(url)
    try:
        with store.transaction() as session:
            config = _config(session)
            joined, ledger = load_batch(session, candidates=table, now=now)
        decided = decide_batch(joined, now=now, config=config, ledger=ledger)
        if audit:
            StoreAuditSink(store).write(
                decided, decided_at=now, source_ids=joined.column("source_id")
            )
    finally:
        store.dispose()
    if out is not None:
        import pyarrow.parquet as pq

        pq.write_table(decided, out)
    counts = {
        r["values"]: r["counts"] for r in decided.column("outcome").value_counts().to_pylist()
    }
    console.print(json.dumps({"candidates": decided.num_rows, **counts}, sort_keys=True))


def _read_candidates(path: Path):
    import pyarrow as pa

    from jingxin.policy.batch_frame import conform
    from jingxin.policy.columns import CANDIDATE_FIELDS

    if not path.exists():
        raise InputError(f"{path}: no such file")
    try:
        if path.suffix.lower() == ".csv":
            import pyarrow.csv as pcsv

            from jingxin.data.textfile import check_encoding

            codec = check_encoding(path, what="candidates file")
            # Numbers like +8613800000001 would otherwise be read as integers.
            text = {f.name: f.type for f in CANDIDATE_FIELDS if f.type == pa.string()}
            table = pcsv.read_csv(
                path, read_options=pcsv.ReadOptions(encoding="utf8" if codec == "utf-8" else codec),
                convert_options=pcsv.ConvertOptions(column_types=text))
        else:
            import pyarrow.parquet as pq

            table = pq.read_table(path)
    except (pa.ArrowInvalid, OSError) as exc:
        raise InputError(f"{path}: cannot read candidates: {exc}") from exc
    try:
        table = conform(table, pa.schema(CANDIDATE_FIELDS))
    except InputError as exc:
        raise InputError(f"{path}: {exc}") from exc
    return _normalised_numbers(table)


def _normalised_numbers(table):
    """Numbers in E.164 as the store keeps them; one that does not normalise is kept as
    written, so policy rejects it as ``invalid_number`` rather than the whole file."""
    import pyarrow.compute as pc

    from jingxin.data.msisdn import normalise_msisdns

    column = table.column("msisdn").combine_chunks()
    fixed = pc.coalesce(normalise_msisdns(column).e164, column)
    return table.set_column(table.schema.get_field_index("msisdn"), "msisdn", fixed)


@policy_app.command("check")
def check_command(url: UrlOption = None) -> None:
    """Print every tenant's effective rules; fails if a tenant's overrides are invalid."""
    store = open_cli_store(url)
    try:
        with store.transaction() as session:
            config = _config(session)
    finally:
        store.dispose()
    table = Table(
        "tenant",
        "quiet hours",
        "marketing caps d/w/m",
        "campaign caps",
        "cool-off",
        "implied consent",
        "blackout days",
        "zone",
    )
    for tenant_id, rules in sorted(config.tenants.items()):
        caps = "/".join("-" if v is None else str(v) for v in rules.category_caps("marketing"))
        camp = "/".join("-" if v is None else str(v) for v in rules.campaign_caps.limits())
        table.add_row(
            tenant_id,
            f"{rules.quiet_start:%H:%M}-{rules.quiet_end:%H:%M}",
            caps,
            camp,
            f"{rules.cooloff_days}d",
            "yes" if rules.implied_consent else "no",
            f"{len(rules.blackout_dates)} ({rules.blackout_action})",
            rules.default_timezone,
        )
    console.print(table)


def _settings_zone() -> str:
    from jingxin.config import load_settings

    return load_settings().policy.default_timezone


def why_command(
    msisdn: Annotated[str, typer.Argument(help="The number, e.g. +8613812345678.")],
    days: Annotated[int, typer.Option("--days", min=1, help="How far back.")] = 30,
    url: UrlOption = None,
    warehouse: Annotated[Path | None, typer.Option(
        "--warehouse", help="DuckDB warehouse for the churn score (default: "
                            "warehouse.path).")] = None,
) -> None:
    """What was sent, deferred and rejected to MSISDN, and why; then its churn score and
    the score's top reasons."""
    from jingxin.data.store.audit import explain

    msisdn = number(msisdn, "MSISDN")  # decisions are kept under the E.164 form
    store = open_cli_store(url)
    try:
        with store.transaction() as session:
            records = explain(session, msisdn=msisdn, days=days)
    finally:
        store.dispose()
    if records:
        _print_decisions(msisdn, days, records)
    else:
        console.print(f"no decisions about {msisdn} in the last {days} days")
    _print_churn(msisdn, warehouse)


def _print_churn(msisdn: str, warehouse: Path | None) -> None:
    """The number's churn score on the latest feature build and its top reasons (the
    contributions of :mod:`jingxin.audience.reasons`); a line saying why when there is
    no model, warehouse or feature row."""
    from jingxin.audience import tabular
    from jingxin.audience.reasons import explain_number
    from jingxin.cli.arguments import read_warehouse
    from jingxin.config import load_settings
    from jingxin.errors import JingxinError

    settings = load_settings()
    path = settings.var_dir() / "models" / "churn.joblib"
    if not path.exists():
        console.print("churn score: no model trained: run jingxin audience train-churn")
        return
    try:  # the decisions above stand whatever becomes of the score
        trained = tabular.load(path)
        with read_warehouse(settings, warehouse) as wh:
            explained = explain_number(wh, trained, msisdn)
    except JingxinError as exc:
        console.print(f"churn score: not available: {exc}")
        return
    if explained is None:
        console.print(f"churn score: {msisdn} is not in the warehouse's latest feature "
                      "build")
        return
    console.print(f"churn score {explained.score:.3f} (model {path}; features as of "
                  f"{explained.as_of}; subscriber {explained.subscriber_id})")
    if not explained.reasons:
        console.print("  no single feature moves the score")
        return
    unit = "score points" if explained.unit == "score" else explained.unit
    console.print(f"top reasons (contribution in {unit}):")
    for reason in explained.reasons:
        console.print(f"  {reason.feature:<24} {reason.value:>14}  {reason.contribution:+.3f}")


def _print_decisions(msisdn: str, days: int, records) -> None:
    from zoneinfo import ZoneInfo

    # Staff read times in the operator's own zone, not UTC.
    zone_name = _settings_zone()
    zone = ZoneInfo(zone_name)
    table = Table(
        f"decided ({zone_name})",
        "tenant",
        "category",
        "source",
        "key",
        "outcome",
        "send at",
        "why",
        title=f"{msisdn}: last {days} days",
    )
    for r in records:
        why = r.reasons or "-"
        if r.detail and r.detail.get("winner"):
            why += f" (winner {r.detail['winner']})"
        if r.detail and r.detail.get("recorded_at"):  # a send-time cancellation
            recorded = datetime.fromisoformat(r.detail["recorded_at"]).astimezone(zone)
            why += f" (recorded {recorded:%Y-%m-%d %H:%M}, after the decision)"
        table.add_row(
            f"{r.decided_at.astimezone(zone):%Y-%m-%d %H:%M}",
            r.tenant_id,
            r.category,
            r.source,
            r.idempotency_key,
            r.outcome,
            f"{r.send_at.astimezone(zone):%Y-%m-%d %H:%M}" if r.send_at else "-",
            why,
        )
    console.print(table)


def register(app: typer.Typer) -> None:
    """Add this module's commands to ``app``."""
    app.command("why")(why_command)
    app.add_typer(policy_app, name="policy")
