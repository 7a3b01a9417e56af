"""Audit: the hash-chained events with filters, their export, and "verify the chain"."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Form, Query, Request
from fastapi.responses import Response, StreamingResponse
from sqlalchemy import Select

from api.audit.endpoints import MEDIA, export_lines
from api.deps import DatabaseDep, SessionDep, SettingsDep
from api.pages.common import Lang, User, check_form, page, require_role, signed_in, to_login
from api.pages.messages import MESSAGES
from domain.audit import repository
from domain.audit.service import verify_with_checkpoints

router = APIRouter()
AUDITORS = ("auditor", "admin")
PAGE_SIZE = 100


Filter = Annotated[str | None, Query(max_length=100)]


def _events_query(lang: str, event_type, request_id, since, until) -> tuple[Select | None, dict]:
    """The events the filters select, or None and an error per field typed wrong. Found in
    use: a mistyped filter fell away in silence, and the page listed every event as if it
    applied."""
    parsed, errors = {"event_type": event_type or None}, {}
    try:
        parsed["request_id"] = uuid.UUID(request_id) if request_id else None
    except ValueError:
        errors["request_id"] = MESSAGES[lang]["bad_ticket_id"]
    for name, text in (("since", since), ("until", until)):
        try:  # a day: UTC midnight
            day = datetime.strptime(text, "%Y-%m-%d").replace(tzinfo=UTC) if text else None
            parsed[name] = day
        except ValueError:
            errors[name] = MESSAGES[lang]["bad_date"]
    return (None, errors) if errors else (repository.events_query(**parsed), errors)


def _audit(session, user: User, lang: str, filters: dict, offset: int, verified=None):
    """The events page; a filter typed wrong lists none and says why at its field (422)."""
    require_role(user, AUDITORS)
    query, errors = _events_query(lang, **filters)
    events, total = [], 0
    if query is not None:
        events = repository.page(session, query, PAGE_SIZE, offset)
        total = repository.count(session, query)
    return page("audit.html.j2", lang, user, 422 if errors else 200, events=events, total=total,
                filters=filters, errors=errors, offset=offset, page_size=PAGE_SIZE,
                verified=verified)  # fmt: skip


@router.get("/audit")
def audit(request: Request, session: SessionDep, settings: SettingsDep,
          event_type: Filter = None, request_id: Filter = None, since: Filter = None,
          until: Filter = None, offset: Annotated[int, Query(ge=0, le=10**9)] = 0,
          lang: Lang = "en") -> Response:  # fmt: skip
    user = signed_in(request, session, settings)
    if user is None:
        return to_login(lang)
    filters = {"event_type": event_type, "request_id": request_id, "since": since, "until": until}
    return _audit(session, user, lang, filters, offset)


@router.get("/audit/export")
def export(request: Request, session: SessionDep, database: DatabaseDep, settings: SettingsDep,
           format: Literal["csv", "jsonl"] = "csv", event_type: Filter = None,
           request_id: Filter = None, since: Filter = None, until: Filter = None,
           lang: Lang = "en") -> Response:  # fmt: skip
    """The filtered events as a file, the same lines as the API's export."""
    user = signed_in(request, session, settings)
    if user is None:
        return to_login(lang)
    require_role(user, AUDITORS)
    filters = {"event_type": event_type, "request_id": request_id, "since": since, "until": until}
    query, _ = _events_query(lang, **filters)
    if query is None:  # the page, with each error at its field: no file of the wrong events
        return _audit(session, user, lang, filters, 0)
    headers = {"Content-Disposition": f'attachment; filename="audit-events.{format}"'}
    return StreamingResponse(export_lines(database, query, format), media_type=MEDIA[format],
                             headers=headers)  # fmt: skip


@router.post("/audit/verify")
def verify(request: Request, session: SessionDep, settings: SettingsDep,
           csrf: Annotated[str, Form()] = "", lang: Lang = "en") -> Response:  # fmt: skip
    user = signed_in(request, session, settings)
    if user is None:
        return to_login(lang)
    check_form(settings, user, csrf, AUDITORS)
    secret = settings.secret_key.get_secret_value()
    result, checkpoints = verify_with_checkpoints(session, settings.audit_checkpoints, secret)
    verified = {"ok": result.ok, "checked": result.checked, "checkpoints": checkpoints,
                "problems": [f"#{b.seq}: {b.text(lang)}" for b in result.breaches]}  # fmt: skip
    filters = dict.fromkeys(("event_type", "request_id", "since", "until"))
    return _audit(session, user, lang, filters, 0, verified)
