"""Feedback through the hall: NPS scores, suggestions and complaints.

* ``MY<0-10>`` (or a bare ``0``..``10`` while a survey waits) stores an NPS answer;
  ``JY <text>`` a suggestion - one ``hall_feedback`` row per MO.
* A text with a complaint word (投诉, 举报, 骚扰, 12321, 315: the menu's list) stores a
  ``hall_complaints`` row and marks the number complaint-sensitive
  (``subscriber_state.complaint_sensitive``, ``last_complaint_at``), which the targeting
  model reads - in ONE transaction, so a complaint is never recorded without the flag.

Idempotent per MO: both tables are unique on ``mo_id``; a re-run finds its row (or loses
the insert race to a twin and reads the twin's) and answers the same.
"""

from __future__ import annotations

import functools
from typing import Any

from sqlalchemy import bindparam, insert, select
from sqlalchemy.dialects import postgresql
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from jingxin.data.store.contact import update_subscriber_state
from jingxin.data.store.engine import Store, store_errors
from jingxin.data.store.frozen import Frozen
from jingxin.data.store.models import (
    HallComplaint,
    HallFeedback,
    SubscriberState,
    utc_now,
)
from jingxin.data.validate import valid_msisdn
from jingxin.hall.context import Answer, HallContext, HallRequest
from jingxin.hall.text import normalise

MAX_TEXT = 1000  # a suggestion or complaint is kept this long (a long MO is several parts)

# Which complaint words say what the complaint is about (the rest: "general").
CATEGORIES = {"骚扰": "marketing_sms", "12321": "marketing_sms", "垃圾短信": "marketing_sms",
              "315": "consumer_rights", "扣费": "billing", "乱收费": "billing"}  # fmt: skip


def record_nps(ctx: HallContext, request: HallRequest, *, score: str,
               survey: str | None = None) -> Answer:  # fmt: skip
    """An NPS answer ``score`` (0..10; anything else asks again, storing nothing)."""
    if not score.isdigit() or int(score) > 10:
        text = ctx.say("feedback.nps_range", "请回复0-10之间的分数，如MY9（10分为非常愿意推荐）。")
        return Answer(text=text, command="nps", outcome="failed:out_of_range")
    value = int(score)
    with ctx.store.transaction() as session:
        _insert_once(session, HallFeedback, mo_id=request.mo_id, msisdn=request.msisdn,
                     tenant_id=request.tenant_id, kind="nps", survey=survey or None,
                     score=value, text="", at=request.at)  # fmt: skip
    text = ctx.say("feedback.nps", "感谢您的评价（{score}分），我们会持续改进服务！", score=value)
    return Answer(text=text, command="nps", outcome="recorded")


def record_suggestion(ctx: HallContext, request: HallRequest, *, text: str) -> Answer:
    """A suggestion ``JY <text>``; the MO's own text is kept, as the subscriber wrote it."""
    if not text.strip():
        reply = ctx.say("feedback.suggestion_empty", "请回复JY+您的建议内容，如：JY 希望增加夜间流量包。")
        return Answer(text=reply, command="suggestion", outcome="failed:empty")
    with ctx.store.transaction() as session:
        _insert_once(session, HallFeedback, mo_id=request.mo_id, msisdn=request.msisdn,
                     tenant_id=request.tenant_id, kind="suggestion", survey=None, score=None,
                     text=request.text.strip()[:MAX_TEXT], at=request.at)  # fmt: skip
    reply = ctx.say("feedback.suggestion", "感谢您的建议，我们已记录并会认真研究改进。")
    return Answer(text=reply, command="suggestion", outcome="recorded")


def record_complaint(ctx: HallContext, request: HallRequest, *, word: str) -> Answer:
    """A complaint (the text held complaint word ``word``): recorded, and the number marked
    complaint-sensitive, in one transaction. The reply names the complaint's number."""
    values = {"mo_id": request.mo_id, "msisdn": request.msisdn, "tenant_id": request.tenant_id,
              "category": complaint_category(request.text, word=word),
              "text": request.text.strip()[:MAX_TEXT], "state": "open", "at": request.at}  # fmt: skip
    if ctx.store.engine.dialect.name == "postgresql":
        ticket = _complaint_statement(ctx.store, values)
    else:
        with ctx.store.transaction() as session:
            ticket = _insert_once(session, HallComplaint, **values)
            update_subscriber_state(session, msisdn=request.msisdn, complaint_sensitive=True,
                                    last_complaint_at=request.at)  # fmt: skip
    text = ctx.say("complaint.ack", "您的投诉已受理（编号{ticket}），我们将在24小时内联系您处理。"
                                    "如不愿再收到营销短信，请回复TD退订。", ticket=ticket)  # fmt: skip
    return Answer(text=text, command="complaint", outcome="recorded")


