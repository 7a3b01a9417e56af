"""Login, the ticket list, a ticket's page (progress, cancel, report) and the submit form."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, File, Form, Request, UploadFile
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import ValidationError

from api.deps import SessionDep, SettingsDep
from api.pages import session as cookies
from api.pages.common import (
    Done,
    Lang,
    User,
    after_form,
    check_form,
    done_notice,
    page,
    signed_in,
    to_login,
)
from api.pages.messages import FIELD_ERRORS, MESSAGES
from api.reports.content import build_report, policy_rules
from api.reports.messages import messages as report_messages
from api.reports.render import num, render_html, rule_name
from api.requests.uploads import at_line, read_records
from domain.errors import InvalidInput, ServiceError, Unauthorized
from domain.keys.service import authenticate
from domain.settings import Settings
from domain.tickets import service
from domain.tickets.commands import TicketCreate
from domain.tickets.deadlines import LegalBasis
from domain.tickets.lifecycle import CLOSED, OPERATOR_CANCELLABLE, REQUESTER_CANCELLABLE
from domain.tickets.repository import TicketFilter
from domain.versions import service as models_service

router = APIRouter()
FILERS = ("requester", "admin")


def _login_page(
    request: Request, settings: Settings, lang: str, status: int = 200, **context
) -> HTMLResponse:
    """The login form with a fresh CSRF token, set in its cookie too."""
    token = cookies.new_login_token()
    response = page("login.html.j2", lang, None, status, login_csrf=token, **context)
    response.set_cookie(cookies.LOGIN_COOKIE, token, httponly=True, samesite="strict",
                        secure=settings.cookies_secure(request.url.scheme),
                        path="/ui/login")  # fmt: skip
    return response


@router.get("/login")
def login_form(request: Request, settings: SettingsDep, lang: Lang = "en") -> HTMLResponse:
    return _login_page(request, settings, lang)


@router.post("/login")
def login(
    session: SessionDep,
    settings: SettingsDep,
    request: Request,
    api_key: Annotated[str, Form(max_length=200)],
    csrf: Annotated[str, Form(max_length=64)] = "",
    lang: Lang = "en",
) -> Response:
    if not cookies.login_token_ok(request.cookies.get(cookies.LOGIN_COOKIE), csrf):
        return _login_page(request, settings, lang, 403, error=MESSAGES[lang]["login_expired"])
    secret = settings.secret_key.get_secret_value()
    try:
        authenticate(session, secret, api_key)
    except Unauthorized:
        return _login_page(request, settings, lang, 401, error=MESSAGES[lang]["bad_key"])
    response = RedirectResponse(f"/ui/tickets?lang={lang}", status_code=303)
    response.set_cookie(cookies.COOKIE, cookies.seal(secret, api_key), max_age=cookies.MAX_AGE_S,
                        httponly=True, secure=settings.cookies_secure(request.url.scheme),
                        samesite="strict",
                        path="/ui")  # fmt: skip
    response.delete_cookie(cookies.LOGIN_COOKIE, path="/ui/login")
    return response


@router.post("/logout")
def logout(request: Request, session: SessionDep, settings: SettingsDep,
           csrf: Annotated[str, Form()] = "") -> Response:  # fmt: skip
    user = signed_in(request, session, settings)
    if user is not None:
        check_form(settings, user, csrf)
    response = to_login("en")
    response.delete_cookie(cookies.COOKIE, path="/ui")
    return response


@router.get("/tickets")
def tickets(request: Request, session: SessionDep, settings: SettingsDep,
            lang: Lang = "en") -> Response:  # fmt: skip
    user = signed_in(request, session, settings)
    if user is None:
        return to_login(lang)
    rows, _ = service.list_tickets(session, user.principal, TicketFilter(), 200, 0)
    return page("tickets.html.j2", lang, user, tickets=rows, can_file=user.role in FILERS)


def decision_lines(ticket, lang: str) -> list[str]:
    """Why the ticket stands where it does, in the page's language. What the service decided
    is said from its measurements (`decision_reason` holds it in English, for the API: a
    Japanese page showed that English); what a person wrote is shown as written."""
    if ticket.state == "undone":
        return [MESSAGES[lang]["undone_because"]]
    t, report_t = MESSAGES[lang], report_messages(lang)
    evaluation = ticket.evaluation or {}
    missed = [rule for rule in policy_rules(evaluation) if rule["passed"] is False]
    lines = []
    if ticket.state == "held" and missed:
        lines.append(t["held_because"])
        lines += [
            f"{rule_name(rule, report_t)}: {report_t['measured']} "
            f"{report_t['not_measured'] if rule['measured'] is None else num(rule['measured'])}"
            f", {report_t['limit']} {num(rule['limit'])}"
            for rule in missed
        ]
    if evaluation.get("reproduced_before") is False:
        lines.append(t["nothing_reproduced"])
    # The pipeline writes the reason of a held ticket and of one the policy published; a
    # published ticket that missed a rule was approved, with an operator's reason. A ticket
    # held with every rule met was held for another cause (production moved meanwhile): its
    # reason is shown as the pipeline wrote it, in English.
    by_service = (ticket.state == "held" and missed) or (ticket.state == "published" and not missed)
    if ticket.decision_reason and not by_service:
        lines.append(ticket.decision_reason)
    return lines


def _ticket_page(session, user: User, ticket_id, lang, notice=None, status=200) -> HTMLResponse:
    ticket = service.visible_ticket(session, user.principal, ticket_id)
    states = REQUESTER_CANCELLABLE if user.role == "requester" else OPERATOR_CANCELLABLE
    cancellable = user.role != "auditor" and ticket.state in states
    # An open ticket's page reloads itself every 5 s (live progress without JavaScript).
    live = ticket.state not in CLOSED and ticket.state != "held"
    return page("ticket.html.j2", lang, user, status, here=f"/ui/tickets/{ticket.id}",
                ticket=ticket, progress=ticket.progress or {},
                decision=decision_lines(ticket, lang), notice=notice, cancellable=cancellable,
                live=live)  # fmt: skip


@router.get("/tickets/{ticket_id}")
def ticket_page(ticket_id: uuid.UUID, request: Request, session: SessionDep,
                settings: SettingsDep, lang: Lang = "en",
                done: Done = None) -> Response:  # fmt: skip
    user = signed_in(request, session, settings)
    if user is None:
        return to_login(lang)
    return _ticket_page(session, user, ticket_id, lang, done_notice(lang, done))


@router.post("/tickets/{ticket_id}/cancel")
def cancel(ticket_id: uuid.UUID, request: Request, session: SessionDep, settings: SettingsDep,
           csrf: Annotated[str, Form()] = "", lang: Lang = "en") -> Response:  # fmt: skip
    user = signed_in(request, session, settings)
    if user is None:
        return to_login(lang)
    check_form(settings, user, csrf, ("requester", "operator", "admin"))
    try:
        service.cancel_ticket(session, settings, user.principal, ticket_id, None)
    except ServiceError as error:
        return _ticket_page(session, user, ticket_id, lang, error.text(lang), error.status_code)
    return after_form(f"/ui/tickets/{ticket_id}", lang, "cancelled")


@router.get("/tickets/{ticket_id}/report")
def report(ticket_id: uuid.UUID, request: Request, session: SessionDep, settings: SettingsDep,
           lang: Lang = "en") -> Response:  # fmt: skip
    user = signed_in(request, session, settings)
    if user is None:
        return to_login(lang)
    ticket = service.visible_ticket(session, user.principal, ticket_id)
    return HTMLResponse(render_html(build_report(session, ticket), lang))


def _submit_form(session, user: User, lang: str, status: int = 200, errors=None, values=None):
    models = sorted(name for name, _ in models_service.list_models(session))
    return page("submit.html.j2", lang, user, status, models=models, bases=list(LegalBasis),
                errors=errors or {}, values=values or {})  # fmt: skip


@router.get("/submit")
def submit_form(request: Request, session: SessionDep, settings: SettingsDep,
                lang: Lang = "en") -> Response:  # fmt: skip
    user = signed_in(request, session, settings)
    if user is None:
        return to_login(lang)
    if user.role not in FILERS:
        return page("error.html.j2", lang, user, 403, message=MESSAGES[lang]["may_not_file"])
    return _submit_form(session, user, lang)


def _field_errors(error: ValidationError, lang: str) -> dict[str, str]:
    """The first message per form field (`records` for anything inside the records), in the
    page's language."""
    errors: dict[str, str] = {}
    for item in error.errors():
        template = FIELD_ERRORS[lang].get(item["type"])
        text = template.format(**item.get("ctx", {})) if template else item["msg"]
        errors.setdefault(str(item["loc"][0]) if item["loc"] else "form", text)
    return errors


