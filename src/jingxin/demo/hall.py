"""The demo's hall step: simulated subscribers text the SMS business hall (10086).

The BOSS stand-in is loaded from the demo's warehouse (``jingxin hall seed``), with the
demo's staff and merchants. Then, while ``jingxin worker`` is bound to the simulator, two
subscribers of the synthetic operator and a merchant text the hall through the
simulator's MO endpoint, as their phones would: the menu, zones 41/42, a balance query, an
order with a staff code and its confirmation, an NPS answer, a referral the friend orders
(the referrer earns points), points for a voucher the merchant redeems, a complaint, and an
unsubscribe. Each message waits for the answer to the one before (a ``Y`` means nothing
before its ``KT`` is answered); the conversation is printed as it goes, with the time from
MO to reply. A dial test runs against the same hall at the end.
"""

from __future__ import annotations

import json
import signal
import threading
import time
from dataclasses import dataclass
from typing import Any

from jingxin.demo.runner import DemoError, Workspace, demo_environment

HALL = "10086"
PROBE_SIM = "+8613900000000"
PROBES = [
    {"name": "hall-menu", "msisdn": PROBE_SIM, "service_number": HALL, "text": "0",
     "expect": "短信营业厅", "max_latency_ms": 5000},
    {"name": "hall-zone-42", "msisdn": PROBE_SIM, "service_number": HALL, "text": "42",
     "expect": "每日特惠", "max_latency_ms": 5000},
]  # fmt: skip


@dataclass(frozen=True, slots=True)
class Cast:
    """Who texts the hall: a subscriber, the friend they refer, a merchant; what to order."""

    subscriber: str
    friend: str
    merchant: str
    deal: str  # a zone-42 product code
    referral: str  # the product the friend is offered


def _store(ws: Workspace) -> Any:
    from jingxin.data.store import open_store

    return open_store(ws.store_url)


def _cast(ws: Workspace) -> Cast:
    """Two prepaid China Mobile subscribers with money and no add-ons, from the BOSS."""
    from sqlalchemy import select

    from jingxin.data.msisdn import carrier_of
    from jingxin.data.store.models import BossAccount, BossHolding, BossProduct
    from jingxin.hall.seed import DEMO_MERCHANTS

    store = _store(ws)
    try:
        with store.transaction() as s:
            holders = select(BossHolding.msisdn)
            candidates = s.scalars(select(BossAccount.msisdn).where(
                BossAccount.payment == "prepaid", BossAccount.status == "active",
                BossAccount.balance_fen >= 5000,
                BossAccount.msisdn.not_in(holders)).order_by(BossAccount.msisdn)).all()
            deal = s.scalar(select(BossProduct.product_id).where(
                BossProduct.zone == "42", BossProduct.active.is_(True)).order_by(BossProduct.rank))
    finally:
        store.dispose()
    # China Mobile by its number ranges (any of them: a small synthetic operator may have
    # too few in one range such as 139)
    numbers = [n for n in candidates if carrier_of(n) == "china_mobile"][:2]
    if len(numbers) < 2 or deal is None:
        raise DemoError("the BOSS has no two prepaid China Mobile subscribers without add-ons, "
                        "or no deal: run the demo with more --subscribers")
    return Cast(subscriber=numbers[0], friend=numbers[1], merchant=DEMO_MERCHANTS[0][2],
                deal=deal, referral="RBT5")  # fmt: skip


def _voucher_code(ws: Workspace, msisdn: str) -> str:
    from sqlalchemy import select

    from jingxin.data.store.models import Voucher

    store = _store(ws)
    try:
        with store.transaction() as s:
            code = s.scalar(select(Voucher.code).where(Voucher.msisdn == msisdn)
                            .order_by(Voucher.id.desc()))  # fmt: skip
    finally:
        store.dispose()
    if code is None:
        raise DemoError("the points redemption issued no voucher")
    return code


def _reply_to(ws: Workspace, *, msisdn: str, after: int) -> tuple[int, str, float] | None:
    """(MO id, reply text, ms from MO received to reply queued) of the first MO from
    ``msisdn`` after id ``after`` once it is handled; None while it is not."""
    from sqlalchemy import select

    from jingxin.data.store.models import Message, MoMessage, MoOutcome

    store = _store(ws)
    try:
        with store.transaction() as s:
            row = s.execute(
                select(MoMessage.id, MoMessage.received_at, MoOutcome.outcome,
                       Message.text, Message.created_at)
                .join(MoOutcome, MoOutcome.mo_id == MoMessage.id)
                .outerjoin(Message, Message.id == MoOutcome.reply_message_id)
                .where(MoMessage.msisdn == msisdn, MoMessage.id > after)
                .order_by(MoMessage.id).limit(1)).first()  # fmt: skip
    finally:
        store.dispose()
    if row is None:
        return None
    mo_id, received, outcome, text, created = row
    took = (created - received).total_seconds() * 1000 if created else 0.0
    return mo_id, text or f"({outcome}, no reply)", took


