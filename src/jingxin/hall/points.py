"""The hall's points account: earned by referrals, spent on electronic vouchers.

A number's balance is the sum of its :class:`~jingxin.data.store.models.hall.PointsEntry`
rows. Every booking has a unique ``key`` that names what caused it (``referral:<id>``,
``redeem:<mo_id>``), and :func:`grant` inserts it with ``ON CONFLICT DO NOTHING``: a
second run of the same cause books nothing, even when the two runs race, and it does so
inside the caller's transaction without an IntegrityError that would spoil it.

Crash-safety contract
---------------------
:func:`redeem_points` debits the points and issues the voucher in ONE transaction, keyed
by the MO (``redeem:<mo_id>`` on both rows): after a crash either both are there or
neither, and a re-run finds the voucher and answers with it. On PostgreSQL the number's
ledger rows are locked first (``FOR UPDATE``), so two redemptions of different MOs run
one after the other and the second sees the first's debit (no balance spent twice).
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from pydantic import ValidationError
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from jingxin.data.store.engine import Store, store_errors
from jingxin.data.store.frozen import Frozen, Read, run_reads
from jingxin.data.store.models.hall import Merchant, PointsEntry, Voucher
from jingxin.errors import InputError
from jingxin.hall.context import Answer, HallContext, HallRequest
from jingxin.hall.menu import Reward

__all__ = ["grant", "insert_new", "points_balance", "redeem_points", "reward_of", "show_points"]

REWARD_FIELDS = ("code", "title", "merchant", "value_fen", "points", "days")


def reward_of(item: Mapping[str, Any] | Any, *, where: str = "reward") -> Reward:
    """The menu's :class:`~jingxin.hall.menu.Reward` for ``item`` (one already, a mapping,
    or any object with its attributes), checked strictly; a missing or malformed field is
    an InputError naming it."""
    if isinstance(item, Reward):
        return item
    if isinstance(item, Mapping):
        data = dict(item)
    else:
        data = {name: getattr(item, name) for name in REWARD_FIELDS if hasattr(item, name)}
    try:
        return Reward.model_validate(data, strict=True)
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(part) for part in first["loc"]) or "reward"
        raise InputError(f"{where}: {field}: {first['msg']}") from None


def insert_new(session: Session, model: type, **values: Any) -> int | None:
    """Insert one row of ``model`` unless it would break a unique constraint; the new id,
    or None when such a row exists (``INSERT ... ON CONFLICT DO NOTHING RETURNING id``).

    A lost race waits for the winner on PostgreSQL and then inserts nothing, so the caller
    reads the winner's row back in its next statement; the caller's transaction stays
    usable (an IntegrityError would have spoilt it)."""
    from sqlalchemy.dialects import postgresql, sqlite

    dialect = session.get_bind().dialect.name
    make = postgresql.insert if dialect == "postgresql" else sqlite.insert
    table = model.__table__  # type: ignore[attr-defined]
    statement = make(table).values(**values).on_conflict_do_nothing().returning(table.c.id)
    return session.execute(statement).scalar()


def points_balance(source: Session | Store, msisdn: str) -> int:
    """The number's points: the sum of its bookings (0 for a number with none)."""
    if isinstance(source, Store):
        with store_errors(f"reading the points of {msisdn}"), source.transaction() as session:
            return points_balance(session, msisdn)
    total = source.scalar(select(func.coalesce(func.sum(PointsEntry.delta), 0))
                          .where(PointsEntry.msisdn == msisdn))  # fmt: skip
    return int(total or 0)


def grant(session: Session, *, key: str, msisdn: str, tenant_id: str, delta: int,
          reason: str, staff_code: str | None = None, at: datetime) -> bool:  # fmt: skip
    """Book ``delta`` points (negative: a debit) under ``key``, once: False when a booking
    with that key exists already (nothing is booked)."""
    booked = insert_new(session, PointsEntry, key=key, msisdn=msisdn, tenant_id=tenant_id,
                        delta=delta, reason=reason, staff_code=staff_code, at=at)  # fmt: skip
    return booked is not None


def points_balances(store: Store, msisdns: Sequence[str]) -> dict[str, int]:
    """The points of many numbers in one query (a number with no bookings: 0)."""
    from jingxin.data.store.bulk import among

    wanted = sorted(set(msisdns))
    with store_errors(f"reading the points of {len(wanted)} numbers"), \
            store.reading() as session:  # fmt: skip
        if session.connection().dialect.name == "postgresql":
            return run_reads(session.connection(), [points_read(wanted)])[0]
        found = dict.fromkeys(wanted, 0)
        query = select(PointsEntry.msisdn, func.sum(PointsEntry.delta)).group_by(PointsEntry.msisdn)
        for msisdn, total in session.execute(
                query.where(among(session.connection(), PointsEntry.msisdn, wanted))):
            found[msisdn] = int(total or 0)
    return found


def points_read(msisdns: Sequence[str]) -> Read:
    """PostgreSQL: :func:`points_balances` as one :class:`~jingxin.data.store.frozen.Read`
    (a hall batch sends it with its other reads)."""
    wanted = sorted(set(msisdns))

    def finish(rows: list[Any]) -> dict[str, int]:
        found = dict.fromkeys(wanted, 0)
        found.update({row.msisdn: int(row.points or 0) for row in rows})
        return found

    return Read(_points_frozen(), {"wanted": wanted}, finish)


@functools.cache
def _points_frozen() -> Frozen:
    """PostgreSQL: the balances of the array parameter ``wanted``, built once."""
    from sqlalchemy import Text, bindparam
    from sqlalchemy.dialects.postgresql import ARRAY

    from jingxin.data.store.bulk import in_array

    return Frozen(lambda: select(PointsEntry.msisdn, func.sum(PointsEntry.delta).label("points"))
                  .where(in_array(PointsEntry.msisdn, bindparam("wanted", type_=ARRAY(Text()))))
                  .group_by(PointsEntry.msisdn))  # fmt: skip


