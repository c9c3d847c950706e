"""Gift claims: ``LB`` claims the network-entry anniversary gift, ``SR`` the birthday one,
and a follow-up a week after the claim.

:class:`GiftClaimHandler` answers those keywords on the inbox (``default_registry``; a
keyword outranks the hall's catch-all). A claim is valid when the number got the matching
journey message - ``messages`` with source ``journey`` from the ``anniversary`` or
``birthday`` trigger (its ``source_id`` ``<trigger>:<day>`` or its key
``journey:<trigger>:<day>:<msisdn>``), created at most ``[journeys] claim_days`` before
the MO, whatever became of it since. The occasion is the year of that offer's day, so the
anniversary gift of 2026 claimed in January 2027 is still 2026's and cannot be claimed
twice. The answer goes back as the handler's reply (source ``journey``): the confirmation,
"已领取过" to a second claim, a polite refusal when there was no offer.

Crash-safety contract (handlers run at least once): the ``gift_claims`` insert commits
before the runner records the MO's outcome; it skips a row that breaks either unique key
(number + gift + occasion, or the MO), and the claims are read back in the same
transaction, so whoever inserted first owns the claim. An MO run again finds its own
claim and is confirmed again; its reply key ``inbox:<mo_id>:reply`` makes the second
delivery a ``duplicate``. Granting the gift in the operator's systems is theirs to do
from ``gift_claims``; nothing here talks to the BOSS.

The follow-up (:func:`gift_followups`, the scan's ``gift_followup`` trigger) asks each
claimant, ``FOLLOWUP_DAYS`` after the claim, how they like the gift and points them at the
hall's deals; its key is ``journey:gift_followup:<claim id>``, one per claim whatever day
the scan runs, and the message it became is written back to the claim.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

import pyarrow as pa
from sqlalchemy import or_, select, update
from sqlalchemy.dialects import postgresql, sqlite

from jingxin.content.filters import data_size
from jingxin.data.store.bulk import among
from jingxin.data.store.engine import store_errors
from jingxin.data.store.models import GiftClaim, Message
from jingxin.dispatch.handlers import HandlerContext, HandlerResult, InboundMessage
from jingxin.errors import ConfigError
from jingxin.journeys.trigger import TriggerContext, TriggerOutput

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from jingxin.config import Settings

REPLY_SOURCE = "journey"
FOLLOWUP_TEMPLATE = "care.gift_followup"
FOLLOWUP_DAYS = 7
SALUTATION = "尊敬的客户"
CHUNK = 400  # keys per IN list
_DAY = re.compile(r"(?:^|:)(\d{4})-\d{2}-\d{2}(?::|$)")


@dataclass(frozen=True, slots=True)
class Gift:
    """A gift a journey message offers: the trigger that offers it, its keyword, its name."""

    kind: str  # the offering trigger: "anniversary" | "birthday"
    keyword: str
    title: str


GIFTS = (Gift("anniversary", "LB", "入网周年感恩礼包"), Gift("birthday", "SR", "生日流量"))
KEYWORDS = tuple(g.keyword for g in GIFTS)
_BY_KIND = {g.kind: g for g in GIFTS}


def gift_of(mo: InboundMessage) -> Gift | None:
    """The gift ``mo`` claims (its text or first word is the keyword), or None."""
    text = mo.match_text
    first = text.split(maxsplit=1)[0] if text else ""
    return next((g for g in GIFTS if g.keyword.casefold() in (text, first)), None)


@dataclass(frozen=True, slots=True)
class Offer:
    """A journey message that offered a gift to a number."""

    message_id: int
    msisdn: str
    tenant_id: str
    kind: str
    occasion: str  # the year of the offer's day
    created_at: datetime


@dataclass(frozen=True)
class GiftClaimHandler:
    """Records ``LB``/``SR`` gift claims and confirms them (see the module docstring)."""

    claim_days: int = 30
    gift_voice_min: int = 100
    gift_data_mb: int = 1024
    timezone: str = "Asia/Shanghai"
    name: str = "gift"

    @classmethod
    def from_settings(cls, settings: Settings) -> GiftClaimHandler:
        j = settings.journeys
        return cls(claim_days=j.claim_days, gift_voice_min=j.gift_voice_min,
                   gift_data_mb=j.gift_data_mb, timezone=settings.policy.default_timezone)

    def handle(self, mo: InboundMessage, *, context: HandlerContext) -> HandlerResult:
        return self.handle_batch([mo], context=context)[0]

    def handle_batch(self, mos: Sequence[InboundMessage], *,
                     context: HandlerContext) -> list[HandlerResult]:  # fmt: skip
        gifts = [gift_of(mo) for mo in mos]
        with context.bound_store().transaction() as session:
            offers = self._offers(session, mos)
            chosen = [self._offer_for(mo, gift, offers) if gift else None
                      for mo, gift in zip(mos, gifts, strict=True)]  # fmt: skip
            _insert_claims(session, [(mo, offer) for mo, offer in zip(mos, chosen, strict=True)
                                     if offer is not None], at=context.now)  # fmt: skip
            owners = _claim_owners(session, [o for o in chosen if o is not None])
        return [self._result(mo, gift, offer, owners)
                for mo, gift, offer in zip(mos, gifts, chosen, strict=True)]  # fmt: skip

    def _offers(self, session: Session, mos: Sequence[InboundMessage]) -> dict[str, list[Offer]]:
        """The gift offers made to the batch's numbers in their claim windows, by number."""
        earliest = min(mo.received_at for mo in mos) - timedelta(days=self.claim_days)
        latest = max(mo.received_at for mo in mos)
        numbers = sorted({mo.msisdn for mo in mos})
        kinds = [g.kind for g in GIFTS]
        offered = or_(*(Message.source_id.like(f"{k}:%") for k in kinds),
                      *(Message.idempotency_key.like(f"journey:{k}:%") for k in kinds))
        with store_errors(f"reading the gift offers to {len(numbers)} number(s)"):
            rows = session.execute(select(
                Message.id, Message.msisdn, Message.tenant_id, Message.source_id,
                Message.idempotency_key, Message.created_at).where(
                    among(session.connection(), Message.msisdn, numbers),
                    Message.source == "journey", Message.created_at >= earliest,
                    Message.created_at <= latest, offered)).all()  # fmt: skip
        found: dict[str, list[Offer]] = {}
        for message_id, msisdn, tenant_id, source_id, key, created_at in rows:
            offer = _offer(message_id, msisdn, tenant_id, source_id, key, created_at,
                           zone=self.timezone)  # fmt: skip
            if offer is not None:
                found.setdefault(msisdn, []).append(offer)
        return found

    def _offer_for(self, mo: InboundMessage, gift: Gift,
                   offers: dict[str, list[Offer]]) -> Offer | None:  # fmt: skip
        """The latest offer of ``gift`` to ``mo``'s number within the claim window."""
        since = mo.received_at - timedelta(days=self.claim_days)
        fitting = [o for o in offers.get(mo.msisdn, ())
                   if o.kind == gift.kind and since <= o.created_at <= mo.received_at]  # fmt: skip
        return max(fitting, key=lambda o: (o.created_at, o.message_id), default=None)

    def _result(self, mo: InboundMessage, gift: Gift | None, offer: Offer | None,
                owners: dict[tuple[str, str, str], int]) -> HandlerResult:  # fmt: skip
        if gift is None:  # registered for the keywords only; a stray MO is answered nothing
            return HandlerResult(detail="gift: no gift keyword")
        if offer is None:
            return HandlerResult(
                detail=f"gift {gift.kind}: no offer in the last {self.claim_days} days",
                reply=(f"抱歉，暂未查询到您可领取的{gift.title}。礼包需在收到领取通知后"
                       f"{self.claim_days}天内回复“{gift.keyword}”领取。"),
                reply_source=REPLY_SOURCE)  # fmt: skip
        owner = owners.get((mo.msisdn, gift.kind, offer.occasion))
        if owner is not None and owner != mo.id:
            return HandlerResult(
                detail=f"gift {gift.kind} {offer.occasion}: claimed before (MO {owner})",
                reply=f"您已领取过{offer.occasion}年的{gift.title}，无需重复领取。",
                reply_source=REPLY_SOURCE, reply_tenant=offer.tenant_id)  # fmt: skip
        return HandlerResult(
            detail=f"gift {gift.kind} {offer.occasion}: claimed (offer message {offer.message_id})",
            reply=self.confirmation(gift), reply_source=REPLY_SOURCE,
            reply_tenant=offer.tenant_id)  # fmt: skip

    def confirmation(self, gift: Gift) -> str:
        """The reply to a valid claim."""
        data = data_size(self.gift_data_mb)
        if gift.kind == "anniversary":
            return (f"领取成功！您的{gift.title}（{self.gift_voice_min}分钟国内通话+{data}"
                    "国内流量）将在24小时内到账，到账后半年内有效。感谢您一路相伴！")
        return f"领取成功！您的{gift.title}（{data}）将在24小时内到账，当月有效。祝您生日快乐！"