def _say(ws: Workspace, url: str, who: str, label: str, text: str, last: dict[str, int]) -> str:
    """Text the hall as ``who`` and wait for the answer; print both; return the reply."""
    from jingxin.errors import ChannelError
    from jingxin.smsc.mo import post_mo

    deadline = time.monotonic() + 15
    while True:  # the simulator refuses an MO while no worker is bound yet
        try:
            post_mo(url, source=who, destination=HALL, text=text)
            break
        except ChannelError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.3)
    ws.console.print(f"[bold cyan]{label} → {HALL}:[/] {text}")
    while (got := _reply_to(ws, msisdn=who, after=last.get(who, 0))) is None:
        if time.monotonic() > deadline:
            raise DemoError(f"the hall did not answer {text!r} within 15 s")
        time.sleep(0.1)
    last[who] = got[0]
    ws.console.print(f"[bold magenta]{HALL} → {label}:[/] {got[1]} [dim]({got[2]:.0f} ms)[/]",
                     highlight=False)  # fmt: skip
    return got[1]


def _conversation(ws: Workspace, cast: Cast, url: str) -> None:
    last: dict[str, int] = {}
    me, friend, shop = "subscriber A", "friend B", "merchant M001"
    # "ye" twice: over SMPP the same text again is a new question once the first was
    # acknowledged (the second answer shows the order's first month taken off).
    for text in ("0", "41", "42", "ye", f"KT{cast.deal} S1001", "Y", "9", "ye",
                 f"{cast.friend.removeprefix('+86')}CL"):
        _say(ws, url, cast.subscriber, me, text, last)
    for text in (f"KT{cast.referral}", "Y"):
        _say(ws, url, cast.friend, friend, text, last)
    for text in ("jf", "DHK2"):
        _say(ws, url, cast.subscriber, me, text, last)
    code = _voucher_code(ws, cast.subscriber)
    _say(ws, url, cast.merchant, shop, f"HX{code}", last)
    # The same text again: a new attempt (the first was acknowledged), and the code is
    # single use, so refused.
    _say(ws, url, cast.merchant, shop, f"HX{code}", last)
    _say(ws, url, cast.subscriber, me, "投诉 营销短信太多了", last)
    _say(ws, url, cast.friend, friend, "TD", last)


def _talk_then_stop(ws: Workspace, cast: Cast, failures: list[str]) -> None:
    from jingxin.config import load_settings

    try:
        settings = load_settings()
        url = f"http://{settings.smsc.host}:{settings.smsc.http_port}"
        time.sleep(1.0)  # the worker binds
        _conversation(ws, cast, url)
        _probe(ws, settings)
    except Exception as exc:  # noqa: BLE001 - reported by the step, which then fails
        failures.append(f"{type(exc).__name__}: {exc}")
    finally:
        ws.console.print("[dim](Ctrl-C: the conversation is over)[/]")
        signal.raise_signal(signal.SIGINT)  # the worker's handler stops it cleanly


def _probe(ws: Workspace, settings: Any) -> None:
    """The dial tests, while the worker is still bound (they need the hall to answer)."""
    import asyncio

    from jingxin.cli.probe import configured_probes, print_report
    from jingxin.data.store import open_store
    from jingxin.probes import SimulatorChannel, run_and_record

    ws.console.print("[bold green]$ jingxin probe run[/] [dim](dial tests, as the scheduler "
                     "runs them)[/]")  # fmt: skip
    url = f"http://{settings.smsc.host}:{settings.smsc.http_port}"
    store = open_store(ws.store_url)
    try:
        report = asyncio.run(run_and_record(
            configured_probes(settings, None), channel=SimulatorChannel(url), store=store,
            timeout=settings.probing.timeout_seconds))  # fmt: skip
    finally:
        store.dispose()
    print_report(report)
    if not report.ok:
        raise DemoError("a dial test failed")


def hall(ws: Workspace) -> None:
    """The step: needs the simulator's channels in the environment (JINGXIN_CHANNELS)."""
    ws.heading("The SMS business hall: subscribers text 10086",
               "The BOSS stand-in is loaded from the warehouse; two subscribers and a merchant "
               "text the hall through the simulator: menus 41/42, a balance query, an order "
               "confirmed with Y (and a staff code), a referral the friend orders (points for "
               "the referrer), points for a voucher the merchant redeems once, a complaint, "
               "an unsubscribe. Then dial tests, the hall report and the leaderboard.")
    extra = {"JINGXIN_PROBES": json.dumps(PROBES)}
    with demo_environment(ws, extra):
        ws.run("hall", "seed", "--limit", "20000", "--demo")
        ws.run("hall", "products", "--zone", "42")
        cast = _cast(ws)
        ws.run("consent", "add", "--msisdn", cast.friend, "--category", "marketing",
               "--wording", "同意接收业务推荐短信")  # fmt: skip
        failures: list[str] = []
        talker = threading.Thread(target=_talk_then_stop, args=(ws, cast, failures), daemon=True)
        talker.start()
        try:
            ws.run("worker")
        finally:
            talker.join(60)
        if failures:
            raise DemoError("; ".join(failures))
        ws.run("hall", "points", "--msisdn", cast.subscriber)
        ws.run("hall", "orders")
        ws.run("hall", "report")
        ws.run("hall", "leaderboard", "--by", "branch")
        ws.run("probe", "history")
