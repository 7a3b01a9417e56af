"""Operations: the jobs (queued, running, failed) and the held tickets, approved or rejected
with a reason; the models: their versions with lineage, the one served, and rollback."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import Response
from pydantic import ValidationError

from api.deps import SessionDep, SettingsDep
from api.models.schemas import Rollback
from api.pages.common import (
    STAFF,
    Done,
    Lang,
    User,
    after_form,
    check_form,
    done_notice,
    page,
    require_role,
    signed_in,
    to_login,
)
from api.pages.messages import MESSAGES
from api.pages.tickets import decision_lines
from domain.errors import ServiceError
from domain.jobs import repository as jobs
from domain.tickets import service as tickets
from domain.tickets.commands import Decision
from domain.tickets.repository import TicketFilter
from domain.versions import service as models_service

router = APIRouter()
JOB_STATES = ("pending", "running", "failed")
MODEL_VIEWERS = ("operator", "auditor", "admin")


def _operations(session, user: User, lang: str, notice: str | None = None, status: int = 200):
    require_role(user, STAFF)
    jobs_by_state = {state: jobs.list_jobs(session, state, 50, 0)[0] for state in JOB_STATES}
    held, _ = tickets.list_tickets(session, user.principal, TicketFilter(state="held"), 100, 0)
    decisions = {ticket.id: decision_lines(ticket, lang) for ticket in held}
    return page("operations.html.j2", lang, user, status, jobs=jobs_by_state, held=held,
                decisions=decisions, notice=notice)  # fmt: skip


@router.get("/operations")
def operations(request: Request, session: SessionDep, settings: SettingsDep,
               lang: Lang = "en", done: Done = None) -> Response:  # fmt: skip
    user = signed_in(request, session, settings)
    if user is None:
        return to_login(lang)
    return _operations(session, user, lang, done_notice(lang, done))


def _decide(verdict: str, ticket_id, request, session, settings, reason, csrf, lang) -> Response:
    """Approve (publish the held version) or reject a held ticket; the reason is required."""
    user = signed_in(request, session, settings)
    if user is None:
        return to_login(lang)
    check_form(settings, user, csrf, STAFF)
    act = tickets.approve_ticket if verdict == "approve" else tickets.reject_ticket
    t = MESSAGES[lang]
    try:
        body = Decision(reason=reason)
        with session.begin_nested():  # answered here: a failure must not half-commit
            act(session, settings, user.principal, ticket_id, body)
    except ValidationError:
        return _operations(session, user, lang, t["reason_required"], 422)
    except ServiceError as error:
        return _operations(session, user, lang, error.text(lang), error.status_code)
    return after_form("/ui/operations", lang, f"{verdict}d")


Reason = Annotated[str, Form(max_length=2000)]
Csrf = Annotated[str, Form()]


@router.post("/tickets/{ticket_id}/approve")
def approve(ticket_id: uuid.UUID, request: Request, session: SessionDep, settings: SettingsDep,
            reason: Reason = "", csrf: Csrf = "", lang: Lang = "en") -> Response:  # fmt: skip
    return _decide("approve", ticket_id, request, session, settings, reason, csrf, lang)


@router.post("/tickets/{ticket_id}/reject")
def reject(ticket_id: uuid.UUID, request: Request, session: SessionDep, settings: SettingsDep,
           reason: Reason = "", csrf: Csrf = "", lang: Lang = "en") -> Response:  # fmt: skip
    return _decide("reject", ticket_id, request, session, settings, reason, csrf, lang)


def _models(session, user: User, lang: str, notice: str | None = None, status: int = 200):
    require_role(user, MODEL_VIEWERS)
    served = {name: version.number for name, version in models_service.list_models(session)}
    versions = {name: models_service.list_versions(session, name) for name in sorted(served)}
    numbers = {v.id: v.number for rows in versions.values() for v in rows}
    return page("models.html.j2", lang, user, status, served=served, versions=versions,
                parents=numbers, notice=notice, can_roll_back=user.role in STAFF)  # fmt: skip


@router.get("/models")
def models(request: Request, session: SessionDep, settings: SettingsDep,
           lang: Lang = "en", done: Done = None) -> Response:  # fmt: skip
    user = signed_in(request, session, settings)
    if user is None:
        return to_login(lang)
    return _models(session, user, lang, done_notice(lang, done))


@router.post("/models/{name}/rollback")
def rollback(name: str, request: Request, session: SessionDep, settings: SettingsDep,
             reason: Reason = "", to_version: Annotated[str, Form(max_length=12)] = "",
             csrf: Csrf = "", lang: Lang = "en") -> Response:  # fmt: skip
    user = signed_in(request, session, settings)
    if user is None:
        return to_login(lang)
    check_form(settings, user, csrf, STAFF)
    t = MESSAGES[lang]
    try:
        body = Rollback(reason=reason, to_version=to_version or None)
        with session.begin_nested():
            models_service.rollback(session, name, to_number=body.to_version, reason=body.reason,
                                    actor=user.principal.actor)  # fmt: skip
    except ValidationError:
        return _models(session, user, lang, t["rollback_invalid"], 422)
    except ServiceError as error:
        return _models(session, user, lang, error.text(lang), error.status_code)
    return after_form("/ui/models", lang, "rolled_back")
