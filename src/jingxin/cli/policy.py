"""``jingxin`` commands of the policy area.

- ``jingxin why MSISDN [--days N]``: what was sent, deferred and rejected to a number, and why;
- ``jingxin policy decide ...``: the single form against the store, for staff;
- ``jingxin policy batch CANDIDATES.parquet``: the batch form over a file of candidates;
- ``jingxin policy check``: every tenant's effective rules (fails on bad overrides);
- ``jingxin consent add``, ``jingxin optout add``, ``jingxin blacklist add``,
  ``jingxin subscriber set``: record what policy must respect.
"""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from jingxin.errors import InputError

# Tables keep whole numbers and keys when piped (rich would squeeze them to 80 columns).
console = Console(highlight=False, width=None if sys.stdout.isatty() else 200)

UrlOption = Annotated[str | None, typer.Option("--url", help="Store URL (default: store.url).")]
MsisdnOption = Annotated[
    str, typer.Option("--msisdn", help="The number, e.g. 13812345678 or +8613812345678.")
]
TenantOption = Annotated[str, typer.Option("--tenant", help="Tenant id.")]
AtOption = Annotated[
    str | None, typer.Option("--at", help="Decide as of this ISO instant (default: now).")
]

policy_app = typer.Typer(help="Policy: decide candidates, explain decisions.", no_args_is_help=True)
consent_app = typer.Typer(help="Consent evidence.", no_args_is_help=True)
optout_app = typer.Typer(help="Opt-outs (unsubscribes).", no_args_is_help=True)
blacklist_app = typer.Typer(
    help="Numbers nobody (or one tenant) may message.", no_args_is_help=True
)
subscriber_app = typer.Typer(help="What the network knows about a number.", no_args_is_help=True)


def _store(url: str | None):
    from jingxin.config import load_settings
    from jingxin.data.store import open_store

    return open_store(url or load_settings().store.url, upgrade=True)


def _number(raw: str, field: str = "--msisdn") -> str:
    """The E.164 form every store row uses, or one line saying why ``raw`` is no number."""
    from jingxin.data.validate import valid_msisdn

    return valid_msisdn(raw, field=field)


def _instant(text: str | None, field: str = "--at") -> datetime:
    """The instant an option names (bare times in the operator's zone), or now."""
    from jingxin.cli.instants import parse_instant

    return datetime.now(UTC) if text is None else parse_instant(text, option=field)


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

    msisdn = _number(msisdn)
    category = valid_category(category, field="--category")
    source = valid_source(source, field="--source")
    now = _instant(at)
    key = key or f"check-{msisdn}-{category}-{now.isoformat()}"
    candidate = Candidate(msisdn, tenant, category, source, key, source_id, priority)
    store = _store(url)
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

    now = _instant(at)
    table = _read_candidates(candidates)
    store = _store(url)
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
    store = _store(url)
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
) -> None:
    """What was sent, deferred and rejected to MSISDN, and why."""
    from jingxin.data.store.audit import list_decisions

    msisdn = _number(msisdn, "MSISDN")  # decisions are kept under the E.164 form
    store = _store(url)
    try:
        with store.transaction() as session:
            records = list_decisions(session, msisdn=msisdn, days=days)
    finally:
        store.dispose()
    if not records:
        console.print(f"no decisions about {msisdn} in the last {days} days")
        return
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


@consent_app.command("add")
def consent_add(
    msisdn: MsisdnOption,
    tenant: TenantOption = "operator",
    category: Annotated[str, typer.Option("--category")] = "marketing",
    channel: Annotated[
        str, typer.Option("--channel", help="sms, app, hall, web, api, paper.")
    ] = "sms",
    wording: Annotated[str, typer.Option("--wording", help="What the subscriber agreed to.")] = "",
    at: AtOption = None,
    url: UrlOption = None,
) -> None:
    """Record a subscriber's consent to one tenant for one category."""
    from jingxin.data.store.contact import record_consent
    from jingxin.data.store.tenants import ensure_default_tenant
    from jingxin.data.validate import CONSENT_CATEGORIES, valid_category

    msisdn = _number(msisdn)
    category = valid_category(category, field="--category", allowed=CONSENT_CATEGORIES)
    _with_store(
        url,
        lambda s: (
            ensure_default_tenant(s),
            record_consent(
                s,
                tenant_id=tenant,
                msisdn=msisdn,
                category=category,
                channel=channel,
                wording=wording,
                given_at=_instant(at),
            ),
        ),
    )
    console.print(f"consent recorded: {msisdn} -> {tenant} {category}")


