"""How the simulated subscribers' actions enter the system: through the same doors real
ones use (a SIMULATION; see :mod:`jingxin.smsc.subscribers`).

* clicks: a GET on the short-link server (``jingxin serve``) with a phone's User-Agent, or
  :func:`jingxin.analytics.clicks.record_clicks` at the simulated instant;
* MO (reply, ``TD``, complaint): ``POST /mo`` on the running simulator, or stored as the
  inbox stores them (:func:`jingxin.dispatch.mo_inbox.store_parts`, with an SMSC id per
  message and action, so a repeat is stored once) and handled at once with ``settings``;
* orders: :class:`jingxin.hall.boss.StoreBoss`, channel ``app``, a product of the offer's
  kind the subscriber may order (checked with the BOSS's own rules first), request key
  per experiment and number.

Every effect is looked up before it is made (clicked links, MO in the inbox, BOSS request
keys), so a second run counts it under ``already:<action>`` and does nothing. One bad
row (a refused order, a link the server does not know) is counted and skipped; an
endpoint that cannot be reached three times in a row stops the run with a
:class:`~jingxin.errors.ChannelError` - what was done stays done, and a re-run finishes.
"""

from __future__ import annotations

import hashlib
import logging
import re
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

import numpy as np
from sqlalchemy import select

from jingxin.data.store.engine import Store, store_errors
from jingxin.errors import ChannelError

if TYPE_CHECKING:
    from jingxin.config import Settings
    from jingxin.hall.boss import Product
    from jingxin.smsc.reactions import Reactions
    from jingxin.smsc.subscribers import Audience, Sent

log = logging.getLogger(__name__)

AGENT = ("Mozilla/5.0 (Linux; Android 13; V2227A) AppleWebKit/537.36 (KHTML, like Gecko) "
         "Chrome/116.0.0.0 Mobile Safari/537.36")  # a phone's browser, not a preview bot
REPLIES = ("好的", "多少钱", "1", "了解一下", "怎么办理")
ORDER_CHANNEL = "app"
MAX_UNREACHABLE = 3  # consecutive failures to reach an endpoint before the run stops
_CHUNK = 400  # numbers per IN list (SQLite caps bound parameters)
_CODE = re.compile(r"KT\s*([A-Za-z0-9]{2,10})", re.IGNORECASE)  # "回复KTLL10开通"

# The products an offer of each kind leads to: categories first, then zones ("41" free
# trials, "42" daily deals); anything else falls back to the deals and trials.
KIND_CATEGORIES = {"data": ("data_pack",), "roaming": ("roaming_pack",)}
KIND_ZONES = {"discount": ("42",), "care": ("41",), "generic": ("42", "41")}


@dataclass(frozen=True)
class Routes:
    """Where a subscriber's MO go: the message's sender (else its channel's default
    ``source_addr``) for replies and ``TD``; the tenant's hall for complaints."""

    default_senders: Mapping[str, str] = field(default_factory=dict)
    unsubscribe_word: str = "TD"
    halls: Mapping[str, tuple[str, str]] = field(default_factory=dict)  # tenant → (number, word)

    @classmethod
    def of(cls, settings: Settings | None) -> Routes:
        """From ``settings``; without them, the packaged hall menu and no channel defaults."""
        from jingxin.hall.menu import load_menu

        words = ["TD"] if settings is None else list(settings.inbox.unsubscribe_words)
        enabled = settings is None or settings.hall.enabled
        menu = load_menu(None if settings is None else settings.hall.menu_path) if enabled else None
        halls: dict[str, tuple[str, str]] = {}
        for hall in menu.halls if menu is not None else ():
            word = hall.complaint_words[0] if hall.complaint_words else "投诉"
            halls.setdefault(hall.tenant, (hall.service_number, word))
        senders = {} if settings is None else {c.name: c.source_addr for c in settings.channels}
        return cls(default_senders=senders, halls=halls,
                   unsubscribe_word="TD" if "TD" in words else words[0])  # fmt: skip

    def reply_to(self, sent: Sent) -> str | None:
        return sent.sender or self.default_senders.get(sent.channel or "")

    def complaint(self, sent: Sent) -> tuple[str | None, str]:
        """(service number, text) of a complaint about ``sent``."""
        hall = self.halls.get(sent.tenant_id) or next(iter(self.halls.values()), None)
        if hall is None:
            return self.reply_to(sent), "投诉 骚扰短信"
        return hall[0], f"{hall[1]} 骚扰短信"


# ----------------------------------------------------------------------------- orders


