"""/ui: server-rendered pages over the same services and roles as the API (jinja2, plain
forms, no JavaScript build). A login form turns an API key into a session cookie; every form
carries the session's CSRF token; a page answers only what the key's role may see."""

from __future__ import annotations

import uuid
from functools import cache
from pathlib import Path
from typing import Annotated, Literal

from fastapi import APIRouter, Form, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from jinja2 import Environment, FileSystemLoader, select_autoescape

from api.deps import SessionDep, SettingsDep
from api.errors import Forbidden, ServiceError, Unauthorized
from api.keys.service import Principal, authenticate
from api.pages import session as cookies
from api.pages.messages import LANGUAGES, MESSAGES
from api.reports.content import build_report
from api.reports.render import render_html
from api.requests import service
from api.requests.lifecycle import OPERATOR_CANCELLABLE, REQUESTER_CANCELLABLE
from api.requests.repository import TicketFilter

router = APIRouter(prefix="/ui", include_in_schema=False)
Lang = Annotated[Literal[LANGUAGES], Query()]  # type: ignore[valid-type]


@cache
def _templates() -> Environment:
    folder = Path(__file__).parent / "templates"
    return Environment(loader=FileSystemLoader(folder), autoescape=select_autoescape(["j2"]))


def _page(name: str, lang: str, status: int = 200, **context) -> HTMLResponse:
    html = _templates().get_template(name).render(t=MESSAGES[lang], lang=lang, **context)
    return HTMLResponse(html, status_code=status)


def _signed_in(request: Request, session, settings) -> tuple[Principal, str] | None:
    """The session's principal and sealed cookie, or None (no cookie, or a dead key)."""
    secret = settings.secret_key.get_secret_value()
    sealed = request.cookies.get(cookies.COOKIE)
    key = cookies.unseal(secret, sealed)
    if key is None:
        return None
    try:
        return authenticate(session, secret, key), sealed
    except Unauthorized:
        return None


def _to_login(lang: str) -> RedirectResponse:
    return RedirectResponse(f"/ui/login?lang={lang}", status_code=303)


@router.get("/login")
def login_form(lang: Lang = "en") -> HTMLResponse:
    return _page("login.html.j2", lang, signed_in=False)


@router.post("/login")
def login(
    session: SessionDep,
    settings: SettingsDep,
    request: Request,
    api_key: Annotated[str, Form(max_length=200)],
    lang: Lang = "en",
) -> Response:
    secret = settings.secret_key.get_secret_value()
    try:
        authenticate(session, secret, api_key)
    except Unauthorized:
        return _page("login.html.j2", lang, 401, signed_in=False, error=MESSAGES[lang]["bad_key"])
    response = RedirectResponse(f"/ui/tickets?lang={lang}", status_code=303)
    response.set_cookie(cookies.COOKIE, cookies.seal(secret, api_key), max_age=cookies.MAX_AGE_S,
                        httponly=True, secure=request.url.scheme == "https", samesite="strict",
                        path="/ui")  # fmt: skip
    return response


@router.post("/logout")
def logout(request: Request, settings: SettingsDep, csrf: Annotated[str, Form()] = "") -> Response:
    sealed = request.cookies.get(cookies.COOKIE)
    if not cookies.csrf_ok(settings.secret_key.get_secret_value(), sealed, csrf):
        raise Forbidden("missing or wrong CSRF token")
    response = _to_login("en")
    response.delete_cookie(cookies.COOKIE, path="/ui")
    return response


@router.get("/tickets")
def tickets(request: Request, session: SessionDep, settings: SettingsDep,
            lang: Lang = "en") -> Response:  # fmt: skip
    user = _signed_in(request, session, settings)
    if user is None:
        return _to_login(lang)
    principal, sealed = user
    rows, _ = service.list_tickets(session, principal, TicketFilter(), 200, 0)
    csrf = cookies.csrf_token(settings.secret_key.get_secret_value(), sealed)
    return _page("tickets.html.j2", lang, signed_in=True, csrf=csrf, tickets=rows)


def _ticket_page(session, settings, principal, sealed, ticket_id, lang, notice=None, status=200):
    ticket = service.visible_ticket(session, principal, ticket_id)
    states = REQUESTER_CANCELLABLE if principal.role == "requester" else OPERATOR_CANCELLABLE
    cancellable = principal.role != "auditor" and ticket.state in states
    csrf = cookies.csrf_token(settings.secret_key.get_secret_value(), sealed)
    context = {"ticket": ticket, "progress": ticket.progress or {}, "notice": notice}
    return _page("ticket.html.j2", lang, status, signed_in=True, csrf=csrf,
                 cancellable=cancellable, **context)  # fmt: skip


@router.get("/tickets/{ticket_id}")
def ticket_page(ticket_id: uuid.UUID, request: Request, session: SessionDep,
                settings: SettingsDep, lang: Lang = "en") -> Response:  # fmt: skip
    user = _signed_in(request, session, settings)
    if user is None:
        return _to_login(lang)
    return _ticket_page(session, settings, *user, ticket_id, lang)


@router.post("/tickets/{ticket_id}/cancel")
def cancel(ticket_id: uuid.UUID, request: Request, session: SessionDep, settings: SettingsDep,
           csrf: Annotated[str, Form()] = "", lang: Lang = "en") -> Response:  # fmt: skip
    user = _signed_in(request, session, settings)
    if user is None:
        return _to_login(lang)
    principal, sealed = user
    if not cookies.csrf_ok(settings.secret_key.get_secret_value(), sealed, csrf):
        raise Forbidden("missing or wrong CSRF token")
    if principal.role == "auditor":
        raise Forbidden("role 'auditor' may not cancel tickets")
    try:
        service.cancel_ticket(session, principal, ticket_id, None)
    except ServiceError as error:
        return _ticket_page(session, settings, principal, sealed, ticket_id, lang,
                            notice=error.detail, status=error.status_code)  # fmt: skip
    return _ticket_page(session, settings, principal, sealed, ticket_id, lang,
                        notice=MESSAGES[lang]["cancelled"])  # fmt: skip


@router.get("/tickets/{ticket_id}/report")
def report(ticket_id: uuid.UUID, request: Request, session: SessionDep, settings: SettingsDep,
           lang: Lang = "en") -> Response:  # fmt: skip
    user = _signed_in(request, session, settings)
    if user is None:
        return _to_login(lang)
    ticket = service.visible_ticket(session, user[0], ticket_id)
    return HTMLResponse(render_html(build_report(session, ticket), lang))