def _offer(message_id: int, msisdn: str, tenant_id: str, source_id: str | None, key: str,
           created_at: datetime, *, zone: str) -> Offer | None:  # fmt: skip
    """The offer a journey message makes, read from its source id or key; the occasion is
    the year of the day they name (else of its creation, in the operator's time zone)."""
    for text, prefix in ((source_id or "", ""), (key, "journey:")):
        for kind in _BY_KIND:
            if text.startswith(f"{prefix}{kind}:"):
                found = _DAY.search(text[len(prefix) + len(kind):])
                year = found.group(1) if found else str(created_at.astimezone(ZoneInfo(zone)).year)
                return Offer(message_id, msisdn, tenant_id, kind, year, created_at)
    return None


def _insert_claims(session: Session, claims: list[tuple[InboundMessage, Offer]], *,
                   at: datetime | None) -> None:  # fmt: skip
    """One insert of the batch's claims; a row breaking a unique key (claimed before, or
    this MO's claim already recorded) is skipped."""
    if not claims:
        return
    from jingxin.data.store.models import utc_now

    rows = [{"msisdn": mo.msisdn, "tenant_id": offer.tenant_id, "gift": offer.kind,
             "occasion": offer.occasion, "message_id": offer.message_id, "mo_id": mo.id,
             "claimed_at": at or utc_now()} for mo, offer in claims]  # fmt: skip
    dialect = session.get_bind().dialect.name
    insert = (postgresql.insert if dialect == "postgresql" else sqlite.insert)(GiftClaim.__table__)
    with store_errors(f"recording {len(rows)} gift claim(s)"):
        session.connection().execute(insert.on_conflict_do_nothing(), rows)


