"""``jingxin hall menu|voucher|points|reconcile``: the hall's day-to-day operations.

- ``jingxin hall menu check [FILE]``: every problem of a menu file (default: ``[hall]
  menu_path``, else the packaged one), one per line; exit 1 when there is one;
- ``jingxin hall menu show [--service-number N]``: the halls in use (the menu file's, with
  the edits made over the API) and their zones;
- ``jingxin hall voucher list --msisdn N`` / ``voucher redeem CODE --merchant M`` /
  ``voucher qr CODE [--out FILE]``: what a number holds; a merchant's redemption at the
  counter (the same single-use rule as ``HX<code>`` by SMS); the QR image of a voucher;
- ``jingxin hall points --msisdn N``: a number's points and their bookings;
- ``jingxin hall reconcile [--older-than S]``: settle the orders whose BOSS call timed
  out (or a crash interrupted) from what the BOSS knows of them - never placed blindly
  again; the subscriber is told the result. ``jingxin scheduler`` runs it too.

These sit beside :mod:`jingxin.cli.hall` (its BOSS, report, staff and merchant verbs),
one typer sub-app per noun, registered on the same ``hall`` group.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table
from rich.text import Text

from jingxin.cli.arguments import number, settings_and_store
from jingxin.cli.hall import console, hall_app
from jingxin.errors import InputError
from jingxin.logs import mask

menu_app = typer.Typer(help="The hall's menu file: check it, show it.", no_args_is_help=True)
voucher_app = typer.Typer(help="Electronic vouchers: list, redeem at a merchant, QR image.",
                          no_args_is_help=True)  # fmt: skip
hall_app.add_typer(menu_app, name="menu")
hall_app.add_typer(voucher_app, name="voucher")


@menu_app.command("check")
def menu_check_command(
    path: Annotated[Path | None, typer.Argument(
        help="The menu file (default: [hall] menu_path, else the packaged menu).")] = None,
) -> None:
    """Check a menu file: YAML, fields, zones, rewards, texts. Exit 1 on any problem."""
    from jingxin.config import load_settings
    from jingxin.hall.menu import check_menu

    where = path or load_settings().hall.menu_path
    problems = check_menu(where)
    for problem in problems:
        console.print(Text(problem))
    if problems:
        raise typer.Exit(1)
    console.print(Text(f"menu {where or '(packaged default)'}: ok"))


@menu_app.command("show")
def menu_show_command(
    service_number: Annotated[str | None, typer.Option(
        "--service-number", help="Only the hall answering this number.")] = None,
) -> None:
    """The halls of the menu in use: service number, tenant, zones and rewards."""
    from jingxin.config import load_settings
    from jingxin.hall.menu_edits import effective_menu

    menu = effective_menu(load_settings())
    halls = list(menu.halls)
    if service_number:
        hall = menu.hall_for(service_number)
        if hall is None:
            raise InputError(f"--service-number: no hall answers {service_number!r} "
                             f"(halls: {', '.join(menu.service_numbers)})")  # fmt: skip
        halls = [hall]
    for hall in halls:
        console.print(Text(f"hall {hall.service_number} ({hall.name}), tenant {hall.tenant}",
                           style="bold"))  # fmt: skip
        console.print(Text(hall.menu))
        for key, zone in sorted(hall.zones.items()):
            console.print(Text(f"  zone {key}: {zone.title}"))
        for reward in hall.rewards:
            console.print(Text(f"  reward DH{reward.code}: {reward.title}, {reward.points} "
                               f"points, at {reward.merchant}"))  # fmt: skip


@voucher_app.command("list")
def voucher_list_command(
    msisdn: Annotated[str, typer.Option("--msisdn", help="Whose vouchers.")],
) -> None:
    """Every voucher of a number: code, merchant, value, expiry, redeemed or not."""
    from sqlalchemy import select

    from jingxin.data.store.models import Voucher

    who = number(msisdn)
    _, store = settings_and_store()
    try:
        with store.transaction() as session:
            rows = list(session.scalars(select(Voucher).where(Voucher.msisdn == who)
                                        .order_by(Voucher.issued_at.desc())))  # fmt: skip
            table = Table("code", "title", "merchant", "value", "expires", "redeemed")
            for v in rows:
                table.add_row(v.code, v.title, v.merchant_id, f"{v.value_fen / 100:.2f}",
                              v.expires_at.date().isoformat(),
                              v.redeemed_at.isoformat(timespec="seconds") if v.redeemed_at
                              else "-")  # fmt: skip
    finally:
        store.dispose()
    console.print(Text(f"{len(rows)} voucher(s) of {mask(who)}"))
    if rows:
        console.print(table)


@voucher_app.command("redeem")
def voucher_redeem_command(
    code: Annotated[str, typer.Argument(help="The voucher code the customer shows.")],
    merchant: Annotated[str, typer.Option("--merchant", help="The redeeming merchant's code.")],
) -> None:
    """Redeem a voucher at a merchant's counter: once, before it expires, only there."""
    from jingxin.data.store.models import utc_now
    from jingxin.hall.vouchers import redeem_voucher

    _, store = settings_and_store()
    try:
        done = redeem_voucher(store, code=code, merchant_id=merchant, at=utc_now())
    finally:
        store.dispose()
    if not done.ok:
        console.print(Text(f"voucher {code.upper()} not redeemed: {done.reason}"))
        raise typer.Exit(1)
    v = done.voucher
    console.print(Text(f"voucher {v.code} redeemed at {merchant}: {v.title}, "
                       f"{v.value_fen / 100:.2f} yuan, holder {mask(v.msisdn)}"))  # fmt: skip


