"""API routes: journeys - what runs, how far it got, and the two things one may do by hand.

A journey is either

- a **trigger** of the daily scan (``birthday``, ``renewal``, ... :mod:`jingxin.journeys.
  triggers`): single-step care messages, one ``journey_runs`` row per day, sent as
  ``[journeys] tenant`` (only that tenant sees them); or
- a **flow**, a multi-step journey file (YAML) in ``[journeys] journeys_dir``
  (:mod:`jingxin.journeys.flow`), sent as its ``tenant:``, its subscribers' positions in
  ``journey_enrolments``.

Both are defined in files and settings, so the API shows them read-only. There is no
pause or resume: the domain has no such state (a flow stops when its file leaves the
directory, a trigger when ``[journeys] triggers`` leaves it out). What exists is what the
CLI does: ``POST /journeys/{name}/run`` (``jingxin journeys run --trigger NAME`` for a
trigger, the day's enrolment of a flow whose entry is a trigger) and ``POST
/journeys/{name}/advance`` (``jingxin flow advance`` for one flow). Both run in the
request (the domain's own transactions, idempotent as the scheduler's runs are); the audit
entry follows in one more.
"""

from __future__ import annotations

import datetime as dt
import logging
from datetime import date, datetime
from pathlib import Path as FilePath
from typing import TYPE_CHECKING, Annotated, Any, Literal
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Depends, Path, Query, Request
from pydantic import BaseModel, ConfigDict, Field

from jingxin.access import Principal
from jingxin.api import auth, errors
from jingxin.api.auth import allow
from jingxin.api.limits import OFFSET_MAX
from jingxin.api.warehouse import read_warehouse
from jingxin.data.store.models import utc_now
from jingxin.journeys.flow import (
    Branch,
    Exit,
    Flow,
    FlowError,
    Send,
    Wait,
    load_flow,
    read_flows,
)
from jingxin.journeys.status import (
    enrolment_counts,
    journey_status,
    last_runs,
    recent_runs,
    run_row,
)

if TYPE_CHECKING:
    from jingxin.config import Settings

log = logging.getLogger(__name__)

router = APIRouter(prefix="/api/v1", tags=["journeys"])

JourneyName = Annotated[str, Path(min_length=1, max_length=64,
                                  description="The trigger's or the journey file's name.")]
NOT_FOUND: dict[int | str, dict[str, Any]] = {404: {"description": "No such journey (or "
                                                    "another tenant's)."}}  # fmt: skip
RUNS_SHOWN = 10


class Run(BaseModel):
    """One recorded run: a trigger's scan of a day, or a flow's enrolment of a day."""

    day: date
    trigger: str = Field(description="The trigger, or flow:<name> for a flow's enrolment.")
    state: Literal["running", "done", "failed"]
    candidates: int
    queued: int = Field(description="Handed to the delivery entry (a flow: enrolled).")
    deferred: int
    duplicates: int = Field(description="Sent before (a flow: enrolled before).")
    rejected: int
    skipped: dict[str, int]
    detail: str | None = Field(description="A warning, or why it failed.")
    started_at: datetime
    finished_at: datetime | None


class JourneySummary(BaseModel):
    id: str = Field(description="Its name: what the other routes take.")
    kind: Literal["trigger", "flow"]
    name: str
    category: str | None = Field(description="A flow's message category (triggers: each "
                                 "template's own).")  # fmt: skip
    entry: str | None = Field(description="A flow's entry: trigger:<name> or audience:<file>.")
    scheduled: bool = Field(description="Whether `jingxin scheduler` runs it.")
    enrolments: dict[str, int] = Field(description="A flow's enrolments by state (active, "
                                       "done, exited); a trigger enrols nobody.")  # fmt: skip
    last_run: Run | None


class JourneyList(BaseModel):
    items: list[JourneySummary]
    total: int
    problems: list[str] = Field(default_factory=list, description="Journey files that do not "
                                "validate, each problem with its file and line (operator "
                                "only).")  # fmt: skip


class Rule(BaseModel):
    event: str = Field(description="replied, ordered, claimed, or none.")
    within_seconds: int
    goto: str


class Step(BaseModel):
    id: str
    type: Literal["send", "wait", "branch", "exit"]
    template: str | None = None
    variables: dict[str, Any] | None = None
    seconds: int | None = Field(default=None, description="A wait's length.")
    rules: list[Rule] | None = None
    default: str | None = None
    outcome: str | None = None
    next: str | None = Field(default=None, description="The step after it (none: it ends).")


