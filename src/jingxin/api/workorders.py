"""API routes: retention work orders (double-stop, 双停) - the worklist, one order with its
lifecycle, and the lifecycle's moves (``jingxin retention orders|show|assign|visit|close``).

The moves are :func:`jingxin.retention.workorders.move`, the function behind the CLI's: a
move its lifecycle does not allow answers 409 with the domain's words (naming the order and
both states). Orders are the caller's tenant's only; numbers are masked for roles without
``numbers.view``. Each move is audited in its own transaction, with the order's event.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Path, Query, Request
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import func, select

from jingxin.access import Principal
from jingxin.api import auth, errors
from jingxin.api.auth import allow
from jingxin.api.limits import BIGINT_MAX, OFFSET_MAX
from jingxin.data.store.models.journeys import WorkOrder
from jingxin.retention import workorders as domain

router = APIRouter(prefix="/api/v1", tags=["workorders"])

# The domain's LIST_STATES: one of WORK_ORDER_STATES, or "open" (any not closed).
Status = Literal["created", "assigned", "visited", "reactivated", "lost", "open"]
OrderId = Annotated[int, Path(ge=1, le=BIGINT_MAX, description="The work order's id.")]
ERRORS: dict[int | str, dict[str, Any]] = {404: {"description": "No such work order (or "
                                                 "another tenant's)."}}  # fmt: skip
MOVE_ERRORS = {**ERRORS, 409: {"description": "The lifecycle does not allow this move from "
                               "the order's state (the message names both)."}}  # fmt: skip


class Reason(BaseModel):
    feature: str
    value: str
    contribution: float


class Event(BaseModel):
    state: str
    by: str | None
    at: datetime
    note: str | None


class Order(BaseModel):
    id: int
    kind: str
    branch: str
    region: str | None
    subscriber_id: int
    msisdn: str | None = Field(description="Masked unless the caller may see numbers.")
    episode: str
    barred_since: date
    extracted_on: date
    propensity: float | None = Field(description="Churn propensity 0..1 (the worklist's "
                                     "order), when a churn model scored it.")  # fmt: skip
    reasons: list[Reason] = Field(description="The churn score's top reasons.")
    state: str
    assignee: str | None
    updated_at: datetime


class OrderDetail(Order):
    events: list[Event] = Field(description="The lifecycle, oldest first.")


class OrderList(BaseModel):
    items: list[Order]
    total: int


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    note: str | None = Field(default=None, max_length=2000, description="What happened.")


class Assign(_Body):
    assignee: str = Field(min_length=1, max_length=64, description="Who visits.")


class Visit(_Body):
    pass


class Close(_Body):
    outcome: Literal["reactivated", "lost"]


def _order(who: Principal, row: WorkOrder, reasons: list[Any]) -> dict[str, Any]:
    return {"id": row.id, "kind": row.kind, "branch": row.branch, "region": row.region,
            "subscriber_id": row.subscriber_id, "msisdn": who.number(row.msisdn),
            "episode": row.episode, "barred_since": row.barred_since,
            "extracted_on": row.extracted_on, "propensity": row.propensity,
            "reasons": [r.to_json() for r in reasons], "state": row.state,
            "assignee": row.assignee, "updated_at": row.updated_at}  # fmt: skip


def _detail(session: Any, who: Principal, row: WorkOrder) -> OrderDetail:
    reasons = domain.read_reasons(session, [row.id]).get(row.id, [])
    events = [Event(state=e.state, by=e.by, at=e.at, note=e.note)
              for e in domain.read_events(session, row.id)]  # fmt: skip
    return OrderDetail(**_order(who, row, reasons), events=events)


def _owned(session: Any, who: Principal, order_id: int) -> WorkOrder:
    return errors.owned(session, WorkOrder, order_id, tenant_id=who.tenant_id,
                        what="work order")  # fmt: skip


@router.get("/workorders", response_model=OrderList)
def list_workorders(
    request: Request,
    who: Annotated[Principal, Depends(allow("workorders.read"))],
    status: Annotated[Status | None, Query(
        description="One state, or open (created, assigned or visited); none: all.")] = None,
    branch: Annotated[str | None, Query(max_length=64, description="Only this branch's.")]
    = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    offset: Annotated[int, Query(ge=0, le=OFFSET_MAX)] = 0,
) -> OrderList:
    """The worklist of the caller's tenant: highest churn propensity first, then the
    longest barred (``jingxin retention orders``)."""
    query = domain.select_orders(branch=branch, state=status, tenant_id=who.tenant_id)
    with request.app.state.store.transaction() as session:
        total = session.scalar(select(func.count()).select_from(query.order_by(None).subquery()))
        rows = list(session.scalars(query.limit(limit).offset(offset)))
        reasons = domain.read_reasons(session, [r.id for r in rows])
    items = [Order(**_order(who, r, reasons.get(r.id, []))) for r in rows]
    return OrderList(items=items, total=int(total or 0))


@router.get("/workorders/{order_id}", response_model=OrderDetail, responses=ERRORS)
def get_workorder(request: Request, order_id: OrderId,
                  who: Annotated[Principal, Depends(allow("workorders.read"))]) -> OrderDetail:
    """One work order: the subscriber, the churn score's top reasons and its lifecycle
    (``jingxin retention show``)."""
    with request.app.state.store.transaction() as session:
        return _detail(session, who, _owned(session, who, order_id))


def _move(request: Request, who: Principal, order_id: int, to: str, *, note: str | None,
          assignee: str | None = None) -> OrderDetail:
    with request.app.state.store.transaction() as session:
        before = _owned(session, who, order_id).state
        try:
            row = domain.move(session, order_id, to, by=who.actor[:64], note=note,
                              assignee=assignee, tenant_id=who.tenant_id)  # fmt: skip
        except domain.OrderNotFound:
            raise errors.not_found("work order", order_id) from None
        # a refused move (TransitionRefused, a ConflictError) answers 409 in its words
        detail = {"from": before, "to": to} | ({"assignee": assignee} if assignee else {})
        auth.audit(session, who, f"workorder.{to}", "work_order", order_id, detail)
        return _detail(session, who, row)


@router.post("/workorders/{order_id}/assign", response_model=OrderDetail,
             responses=MOVE_ERRORS)  # fmt: skip
def assign_workorder(request: Request, order_id: OrderId, body: Assign,
                     who: Annotated[Principal, Depends(allow("workorders.write"))]
                     ) -> OrderDetail:  # fmt: skip
    """Assign the order to someone, or hand it over to someone else (``jingxin retention
    assign ID --to NAME``): from created, assigned."""
    return _move(request, who, order_id, "assigned", note=body.note, assignee=body.assignee)


@router.post("/workorders/{order_id}/visit", response_model=OrderDetail,
             responses=MOVE_ERRORS)  # fmt: skip
def visit_workorder(request: Request, order_id: OrderId, body: Visit,
                    who: Annotated[Principal, Depends(allow("workorders.write"))]
                    ) -> OrderDetail:  # fmt: skip
    """Record a visit (or a call) to the subscriber (``jingxin retention visit``): from
    assigned or visited."""
    return _move(request, who, order_id, "visited", note=body.note)


@router.post("/workorders/{order_id}/close", response_model=OrderDetail,
             responses=MOVE_ERRORS)  # fmt: skip
def close_workorder(request: Request, order_id: OrderId, body: Close,
                    who: Annotated[Principal, Depends(allow("workorders.write"))]
                    ) -> OrderDetail:  # fmt: skip
    """Close the order as reactivated or lost (``jingxin retention close``): only once
    somebody holds it (assigned or visited); closed orders are final."""
    return _move(request, who, order_id, body.outcome, note=body.note)