@optout_app.command("add")
def optout_add(
    msisdn: MsisdnOption,
    tenant: Annotated[
        str | None, typer.Option("--tenant", help="Only this tenant (default: all).")
    ] = None,
    category: Annotated[
        str | None, typer.Option("--category", help="Default: all marketing.")
    ] = None,
    source: Annotated[str, typer.Option("--source")] = "console",
    at: AtOption = None,
    url: UrlOption = None,
) -> None:
    """Record an unsubscribe (from everyone, or one tenant; all marketing, or one category)."""
    from jingxin.data.store.contact import record_opt_out
    from jingxin.data.validate import OPT_OUT_CATEGORIES, OPT_OUT_SOURCES, valid_choice

    msisdn = _number(msisdn)
    if category is not None:
        valid_choice(category, allowed=OPT_OUT_CATEGORIES, field="--category")
    valid_choice(source, allowed=OPT_OUT_SOURCES, field="--source")
    _with_store(
        url,
        lambda s: record_opt_out(
            s, msisdn=msisdn, source=source, tenant_id=tenant, category=category, at=_instant(at)
        ),
    )
    console.print(
        f"opt-out recorded: {msisdn} from {tenant or 'everyone'} {category or 'marketing'}"
    )


@blacklist_app.command("add")
def blacklist_add(
    msisdn: MsisdnOption,
    tenant: Annotated[
        str | None, typer.Option("--tenant", help="Only this tenant (default: all).")
    ] = None,
    reason: Annotated[str, typer.Option("--reason")] = "",
    by: Annotated[str, typer.Option("--by", help="Who adds it.")] = "console",
    at: Annotated[
        str | None, typer.Option("--at", help="In force from this ISO instant (default: now).")
    ] = None,
    url: UrlOption = None,
) -> None:
    """Blacklist a number for everyone (or one tenant), whatever the category."""
    from jingxin.data.store.contact import add_to_blacklist

    msisdn = _number(msisdn)
    _with_store(
        url,
        lambda s: add_to_blacklist(
            s, msisdn=msisdn, added_by=by, reason=reason, tenant_id=tenant, at=_instant(at)
        ),
    )
    console.print(f"blacklisted: {msisdn} for {tenant or 'everyone'}")


@subscriber_app.command("set")
def subscriber_set(
    msisdn: MsisdnOption,
    in_service: Annotated[bool | None, typer.Option("--in-service/--out-of-service")] = None,
    complaint_sensitive: Annotated[
        bool | None, typer.Option("--complaint-sensitive/--not-complaint-sensitive")
    ] = None,
    complained_at: Annotated[
        str | None, typer.Option("--complained-at", help="ISO instant of the last complaint.")
    ] = None,
    roaming: Annotated[
        str | None, typer.Option("--roaming", help="ISO country visited; '-' clears.")
    ] = None,
    timezone: Annotated[
        str | None, typer.Option("--timezone", help="IANA zone of the subscriber.")
    ] = None,
    url: UrlOption = None,
) -> None:
    """Set what the network knows about a number (service, complaints, roaming, zone)."""
    from jingxin.data.store.contact import update_subscriber_state
    from jingxin.data.validate import valid_country, valid_timezone

    msisdn = _number(msisdn)
    changes: dict = {}
    if in_service is not None:
        changes["in_service"] = in_service
    if complaint_sensitive is not None:
        changes["complaint_sensitive"] = complaint_sensitive
    if complained_at is not None:
        changes["last_complaint_at"] = _instant(complained_at, "--complained-at")
    if roaming is not None:
        changes["roaming_country"] = (None if roaming == "-"
                                      else valid_country(roaming, field="--roaming"))
    if timezone is not None:
        changes["timezone"] = valid_timezone(timezone, field="--timezone")
    _with_store(url, lambda s: update_subscriber_state(s, msisdn=msisdn, **changes))
    console.print(f"subscriber state updated: {msisdn} {sorted(changes)}")


def _with_store(url: str | None, work) -> None:
    store = _store(url)
    try:
        with store.transaction() as session:
            work(session)
    finally:
        store.dispose()


def register(app: typer.Typer) -> None:
    """Add this module's commands to ``app``."""
    app.command("why")(why_command)
    app.add_typer(policy_app, name="policy")
    app.add_typer(consent_app, name="consent")
    app.add_typer(optout_app, name="optout")
    app.add_typer(blacklist_app, name="blacklist")
    app.add_typer(subscriber_app, name="subscriber")