def order_key(experiment: str, msisdn: str) -> str:
    """The BOSS request key of the simulated order of ``msisdn`` in ``experiment``."""
    digest = hashlib.sha256(f"{experiment}|{msisdn}".encode()).hexdigest()[:24]
    return f"sim:{msisdn}:{digest}"


def offer_products(kind: str, text: str | None, products: Iterable[Product]) -> list[Product]:
    """What an offer of ``kind`` sells, best first: a product the text names (``KT<code>``),
    then the kind's categories or zones, then the deals and trials."""
    from jingxin.hall.boss import PLAN_CATEGORY

    products = [p for p in products if p.category != PLAN_CATEGORY]
    by_id = {p.product_id.upper(): p for p in products}
    named = [by_id[c.upper()] for c in _CODE.findall(text or "") if c.upper() in by_id]
    categories = KIND_CATEGORIES.get(kind, ())
    zones = KIND_ZONES.get(kind, ("42", "41"))
    ranked = sorted(products, key=lambda p: (p.rank, p.product_id))
    fit = [p for p in ranked if p.category in categories]
    fit += [p for z in zones for p in ranked if p.zone == z and p not in fit]
    fallback = [p for z in ("42", "41") for p in ranked if p.zone == z]
    out: list[Product] = []
    for p in (*named, *fit, *fallback):
        if p not in out:
            out.append(p)
    return out


def order(store: Store, audience: Audience, did: Reactions, *, experiment: str,
          counts: Counter[str], now: datetime) -> None:  # fmt: skip
    """Place the orders the draws decided, once per experiment and number, each booked at
    the instant the subscriber acted: a reader after the click's delay and half an hour on
    the order page; one never reached (held out) during the campaign - at the latest
    arrival of its messages plus the same delay - so orders fall in the campaign's period
    whenever the simulation is run (never after ``now``)."""
    from jingxin.data.store.models import BossOrder
    from jingxin.hall.boss import BossError, StoreBoss, check_order

    ordered = did.ordered
    arrivals = [s.arrived_at for s in audience.sent if s is not None]
    period = max(arrivals) if arrivals else now
    who = [int(i) for i in np.flatnonzero(ordered)]
    if not who:
        return
    keys = {i: order_key(experiment, audience.msisdns[i]) for i in who}
    done = _existing(store, BossOrder.request_key, list(keys.values()), what="BOSS orders")
    fresh = [i for i in who if keys[i] not in done]
    _add(counts, "already:ordered", len(who) - len(fresh))
    if not fresh:
        return
    booked_at = now
    boss = StoreBoss(store, clock=lambda: booked_at)
    products = boss.products()
    by_id = {p.product_id: p for p in products}
    accounts: dict[str, Any] = {}
    holdings: dict[str, set[str]] = {}
    numbers = [audience.msisdns[i] for i in fresh]
    for start in range(0, len(numbers), _CHUNK):  # SQLite caps an IN list's parameters
        found, held_now = boss.snapshot(numbers[start:start + _CHUNK])
        accounts.update(found)
        holdings.update(held_now)
    for i in fresh:
        msisdn, sent = audience.msisdns[i], audience.sent[i]
        account = accounts.get(msisdn)
        held = [by_id[h] for h in holdings.get(msisdn, ()) if h in by_id]
        candidates = offer_products(audience.kinds[i], sent.text if sent else None, products)
        refusals = [check_order(account=account, product=p, held=held, channel=ORDER_CHANNEL,
                                fee_fen=p.monthly_fee_fen) for p in candidates]  # fmt: skip
        chosen = next((p for p, no in zip(candidates, refusals, strict=True) if no is None), None)
        if chosen is None:
            reason = refusals[0].reason if refusals and refusals[0] else "no_product"
            counts[f"refused:order:{reason}"] += 1
            continue
        minutes = float(did.click_delay[i]) + 30.0
        booked_at = min((sent.arrived_at if sent is not None else period)
                        + timedelta(minutes=minutes), now)  # fmt: skip
        try:
            result = boss.place_order(request_key=keys[i], msisdn=msisdn,
                                      product_id=chosen.product_id, channel=ORDER_CHANNEL,
                                      fee_fen=chosen.monthly_fee_fen)  # fmt: skip
        except BossError as exc:  # a timeout too: the key finds it on the next run
            log.warning("simulated order %s: %s", keys[i], exc)
            counts["failed:order"] += 1
            continue
        if result.state == "placed":
            counts["ordered"] += 1
            if sent is None:
                counts["ordered_unreached"] += 1
        else:
            counts[f"refused:order:{result.reason}"] += 1


# ----------------------------------------------------------------------------- clicks