def complaint_category(text: str, *, word: str) -> str:
    """What a complaint is about, from any telling word in it (``投诉…骚扰`` is about
    marketing SMS), else ``general``."""
    normal = normalise(text)
    return CATEGORIES.get(word) or next(
        (category for telling, category in CATEGORIES.items() if telling in normal), "general")


def _complaint_statement(store: Store, values: dict[str, Any]) -> int:
    """PostgreSQL: the complaint and the number's complaint-sensitive flag in ONE statement
    (its own transaction), answering the complaint's id - one round trip where the portable
    way (read, savepoint, insert, read the state, write it, commit) takes eight: a hall
    batch answers a few complaints among its hundred MO, each in the batch's time. The
    statement is built once (:func:`_complaint_frozen`): building it each time cost 2 ms,
    twice its round trip."""
    msisdn = valid_msisdn(values["msisdn"], field="subscriber_state.msisdn")
    with store_errors(f"recording the complaint of MO {values['mo_id']}"), \
            store.autocommit() as connection:  # fmt: skip
        found = _complaint_frozen().all(connection, **{**values, "msisdn": msisdn},
                                        now=utc_now())  # fmt: skip
        if not found:
            # A twin run inserted it after this statement's snapshot was taken: read it now.
            table = HallComplaint.__table__
            return int(connection.execute(select(table.c.id).where(  # type: ignore[attr-defined]
                table.c.mo_id == values["mo_id"])).scalar_one())  # type: ignore[attr-defined]
    return int(found[0].id)


@functools.cache
def _complaint_frozen() -> Frozen:
    """:func:`_complaint_statement`'s SQL over the complaint's columns as named parameters
    and ``now``: ``WITH complaint_flag AS (INSERT INTO subscriber_state ... ON CONFLICT DO
    UPDATE), new_complaint AS (INSERT INTO hall_complaints ... ON CONFLICT (mo_id) DO
    NOTHING RETURNING id) SELECT id FROM new_complaint UNION ALL SELECT id FROM
    hall_complaints WHERE mo_id = :mo_id``."""

    def build() -> Any:
        complaints, states = HallComplaint.__table__, SubscriberState.__table__
        columns = ("mo_id", "msisdn", "tenant_id", "category", "text", "state", "at")
        given = {c: bindparam(c, type_=complaints.c[c].type) for c in columns}  # type: ignore[attr-defined]
        now = bindparam("now", type_=states.c.updated_at.type)  # type: ignore[attr-defined]
        new = (postgresql.insert(complaints).values(**given)
               .on_conflict_do_nothing(index_elements=["mo_id"])
               .returning(complaints.c.id))  # type: ignore[attr-defined]  # fmt: skip
        flag = postgresql.insert(states).values(
            msisdn=given["msisdn"], in_service=True, complaint_sensitive=True,
            last_complaint_at=given["at"], updated_at=now)  # fmt: skip
        flag = flag.on_conflict_do_update(index_elements=["msisdn"], set_={
            "complaint_sensitive": True, "last_complaint_at": flag.excluded.last_complaint_at,
            "updated_at": now})  # fmt: skip
        inserted = new.cte("new_complaint")
        there = select(complaints.c.id).where(complaints.c.mo_id == given["mo_id"])  # type: ignore[attr-defined]
        return select(inserted.c.id).union_all(there).add_cte(flag.cte("complaint_flag"))

    return Frozen(build)


def _insert_once(session: Session, model: type[HallFeedback] | type[HallComplaint],
                 *, mo_id: int, **values: Any) -> int:  # fmt: skip
    """The id of ``model``'s row for ``mo_id``: the one there, else a new one (a twin that
    wins the insert race is read back)."""
    table = model.__table__  # type: ignore[union-attr]
    with store_errors(f"recording {table.name} of MO {mo_id}"):
        found = session.scalar(select(table.c.id).where(table.c.mo_id == mo_id))
        if found is not None:
            return int(found)
        try:
            with session.begin_nested():
                return int(session.execute(
                    insert(table).values(mo_id=mo_id, **values).returning(table.c.id)
                ).scalar_one())  # fmt: skip
        except IntegrityError:
            pass
        return int(session.scalar(select(table.c.id).where(table.c.mo_id == mo_id)))
