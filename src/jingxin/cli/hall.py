"""``jingxin hall``: the SMS business hall's BOSS stand-in, orders, reports, staff and
merchants.

- ``jingxin hall seed [--catalogue FILE] [--limit N] [--as-of DATE] [--warehouse FILE]
  [--demo]``: load the BOSS stand-in (products, accounts, holdings) from the warehouse;
- ``jingxin hall products [--zone 41]``: what the BOSS sells, by zone and rank;
- ``jingxin hall orders [--state unknown] [--msisdn N] [--limit N]``: hall orders, newest
  first (numbers masked);
- ``jingxin hall report [--months 3] [--tenant T] [--json]``: users, queries versus
  orders, conversion per zone, orders by state, referral chains, NPS, complaints;
- ``jingxin hall leaderboard [--by staff|branch] [--since 30d] [--json]``: the incentive
  leaderboard;
- ``jingxin hall staff add CODE --name N --branch B`` / ``hall staff import FILE.csv``;
- ``jingxin hall staff list [--branch B] [--all] [--tenant T] [--json]`` / ``hall staff
  remove CODE [--tenant T]``: the staff list; a code out of use (its row kept);
- ``jingxin hall merchant add ID --name N --msisdn M``;
- ``jingxin hall merchant list [--all] [--tenant T] [--json]`` / ``hall merchant remove ID
  [--tenant T]``: the merchants (numbers masked); one stopped from redeeming.

One typer app per noun (``hall_app`` for the hall's own verbs, ``staff_app``,
``merchant_app``): a new group of commands is a new sub-app added in :func:`register`'s
neighbourhood, not a branch in an existing command.
"""

from __future__ import annotations

import json
import sys
from dataclasses import asdict
from datetime import UTC, date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

from jingxin.cli.arguments import read_warehouse, settings_and_store
from jingxin.errors import InputError
from jingxin.logs import mask

if TYPE_CHECKING:
    from collections.abc import Callable

    from jingxin.hall.report import HallReport, LeaderRow

console = Console(highlight=False, width=None if sys.stdout.isatty() else 200)

hall_app = typer.Typer(help="The SMS business hall (短信营业厅): BOSS stand-in, orders, "
                            "reports, staff and merchants.", no_args_is_help=True)  # fmt: skip
staff_app = typer.Typer(help="Staff and agents whose codes customers quote when they order.",
                        no_args_is_help=True)  # fmt: skip
merchant_app = typer.Typer(help="Merchants that redeem the hall's vouchers.",
                           no_args_is_help=True)  # fmt: skip
hall_app.add_typer(staff_app, name="staff")
hall_app.add_typer(merchant_app, name="merchant")

JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON instead of tables.")]
TenantFilter = Annotated[str | None, typer.Option(
    "--tenant", help="Only this tenant's hall (default: every tenant).")]  # fmt: skip
TenantOption = Annotated[str, typer.Option("--tenant", help="Tenant id.")]
ZONES = ("41", "42")


def _yuan(fen: int) -> str:
    return f"{fen / 100:.2f}"


def _share(value: float | None) -> str:
    return "-" if value is None else f"{value:.1%}"


# ----------------------------------------------------------------------------- BOSS


@hall_app.command("seed")
def seed_command(
    catalogue: Annotated[Path | None, typer.Option(
        "--catalogue", help="Product catalogue (YAML; default: the packaged one).")] = None,
    limit: Annotated[int | None, typer.Option(
        "--limit", help="Only the first N subscribers (by subscriber id).")] = None,
    as_of: Annotated[str | None, typer.Option(
        "--as-of", help="Usage and holdings as of this date (default: the latest).")] = None,
    warehouse: Annotated[Path | None, typer.Option(
        "--warehouse", help="DuckDB warehouse file (default: warehouse.path).")] = None,
    demo: Annotated[bool, typer.Option(
        "--demo", help="Also add the demo's staff and merchants.")] = False,
) -> None:
    """Load the BOSS stand-in from the warehouse: products, accounts, holdings (re-runnable)."""
    from jingxin.hall.seed import seed_boss, seed_demo_hall

    day = _date(as_of, option="--as-of") if as_of is not None else None
    settings, store = settings_and_store()
    try:
        with read_warehouse(settings, warehouse) as wh:
            tally = seed_boss(store, wh, catalogue_path=catalogue, as_of=day, limit=limit)
        demo_hall = seed_demo_hall(store) if demo else None
    finally:
        store.dispose()
    console.print(f"BOSS seeded: {tally.products} products and {tally.plans} plans "
                  f"({tally.retired} retired), "
                  f"{tally.accounts} accounts, {tally.holdings} holdings")  # fmt: skip
    if demo_hall is not None:
        console.print(f"demo hall: {demo_hall.staff} staff, {demo_hall.merchants} merchants")