def click(store: Store, audience: Audience, did: Reactions, *, now: datetime,
          via: str | None, counts: Counter[str]) -> None:  # fmt: skip
    """One click on the link of each message whose reader clicked (links clicked before,
    by anyone but a bot, are left alone)."""
    from jingxin.data.store.models import LinkClick

    wanted = [(i, s) for i, s in enumerate(audience.sent)
              if s is not None and s.link_token and did.clicked[i]]  # fmt: skip
    if not wanted:
        return
    done = _existing(store, LinkClick.token, [s.link_token for _, s in wanted],
                     what="link clicks", where=LinkClick.bot.is_(False))  # fmt: skip
    fresh = [(i, s) for i, s in wanted if s.link_token not in done]
    _add(counts, "already:clicked", len(wanted) - len(fresh))
    if via is None:
        from jingxin.analytics.clicks import ClickRow, record_clicks

        rows = [ClickRow(token=s.link_token, message_id=s.id, bot=False, method="GET",
                         at=_at(s, did.click_delay[i], now), agent=AGENT, client=None)
                for i, s in fresh]  # fmt: skip
        if rows:
            record_clicks(store, rows)
            counts["clicked"] += len(rows)
        return
    _through(fresh, lambda item: _get(via, item[1].link_token), counts=counts, action="click",
             done="clicked", url=via)  # fmt: skip


def _get(base: str, token: str) -> str | None:
    """GET ``base/token`` without following the redirect: None when it redirected (a
    click), else why not (``unknown_link``, ``expired``, ``http_<code>``)."""

    class Stay(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *args: Any, **kwargs: Any) -> None:
            return None

    request = urllib.request.Request(f"{base.rstrip('/')}/{token}", headers={"User-Agent": AGENT})
    try:
        with urllib.request.build_opener(Stay).open(request, timeout=5.0) as response:
            code = response.status
    except urllib.error.HTTPError as exc:
        code = exc.code
    except (urllib.error.URLError, OSError) as exc:
        raise ChannelError(f"cannot reach the short-link server at {base}: {exc}") from exc
    if 300 <= code < 400:
        return None
    return {404: "unknown_link", 410: "expired"}.get(code, f"http_{code}")


# ----------------------------------------------------------------------------- MO


def send_mo(store: Store, audience: Audience, did: Reactions, *, now: datetime,
            via: str | None, seed: int, experiment: str, routes: Routes,
            settings: Settings | None, counts: Counter[str]) -> None:  # fmt: skip
    """Each reached subscriber's MO (a complaint, an opt-out or a reply), once."""
    from jingxin.analytics.assign import unit

    pick = unit(audience.msisdns, f"sim:{seed}:{experiment}:reply_text")
    mos: list[tuple[int, str, str, str]] = []  # (row, action, service number, text)
    for action, drawn in (("complained", did.complained), ("opted_out", did.opted_out),
                          ("replied", did.replied)):  # fmt: skip
        for i in np.flatnonzero(drawn):
            sent = audience.sent[i]
            if sent is None:
                continue
            if action == "complained":
                number, text = routes.complaint(sent)
            elif action == "opted_out":
                number, text = routes.reply_to(sent), routes.unsubscribe_word
            else:
                number = routes.reply_to(sent)
                text = REPLIES[min(int(pick[i] * len(REPLIES)), len(REPLIES) - 1)]
            if number is None:
                counts[f"skipped:{action}:no_service_number"] += 1
                continue
            mos.append((int(i), action, number, text))
    if not mos:
        return
    done = _mo_seen(store, audience, mos)
    fresh = []
    for i, action, number, text in mos:
        if (audience.msisdns[i], number, text) in done:
            counts[f"already:{action}"] += 1
        else:
            fresh.append((i, action, number, text))
    if via is not None:
        from jingxin.smsc.mo import post_mo

        def post(item: tuple[int, str, str, str]) -> None:
            i, _, number, text = item
            post_mo(via, source=audience.msisdns[i].lstrip("+"), destination=number, text=text)

        for action in ("complained", "opted_out", "replied"):
            _through([m for m in fresh if m[1] == action], post, counts=counts,
                     action="mo", done=action, url=via)  # fmt: skip
        return
    _store_mo(store, audience, did, fresh, now=now, settings=settings, counts=counts)


