"""Orders through the hall: the quote, the confirmation, placing, reconciling, cancelling.

``KT<code>`` asks for a :func:`quote` (the product, its price under the zone's rule, the
checks that need no write); the router keeps the :class:`Quote` in the session and asks
the subscriber to confirm (:func:`confirmation`); ``Y`` within the time calls :func:`place`.
``XY<code>`` (a plan change: ``quote(..., plan=True)``, which knows plans only) goes the
same way; a plan is priced 0 now (billed monthly from the next month: the quote says its
monthly fee) and its texts say "change" rather than "order".

Price rules: a zone-42 product costs ``discount_pct`` less for ``discounted_months``
months, then its list price (the menu's rule, default 20 % for 3 months); a zone-41
product is a free trial of the product's ``trial_days`` (else the rule's, else 7: a
product shown as a free trial is never charged for its first month); others list price.
A staff code the hall does not know does not stop the order: it is dropped from the
order and the confirmation says so, since the subscriber came for the product.

Crash-safety and idempotency contract
-------------------------------------
An order is keyed by its ``request_key`` (``hall:<mo_id of the KT MO>``), unique in
``hall_orders`` and in the BOSS's order book. :func:`place` commits the order in state
``submitting`` BEFORE it calls the BOSS, then commits the BOSS's answer (``placed`` with
the referral's conversion, :func:`jingxin.hall.referrals.on_order_placed`, in the same
transaction; or ``failed`` with the reason). When the BOSS does not answer in time the
order is ``unknown``: it may or may not have been placed, so it is never placed anew -
:func:`reconcile` asks the BOSS for the key and copies its answer, and only when the BOSS
has no such order places it with the SAME key (the BOSS is idempotent on it). A crash
between the commit and the call leaves ``submitting``, reconciled the same way once older
than ``reconcile_after_seconds``. A second run of the same MO finds the order and answers
from its state without calling the BOSS again (an open one is reconciled first). Whoever
settles an order that was ``unknown`` sends the result as a notification keyed
``hall:order:<id>:result`` BEFORE committing it, so a crash repeats it as a duplicate
rather than losing it.
"""

from __future__ import annotations

import json
import logging
import math
from dataclasses import asdict, dataclass, fields, replace
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError

from jingxin.data.store.engine import store_errors
from jingxin.data.store.models import HallOrder, utc_now
from jingxin.errors import InputError, StoreError
from jingxin.hall.boss import (
    PLAN_CATEGORY,
    Account,
    BossError,
    BossResult,
    BossTimeout,
    Product,
    Refusal,
    check_order,
)
from jingxin.hall.context import Answer, HallContext, HallRequest
from jingxin.hall.staff import canonical_code, find_staff

__all__ = ["CHANNEL", "Quote", "ReconcileTally", "cancel_confirmation", "cancel_product",
           "confirmation", "expired_answer", "place", "quote", "reconcile", "yuan"]  # fmt: skip

log = logging.getLogger(__name__)

CHANNEL = "sms_hall"
OPEN_STATES = ("submitting", "unknown")
DEFAULT_ZONE_RULES: dict[str, dict[str, int]] = {
    "42": {"discount_pct": 20, "discounted_months": 3},
    "41": {"trial_days": 7},
}
PAYMENT_NAMES = {"prepaid": "预付费", "postpaid": "后付费"}
WHY = {  # not_eligible, in detail
    "no_account": "未查询到您号码的账户信息",
    "inactive": "您的号码当前状态不能办理业务",
    "star_level": "该业务仅限{min_star}星级及以上客户办理",
    "payment": "该业务仅限{payment}用户办理",
    "channel": "该业务仅限电子渠道办理",
    None: "您的号码不满足办理条件",
}
FAILED = {
    "unknown_product": "未找到业务代码{code}。回复41查看免费体验，回复42查看优惠业务，回复0查看菜单。",
    "not_eligible": "抱歉，{why}，暂不能办理{name}。",
    "already_held": "您已订购{name}，无需重复办理。回复TC查询您的套餐。",
    "mutually_exclusive": "{name}与您已订购的{other}不能同时办理，如需更换请先取消{other}。",
    "insufficient_balance": "您的余额为{balance}，不足以支付{name}的{price}，请充值后再办理。",
    "confirmation_expired": "确认已超时，{name}未办理。如需订购请重新发送KT{code}。",
    "boss_error": "系统繁忙，{name}未能办理，请稍后再试。",
}
FAILED_OTHERWISE = "抱歉，{name}未能办理（{reason}），请稍后再试。"
PLAN_FAILED = {  # a plan change's own wording, where it differs (key order.failed_plan.<reason>)
    "unknown_product": "未找到套餐代码XY{code}，请核对推荐短信中的代码。回复TC查询您当前的套餐。",
    "already_held": "您当前已是{name}，无需变更。回复TC查询您的套餐。",
    "confirmation_expired": "确认已超时，{name}未变更。如需变更请重新发送XY{code}。",
}