@voucher_app.command("qr")
def voucher_qr_command(
    code: Annotated[str, typer.Argument(help="The voucher code.")],
    out: Annotated[Path | None, typer.Option(
        "--out", help="Write the SVG here (default: [hall] voucher_dir/<code>.svg).")] = None,
) -> None:
    """The voucher's QR image (SVG) and the link it encodes."""
    from sqlalchemy import select

    from jingxin.data.store.models import Voucher
    from jingxin.hall.vouchers import voucher_link, voucher_qr, write_qr

    settings, store = settings_and_store()
    wanted = "".join(code.split()).upper()
    try:
        with store.transaction() as session:
            voucher = session.scalar(select(Voucher).where(Voucher.code == wanted))
            if voucher is None:
                raise InputError(f"CODE: no voucher {wanted!r}")
            session.expunge(voucher)
    finally:
        store.dispose()
    link = voucher_link(settings.hall, voucher.code)
    if out is None:
        written = write_qr(settings.hall, voucher, home=settings.home)
    else:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_bytes(voucher_qr(link))
        written = out
    console.print(Text(f"voucher {voucher.code}: {link} -> {written}"))


@hall_app.command("points")
def points_command(
    msisdn: Annotated[str, typer.Option("--msisdn", help="Whose points.")],
    limit: Annotated[int, typer.Option("--limit", min=1, help="Bookings to show.")] = 20,
) -> None:
    """A number's points balance and its latest bookings (earned and redeemed)."""
    from sqlalchemy import select

    from jingxin.data.store.models import PointsEntry
    from jingxin.hall.points import points_balance

    who = number(msisdn)
    _, store = settings_and_store()
    try:
        with store.transaction() as session:
            balance = points_balance(session, who)
            rows = [(p.at.isoformat(timespec="seconds"), p.delta, p.reason, p.key)
                    for p in session.scalars(select(PointsEntry)
                                             .where(PointsEntry.msisdn == who)
                                             .order_by(PointsEntry.id.desc()).limit(limit))]  # fmt: skip
    finally:
        store.dispose()
    console.print(Text(f"{mask(who)}: {balance} points"))
    if rows:
        table = Table("at", "points", "reason", "key")
        for at, delta, reason, key in rows:
            table.add_row(at, f"{delta:+d}", reason, key)
        console.print(table)


@hall_app.command("reconcile")
def reconcile_command(
    older_than: Annotated[float | None, typer.Option(
        "--older-than", min=0,
        help="Seconds an open order must have waited (default: [hall] reconcile_after_seconds).",
    )] = None,
) -> None:
    """Settle orders whose BOSS answer was lost, from the BOSS's own order book."""
    from jingxin.hall.context import HallContext
    from jingxin.hall.orders import reconcile

    settings, store = settings_and_store()
    try:
        tally = reconcile(HallContext.from_settings(settings, store), older_than=older_than)
    finally:
        store.dispose()
    console.print(Text(f"reconciled {tally.checked} open order(s): {tally.placed} placed, "
                       f"{tally.failed} failed, {tally.unknown} still unknown; "
                       f"{tally.notified} subscriber(s) told"))  # fmt: skip
