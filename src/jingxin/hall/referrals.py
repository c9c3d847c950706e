"""Referrals: ``<friend's number>CL`` recommends a product to a friend, who gets the offer
by SMS; when the friend orders it, the referrer earns points.

A friend must be a valid Chinese mobile of one of the operator's own carriers
(``[hall] home_carriers``; a number of another carrier or country is "foreign" and
refused), not the referrer, not already a holder of the product, and referred by the same
referrer only once (unique ``(referrer, friend)``).

Crash-safety contract
---------------------
:func:`refer` writes the referral (with the MO's id) and commits it, then asks the one
delivery entry for the offer under the key ``hall:referral:<id>:offer``, then records the
offer's message id. A crash anywhere in between is repaired by the re-run: it finds the
referral of this pair with this MO's id and goes on from there, and the delivery key makes
the offer go once. :func:`on_order_placed` runs inside the order's transaction: the
conversion is a conditional ``UPDATE ... WHERE state = 'offered'`` and the points are
booked under ``referral:<id>`` (:func:`jingxin.hall.points.grant`), so neither happens
twice however often it is called.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from jingxin.data.msisdn import InvalidMsisdn, carrier_of, normalise_msisdn
from jingxin.data.store.engine import store_errors
from jingxin.data.store.models.hall import HallOrder, HallReferral
from jingxin.dispatch.deliver import Delivered, Delivery
from jingxin.hall.context import Answer, HallContext, HallRequest
from jingxin.hall.points import grant, insert_new
from jingxin.hall.vouchers import shown_number

__all__ = ["DEFAULT_PRODUCT_ID", "DEFAULT_PRODUCT_NAME", "on_order_placed", "refer"]

DEFAULT_PRODUCT_ID = "RBT5"  # the 5-yuan ringback tone of the source documents
DEFAULT_PRODUCT_NAME = "5元彩铃"
COMMAND = "referral"

REFUSALS = {
    "invalid": ("referral.invalid", "{friend}不是有效的手机号码，请回复11位手机号码加CL推荐好友。"),
    "foreign": ("referral.foreign", "{friend}不是本网手机号码，只能推荐本网用户。"),
    "self": ("referral.self", "不能推荐自己，请回复好友的手机号码加CL。"),
    "holder": ("referral.holder", "您的好友{friend}已开通{product}，无需推荐。"),
    "already_referred": ("referral.twice", "您已推荐过该号码。"),
}


def refer(ctx: HallContext, request: HallRequest, *, friend: str,
          product_id: str = DEFAULT_PRODUCT_ID, product_name: str = DEFAULT_PRODUCT_NAME,
          order_code: str | None = None, staff_code: str | None = None) -> Answer:  # fmt: skip
    """``<friend>CL``: recommend ``product_id`` to ``friend`` and send them the offer
    (which tells them to reply ``KT<order_code>``, by default the product id)."""
    number, refusal = _check_friend(ctx, request, friend, product_name=product_name)
    if refusal is not None:
        return refusal
    referral = _referral_of(ctx, request.msisdn, number)
    if referral is not None and referral.mo_id != request.mo_id:
        return _refused(ctx, "already_referred", friend=friend, product=product_name)
    if referral is None:
        if product_id in ctx.boss.holdings(number):
            return _refused(ctx, "holder", friend=shown_number(number), product=product_name)
        referral = _open(ctx, request, friend=number, product_id=product_id,
                         staff_code=staff_code)  # fmt: skip
        if referral.mo_id != request.mo_id:  # another MO of the pair won the race
            return _refused(ctx, "already_referred", friend=friend, product=product_name)
    sent = _offer(ctx, request, referral, product_name=product_name,
                  order_code=order_code or product_id)  # fmt: skip
    return _told(ctx, sent, friend=shown_number(number), product=product_name)


def _check_friend(ctx: HallContext, request: HallRequest, friend: str, *,
                  product_name: str) -> tuple[str, Answer | None]:  # fmt: skip
    """The friend's E.164 number, or the refusal of an unusable one."""
    shown = friend.strip()
    try:
        number = normalise_msisdn(shown).e164
    except InvalidMsisdn as exc:
        reason = "foreign" if exc.reason == "foreign" else "invalid"
        return "", _refused(ctx, reason, friend=shown, product=product_name)
    if carrier_of(number) not in ctx.settings.home_carriers:
        return "", _refused(ctx, "foreign", friend=shown, product=product_name)
    if number == request.msisdn:
        return "", _refused(ctx, "self", friend=shown, product=product_name)
    return number, None


def _referral_of(ctx: HallContext, referrer: str, friend: str) -> HallReferral | None:
    with store_errors(f"reading the referral of {friend} by {referrer}"), \
            ctx.store.transaction() as session:  # fmt: skip
        return session.scalar(select(HallReferral).where(
            HallReferral.referrer == referrer, HallReferral.friend == friend))