def show_points(ctx: HallContext, request: HallRequest, *, balance: int | None = None) -> Answer:
    """``JF``: the number's points balance (``balance`` when the caller read it already)."""
    if balance is None:
        balance = points_balance(ctx.store, request.msisdn)
    text = ctx.say("points.balance", "您当前积分{balance}分。回复DH查看可兑换的礼品。",
                   balance=balance)  # fmt: skip
    return Answer(text=text, command="points", kind="query")


def redeem_points(ctx: HallContext, request: HallRequest, *, reward_code: str,
                  rewards: Sequence[Mapping[str, Any] | Any]) -> Answer:  # fmt: skip
    """``DH<code>``: spend points on a voucher of the reward ``reward_code``.

    An unknown code lists the rewards; too few points says the balance and the cost;
    otherwise the points are debited and the voucher issued in one transaction, and the
    reply gives the code, value, merchant, last day and link. A re-run of the MO answers
    with the voucher it issued, whatever the balance is by then."""
    from jingxin.hall.vouchers import voucher_by_issue_key

    offered = [reward_of(item, where=f"rewards[{i}]") for i, item in enumerate(rewards)]
    key = f"redeem:{request.mo_id}"
    with store_errors(f"redeeming points of {request.msisdn}"), \
            ctx.store.transaction() as session:  # fmt: skip
        voucher = voucher_by_issue_key(session, key)
        if voucher is None:
            answer_or_voucher = _spend(ctx, session, request, key=key, offered=offered,
                                       reward_code=reward_code)  # fmt: skip
            if isinstance(answer_or_voucher, Answer):
                return answer_or_voucher
            voucher = answer_or_voucher
        merchant = session.get(Merchant, voucher.merchant_id)
    return _issued(ctx, voucher, merchant_name=merchant.name if merchant else voucher.merchant_id)


def _spend(ctx: HallContext, session: Session, request: HallRequest, *, key: str,
           offered: list[Reward], reward_code: str) -> Answer | Voucher:  # fmt: skip
    """The refusal, or the voucher bought (points debited) inside ``session``."""
    from jingxin.hall.vouchers import expiry_after, issue_voucher

    wanted = reward_code.strip().casefold()
    reward = next((r for r in offered if r.code.casefold() == wanted), None)
    if reward is None:
        return _reward_list(ctx, offered, balance=points_balance(session, request.msisdn))
    merchant = session.get(Merchant, reward.merchant)
    if merchant is None or not merchant.active:
        text = ctx.say("points.reward_unavailable", "礼品{code}暂不可兑换，请选择其他礼品。",
                       code=reward.code)  # fmt: skip
        return Answer(text=text, command="redeem_points", outcome="failed:unknown_merchant")
    _lock_account(session, request.msisdn)
    balance = points_balance(session, request.msisdn)
    if balance < reward.points:
        text = ctx.say("points.insufficient",
                       "您当前积分{balance}分，兑换{title}需要{points}分，积分不足。",
                       balance=balance, title=reward.title, points=reward.points)  # fmt: skip
        return Answer(text=text, command="redeem_points", outcome="failed:insufficient_points")
    grant(session, key=key, msisdn=request.msisdn, tenant_id=request.tenant_id,
          delta=-reward.points, reason="redeem", at=request.at)  # fmt: skip
    days = reward.days if reward.days is not None else ctx.settings.voucher_days
    return issue_voucher(session, issue_key=key, msisdn=request.msisdn,
                         tenant_id=request.tenant_id, merchant_id=merchant.id,
                         title=reward.title, value_fen=reward.value_fen,
                         points_cost=reward.points, expires_at=expiry_after(request.at, days),
                         issued_at=request.at)  # fmt: skip


def _lock_account(session: Session, msisdn: str) -> None:
    """Hold the number's ledger rows until commit (PostgreSQL; SQLite has one writer)."""
    session.execute(select(PointsEntry.id).where(PointsEntry.msisdn == msisdn)
                    .with_for_update()).all()  # fmt: skip


def _reward_list(ctx: HallContext, offered: list[Reward], *, balance: int) -> Answer:
    if not offered:
        text = ctx.say("points.no_rewards", "暂无可兑换的礼品。您当前积分{balance}分。",
                       balance=balance)  # fmt: skip
        return Answer(text=text, command="redeem_points", outcome="failed:unknown_reward")
    lines = "\n".join(ctx.say("points.reward_line", "{code} {title}（{points}分）",
                              code=r.code, title=r.title, points=r.points)
                      for r in offered)  # fmt: skip
    text = ctx.say("points.rewards", "可兑换的礼品：\n{lines}\n回复DH加编号兑换，您当前积分{balance}分。",
                   lines=lines, balance=balance)  # fmt: skip
    return Answer(text=text, command="redeem_points", outcome="failed:unknown_reward")


def _issued(ctx: HallContext, voucher: Voucher, *, merchant_name: str) -> Answer:
    from jingxin.hall.vouchers import last_day, voucher_link, write_qr, yuan_of

    write_qr(ctx.settings, voucher, home=ctx.home)
    text = ctx.say("points.redeemed",
                   "兑换成功：{title}，面值{value}，{merchant}可用，券码{code}，"
                   "有效期至{expires}。二维码：{link}",
                   title=voucher.title, value=yuan_of(voucher.value_fen), merchant=merchant_name,
                   code=voucher.code, expires=last_day(voucher.expires_at),
                   link=voucher_link(ctx.settings, voucher.code))  # fmt: skip
    return Answer(text=text, command="redeem_points", outcome="redeemed")
