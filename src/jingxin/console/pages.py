"""The console's pages: each one a shell (:mod:`jingxin.console.shell`) whose script
fetches what it shows from the JSON API. A page needs the permission its API reads need;
its buttons are shown by the permissions their API calls need (the API checks again)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request, Response
from fastapi.responses import RedirectResponse

from jingxin.access.principal import Principal
from jingxin.api.auth import allow
from jingxin.console.shell import ConsoleRoute, render

router = APIRouter(prefix="/console", route_class=ConsoleRoute, include_in_schema=False)


@router.get("")
async def bare() -> RedirectResponse:
    """``/console`` itself: the short-link catch-all would take it for a token."""
    return RedirectResponse("/console/", status_code=308)


@router.get("/")
async def dashboard(request: Request,
                    who: Annotated[Principal, Depends(allow("dashboard.read"))]) -> Response:
    """Today's figures, channel health and queue depths."""
    return render(request, "dashboard.html", who=who, page="dashboard")


@router.get("/campaigns")
async def campaigns(request: Request,
                    who: Annotated[Principal, Depends(allow("campaigns.read"))]) -> Response:
    """The tenant's campaigns."""
    return render(request, "campaigns.html", who=who, page="campaigns")


@router.get("/campaigns/new")
async def campaign_wizard(request: Request,
                          who: Annotated[Principal, Depends(allow("campaigns.write"))]) -> Response:
    """Audience → message → preview and cost → schedule and launch."""
    return render(request, "wizard.html", who=who, page="wizard", nav_key="campaigns")


@router.get("/campaigns/{campaign_id}")
async def campaign(request: Request, campaign_id: int,
                   who: Annotated[Principal, Depends(allow("campaigns.read"))]) -> Response:
    """One campaign: status, counts, pause/resume/cancel, the experiment's results."""
    return render(request, "campaign.html", who=who, page="campaign", nav_key="campaigns",
                  campaign_id=campaign_id, charts=True)  # fmt: skip


@router.get("/templates")
async def templates(request: Request,
                    who: Annotated[Principal, Depends(allow("templates.read"))]) -> Response:
    """Templates with submit / approve / reject, as the role allows."""
    return render(request, "templates.html", who=who, page="templates")


@router.get("/fences")
async def fences(request: Request,
                 who: Annotated[Principal, Depends(allow("fences.read"))]) -> Response:
    """The tenant's geofences."""
    return render(request, "fences.html", who=who, page="fences")


@router.get("/fences/{fence_id}")
async def fence(request: Request, fence_id: str,
                who: Annotated[Principal, Depends(allow("fences.read"))]) -> Response:
    """One fence and a map of its cells."""
    return render(request, "fence.html", who=who, page="fence", nav_key="fences",
                  fence_id=fence_id)  # fmt: skip


@router.get("/hall")
async def hall(request: Request,
               who: Annotated[Principal, Depends(allow("hall.read"))]) -> Response:
    """The service hall: menu editor and conversation viewer."""
    return render(request, "hall.html", who=who, page="hall")


@router.get("/probes")
async def probes(request: Request,
                 who: Annotated[Principal, Depends(allow("probes.read"))]) -> Response:
    """Dial tests: the last result of each, and their history."""
    return render(request, "probes.html", who=who, page="probes")


@router.get("/workorders")
async def workorders(request: Request,
                     who: Annotated[Principal, Depends(allow("workorders.read"))]) -> Response:
    """Work orders and their lifecycle."""
    return render(request, "workorders.html", who=who, page="workorders")