class Position(BaseModel):
    step: str | None
    state: str
    outcome: str | None
    n: int


class Group(BaseModel):
    enrolled: int
    converted: int
    rate: float | None


class JourneyDetail(JourneySummary):
    file: str | None = Field(description="The journey file's name.")
    holdout: float | None = Field(description="The share held out (a flow).")
    holdout_default: bool | None = Field(description="Whether that share is [analytics] "
                                         "holdout, the file giving none.")  # fmt: skip
    exit_on: list[str]
    goal: str | None
    steps: list[Step]
    positions: list[Position] = Field(description="Enrolments by step, state and outcome.")
    treated: Group | None
    held_out: Group | None
    uplift: float | None = Field(description="Treated minus held-out conversion of the goal.")
    runs: list[Run] = Field(description=f"The last {RUNS_SHOWN} runs, newest day first.")


class RunBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    date: dt.date | None = Field(default=None, description="The day (default: today in the "
                                 "operator's time zone).")  # fmt: skip
    dry_run: bool = Field(default=False, description="A trigger only: count, send nothing.")


class TriggerRun(BaseModel):
    state: str
    already_done: bool = Field(description="An earlier scan of the day did it: not run again.")
    candidates: int
    queued: int
    deferred: int
    duplicates: int
    rejected: dict[str, int]
    skipped: dict[str, int]
    seconds: float
    warning: str | None
    error: str | None
    sample: str | None = Field(description="The first candidate's message, rendered.")


class Enrolment(BaseModel):
    candidates: int
    enrolled: int
    held_out: int = Field(description="Of those enrolled.")
    already: int = Field(description="Enrolled before under this day.")
    skipped: dict[str, int]


class RunResult(BaseModel):
    journey: str
    day: date
    dry_run: bool
    scan: TriggerRun | None = Field(description="A trigger's scan of the day.")
    enrolment: Enrolment | None = Field(description="A flow's enrolment of the day.")


class AdvanceResult(BaseModel):
    journey: str
    counts: dict[str, int] = Field(description="What happened: events by kind, done, "
                                   "exited, blocked; empty: nothing was due.")  # fmt: skip


# ----------------------------------------------------------------------------- the catalogue


def _triggers(settings: Settings, who: Principal) -> list[str]:
    """The daily scan's triggers, for the tenant the scan sends as."""
    from jingxin.journeys.triggers import TRIGGERS

    return list(TRIGGERS) if who.tenant_id == settings.journeys.tenant else []


def _flows(settings: Settings, who: Principal) -> tuple[list[Flow], list[str]]:
    """The caller's tenant's journey files that validate; the problems (operator only)."""
    folder = settings.journeys.journeys_dir
    if not folder:
        return [], []
    flows, problems = read_flows(folder)
    mine = [f for f in flows if f.tenant == who.tenant_id]
    if not who.operator:
        return mine, []
    prefix = f"{FilePath(folder)}/"  # the file's name says enough; the server's layout not
    return mine, [p.removeprefix(prefix) for p in problems]


def _find(settings: Settings, who: Principal, name: str) -> str | Flow:
    """The trigger's name or the flow called ``name``, the caller's; else 404."""
    if name in _triggers(settings, who):
        return name
    flow = next((f for f in _flows(settings, who)[0] if f.name == name), None)
    if flow is None:
        raise errors.not_found("journey", name)
    return flow


def _scheduled(settings: Settings, journey: str | Flow) -> bool:
    chosen = settings.journeys.triggers
    wanted = not isinstance(journey, str) or not chosen or journey in chosen
    return settings.journeys.scheduled and wanted


def _run_name(journey: str | Flow) -> str:
    return journey if isinstance(journey, str) else journey.run_name


def _summary(settings: Settings, journey: str | Flow, counts: dict[str, dict[str, int]],
             last: Run | None) -> dict[str, Any]:  # fmt: skip
    if isinstance(journey, str):
        return {"id": journey, "kind": "trigger", "name": journey, "category": None,
                "entry": None, "scheduled": _scheduled(settings, journey), "enrolments": {},
                "last_run": last}  # fmt: skip
    entry = (f"trigger:{journey.entry.trigger}" if journey.entry.trigger else
             f"audience:{journey.entry.audience.name if journey.entry.audience else ''}")
    return {"id": journey.name, "kind": "flow", "name": journey.name,
            "category": journey.category, "entry": entry,
            "scheduled": _scheduled(settings, journey),
            "enrolments": counts.get(journey.name, {}), "last_run": last}  # fmt: skip


