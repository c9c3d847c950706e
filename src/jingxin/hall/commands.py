"""The hall's commands: one function per command the router names (:data:`COMMANDS`).

Each is given a :class:`Turn` (the MO as a :class:`~jingxin.hall.context.HallRequest`, its
hall, the subscriber's session and what waits for their answer, the parsed command) and
returns the answer and the session after it; the handler (:mod:`jingxin.hall.handler`)
records both. The commands of other modules (orders, referrals, points, vouchers,
feedback, queries) are imported when first used.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from jingxin.hall.context import Answer, HallContext, HallRequest
from jingxin.hall.menu import HallMenu
from jingxin.hall.router import Command
from jingxin.hall.sessions import Pending, SessionState

UNKNOWN = "抱歉，未能识别您的指令。回复0查看菜单。"
NOTHING_PENDING = "您当前没有待确认的业务。回复0查看菜单。"
HINTS = {
    "order": "请回复KT+业务编码开通业务；回复41查看免费体验，42查看每日特惠。",
    "plan_change": "请回复XY+套餐代码变更套餐，代码见套餐推荐短信；回复TC查询您当前的套餐。",
    "verify": "商户核销请回复HX+券码。",
    "referral": "推荐好友请回复好友的手机号码+CL，如13800138000CL。",
    "nps": "请回复MY+0-10分评价我们的服务，如MY9（10分为非常愿意推荐）。",
    "suggestion": "请回复JY+您的建议内容，如：JY 希望增加夜间流量包。",
}


@dataclass(frozen=True, slots=True)
class Turn:
    """One MO being answered: what a command function is given."""

    ctx: HallContext
    request: HallRequest
    hall: HallMenu
    state: SessionState
    pending: Pending | None
    command: Command

    @property
    def args(self) -> Any:
        return self.command.args

    def answer(self, key: str, default: str, *, command: str, outcome: str = "answered",
               kind: str = "other", **fields: Any) -> Answer:  # fmt: skip
        return Answer(text=self.ctx.say(key, default, **fields), command=command, kind=kind,
                      outcome=outcome)  # fmt: skip

    def waiting(self, kind: str, payload: dict[str, Any], *, seconds: float) -> SessionState:
        return self.state.with_pending(kind, payload, at=self.request.at, seconds=seconds)

    def cleared(self) -> SessionState:
        return self.state.without_pending() if self.state.pending_kind else self.state


Outcome = tuple[Answer, SessionState]


# ----------------------------------------------------------------------------- commands


def _menu(t: Turn) -> Outcome:
    from jingxin.hall.queries import show_menu

    return show_menu(t.ctx, t.request, hall=t.hall), t.state


def _zone(t: Turn) -> Outcome:
    from jingxin.hall.queries import show_zone

    zone = t.args["zone"]
    after = t.state.with_menu(zone, at=t.request.at, seconds=t.ctx.settings.session_seconds)
    return show_zone(t.ctx, t.request, hall=t.hall, zone=zone), after


def _query(name: str) -> Callable[[Turn], Outcome]:
    def run(t: Turn) -> Outcome:
        from jingxin.hall import queries

        return getattr(queries, name)(t.ctx, t.request), t.state

    return run


def _order(t: Turn, *, plan: bool = False) -> Outcome:
    from jingxin.hall.orders import confirmation, quote

    rules = {zone: rule.model_dump() for zone, rule in t.hall.zones.items()}
    quoted = quote(t.ctx, t.request, code=t.args["code"], zone_rules=rules,
                   staff_code=t.args.get("staff_code"), plan=plan)  # fmt: skip
    if isinstance(quoted, Answer):  # refused: and Y no longer answers an older question
        return quoted, t.cleared()
    payload = {"quote": quoted.to_json(), "mo_id": t.request.mo_id}
    return confirmation(t.ctx, quoted), t.waiting("order", payload,
                                                  seconds=t.ctx.settings.confirm_seconds)


def _plan_change(t: Turn) -> Outcome:
    """``XY<code>``: a plan change, quoted and confirmed (``Y``) as an order is."""
    return _order(t, plan=True)


def _cancel(t: Turn) -> Outcome:
    from jingxin.hall.orders import cancel_confirmation

    answer = cancel_confirmation(t.ctx, t.request, code=t.args["code"])
    if answer.outcome != "pending":
        return answer, t.cleared()
    payload = {"code": t.args["code"], "mo_id": t.request.mo_id}
    return answer, t.waiting("cancel", payload, seconds=t.ctx.settings.confirm_seconds)


def _confirm(t: Turn) -> Outcome:
    """``Y``: place the pending order, cancel the pending product - or say why not."""
    from jingxin.hall.orders import Quote, cancel_product, expired_answer, place

    t.ctx.forget(POINTS)  # an order may convert a referral: points booked
    p = t.pending
    if p is not None and p.kind == "survey" and not p.expired:
        return t.answer("hall.survey_pending", HINTS["nps"], command="confirm"), t.state
    if p is None or p.kind == "survey":
        return t.answer("hall.nothing_pending", NOTHING_PENDING, command="confirm",
                        outcome="failed:nothing_pending"), t.cleared()  # fmt: skip
    if p.kind == "order":
        quoted = Quote.from_json(p.payload["quote"])
        if p.expired:
            return expired_answer(t.ctx, t.request, quote=quoted), t.cleared()
        answer = place(t.ctx, t.request, quote=quoted, request_key=f"hall:{p.payload['mo_id']}")
        return _with_survey(t, answer)
    code = str(p.payload["code"])
    if p.expired:
        return t.answer("cancel.expired", "确认已超时，{name}未取消。如需取消请重新发送QX{code}。",
                        command="confirm", kind="order", outcome="failed:confirmation_expired",
                        name=_product_name(t, code), code=code.upper()), t.cleared()  # fmt: skip
    return cancel_product(t.ctx, t.request, code=code), t.cleared()


def _with_survey(t: Turn, answer: Answer) -> Outcome:
    """A placed order asks the hall's survey question (a bare 0..10 then answers it)."""
    survey = t.hall.survey
    if answer.outcome != "placed" or survey is None:
        return answer, t.cleared()
    after = t.state.without_pending().with_pending(
        "survey", {"survey": survey.id}, at=t.request.at,
        seconds=t.ctx.settings.session_seconds)  # fmt: skip
    return replace(answer, text=f"{answer.text}\n{survey.question}"), after


