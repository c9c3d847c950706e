"""What each fence's offers became: ``jingxin fence report``.

An offer's record is what every sender leaves (the delivery entry's contract): its outbox
row (source ``fence``, source id the fence code, state through submit and receipt) and,
when policy deferred or refused it, its decision row, whose idempotency key
``fence:<code>:<number>:<entered_ms>`` names the fence. Per fence: offers queued, sent
(submitted), delivered, failed, still waiting; refusals and deferrals by reason; entries
per local hour (the stay's entry time); and one rendered text, the number masked.

Held-out stays leave no message: ``held_out`` counts the subscribers put in the fence's
hold-out (``experiment_assignments`` of ``fence:<code>``, holdout) since the start - each
subscriber once per fence, when first held out (their later stays are held out too).
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import func, select

from jingxin.data.store.engine import Store, store_errors
from jingxin.data.store.models import DecisionRecord, Message
from jingxin.data.store.models.analytics import ExperimentAssignment

SENT = ("submitted", "delivered", "failed", "expired", "undeliverable")


@dataclass
class FenceLine:
    """One fence's offers since the report's start."""

    code: str
    queued: int = 0  # outbox rows (whatever became of them)
    sent: int = 0  # submitted to the SMS centre
    delivered: int = 0
    failed: int = 0
    waiting: int = 0  # queued, not yet sent (scheduled later: quiet hours)
    held_out: int = 0  # subscribers newly put in the hold-out (sent nothing)
    refused: Counter = field(default_factory=Counter)  # reason -> n
    by_hour: Counter = field(default_factory=Counter)  # local hour of entry -> offers
    sample: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {"code": self.code, "queued": self.queued, "sent": self.sent,
                "delivered": self.delivered, "failed": self.failed, "waiting": self.waiting,
                "held_out": self.held_out, "refused": dict(self.refused), "by_hour": {f"{h:02d}": n for h, n in
                                                           sorted(self.by_hour.items())},
                "sample": self.sample}  # fmt: skip


def fence_report(store: Store, *, since: datetime, zone: str) -> list[FenceLine]:
    """Every fence with an offer or a refusal since ``since`` (UTC), by code."""
    tz = ZoneInfo(zone)
    lines: dict[str, FenceLine] = defaultdict(lambda: FenceLine(code=""))
    with store_errors("reading the fence offers"), store.sessions() as s:
        rows = s.execute(select(Message.source_id, Message.state, Message.idempotency_key,
                                Message.submitted_at).where(
            Message.source == "fence", Message.created_at >= since)).all()  # fmt: skip
        refusals = s.execute(select(DecisionRecord.idempotency_key, DecisionRecord.outcome,
                                    DecisionRecord.reasons).where(
            DecisionRecord.source == "fence", DecisionRecord.decided_at >= since,
            DecisionRecord.outcome != "send")).all()  # fmt: skip
        samples = dict(s.execute(select(Message.source_id, func.max(Message.id)).where(
            Message.source == "fence", Message.created_at >= since).group_by(
            Message.source_id)).all())  # fmt: skip
        A = ExperimentAssignment
        held = s.execute(select(A.experiment, func.count()).where(
            A.experiment.like("fence:%"), A.holdout.is_(True), A.assigned_at >= since)
            .group_by(A.experiment)).all()  # fmt: skip
        wanted = select(Message.id, Message.text).where(Message.id.in_(list(samples.values())))
        texts = {i: text for i, text in s.execute(wanted).all()}
    for code, state, key, submitted in rows:
        line = _line(lines, code or "?")
        line.queued += 1
        line.sent += submitted is not None
        line.delivered += state == "delivered"
        line.failed += state in ("failed", "expired", "undeliverable")
        line.waiting += state == "queued"
        entered = _entered(key)
        if entered is not None:
            line.by_hour[datetime.fromtimestamp(entered / 1000, tz).hour] += 1
    for key, outcome, reasons in refusals:
        code = key.split(":")[1] if key.count(":") >= 3 else "?"
        reason = (reasons or outcome).split(",")[0]
        _line(lines, code).refused[f"{outcome}:{reason}"] += 1
    for experiment, n in held:
        _line(lines, experiment.removeprefix("fence:")).held_out += n
    for code, message_id in samples.items():
        if code in lines:
            lines[code].sample = texts.get(message_id)
    return [lines[code] for code in sorted(lines)]


def _line(lines: dict[str, FenceLine], code: str) -> FenceLine:
    line = lines[code]
    line.code = code
    return line


def _entered(key: str) -> int | None:
    """The stay's entry time (epoch ms) from an offer's idempotency key."""
    tail = key.rsplit(":", 1)[-1]
    return int(tail) if tail.isdigit() else None