@router.get("/journeys", response_model=JourneyList)
def list_journeys(
    request: Request,
    who: Annotated[Principal, Depends(allow("journeys.read"))],
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    offset: Annotated[int, Query(ge=0, le=OFFSET_MAX)] = 0,
) -> JourneyList:
    """The daily scan's triggers (to the tenant the scan sends as) and the caller's
    tenant's journey files, each with its enrolments by state and its last run."""
    settings = request.app.state.settings
    flows, problems = _flows(settings, who)
    journeys: list[str | Flow] = [*_triggers(settings, who), *flows]
    page = journeys[offset : offset + limit]
    with request.app.state.store.transaction() as session:
        counts = enrolment_counts(session, tenant_id=who.tenant_id)
        last = {name: Run(**run_row(run)) for name, run in
                last_runs(session, triggers=[_run_name(j) for j in page]).items()}
    items = [JourneySummary(**_summary(settings, j, counts, last.get(_run_name(j))))
             for j in page]  # fmt: skip
    return JourneyList(items=items, total=len(journeys), problems=problems)


def _step(flow: Flow, step: Any) -> Step:
    if isinstance(step, Send):
        return Step(id=step.id, type="send", template=step.template,
                    variables=dict(step.variables), next=flow.after(step))  # fmt: skip
    if isinstance(step, Wait):
        return Step(id=step.id, type="wait", seconds=int(step.duration.total_seconds()),
                    next=flow.after(step))  # fmt: skip
    if isinstance(step, Branch):
        rules = [Rule(event=r.event, within_seconds=int(r.within.total_seconds()), goto=r.goto)
                 for r in step.rules]  # fmt: skip
        return Step(id=step.id, type="branch", rules=rules, default=step.default)
    assert isinstance(step, Exit)
    return Step(id=step.id, type="exit", outcome=step.outcome)


def _holdout(settings: Settings, flow: Flow) -> float | None:
    from jingxin.analytics.holdout import default_share
    from jingxin.errors import ConfigError

    try:
        return flow.holdout_share(default_share(settings))
    except ConfigError:  # [analytics] holdout over a half: the flow would not enrol
        return None


@router.get("/journeys/{journey}", response_model=JourneyDetail, responses=NOT_FOUND)
def get_journey(request: Request, journey: JourneyName,
                who: Annotated[Principal, Depends(allow("journeys.read"))]) -> JourneyDetail:
    """One journey: a flow's definition and steps, its enrolments by step, state and
    outcome, the treated against the held-out conversion of its goal (``jingxin flow
    status``); a trigger's last runs (``jingxin journeys runs``)."""
    settings = request.app.state.settings
    store = request.app.state.store
    found = _find(settings, who, journey)
    with store.transaction() as session:
        counts = enrolment_counts(session, tenant_id=who.tenant_id)
        runs = [Run(**run_row(r)) for r in recent_runs(session, triggers=[_run_name(found)],
                                                       limit=RUNS_SHOWN)]  # fmt: skip
    summary = _summary(settings, found, counts, runs[0] if runs else None)
    if isinstance(found, str):
        return JourneyDetail(**summary, file=None, holdout=None, holdout_default=None,
                             exit_on=[], goal=None, steps=[], positions=[], treated=None,
                             held_out=None, uplift=None, runs=runs)  # fmt: skip
    status = journey_status(store, found.name, goal=found.goal, tenant_id=who.tenant_id)
    return JourneyDetail(
        **summary, file=FilePath(found.path).name, holdout=_holdout(settings, found),
        holdout_default=found.holdout is None, exit_on=list(found.exit_on), goal=found.goal,
        steps=[_step(found, s) for s in found.steps],
        positions=[Position(step=s, state=st, outcome=o, n=n) for s, st, o, n in status.positions],
        treated=Group(**_group(status.treated)), held_out=Group(**_group(status.holdout)),
        uplift=status.uplift, runs=runs)  # fmt: skip


def _group(group: Any) -> dict[str, Any]:
    return {"enrolled": group.enrolled, "converted": group.converted, "rate": group.rate}


# ----------------------------------------------------------------------------- actions