def _product_name(t: Turn, code: str) -> str:
    product = t.ctx.boss.product(code)
    return product.name if product is not None else code.upper()


def _drop(t: Turn) -> Outcome:
    """``QX`` alone: drop the pending order or cancellation."""
    p = t.pending
    if p is not None and not p.expired and p.kind in ("order", "cancel"):
        return t.answer("hall.dropped", "已为您取消本次办理。回复0查看菜单。", command="drop",
                        kind="order", outcome="dropped"), t.cleared()  # fmt: skip
    return t.answer("hall.nothing_pending", NOTHING_PENDING, command="drop",
                    outcome="failed:nothing_pending"), t.cleared()  # fmt: skip


def _referral(t: Turn) -> Outcome:
    from jingxin.hall.referrals import refer

    return refer(t.ctx, t.request, friend=t.args["friend"]), t.state


POINTS = ("points",)  # the batch's balances in HallContext.shared


def _points(t: Turn) -> Outcome:
    """``JF``: the balance, from one read of every sender's balance per batch (an effect
    that books points - a redemption, an order converting a referral - drops it)."""
    from jingxin.hall.points import points_balances, show_points

    balances = t.ctx.once(POINTS, lambda: points_balances(
        t.ctx.store, t.ctx.senders or (t.request.msisdn,)), shared=True)  # fmt: skip
    return show_points(t.ctx, t.request, balance=balances.get(t.request.msisdn)), t.state


def _redeem(t: Turn) -> Outcome:
    from jingxin.hall.points import redeem_points

    t.ctx.forget(POINTS)
    return redeem_points(t.ctx, t.request, reward_code=t.args["reward"],
                         rewards=t.hall.rewards), t.state  # fmt: skip


def _vouchers(t: Turn) -> Outcome:
    from jingxin.hall.vouchers import list_vouchers

    return list_vouchers(t.ctx, t.request), t.state


def _verify(t: Turn) -> Outcome:
    from jingxin.hall.vouchers import redeem_voucher_mo

    return redeem_voucher_mo(t.ctx, t.request, code=t.args["code"]), t.state


def _nps(t: Turn) -> Outcome:
    from jingxin.hall.feedback import record_nps

    survey = t.args.get("survey") or None
    if survey is None and t.pending is not None and t.pending.kind == "survey":
        survey = str(t.pending.payload.get("survey") or "") or None
    answer = record_nps(t.ctx, t.request, score=t.args["score"], survey=survey)
    answered = answer.outcome == "recorded" and t.pending is not None and t.pending.kind == "survey"
    return answer, t.cleared() if answered else t.state


def _suggestion(t: Turn) -> Outcome:
    from jingxin.hall.feedback import record_suggestion

    return record_suggestion(t.ctx, t.request, text=t.args["text"]), t.state


def _complaint(t: Turn) -> Outcome:
    from jingxin.hall.feedback import record_complaint

    return record_complaint(t.ctx, t.request, word=t.args["word"]), t.state


def _hint(t: Turn) -> Outcome:
    wanted = t.args["for"]
    return t.answer(f"hall.hint.{wanted}", HINTS[wanted], command="hint"), t.state


def _unknown(t: Turn) -> Outcome:
    return t.answer("hall.unknown", UNKNOWN, command="unknown", outcome="unrecognised"), t.state


COMMANDS: dict[str, Callable[[Turn], Outcome]] = {
    "menu": _menu, "zone": _zone, "balance": _query("balance"), "usage": _query("usage"),
    "plan": _query("plan"), "order": _order, "plan_change": _plan_change, "cancel": _cancel,
    "confirm": _confirm, "drop": _drop, "referral": _referral, "points": _points,
    "redeem": _redeem, "vouchers": _vouchers, "verify": _verify, "nps": _nps,
    "suggestion": _suggestion, "complaint": _complaint, "hint": _hint, "unknown": _unknown,
}  # fmt: skip