def _claim_owners(session: Session, offers: list[Offer]) -> dict[tuple[str, str, str], int]:
    """Which MO owns each (number, gift, occasion) of ``offers``."""
    if not offers:
        return {}
    numbers = sorted({o.msisdn for o in offers})
    with store_errors(f"reading the gift claims of {len(numbers)} number(s)"):
        rows = session.execute(select(GiftClaim.msisdn, GiftClaim.gift, GiftClaim.occasion,
                                      GiftClaim.mo_id).where(
            among(session.connection(), GiftClaim.msisdn, numbers),
            GiftClaim.occasion.in_(sorted({o.occasion for o in offers}))))  # fmt: skip
        return {(msisdn, gift, occasion): mo_id for msisdn, gift, occasion, mo_id in rows}


# ----------------------------------------------------------------------------- follow-up


def followup_key(claim_id: int) -> str:
    """The idempotency key of the follow-up of claim ``claim_id``: one, whatever the day."""
    return f"journey:gift_followup:{claim_id}"


def gift_followups(ctx: TriggerContext, *, after_days: int = FOLLOWUP_DAYS) -> TriggerOutput:
    """The follow-ups due on ``ctx.day``: one per gift claimed ``after_days`` days before
    (that day in the operator's time zone). Claims whose follow-up is already recorded are
    skipped (``followed_up``); before that, follow-ups sent since the last scan are
    written back to their claims."""
    from jingxin.journeys.triggers.abandoned import day_bounds

    if ctx.store is None:
        raise ConfigError("gift_followup: the scan gave no store (TriggerContext.store); "
                          "gift claims are read from it")  # fmt: skip
    start, end = day_bounds(ctx.day - timedelta(days=after_days),
                            ctx.settings.policy.default_timezone)  # fmt: skip
    with ctx.store.transaction() as session:
        record_followups(session, since=start - timedelta(days=30), until=end)
        with store_errors("reading the gift claims due a follow-up"):
            claims = session.execute(select(
                GiftClaim.id, GiftClaim.msisdn, GiftClaim.tenant_id, GiftClaim.gift,
                GiftClaim.followup_message_id).where(
                    GiftClaim.claimed_at >= start, GiftClaim.claimed_at < end)
                .order_by(GiftClaim.msisdn, GiftClaim.id)).all()  # fmt: skip
    skipped: Counter[str] = Counter()
    rows: list[dict[str, Any]] = []
    for claim_id, msisdn, tenant_id, kind, followed in claims:
        if followed is not None:
            skipped["followed_up"] += 1
            continue
        gift = _BY_KIND.get(kind)
        rows.append({"msisdn": msisdn, "subscriber_id": None, "template": FOLLOWUP_TEMPLATE,
                     "name": SALUTATION, "gift": gift.title if gift else "礼包",
                     "hall_number": ctx.settings.journeys.hall_number, "tenant_id": tenant_id,
                     "idempotency_key": followup_key(claim_id)})  # fmt: skip
    return TriggerOutput(candidates=pa.Table.from_pylist(rows, schema=FOLLOWUP_SCHEMA),
                         skipped=skipped)  # fmt: skip


