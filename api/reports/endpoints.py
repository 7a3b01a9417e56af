"""GET /v1/deletion-requests/{id}/report: the ticket's decision report, HTML or JSON."""

from __future__ import annotations

import uuid
from typing import Literal

from fastapi import APIRouter
from fastapi.responses import HTMLResponse, JSONResponse

from api.deps import AnyRole, SessionDep
from api.errors import ERROR_RESPONSES
from api.reports.content import build_report
from api.reports.messages import LANGUAGES
from api.reports.render import render_html
from domain.tickets.service import visible_ticket

router = APIRouter(prefix="/v1/deletion-requests", tags=["reports"], responses=ERROR_RESPONSES)


@router.get(
    "/{ticket_id}/report",
    response_class=HTMLResponse,
    responses={200: {"content": {"text/html": {}, "application/json": {}}}},
)
def report(
    ticket_id: uuid.UUID,
    session: SessionDep,
    principal: AnyRole,
    format: Literal["html", "json"] = "html",
    lang: Literal[LANGUAGES] = "en",  # type: ignore[valid-type]
):
    """The verdict against the policy, forgetting / utility / cost, what was tried, and an
    appendix (curve, policy and its hash, artifact hash, audit events). No personal values."""
    content = build_report(session, visible_ticket(session, principal, ticket_id))
    if format == "json":
        return JSONResponse(content)
    return HTMLResponse(render_html(content, lang))