def _checked(request: Request, flow: Flow) -> Flow:
    """The flow's file read again and checked against the template catalogue, as the
    scheduler does before it acts; a file that no longer validates is 409."""
    try:
        return load_flow(flow.path, store=request.app.state.store)
    except FlowError as exc:
        raise errors.ApiError(409, f"journey {flow.name} does not validate: "
                              + "; ".join(exc.problems)) from None  # fmt: skip


def _audit(request: Request, who: Principal, action: str, name: str,
           detail: dict[str, Any]) -> None:  # fmt: skip
    with request.app.state.store.transaction() as session:
        auth.audit(session, who, action, "journey", name, detail)


@router.post("/journeys/{journey}/run", response_model=RunResult,
             responses={**NOT_FOUND, 409: {"description": "A flow that enters from an "
                        "audience file, or whose file no longer validates."},
                        503: {"description": "The warehouse cannot be opened."}})  # fmt: skip
def run_journey(request: Request, journey: JourneyName, body: RunBody,
                who: Annotated[Principal, Depends(allow("journeys.write"))]) -> RunResult:
    """Run a day now, as the scheduler would: a trigger's scan (``jingxin journeys run
    --trigger NAME [--dry-run]``; a day already done is not run again), or the day's
    enrolment of a flow whose entry is a trigger (``jingxin flow enrol FILE``)."""
    settings = request.app.state.settings
    store = request.app.state.store
    found = _find(settings, who, journey)
    day = body.date or datetime.now(ZoneInfo(settings.policy.default_timezone)).date()
    if isinstance(found, str):
        from jingxin.journeys.scan import run_scan

        with read_warehouse(settings) as warehouse:
            report = run_scan(settings, store, warehouse, day=day, triggers=[found],
                              dry_run=body.dry_run)  # fmt: skip
        (done,) = report.triggers
        scan = TriggerRun(**{k: v for k, v in done.as_dict().items() if k in TriggerRun.model_fields})
        _audit(request, who, "journey.run", found, {"day": day.isoformat(),
               "dry_run": body.dry_run, "state": done.state, "queued": done.queued})  # fmt: skip
        return RunResult(journey=found, day=day, dry_run=body.dry_run, scan=scan, enrolment=None)
    if body.dry_run:
        raise errors.ApiError(422, "dry_run: only a trigger's scan has a dry run; a journey's "
                              "enrolment is recorded", field="body.dry_run")  # fmt: skip
    if found.entry.trigger is None:
        raise errors.ApiError(409, f"journey {found.name} enters from an audience file: "
                              f"enrol it with `jingxin flow enrol {FilePath(found.path).name}`")
    from jingxin.journeys.engine import enrol_from_trigger

    flow = _checked(request, found)
    with read_warehouse(settings) as warehouse:
        made = enrol_from_trigger(store, flow, warehouse=warehouse, settings=settings, day=day,
                                  now=utc_now())  # fmt: skip
    _audit(request, who, "journey.run", flow.name, {"day": day.isoformat(),
           "enrolled": made.enrolled, "held_out": made.holdout})  # fmt: skip
    enrolment = Enrolment(candidates=made.candidates, enrolled=made.enrolled,
                          held_out=made.holdout, already=made.already,
                          skipped=dict(made.skipped))  # fmt: skip
    return RunResult(journey=flow.name, day=day, dry_run=False, scan=None, enrolment=enrolment)


@router.post("/journeys/{journey}/advance", response_model=AdvanceResult,
             responses={**NOT_FOUND, 409: {"description": "A trigger (it has no steps), or a "
                        "flow whose file no longer validates."}})  # fmt: skip
def advance_journey(request: Request, journey: JourneyName,
                    who: Annotated[Principal, Depends(allow("journeys.write"))]
                    ) -> AdvanceResult:  # fmt: skip
    """Run every step of the flow that is due now (``jingxin flow advance``, for this
    journey only; the scheduler does it every run)."""
    from jingxin.journeys.engine import advance

    settings = request.app.state.settings
    found = _find(settings, who, journey)
    if isinstance(found, str):
        raise errors.ApiError(409, f"{found} is a trigger of the daily scan: it has no steps "
                              "to advance (run it instead)")  # fmt: skip
    flow = _checked(request, found)
    counts = advance(request.app.state.store, [flow], now=utc_now(), settings=settings)
    _audit(request, who, "journey.advance", flow.name, {"counts": dict(counts)})
    return AdvanceResult(journey=flow.name, counts=dict(counts))