FOLLOWUP_SCHEMA = pa.schema(
    [("msisdn", pa.string()), ("subscriber_id", pa.int64())]
    + [(name, pa.string()) for name in ("template", "name", "gift", "hall_number", "tenant_id",
                                        "idempotency_key")])  # fmt: skip


def record_followups(session: Session, *, since: datetime, until: datetime) -> int:
    """Write the message id of each follow-up sent onto its claim (claims made in
    ``[since, until)`` without one yet); return how many were written."""
    with store_errors("recording the gift follow-ups sent"):
        open_claims = session.execute(select(GiftClaim.id).where(
            GiftClaim.followup_message_id.is_(None), GiftClaim.claimed_at >= since,
            GiftClaim.claimed_at < until)).scalars().all()  # fmt: skip
        if not open_claims:
            return 0
        keys = {followup_key(i): i for i in open_claims}
        wanted = sorted(keys)
        sent = []
        for at in range(0, len(wanted), CHUNK):  # SQLite's parameter limit
            sent += session.execute(select(Message.idempotency_key, Message.id).where(
                among(session.connection(), Message.idempotency_key, wanted[at:at + CHUNK])))
        for key, message_id in sent:
            session.execute(update(GiftClaim).where(GiftClaim.id == keys[key])
                            .values(followup_message_id=message_id))  # fmt: skip
    return len(sent)


@dataclass(frozen=True)
class GiftFollowupTrigger:
    """:func:`gift_followups` as a trigger of the daily scan."""

    name: str = "gift_followup"
    after_days: int = FOLLOWUP_DAYS

    def candidates(self, ctx: TriggerContext) -> TriggerOutput:
        return gift_followups(ctx, after_days=self.after_days)


GIFT_FOLLOWUP = GiftFollowupTrigger()

