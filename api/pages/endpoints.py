"""/ui: server-rendered pages over the same services and roles as the API (jinja2, plain
forms, no JavaScript build). A login form turns an API key into a session cookie; every form
carries the session's CSRF token; a page answers only what the key's role may see."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from api.pages import audit, operations, tickets
from api.pages.common import page
from api.pages.messages import LANGUAGES
from domain.errors import ServiceError

router = APIRouter(prefix="/ui", include_in_schema=False)
for area in (tickets, operations, audit):
    router.include_router(area.router)


def error_page(request: Request, error: ServiceError) -> HTMLResponse:
    """A service error on a page, as a page (the API's JSON is for programs)."""
    lang = request.query_params.get("lang", "en")
    lang = lang if lang in LANGUAGES else "en"
    return page("error.html.j2", lang, None, error.status_code, message=error.text(lang))