@router.post("/submit")
def submit(
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    records: Annotated[UploadFile, File()],
    model: Annotated[str, Form(max_length=200)] = "",
    subject_id: Annotated[str, Form(max_length=500)] = "",
    legal_basis: Annotated[str, Form(max_length=40)] = "",
    jurisdiction: Annotated[str, Form(max_length=40)] = "",
    requester: Annotated[str, Form(max_length=200)] = "",
    reason: Annotated[str, Form(max_length=2000)] = "",
    csrf: Annotated[str, Form()] = "",
    lang: Lang = "en",
) -> Response:
    """The form's fields and its records file, through the same service as the API; every
    error is shown next to its field, the other fields keep what was typed."""
    user = signed_in(request, session, settings)
    if user is None:
        return to_login(lang)
    check_form(settings, user, csrf, FILERS)
    values = {"model": model, "subject_id": subject_id, "legal_basis": legal_basis,
              "jurisdiction": jurisdiction, "requester": requester, "reason": reason}  # fmt: skip
    name = records.filename or "records"
    try:
        raw = records.file.read(settings.max_upload_bytes + 1)
        if len(raw) > settings.max_upload_bytes:
            raise InvalidInput("file_too_large", source=name, limit=settings.max_upload_bytes)
        rows, lines = read_records(raw, name)
        try:
            payload = TicketCreate(**{**values, "reason": reason or None}, records=rows)
        except ValidationError as error:
            return _submit_form(session, user, lang, 422, _field_errors(error, lang), values)
        try:
            # A savepoint: the page answers a failure itself, so the request's transaction
            # commits; nothing the service wrote before failing may commit with it.
            with session.begin_nested():
                ticket, _ = service.submit_ticket(session, settings, user.principal, payload)
        except InvalidInput as error:
            raise at_line(error, name, lines) from None
    except InvalidInput as error:  # the records file: its line and field
        return _submit_form(session, user, lang, 422, {"records": error.text(lang)}, values)
    except ServiceError as error:  # e.g. an unknown model
        errors = {"form": error.text(lang)}
        return _submit_form(session, user, lang, error.status_code, errors, values)
    return RedirectResponse(f"/ui/tickets/{ticket.id}?lang={lang}", status_code=303)
