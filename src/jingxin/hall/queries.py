"""What the hall answers without changing anything: the menu, zones 41/42/43, the balance,
this month's usage and the plan.

Zones 41 (free trials) and 42 (daily deals) list the BOSS's products of that zone in
rank order (``Boss.products(zone=...)``); zone 42 shows each at the hall's price rule
(``discount_pct`` off for ``discounted_months``, from the menu file). Zone 43 lists the
tenant's current campaigns from the campaign store. Balance, usage and plan come from the
BOSS account of the number; a number the BOSS does not know is told so. Every answer here
is of kind ``query`` (the hall report counts queries against orders).
"""

from __future__ import annotations

import functools

from sqlalchemy import select

from jingxin.data.store.engine import Store, store_errors
from jingxin.data.store.frozen import Frozen, Read, run_reads
from jingxin.data.store.models import Campaign
from jingxin.hall.context import Answer, HallContext, HallRequest
from jingxin.hall.menu import HallMenu, Zone
from jingxin.hall.text import data_size, yuan

CURRENT_CAMPAIGN_STATUSES = ("scheduled", "testing", "running")

NO_ACCOUNT = "未查询到您的账户信息，请确认号码是否正确，或拨打{service_number}咨询。"


def show_menu(ctx: HallContext, request: HallRequest, *, hall: HallMenu) -> Answer:
    """The hall's menu text (``0``, ``cd``, ``菜单``, ``?``), as written: not a template."""
    return Answer(text=hall.menu, command="menu", kind="query")


def show_zone(ctx: HallContext, request: HallRequest, *, hall: HallMenu, zone: str) -> Answer:
    """Zone ``zone`` of ``hall``: its products (41, 42) or campaigns (43)."""
    rules = hall.zones[zone]
    if zone == "43":
        names = ctx.once(campaigns_key(hall.tenant, rules.limit), lambda: current_campaigns(
            ctx.store, tenant_id=hall.tenant, limit=rules.limit), shared=True)  # fmt: skip
        lines = _campaign_lines(ctx, names)
    else:
        lines = ctx.once(("zone", zone, hall.tenant), lambda: _product_lines(
            ctx, zone=zone, rules=rules))  # fmt: skip
    if not lines:
        text = ctx.say("zone.empty", "{title}：当前暂无内容，敬请期待。回复0查看菜单。",
                       title=rules.title)  # fmt: skip
        return Answer(text=text, command="zone", kind="query", zone=zone)
    items, example = lines
    if zone == "41":
        text = ctx.say("zone.41", "{title}：\n{items}\n回复KT+编码开通，如KT{example}。",
                       title=rules.title, items=items, example=example)  # fmt: skip
    elif zone == "42":
        text = ctx.say("zone.42", "{title}：通过短信营业厅办理，前{months}个月享{discount}优惠：\n"
                                 "{items}\n回复KT+编码开通，如KT{example}。",
                       title=rules.title, items=items, example=example,
                       months=rules.discounted_months,
                       discount=discount_words(rules.discount_pct))  # fmt: skip
    else:
        text = ctx.say("zone.43", "{title}：\n{items}\n回复0查看菜单。", title=rules.title,
                       items=items)  # fmt: skip
    return Answer(text=text, command="zone", kind="query", zone=zone)


def discount_words(pct: int) -> str:
    """``20`` percent off as a Chinese reply says it: ``8折`` (15 → ``8.5折``)."""
    tenths = 100 - pct
    return f"{tenths // 10}折" if tenths % 10 == 0 else f"{tenths / 10:g}折"


def discounted_fen(fee_fen: int, pct: int) -> int:
    """The monthly fee ``pct`` percent off, rounded half up to the fen."""
    return (fee_fen * (100 - pct) + 50) // 100


def _product_lines(ctx: HallContext, *, zone: str, rules: Zone) -> tuple[str, str] | None:
    products = sorted(ctx.boss.products(zone=zone), key=lambda p: (p.rank, p.product_id))
    products = products[: rules.limit]
    if not products:
        return None
    lines = []
    for p in products:
        if zone == "41":
            lines.append(ctx.say("zone.41.item", "{code} {name}：免费体验{trial_days}天，之后{fee}元/月",
                                 code=p.product_id, name=p.name,
                                 trial_days=p.trial_days or rules.trial_days or 7,
                                 fee=yuan(p.monthly_fee_fen)))  # fmt: skip
        else:
            lines.append(ctx.say("zone.42.item", "{code} {name}：原价{fee}元/月，优惠价{price}元/月",
                                 code=p.product_id, name=p.name, fee=yuan(p.monthly_fee_fen),
                                 price=yuan(discounted_fen(p.monthly_fee_fen,
                                                           rules.discount_pct))))  # fmt: skip
    return "\n".join(lines), products[0].product_id


def campaigns_key(tenant_id: str, limit: int) -> tuple[str, str, int]:
    """Where a batch keeps the current campaigns' names (``HallContext.shared``)."""
    return ("campaigns", tenant_id, limit)