def _date(text: str, *, option: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise InputError(f"{option}: {text!r} is not a date (YYYY-MM-DD)") from None




@hall_app.command("products")
def products_command(
    zone: Annotated[str | None, typer.Option("--zone", help="Only zone 41 or 42.")] = None,
) -> None:
    """The products the BOSS sells, by zone and rank (withdrawn ones left out)."""
    from jingxin.hall.boss import StoreBoss

    if zone is not None and zone not in ZONES:
        raise InputError(f"--zone: {zone!r} is not one of {', '.join(ZONES)}")
    _, store = settings_and_store()
    try:
        products = StoreBoss(store).products(zone)
    finally:
        store.dispose()
    if not products:
        console.print("no products (run `jingxin hall seed`)")
        return
    products.sort(key=lambda p: (p.zone is None, p.zone or "", p.rank, p.product_id))
    table = Table("zone", "rank", "code", "name", "category", "yuan/month", "trial days",
                  "exclusive", "needs", title=f"BOSS products: {len(products)}")  # fmt: skip
    for p in products:
        needs = [f"star ≥ {p.min_star_level}"] if p.min_star_level else []
        needs += [p.payment] if p.payment else []
        needs += ["electronic only"] if p.electronic_only else []
        table.add_row(p.zone or "-", str(p.rank), p.product_id, Text(p.name), p.category,
                      _yuan(p.monthly_fee_fen), str(p.trial_days or "-"),
                      p.exclusive_group or "-", ", ".join(needs) or "-")  # fmt: skip
    console.print(table)


@hall_app.command("orders")
def orders_command(
    state: Annotated[str | None, typer.Option(
        "--state", help="submitting, placed, failed, unknown or cancelled.")] = None,
    msisdn: Annotated[str | None, typer.Option("--msisdn", help="Only this number's.")] = None,
    tenant: TenantFilter = None,
    limit: Annotated[int, typer.Option("--limit", help="At most this many rows.")] = 50,
) -> None:
    """Hall orders, newest first, with their price rule, staff code and state."""
    from jingxin.cli.arguments import number
    from jingxin.hall.report import list_orders

    who = number(msisdn) if msisdn is not None else None
    settings, store = settings_and_store()
    try:
        orders = list_orders(store, state=state, msisdn=who, tenant_id=tenant, limit=limit)
    finally:
        store.dispose()
    if not orders:
        console.print("no hall orders match")
        return
    zone = settings.policy.default_timezone
    table = Table("id", f"created ({zone})", "number", "product", "zone", "yuan", "rule",
                  "staff", "state", "reason", title=f"hall orders: {len(orders)}")  # fmt: skip
    for o in orders:
        table.add_row(str(o.id), _local(o.created_at, zone), mask(o.msisdn), o.product_id,
                      o.zone or "-", _yuan(o.price_fen), _rule(o), o.staff_code or "-", o.state,
                      o.reason or "-")  # fmt: skip
    console.print(table)


def _rule(order: Any) -> str:
    """The price rule an order was sold under, in a few words."""
    if order.discount_pct:
        return f"{order.discount_pct}% off × {order.discounted_months} months"
    return f"{order.trial_days} days free" if order.trial_days else "-"


def _local(moment: datetime, zone: str) -> str:
    from zoneinfo import ZoneInfo

    return f"{moment.astimezone(ZoneInfo(zone)):%Y-%m-%d %H:%M}"


# ----------------------------------------------------------------------------- reports


@hall_app.command("report")
def report_command(
    months: Annotated[int, typer.Option("--months", help="Calendar months up to now.")] = 3,
    tenant: TenantFilter = None,
    as_json: JsonOption = False,
) -> None:
    """Users, queries versus orders, zone conversion, referral chains, NPS, complaints."""
    from jingxin.hall.report import hall_report

    _, store = settings_and_store()
    try:
        report = hall_report(store, now=datetime.now(UTC), months=months, tenant_id=tenant)
    finally:
        store.dispose()
    if as_json:
        typer.echo(json.dumps(_masked_report(report), ensure_ascii=False, indent=2))
        return
    _print_report(report)


def _masked_report(report: HallReport) -> dict[str, Any]:
    out = report.to_json()
    for chain in out["referrals"]["longest"]:
        chain["msisdns"] = [mask(n) for n in chain["msisdns"]]
    return out


def _print_report(r: HallReport) -> None:
    who = f"tenant {r.tenant_id}" if r.tenant_id else "all tenants"
    console.print(Text.assemble(("SMS business hall", "bold"), f", {who}: {r.since:%Y-%m-%d}"
                                f" to {r.until:%Y-%m-%d} ({r.months} months, UTC)"))
    nps = "-" if r.nps.score is None else f"{r.nps.score:+.1f}"
    summary = Table("measure", "value", title="use")
    for name, value in (
        ("users", r.users), ("interactions", r.interactions),
        ("queries", r.kinds.get("query", 0)), ("orders", r.kinds.get("order", 0)),
        ("other", r.kinds.get("other", 0)), ("complaints", r.complaints),
        ("NPS", f"{nps} ({r.nps.answers} answers: {r.nps.promoters} promoters, "
                f"{r.nps.passives} passives, {r.nps.detractors} detractors)"),
    ):  # fmt: skip
        summary.add_row(name, str(value))
    console.print(summary)
    zones = Table("zone", "viewers", "orders", "placed", "conversion", title="zones")
    for z in r.zones:
        zones.add_row(z.zone, str(z.viewers), str(z.orders), str(z.placed), _share(z.conversion))
    console.print(zones if r.zones else "zones: none listed")
    states = ", ".join(f"{k} {v}" for k, v in r.order_states.items()) or "none"
    console.print(f"orders by state: {states}")
    _print_chains(r)


def _print_chains(r: HallReport) -> None:
    ref = r.referrals
    console.print(f"referrals: {ref.referrals}, converted {ref.converted} "
                  f"({_share(ref.converted_share)}); {ref.chains} chains, deepest {ref.max_depth}")
    if ref.depths:
        console.print("chains by depth: " + ", ".join(f"{d}: {n}" for d, n in ref.depths.items()))
    if ref.longest:
        table = Table("depth", "converted", "chain", title="longest referral chains")
        for chain in ref.longest:
            table.add_row(str(chain.depth), str(chain.converted),
                          " → ".join(mask(n) for n in chain.msisdns))  # fmt: skip
        console.print(table)


@hall_app.command("leaderboard")
def leaderboard_command(
    by: Annotated[str, typer.Option("--by", help="staff or branch.")] = "staff",
    since: Annotated[str, typer.Option(
        "--since", help="A span back from now (30d, 12h, 2w) or an ISO instant.")] = "30d",
    tenant: TenantFilter = None,
    as_json: JsonOption = False,
) -> None:
    """The incentive leaderboard: orders, converted referrals and points per staff code."""
    from jingxin.cli.probe import parse_since
    from jingxin.hall.report import LEADERBOARD_BY, leaderboard

    if by not in LEADERBOARD_BY:
        raise InputError(f"--by: {by!r} is not one of {', '.join(LEADERBOARD_BY)}")
    start = parse_since(since)
    _, store = settings_and_store()
    try:
        rows = leaderboard(store, since=start, by=by, tenant_id=tenant)  # type: ignore[arg-type]
    finally:
        store.dispose()
    if as_json:
        typer.echo(json.dumps({"since": start.isoformat(), "by": by,
                               "rows": [asdict(row) for row in rows]},
                              ensure_ascii=False, indent=2))  # fmt: skip
        return
    _print_leaderboard(rows, by=by, since=start)


def _print_leaderboard(rows: list[LeaderRow], *, by: str, since: datetime) -> None:
    if not rows:
        console.print(f"no orders, referrals or points under a staff code since {since:%Y-%m-%d}")
        return
    title = f"leaderboard by {by} since {since:%Y-%m-%d %H:%M} UTC"
    if by == "staff":
        table = Table("#", "code", "name", "branch", "orders", "referrals", "points", title=title)
        for row in rows:
            table.add_row(str(row.rank), row.key, Text(row.name or "-"), Text(row.branch),
                          str(row.orders), str(row.referrals), str(row.points))  # fmt: skip
    else:
        table = Table("#", "branch", "staff", "orders", "referrals", "points", title=title)
        for row in rows:
            table.add_row(str(row.rank), Text(row.key), str(row.staff), str(row.orders),
                          str(row.referrals), str(row.points))  # fmt: skip
    console.print(table)


# ----------------------------------------------------------------------------- staff


@staff_app.command("add")
def staff_add_command(
    code: Annotated[str, typer.Argument(help="The staff code customers quote, e.g. S1234.")],
    name: Annotated[str, typer.Option("--name", help="The staff member's name.")],
    branch: Annotated[str, typer.Option("--branch", help="Their branch (营业厅).")],
    tenant: TenantOption = "operator",
) -> None:
    """Add a member of staff or an agent (or update the one with this code)."""
    from jingxin.hall.staff import add_staff

    _, store = settings_and_store()
    try:
        with store.transaction() as session:
            row = add_staff(session, code=code, name=name, branch=branch, tenant_id=tenant)
            saved = (row.code, row.name, row.branch)
    finally:
        store.dispose()
    console.print(Text(f"staff {saved[0]} saved: {saved[1]}, {saved[2]}"))


@staff_app.command("import")
def staff_import_command(
    path: Annotated[Path, typer.Argument(help="CSV with the header code,name,branch.")],
    tenant: TenantOption = "operator",
) -> None:
    """Import a staff list (all of it, or nothing if a line is wrong); re-runnable."""
    from jingxin.hall.staff import import_staff

    _, store = settings_and_store()
    try:
        done = import_staff(store, path, tenant_id=tenant)
    finally:
        store.dispose()
    console.print(f"staff from {path}: {done.added} added, {done.updated} updated, "
                  f"{done.unchanged} unchanged")  # fmt: skip


@staff_app.command("list")
def staff_list_command(
    branch: Annotated[str | None, typer.Option("--branch", help="Only this branch's.")] = None,
    everyone: Annotated[bool, typer.Option(
        "--all", help="Also the removed (inactive) codes.")] = False,
    tenant: TenantFilter = None,
    as_json: JsonOption = False,
) -> None:
    """The registered staff and agents, by branch and code (active ones unless --all)."""
    from jingxin.hall.staff import list_staff

    def rows(session: Any) -> list[tuple]:
        return [(s.code, s.name, s.branch, s.tenant_id, s.active)
                for s in list_staff(session, branch=branch, tenant_id=tenant,
                                    include_inactive=everyone)]  # fmt: skip

    _print_registered(rows, ("code", "name", "branch", "tenant", "active"), as_json=as_json,
                      title="staff", empty=_none_listed("staff", everyone, branch=branch,
                                                        tenant=tenant) +
                      ": add them with `jingxin hall staff add` or `jingxin hall staff import`")


@staff_app.command("remove")
def staff_remove_command(
    code: Annotated[str, typer.Argument(help="The staff code to take out of use.")],
    tenant: TenantOption = "operator",
) -> None:
    """Take a staff code out of use (someone left); `staff add` re-activates it.

    New orders quoting it no longer count for it; past orders and the leaderboard keep it."""
    from jingxin.hall.staff import deactivate_staff

    _, store = settings_and_store()
    try:
        with store.transaction() as session:
            row, changed = deactivate_staff(session, code=code, tenant_id=tenant)
            saved = (row.code, row.name, row.branch)
    finally:
        store.dispose()
    done = ("removed: new orders quoting it no longer count for it" if changed
            else "was already removed")  # fmt: skip
    console.print(Text(f"staff {saved[0]} ({saved[1]}, {saved[2]}) {done}"))


def _none_listed(noun: str, everyone: bool, *, branch: str | None = None,
                 tenant: str | None = None) -> str:  # fmt: skip
    """What an empty list was of: ``no staff registered`` (``--all``, no filter), ``no
    active staff of branch '浦东' in tenant 't1'``."""
    text = f"no {noun}" if everyone else f"no active {noun}"
    text += f" of branch {branch.strip()!r}" if branch is not None else ""
    text += f" in tenant {tenant!r}" if tenant is not None else ""
    return f"no {noun} registered" if text == f"no {noun}" else text


# ----------------------------------------------------------------------------- merchants


@merchant_app.command("add")
def merchant_add_command(
    merchant_id: Annotated[str, typer.Argument(help="The merchant code, e.g. M001.")],
    name: Annotated[str, typer.Option("--name", help="The merchant's name.")],
    msisdn: Annotated[str, typer.Option(
        "--msisdn", help="The number it redeems vouchers from (HX<code>).")],
    tenant: TenantOption = "operator",
) -> None:
    """Register a merchant that redeems vouchers by texting from its number."""
    from jingxin.hall.vouchers import add_merchant

    _, store = settings_and_store()
    try:
        with store.transaction() as session:
            row = add_merchant(session, id=merchant_id, name=name, msisdn=msisdn,
                               tenant_id=tenant)  # fmt: skip
            saved = (row.id, row.name, row.msisdn)
    finally:
        store.dispose()
    console.print(Text(f"merchant {saved[0]} added: {saved[1]}, redeems from {mask(saved[2])}"))


@merchant_app.command("list")
def merchant_list_command(
    everyone: Annotated[bool, typer.Option(
        "--all", help="Also the removed (inactive) merchants.")] = False,
    tenant: TenantFilter = None,
    as_json: JsonOption = False,
) -> None:
    """The merchants that redeem vouchers, by id, numbers masked (active ones unless --all)."""
    from jingxin.hall.vouchers import list_merchants

    def rows(session: Any) -> list[tuple]:
        return [(m.id, m.name, mask(m.msisdn), m.tenant_id, m.active)
                for m in list_merchants(session, tenant_id=tenant,
                                        include_inactive=everyone)]  # fmt: skip

    _print_registered(rows, ("id", "name", "msisdn", "tenant", "active"), as_json=as_json,
                      title="merchants", empty=_none_listed("merchants", everyone, tenant=tenant)
                      + ": add them with `jingxin hall merchant add`")


def _print_registered(read: Callable[[Any], list[tuple]], keys: tuple[str, ...], *,
                      as_json: bool, title: str, empty: str) -> None:  # fmt: skip
    """The rows ``read`` gives (its last column ``active``) as JSON objects with ``keys``,
    or as a table titled ``title`` (``empty`` when there are none): the staff and
    merchant lists."""
    _, store = settings_and_store()
    try:
        with store.transaction() as session:
            rows = read(session)
    finally:
        store.dispose()
    if as_json:
        typer.echo(json.dumps([dict(zip(keys, row, strict=True)) for row in rows],
                              ensure_ascii=False, indent=2))  # fmt: skip
        return
    if not rows:
        console.print(Text(empty))
        return
    table = Table(*keys, title=f"{title}: {len(rows)}")
    for *values, active in rows:
        table.add_row(*(Text(str(v)) for v in values), "yes" if active else "no")
    console.print(table)


@merchant_app.command("remove")
def merchant_remove_command(
    merchant_id: Annotated[str, typer.Argument(help="The merchant code, e.g. M001.")],
    tenant: TenantOption = "operator",
) -> None:
    """Stop a merchant redeeming vouchers; `merchant add` re-activates it.

    Its row and its vouchers' history are kept."""
    from jingxin.hall.vouchers import deactivate_merchant

    _, store = settings_and_store()
    try:
        with store.transaction() as session:
            row, changed = deactivate_merchant(session, id=merchant_id, tenant_id=tenant)
            saved = (row.id, row.name)
    finally:
        store.dispose()
    done = "removed: it can no longer redeem vouchers" if changed else "was already removed"
    console.print(Text(f"merchant {saved[0]} ({saved[1]}) {done}"))


def register(app: typer.Typer) -> None:
    """Add this module's commands (and :mod:`jingxin.cli.hall_ops`'s) to ``app``."""
    import jingxin.cli.hall_ops  # noqa: F401 - its import adds the menu, voucher, points and reconcile verbs

    app.add_typer(hall_app, name="hall")