@dataclass(frozen=True, slots=True)
class Quote:
    """A product priced for one subscriber, waiting for their ``Y`` (kept in the session).
    It holds nothing of the order's key: the router gives that to :func:`place`."""

    product_id: str
    name: str
    list_fee_fen: int
    price_fen: int  # the first month under the rule
    zone: str | None = None
    discount_pct: int = 0
    discounted_months: int = 0
    trial_days: int = 0
    staff_code: str | None = None  # a known staff code (canonical)
    ignored_staff_code: str | None = None  # a code given that the hall does not know
    category: str = "other"  # the product's; "plan": a plan change

    @property
    def plan(self) -> bool:
        return self.category == PLAN_CATEGORY

    def to_json(self) -> str:
        return json.dumps(asdict(self), ensure_ascii=False, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> Quote:
        """The quote :meth:`to_json` wrote; an InputError naming the field otherwise."""
        try:
            data = json.loads(text)
        except (TypeError, ValueError) as exc:
            raise InputError(f"pending order: not a JSON quote: {exc}") from exc
        if not isinstance(data, dict):
            raise InputError("pending order: a quote is a JSON object")
        known = {f.name: f.type for f in fields(cls)}
        for name in ("product_id", "name", "list_fee_fen", "price_fen"):
            if name not in data:
                raise InputError(f"pending order: {name}: missing")
        for name, value in data.items():
            if name not in known:
                raise InputError(f"pending order: {name}: not a field of a quote")
            wanted = int if "int" in known[name] else str
            if value is not None and (type(value) is not wanted):
                raise InputError(f"pending order: {name}: expected {wanted.__name__}, "
                                 f"got {value!r}")  # fmt: skip
        return cls(**data)


@dataclass(frozen=True, slots=True)
class ReconcileTally:
    """What one :func:`reconcile` run did."""

    checked: int = 0
    placed: int = 0
    failed: int = 0
    unknown: int = 0  # the BOSS still does not answer: asked again next run
    notified: int = 0


# ----------------------------------------------------------------------------- texts


def yuan(fen: int) -> str:
    """``800`` → ``"8.00元"`` (money is kept in fen; subscribers read yuan)."""
    sign = "-" if fen < 0 else ""
    return f"{sign}{abs(fen) // 100}.{abs(fen) % 100:02d}元"


def _terms(ctx: HallContext, priced: Quote | HallOrder) -> str:
    """What the subscriber will pay: the trial, the deal, or the list price."""
    fee = yuan(priced.list_fee_fen)
    if priced.trial_days:
        return ctx.say("order.terms.trial", "免费体验{days}天，到期后{fee}/月",
                       days=priced.trial_days, fee=fee)  # fmt: skip
    if priced.discount_pct and priced.discounted_months:
        return ctx.say("order.terms.deal", "前{months}个月优惠价{price}/月，之后{fee}/月",
                       months=priced.discounted_months, price=yuan(priced.price_fen),
                       fee=fee)  # fmt: skip
    return ctx.say("order.terms.list", "资费{fee}/月", fee=fee)


def _refused(ctx: HallContext, refusal: Refusal, *, command: str, code: str,
             product: Product | None = None, name: str | None = None, price_fen: int = 0,
             zone: str | None = None, account: Account | None = None,
             plan: bool | None = None) -> Answer:  # fmt: skip
    """The refusal, saying why, with outcome ``failed:<reason>`` (in a plan change's words
    when ``plan``, by default when ``product`` is a plan)."""
    reason = refusal.reason
    if plan is None:
        plan = product is not None and product.category == PLAN_CATEGORY
    name = name or (product.name if product is not None else code.upper())
    zone = zone or (product.zone if product is not None else None)
    fields_ = {"code": code.upper(), "name": name, "price": yuan(price_fen), "reason": reason,
               "balance": yuan(account.balance_fen) if account is not None else "—",
               "other": refusal.other.name if refusal.other is not None else "同类业务"}
    if reason == "not_eligible":
        payment = product.payment if product is not None else None
        fields_["why"] = ctx.say(
            f"order.why.{refusal.detail or 'other'}", WHY[refusal.detail],
            min_star=product.min_star_level if product is not None else 0,
            payment=PAYMENT_NAMES.get(payment or "", payment or ""))  # fmt: skip
    if plan and reason in PLAN_FAILED:
        text = ctx.say(f"order.failed_plan.{reason}", PLAN_FAILED[reason], **fields_)
    else:
        text = ctx.say(f"order.failed.{reason}", FAILED.get(reason, FAILED_OTHERWISE), **fields_)
    return Answer(text=text, command=command, kind="order", outcome=f"failed:{reason}",
                  zone=zone)  # fmt: skip


def _minutes(seconds: float) -> int:
    return max(1, math.ceil(seconds / 60))


# ----------------------------------------------------------------------------- quote


def quote(ctx: HallContext, request: HallRequest, *, code: str, zone_rules: Any = None,
          staff_code: str | None = None, plan: bool = False) -> Quote | Answer:  # fmt: skip
    """The product ``code`` priced for the sender, or a refusal saying why (an unknown
    product, not eligible, already held, mutually exclusive, a balance too low). With
    ``plan``, ``code`` names a plan (``XY<code>``): any other product is unknown. Nothing
    is written; the BOSS checks again when the order is placed."""
    try:
        product = ctx.boss.product(code)
        if (product is None or not product.active
                or (plan and product.category != PLAN_CATEGORY)):  # fmt: skip
            return _refused(ctx, Refusal("unknown_product"), command="order", code=code,
                            plan=plan)  # fmt: skip
        priced = price(product, zone_rules=zone_rules)
        account = ctx.boss.account(request.msisdn)
        held = _held(ctx, request.msisdn)
        refusal = check_order(account=account, product=product, held=held, channel=CHANNEL,
                              fee_fen=priced.price_fen)  # fmt: skip
    except BossError as exc:
        log.warning("hall quote for MO %s: the BOSS did not answer: %s", request.mo_id, exc)
        return Answer(text=ctx.say("order.busy", "系统繁忙，请稍后再试。"), command="order",
                      kind="order", outcome=f"failed:{_boss_reason(exc)}")  # fmt: skip
    if refusal is not None:
        return _refused(ctx, refusal, command="order", code=code, product=product,
                        price_fen=priced.price_fen, account=account)  # fmt: skip
    if staff_code:
        with ctx.store.reading() as session, store_errors("reading the hall's staff"):
            staff = find_staff(session, staff_code, tenant_id=request.tenant_id)
        if staff is None:
            return replace(priced, ignored_staff_code=canonical_code(staff_code))
        return replace(priced, staff_code=staff.code)
    return priced


def price(product: Product, *, zone_rules: Any = None) -> Quote:
    """The product under its zone's price rule (see the module docstring)."""
    rules = {**DEFAULT_ZONE_RULES, **(zone_rules or {})}
    fee = product.monthly_fee_fen
    base = Quote(product_id=product.product_id, name=product.name, zone=product.zone,
                 list_fee_fen=fee, price_fen=fee, category=product.category)  # fmt: skip
    if base.plan:  # billed monthly from the next month: nothing to pay now
        return replace(base, price_fen=0)
    if product.zone == "42":
        pct = _rule(rules, "42", "discount_pct", 0, 100)
        months = _rule(rules, "42", "discounted_months", 0, 120)
        if pct == 0 or months == 0:  # a rule that takes nothing off for no time: list price
            return base
        cut = (fee * (100 - pct) + 50) // 100  # to the nearest fen
        return replace(base, price_fen=cut, discount_pct=pct, discounted_months=months)
    if product.zone == "41":
        days = product.trial_days or _rule(rules, "41", "trial_days", 1, 366)
        return replace(base, price_fen=0, trial_days=days)
    return base


def _rule(rules: Any, zone: str, name: str, low: int, high: int) -> int:
    value = (rules.get(zone) or {}).get(name, DEFAULT_ZONE_RULES[zone][name])
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise InputError(f"zone_rules: {zone}.{name}: expected a whole number in "
                         f"{low}..{high}, got {value!r}")  # fmt: skip
    return value


def confirmation(ctx: HallContext, q: Quote) -> Answer:
    """The question the subscriber answers with ``Y`` (outcome ``pending``)."""
    note = ""
    if q.staff_code:
        note = ctx.say("order.staff", "（推荐工号{staff}）", staff=q.staff_code)
    elif q.ignored_staff_code:
        note = ctx.say("order.staff_unknown", "（工号{staff}不存在，本次订购不计入工号）",
                       staff=q.ignored_staff_code)  # fmt: skip
    if q.plan:
        text = ctx.say("order.confirm_plan",
                       "您将变更为{name}，月费{fee}，次月生效。请在{minutes}分钟内回复Y确认，"
                       "回复QX放弃。{note}", name=q.name, fee=yuan(q.list_fee_fen),
                       code=q.product_id.upper(), note=note,
                       minutes=_minutes(ctx.settings.confirm_seconds))  # fmt: skip
    else:
        text = ctx.say("order.confirm",
                       "您将订购{name}，{terms}。请在{minutes}分钟内回复Y确认，回复QX放弃。{note}",
                       name=q.name, terms=_terms(ctx, q), code=q.product_id.upper(), note=note,
                       minutes=_minutes(ctx.settings.confirm_seconds))  # fmt: skip
    return Answer(text=text, command="order", kind="order", outcome="pending", zone=q.zone)


def expired_answer(ctx: HallContext, request: HallRequest, *,
                   quote: Quote | None = None) -> Answer:  # fmt: skip
    """The answer to a ``Y`` that came after the confirmation expired: nothing placed."""
    if quote is None:
        return _refused(ctx, Refusal("confirmation_expired"), command="confirm",
                        code="+业务代码", name="订购")  # fmt: skip
    return _refused(ctx, Refusal("confirmation_expired"), command="confirm",
                    code=quote.product_id, name=quote.name, price_fen=quote.price_fen,
                    zone=quote.zone, plan=quote.plan)  # fmt: skip


# ----------------------------------------------------------------------------- place


def place(ctx: HallContext, request: HallRequest, *, quote: Quote, request_key: str) -> Answer:
    """Place the confirmed ``quote`` as order ``request_key`` (see the module docstring)."""
    order, created = _open_order(ctx, request, quote=quote, request_key=request_key)
    if created:
        order = _submit(ctx, order)
    elif order.state in OPEN_STATES:
        order, _ = _resolve(ctx, order, notify=order.state == "unknown")
    return _answer(ctx, order, state=order.state, reason=order.reason, boss_ref=order.boss_ref,
                   name=quote.name, plan=quote.plan)  # fmt: skip


def _open_order(ctx: HallContext, request: HallRequest, *, quote: Quote,
                request_key: str) -> tuple[HallOrder, bool]:  # fmt: skip
    """(the order ``request_key``, whether this call created it): an existing one is
    found; a new one is committed in ``submitting`` (a twin's insert wins a race)."""
    found = _find(ctx, request_key)
    if found is not None:
        return found, False
    now = _now(ctx)
    row = HallOrder(request_key=request_key, msisdn=request.msisdn, tenant_id=request.tenant_id,
                    service_number=request.service_number, product_id=quote.product_id,
                    zone=quote.zone, list_fee_fen=quote.list_fee_fen, price_fen=quote.price_fen,
                    discount_pct=quote.discount_pct, discounted_months=quote.discounted_months,
                    trial_days=quote.trial_days, staff_code=quote.staff_code, state="submitting",
                    mo_id=request.mo_id, created_at=now, updated_at=now)  # fmt: skip
    try:
        with ctx.store.transaction() as session, store_errors(f"hall order {request_key}"):
            session.add(row)
        return row, True
    except StoreError as exc:
        if not isinstance(exc.__cause__, IntegrityError):
            raise
    twin = _find(ctx, request_key)
    assert twin is not None  # the unique key that refused us is its
    return twin, False


def _submit(ctx: HallContext, order: HallOrder) -> HallOrder:
    """The first BOSS call of a new order, and its answer committed."""
    try:
        result = ctx.boss.place_order(request_key=order.request_key, msisdn=order.msisdn,
                                      product_id=order.product_id, channel=CHANNEL,
                                      fee_fen=order.price_fen)  # fmt: skip
    except BossTimeout as exc:
        log.warning("hall order %s: the BOSS did not answer, reconciled later: %s",
                    order.request_key, exc)  # fmt: skip
        return _mark_unknown(ctx, order, reason="boss_timeout")
    except BossError as exc:
        log.warning("hall order %s: the BOSS refused the call: %s", order.request_key, exc)
        result = BossResult(state="refused", reason="boss_error")
    return _settle(ctx, order, result)


def _resolve(ctx: HallContext, order: HallOrder, *, notify: bool) -> tuple[HallOrder, bool]:
    """(the open order settled from what the BOSS knows of its key - placed with the same
    key if it knows nothing -, whether the subscriber was notified); still ``unknown``
    if the BOSS does not answer."""
    try:
        result = ctx.boss.find_order(order.request_key)
        if result is None:
            result = ctx.boss.place_order(request_key=order.request_key, msisdn=order.msisdn,
                                          product_id=order.product_id, channel=CHANNEL,
                                          fee_fen=order.price_fen)  # fmt: skip
    except BossTimeout as exc:
        log.warning("hall order %s: the BOSS still does not answer: %s", order.request_key, exc)
        return _mark_unknown(ctx, order, reason="boss_timeout"), False
    except BossError as exc:  # find_order failing says nothing; asked again next time
        log.warning("hall order %s: the BOSS could not tell: %s", order.request_key, exc)
        return _mark_unknown(ctx, order, reason="boss_error"), False
    notified = notify and _notify(ctx, order, result)
    return _settle(ctx, order, result), notified


def _settle(ctx: HallContext, order: HallOrder, result: BossResult) -> HallOrder:
    """The BOSS's answer committed; a placed order converts its referral in the same
    transaction. An order a twin settled meanwhile is left as it is."""
    from jingxin.hall.referrals import on_order_placed

    now = _now(ctx)
    with ctx.store.transaction() as session, store_errors(f"hall order {order.request_key}"):
        row = session.scalar(select(HallOrder).where(HallOrder.id == order.id)
                             .with_for_update())  # fmt: skip
        if row is None or row.state not in OPEN_STATES:
            return row or order
        row.updated_at = now
        if result.state == "placed":
            row.state, row.reason, row.boss_ref = "placed", None, result.boss_ref
            session.flush()
            on_order_placed(session, row, points=ctx.settings.referral_points, at=now)
        else:
            row.state, row.reason = "failed", result.reason or "boss_error"
        return row


def _mark_unknown(ctx: HallContext, order: HallOrder, *, reason: str) -> HallOrder:
    """The order left open for the reconciler (its clock restarts: asked again later)."""
    with ctx.store.transaction() as session, store_errors(f"hall order {order.request_key}"):
        row = session.get(HallOrder, order.id, with_for_update=True)
        if row is not None and row.state in OPEN_STATES:
            row.state, row.reason, row.updated_at = "unknown", reason, _now(ctx)
        return row or order


def _answer(ctx: HallContext, order: HallOrder, *, state: str, reason: str | None,
            boss_ref: str | None, name: str, plan: bool = False) -> Answer:  # fmt: skip
    """What the subscriber is told of ``order`` in ``state`` (placed, failed, open); a
    plan change (``plan``) placed in its own words."""
    if state in ("placed", "cancelled"):  # cancelled later: this MO placed it
        if plan:
            text = ctx.say("order.placed_plan",
                           "套餐变更成功，{name}将于次月1日生效，月费{fee}。订单号{boss_ref}。",
                           name=name, fee=yuan(order.list_fee_fen), boss_ref=boss_ref or "",
                           code=order.product_id.upper())  # fmt: skip
        else:
            text = ctx.say("order.placed", "订购成功！您已开通{name}，{terms}。订单号{boss_ref}。",
                           name=name, terms=_terms(ctx, order), boss_ref=boss_ref or "",
                           code=order.product_id.upper())  # fmt: skip
        return Answer(text=text, command="confirm", kind="order", outcome="placed",
                      zone=order.zone)  # fmt: skip
    if state == "failed":
        return _failed_answer(ctx, order, reason=reason or "boss_error", name=name)
    text = ctx.say("order.unknown", "订单正在处理中，结果将短信通知您。", name=name)
    return Answer(text=text, command="confirm", kind="order", outcome="unknown", zone=order.zone)


def _failed_answer(ctx: HallContext, order: HallOrder, *, reason: str, name: str) -> Answer:
    """The BOSS's refusal, explained with today's account and holdings where they still
    show the reason (the mutually exclusive product's name, the balance)."""
    refusal, shown, product = Refusal(reason), None, None
    try:
        account, product = ctx.boss.account(order.msisdn), ctx.boss.product(order.product_id)
        again = check_order(account=account, product=product, held=_held(ctx, order.msisdn),
                            channel=CHANNEL, fee_fen=order.price_fen)  # fmt: skip
        if again is not None and again.reason == reason:  # else today's figures would not
            refusal, shown = again, account  # show the reason (a balance topped up since)
    except BossError:  # the reason alone, then
        pass
    return _refused(ctx, refusal, command="confirm", code=order.product_id, product=product,
                    name=name, price_fen=order.price_fen, zone=order.zone,
                    account=shown)  # fmt: skip


def _notify(ctx: HallContext, order: HallOrder, result: BossResult) -> bool:
    """Tell the subscriber what became of an order they were told was being processed."""
    from jingxin.dispatch.deliver import Delivery

    state = "placed" if result.state == "placed" else "failed"
    product = _product_of(ctx, order.product_id)
    answer = _answer(ctx, order, state=state, reason=result.reason or "boss_error",
                     boss_ref=result.boss_ref,
                     name=product.name if product is not None else order.product_id.upper(),
                     plan=product is not None and product.category == PLAN_CATEGORY)  # fmt: skip
    delivery = Delivery(msisdn=order.msisdn, source="hall", category="notification",
                        idempotency_key=f"hall:order:{order.id}:result",
                        tenant_id=order.tenant_id, source_id=str(order.id), text=answer.text,
                        sender=order.service_number)  # fmt: skip
    try:
        (delivered,) = ctx.deliver([delivery])
    except InputError as exc:  # the order is settled all the same; the log says why
        log.error("hall order %s: cannot notify the result: %s", order.request_key, exc)
        return False
    return delivered.outcome in ("queued", "deferred", "duplicate")


# ----------------------------------------------------------------------------- reconcile


def reconcile(ctx: HallContext, *, older_than: float | None = None,
              limit: int = 500) -> ReconcileTally:  # fmt: skip
    """Settle every open order (``unknown``, or ``submitting`` left by a crash) last
    touched ``older_than`` seconds ago or earlier (default ``reconcile_after_seconds``),
    from what the BOSS knows of its key; each subscriber is told the result."""
    seconds = ctx.settings.reconcile_after_seconds if older_than is None else older_than
    cutoff = _now(ctx) - timedelta(seconds=seconds)
    query = (select(HallOrder).where(HallOrder.state.in_(OPEN_STATES),
                                     HallOrder.updated_at <= cutoff)
             .order_by(HallOrder.id).limit(limit))  # fmt: skip
    with ctx.store.transaction() as session, store_errors("reading the hall's open orders"):
        orders = list(session.scalars(query))
    counts = {"checked": 0, "placed": 0, "failed": 0, "unknown": 0, "notified": 0}
    for order in orders:
        settled, notified = _resolve(ctx, order, notify=True)
        counts["checked"] += 1
        counts[settled.state if settled.state in ("placed", "failed") else "unknown"] += 1
        counts["notified"] += notified
    return ReconcileTally(**counts)


# ----------------------------------------------------------------------------- cancel


def cancel_confirmation(ctx: HallContext, request: HallRequest, *, code: str) -> Answer:
    """``QX<code>``: the question to confirm with ``Y`` (outcome ``pending``), or why there
    is nothing to cancel (an unknown product, one the sender does not hold)."""
    product = _product_or_none(ctx, code)
    if product is None:
        return _refused(ctx, Refusal("unknown_product"), command="cancel", code=code)
    if product.product_id not in ctx.boss.holdings(request.msisdn):
        return _not_held(ctx, product)
    text = ctx.say("cancel.confirm", "您将取消{name}。请在{minutes}分钟内回复Y确认，回复QX放弃。",
                   name=product.name, code=product.product_id.upper(),
                   minutes=_minutes(ctx.settings.confirm_seconds))  # fmt: skip
    return Answer(text=text, command="cancel", kind="order", outcome="pending", zone=product.zone)


def cancel_product(ctx: HallContext, request: HallRequest, *, code: str) -> Answer:
    """Cancel the held product ``code`` (confirmed by ``request``, whose MO keys the
    cancellation: a second run answers the same and cancels nothing more)."""
    product = _product_or_none(ctx, code)
    if product is None:
        return _refused(ctx, Refusal("unknown_product"), command="cancel", code=code)
    try:
        result = ctx.boss.cancel(request_key=f"hall:cancel:{request.mo_id}",
                                 msisdn=request.msisdn, product_id=product.product_id)  # fmt: skip
    except BossError as exc:
        log.warning("hall cancel for MO %s: the BOSS did not answer: %s", request.mo_id, exc)
        reason = _boss_reason(exc)
        text = ctx.say("cancel.unknown", "系统繁忙，取消结果暂未确认，请稍后回复TC查询您的业务。",
                       name=product.name)  # fmt: skip
        return Answer(text=text, command="cancel", kind="order", outcome=f"failed:{reason}")
    if result.state != "cancelled":
        return _not_held(ctx, product)
    held = (HallOrder.msisdn == request.msisdn, HallOrder.product_id == product.product_id,
            HallOrder.state == "placed")  # fmt: skip
    with ctx.store.transaction() as session, store_errors("marking hall orders cancelled"):
        session.execute(update(HallOrder).where(*held)
                        .values(state="cancelled", updated_at=_now(ctx)))  # fmt: skip
    text = ctx.say("cancel.done", "您已成功取消{name}。", name=product.name)
    return Answer(text=text, command="cancel", kind="order", outcome="cancelled",
                  zone=product.zone)  # fmt: skip


def _not_held(ctx: HallContext, product: Product) -> Answer:
    text = ctx.say("cancel.not_held", "您未订购{name}，无需取消。", name=product.name)
    return Answer(text=text, command="cancel", kind="order", outcome="failed:not_held",
                  zone=product.zone)  # fmt: skip


# ----------------------------------------------------------------------------- reads


def _find(ctx: HallContext, request_key: str) -> HallOrder | None:
    with ctx.store.reading() as session, store_errors(f"reading hall order {request_key}"):
        return session.scalar(select(HallOrder).where(HallOrder.request_key == request_key))


def _held(ctx: HallContext, msisdn: str) -> list[Product]:
    products = (ctx.boss.product(pid) for pid in sorted(ctx.boss.holdings(msisdn)))
    return [p for p in products if p is not None]


def _product_or_none(ctx: HallContext, code: str) -> Product | None:
    product = ctx.boss.product(code)
    return product if product is not None and product.active else None


def _product_of(ctx: HallContext, product_id: str) -> Product | None:
    """The product, or None when the BOSS does not know it or does not answer."""
    try:
        return ctx.boss.product(product_id)
    except BossError:
        return None


def _boss_reason(exc: BossError) -> str:
    return "boss_timeout" if isinstance(exc, BossTimeout) else "boss_error"


def _now(ctx: HallContext) -> datetime:
    return ctx.now or utc_now()