def _store_mo(store: Store, audience: Audience, did: Reactions,
              mos: list[tuple[int, str, str, str]], *, now: datetime,
              settings: Settings | None, counts: Counter[str]) -> None:  # fmt: skip
    from jingxin.dispatch.mo_inbox import InboxRules, store_parts
    from jingxin.domain.sms import MoPart

    items = []
    for i, action, number, text in mos:
        sent = audience.sent[i]
        assert sent is not None  # only reached subscribers send MO
        part = MoPart(protocol="smpp", source=audience.msisdns[i].lstrip("+"),
                      destination=number, coding=8, payload=text.encode("utf-16-be"),
                      received_at=_at(sent, did.mo_delay[i], now),
                      smsc_id=f"sim:{sent.id}:{action}")  # fmt: skip
        items.append((sent.channel or "simulator", part))
        counts[action] += 1
    if not items:
        return
    rules = InboxRules() if settings is None else InboxRules(
        part_timeout=timedelta(seconds=settings.inbox.part_timeout_seconds),
        duplicate_window=timedelta(seconds=settings.inbox.duplicate_window_seconds))  # fmt: skip
    with store_errors(f"storing {len(items)} simulated MO"), store.engine.begin() as conn:
        tally = store_parts(conn, items=items, now=now, rules=rules, expire=False)
    ids = [a.mo_id for a in tally.assembled]
    if settings is None or not ids:
        _add(counts, "mo_pending", len(ids))
        return
    from jingxin.dispatch.handlers import HandlerContext, default_registry, run_pending

    ran = run_pending(store, registry=default_registry(settings), now=now, ids=ids,
                      context=HandlerContext.from_settings(settings, store=store),
                      limit=len(ids))  # fmt: skip
    _add(counts, "mo_handled", ran.handled + ran.no_handler)
    _add(counts, "failed:mo_handler", ran.failed)


def _mo_seen(store: Store, audience: Audience, mos: list[tuple[int, str, str, str]]
             ) -> set[tuple[str, str, str]]:  # fmt: skip
    """(number, service number, text) of the MO in the inbox since the message arrived."""
    from jingxin.data.store.bulk import among
    from jingxin.data.store.models import MoMessage

    since = {audience.msisdns[i]: audience.sent[i].arrived_at for i, *_ in mos}  # type: ignore[union-attr]
    numbers = sorted(since)
    found: set[tuple[str, str, str]] = set()
    columns = (MoMessage.msisdn, MoMessage.service_number, MoMessage.text, MoMessage.received_at)
    with store_errors("reading the inbox"), store.transaction() as session:
        conn = session.connection()
        for start in range(0, len(numbers), _CHUNK):
            chunk = numbers[start:start + _CHUNK]
            query = select(*columns).where(among(conn, MoMessage.msisdn, chunk),
                                           MoMessage.received_at >= min(since[m] for m in chunk))
            for msisdn, number, text, at in session.execute(query):
                if at >= since[msisdn] - timedelta(seconds=1):
                    found.add((msisdn, number, text))
    return found


# ----------------------------------------------------------------------------- shared


def _through(items: list, call: Callable[[Any], str | None], *, counts: Counter[str],
             action: str, done: str, url: str) -> None:  # fmt: skip
    """``call(item)`` for each item: None counts ``done``, a string ``refused:<action>:…``;
    :data:`MAX_UNREACHABLE` unreachable in a row stops with the last error."""
    failures = 0
    for item in items:
        try:
            refused = call(item)
        except ChannelError as exc:
            failures += 1
            counts[f"failed:{action}"] += 1
            log.warning("simulated %s via %s: %s", action, url, exc)
            if failures >= MAX_UNREACHABLE:
                raise ChannelError(f"{exc} ({MAX_UNREACHABLE} failures in a row; what was "
                                   "done is kept, run it again to finish)") from exc  # fmt: skip
            continue
        failures = 0
        counts[done if refused is None else f"refused:{action}:{refused}"] += 1


def _add(counts: Counter[str], key: str, n: int) -> None:
    if n:
        counts[key] += n


def _at(sent: Sent, delay_minutes: float, now: datetime) -> datetime:
    """The instant a reader acted: arrival plus the delay, never after ``now``."""
    return min(sent.arrived_at + timedelta(minutes=float(delay_minutes)), now)


def _existing(store: Store, column: Any, values: list[str], *, what: str,
              where: Any = None) -> set[str]:  # fmt: skip
    """Which of ``values`` ``column`` holds already."""
    from jingxin.data.store.bulk import among

    found: set[str] = set()
    wanted = sorted(set(values))
    with store_errors(f"reading {what}"), store.transaction() as session:
        conn = session.connection()
        for start in range(0, len(wanted), _CHUNK):
            query = select(column).where(among(conn, column, wanted[start:start + _CHUNK]))
            if where is not None:
                query = query.where(where)
            found.update(session.scalars(query.distinct()))
    return found
