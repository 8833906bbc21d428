"""The round overview's routes: the API (GET /rounds/{round_id}/overview) and the operator's
Danish page behind the dashboard login (GET /dashboard/rounds/{round_id}). Thin: the figures
come from service.round_overview."""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, Depends, HTTPException, Path as P, Request
from fastapi.responses import HTMLResponse, Response
from fastapi.templating import Jinja2Templates

from services.analytics.dashboard.auth import require_dashboard_scopes
from services.analytics.dashboard.router import _secure
from services.analytics.overview import domain, service
from services.analytics.overview.schemas import RoundOverview
from shared.auth import Principal, require_scopes
from shared.events import ROUND_ID_PATTERN

ROUND = ROUND_ID_PATTERN

api_router = APIRouter(tags=["overview"])
page_router = APIRouter(prefix="/dashboard", tags=["dashboard"])
operator = require_scopes(*service.OPERATOR_SCOPES)
page_operator = require_dashboard_scopes(*service.OPERATOR_SCOPES)
templates = Jinja2Templates(directory=str(Path(__file__).parent / "templates"))
templates.env.globals.update(local=domain.local)
templates.env.filters["pct"] = lambda v: "–" if v is None else f"{100 * v:.1f} %".replace(".", ",")
templates.env.filters["num"] = lambda v, digits=0: "–" if v is None else f"{v:,.{digits}f}".replace(",", "\u00a0").replace(".", ",")

STATUS_LABELS = {
    "waiting": "venter på kontaktoplysninger", "waiting_for_schedule": "venter på udsendelsesdatoer", "planned": "planlagt",
    "sending": "sendes", "sent": "sendt", "failed": "fejlet", "skipped": "sprunget over", "cancelled": "annulleret",
}
PHASE_LABELS = {
    "planned": "planlagt", "collecting_extracts": "indsamler udtræk", "sample_drawn": "stikprøve udtrukket",
    "fieldwork_scheduled": "feltarbejde planlagt", "in_fieldwork": "i feltarbejde", "fieldwork_ended": "feltarbejde afsluttet",
    "closed": "lukket", "purged": "slettet",
}
STEP_LABELS = {"invitation": "invitation", "reminder_1": "1. påmindelse", "reminder_2": "2. påmindelse"}
CHANNEL_LABELS = {"letter": "brev", "sms": "sms", "paper_exempt": "spørgeskema på papir (fritaget for Digital Post)",
                  "paper_all": "spørgeskema på papir (alle uden svar)"}
SENDING_LABELS = {
    "waiting_for_definition": "venter på rundens definition", "waiting_for_schedule": "venter på udsendelsesdatoer",
    "scheduled": "planlagt, intet sendt endnu", "sending": "sender", "outside_window": "uden for udsendelsesvinduet",
    "ended": "afsluttet",
}


async def _overview(request: Request, round_id: str) -> RoundOverview:
    async with request.app.state.runtime.uow() as uow:
        try:
            return await service.round_overview(uow, round_id)
        except service.RoundUnknown:
            raise HTTPException(404, detail=f"nothing of round {round_id} has reached analytics") from None


@api_router.get("/rounds/{round_id}/overview", response_model=RoundOverview,
                summary="One round's overview per municipality and in total: deliveries, frame, allocation, sample, "
                        "messages, answers and phase (KL's operator)",
                responses={404: {"description": "nothing of the round has reached analytics"}})
async def round_overview(request: Request, round_id: str = P(pattern=ROUND), principal: Principal = Depends(operator)) -> RoundOverview:
    return await _overview(request, round_id)


@page_router.get("/rounds/{round_id}", response_class=HTMLResponse,
                 summary="Dashboard page: the round's overview for KL's operator (Danish)")
async def round_overview_page(request: Request, round_id: str = P(pattern=ROUND),
                              principal: Principal = Depends(page_operator)) -> Response:
    overview = await _overview(request, round_id)
    return _secure(templates.TemplateResponse(request, "round_overview.html", {
        "o": overview, "subject": principal.subject, "status_labels": STATUS_LABELS, "phase_labels": PHASE_LABELS,
        "step_labels": STEP_LABELS, "sending_labels": SENDING_LABELS, "channel_labels": CHANNEL_LABELS,
    }))