def _open(ctx: HallContext, request: HallRequest, *, friend: str, product_id: str,
          staff_code: str | None) -> HallReferral:  # fmt: skip
    """The referral of this pair: this MO's new one, or the one a concurrent MO wrote."""
    with store_errors(f"recording the referral of {friend} by {request.msisdn}"), \
            ctx.store.transaction() as session:  # fmt: skip
        insert_new(session, HallReferral, referrer=request.msisdn, friend=friend,
                   tenant_id=request.tenant_id, product_id=product_id, state="offered",
                   staff_code=staff_code, mo_id=request.mo_id, created_at=request.at)  # fmt: skip
        return session.scalars(select(HallReferral).where(
            HallReferral.referrer == request.msisdn, HallReferral.friend == friend)).one()


def _offer(ctx: HallContext, request: HallRequest, referral: HallReferral, *,
           product_name: str, order_code: str) -> Delivered:  # fmt: skip
    """Send the friend the offer (once: the delivery key) and note its message id."""
    text = ctx.say("referral.offer", "您的好友{referrer}向您推荐{product}，回复KT{code}即可订购。回T退订",
                   referrer=shown_number(request.msisdn), product=product_name,
                   code=order_code.upper())  # fmt: skip
    (sent,) = ctx.deliver([Delivery(
        msisdn=referral.friend, source="hall", source_id=str(referral.id),
        idempotency_key=f"hall:referral:{referral.id}:offer", category="marketing",
        tenant_id=request.tenant_id, text=text, sender=request.service_number)])  # fmt: skip
    if sent.message_id is not None and referral.offer_message_id is None:
        with store_errors(f"noting the offer of referral {referral.id}"), \
                ctx.store.transaction() as session:  # fmt: skip
            session.execute(update(HallReferral)
                            .where(HallReferral.id == referral.id,
                                   HallReferral.offer_message_id.is_(None))
                            .values(offer_message_id=sent.message_id))  # fmt: skip
    return sent


def _told(ctx: HallContext, sent: Delivered, *, friend: str, product: str) -> Answer:
    """The referrer's reply: the offer went (or will go), or the friend takes no marketing
    messages now - without saying why (an opt-out or a complaint is the friend's own)."""
    points = ctx.settings.referral_points
    if sent.outcome in ("queued", "duplicate"):
        text = ctx.say("referral.sent", "已将{product}推荐给好友{friend}，好友订购后您将获得{points}积分。",
                       product=product, friend=friend, points=points)  # fmt: skip
        return Answer(text=text, command=COMMAND, outcome="offered")
    if sent.outcome == "deferred":
        text = ctx.say("referral.deferred",
                       "已记录您对好友{friend}的推荐，推荐短信将稍后发送，好友订购后您将获得{points}积分。",
                       friend=friend, points=points)  # fmt: skip
        return Answer(text=text, command=COMMAND, outcome="offer_deferred")
    text = ctx.say("referral.not_reachable", "已记录您的推荐，但好友{friend}目前不接收推荐短信，本次未能发送。",
                   friend=friend)  # fmt: skip
    return Answer(text=text, command=COMMAND, outcome="offer_rejected")


def _refused(ctx: HallContext, reason: str, *, friend: str, product: str) -> Answer:
    key, default = REFUSALS[reason]
    text = ctx.say(key, default, friend=friend, product=product)
    return Answer(text=text, command=COMMAND, outcome=f"failed:{reason}")


def on_order_placed(session: Session, order: HallOrder, *, points: int,
                    at: datetime) -> int | None:  # fmt: skip
    """Called in the order's transaction once the order is placed: if the ordering number
    was offered this product by referral, the oldest such referral is converted and its
    referrer earns ``points`` (the order's staff code on the booking, and on the referral
    unless it named its own). The points
    granted, or None (no referral, already converted, nothing to grant)."""
    if order.id is None:
        session.flush()
    if order.referral_id is not None or session.scalar(
            select(HallReferral.id).where(HallReferral.order_id == order.id)) is not None:
        return None  # this order converted its referral already
    candidates = session.scalars(
        select(HallReferral.id)
        .where(HallReferral.friend == order.msisdn, HallReferral.product_id == order.product_id,
               HallReferral.state == "offered")
        .order_by(HallReferral.created_at, HallReferral.id)).all()  # fmt: skip
    referral = None
    for referral_id in candidates:  # the oldest first; a rival order may take one first
        referral = _convert(session, referral_id, order=order, at=at)
        if referral is not None:
            break
    if referral is None:
        return None
    order.referral_id = referral.id
    if points <= 0:
        return None
    granted = grant(session, key=f"referral:{referral.id}", msisdn=referral.referrer,
                    tenant_id=referral.tenant_id, delta=points, reason="referral",
                    staff_code=order.staff_code, at=at)  # fmt: skip
    return points if granted else None


def _convert(session: Session, referral_id: int, *, order: HallOrder,
             at: datetime) -> HallReferral | None:  # fmt: skip
    """The referral, converted by ``order``; None when another order converted it first."""
    changed = session.execute(
        update(HallReferral)
        .where(HallReferral.id == referral_id, HallReferral.state == "offered")
        .values(state="converted", order_id=order.id, converted_at=at,
                # the staff who closed the sale is credited unless the referral named one
                staff_code=func.coalesce(HallReferral.staff_code, order.staff_code))
        .execution_options(synchronize_session=False)).rowcount  # fmt: skip
    if changed != 1:
        return None
    referral = session.get_one(HallReferral, referral_id)
    session.refresh(referral)
    return referral