def current_campaigns(store: Store, *, tenant_id: str, limit: int) -> list[str]:
    """The names of the tenant's current campaigns, newest first, at most ``limit``."""
    with store.reading() as session, store_errors("reading the current campaigns"):
        connection = session.connection()
        if connection.dialect.name == "postgresql":
            return run_reads(connection, [campaigns_read(tenant_id=tenant_id, limit=limit)])[0]
        query = (select(Campaign.name)
                 .where(Campaign.tenant_id == tenant_id,
                        Campaign.status.in_(CURRENT_CAMPAIGN_STATUSES))
                 .order_by(Campaign.created_at.desc(), Campaign.id.desc())
                 .limit(limit))  # fmt: skip
        return list(session.scalars(query))


def campaigns_read(*, tenant_id: str, limit: int) -> Read:
    """PostgreSQL: :func:`current_campaigns` as one :class:`~jingxin.data.store.frozen.Read`
    (a hall batch sends it with its other reads)."""
    return Read(_campaigns_frozen(), {"tenant": tenant_id, "limit": limit},
                lambda rows: [row.name for row in rows])  # fmt: skip


@functools.cache
def _campaigns_frozen() -> Frozen:
    """PostgreSQL: :func:`current_campaigns`' read, built once."""
    from sqlalchemy import Integer, Text, bindparam
    from sqlalchemy.dialects.postgresql import ARRAY

    from jingxin.data.store.bulk import in_array

    statuses = bindparam("statuses", value=list(CURRENT_CAMPAIGN_STATUSES), type_=ARRAY(Text()))
    return Frozen(lambda: select(Campaign.name)
                  .where(Campaign.tenant_id == bindparam("tenant", type_=Text()),
                         in_array(Campaign.status, statuses))
                  .order_by(Campaign.created_at.desc(), Campaign.id.desc())
                  .limit(bindparam("limit", type_=Integer())))  # fmt: skip


def _campaign_lines(ctx: HallContext, names: list[str]) -> tuple[str, str] | None:
    if not names:
        return None
    lines = [ctx.say("zone.43.item", "{n}. {name}", n=n, name=name)
             for n, name in enumerate(names, start=1)]  # fmt: skip
    return "\n".join(lines), ""


# ---------------------------------------------------------------------------- account


def balance(ctx: HallContext, request: HallRequest) -> Answer:
    """``YE``: the account balance."""
    account = ctx.boss.account(request.msisdn)
    if account is None:
        return _no_account(ctx, request, command="balance")
    text = ctx.say("query.balance", "尊敬的客户，您的账户余额为{balance}元（{plan}）。回复0查看菜单。",
                   balance=yuan(account.balance_fen), plan=account.plan_name or account.plan_id)
    return Answer(text=text, command="balance", kind="query")


def usage(ctx: HallContext, request: HallRequest) -> Answer:
    """``LL``: this month's data, voice and SMS used and left."""
    a = ctx.boss.account(request.msisdn)
    if a is None:
        return _no_account(ctx, request, command="usage")
    text = ctx.say(
        "query.usage",
        "本月您已用流量{data_used}，剩余{data_left}（共{data_quota}）；通话已用{voice_used}分钟，"
        "剩余{voice_left}分钟；短信已用{sms_used}条，剩余{sms_left}条。",
        data_used=data_size(a.data_used_mb), data_quota=data_size(a.data_quota_mb),
        data_left=data_size(max(0, a.data_quota_mb - a.data_used_mb)),
        voice_used=a.voice_used_min, voice_left=max(0, a.voice_quota_min - a.voice_used_min),
        sms_used=a.sms_used, sms_left=max(0, a.sms_quota - a.sms_used))  # fmt: skip
    return Answer(text=text, command="usage", kind="query")


def plan(ctx: HallContext, request: HallRequest) -> Answer:
    """``TC``: the plan, and the products the number holds."""
    account = ctx.boss.account(request.msisdn)
    if account is None:
        return _no_account(ctx, request, command="plan")
    held = sorted(ctx.boss.holdings(request.msisdn))
    names = []
    for product_id in held:
        product = ctx.boss.product(product_id)
        names.append(f"{product.name}({product_id})" if product is not None else product_id)
    holdings = "、".join(names) if names else "无"
    text = ctx.say("query.plan", "您当前的套餐为{plan}（{plan_id}）；已订购业务：{holdings}。"
                           "回复QX+编码可退订业务。",
                   plan=account.plan_name or account.plan_id, plan_id=account.plan_id,
                   holdings=holdings)  # fmt: skip
    return Answer(text=text, command="plan", kind="query")


def _no_account(ctx: HallContext, request: HallRequest, *, command: str) -> Answer:
    text = ctx.say("query.no_account", NO_ACCOUNT, service_number=request.service_number)
    return Answer(text=text, command=command, kind="query", outcome="failed:no_account")
