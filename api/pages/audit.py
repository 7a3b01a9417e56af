"""Audit: the hash-chained events with filters, their export, and "verify the chain"."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Form, Query, Request
from fastapi.responses import Response, StreamingResponse

from api.audit.endpoints import MEDIA, export_lines
from api.deps import DatabaseDep, SessionDep, SettingsDep
from api.pages.common import Lang, User, check_form, page, require_role, signed_in, to_login
from domain.audit import repository
from domain.audit.service import verify_with_checkpoints

router = APIRouter()
AUDITORS = ("auditor", "admin")
PAGE_SIZE = 100


def _day(text: str | None) -> datetime | None:
    """A filter's date (YYYY-MM-DD, UTC midnight); anything else is no filter."""
    try:
        return datetime.strptime(text, "%Y-%m-%d").replace(tzinfo=UTC) if text else None
    except ValueError:
        return None


def _request_id(text: str | None) -> uuid.UUID | None:
    try:
        return uuid.UUID(text) if text else None
    except ValueError:
        return None


Filter = Annotated[str | None, Query(max_length=100)]


def _query(event_type, request_id, since, until):
    return repository.events_query(
        event_type=event_type or None, request_id=_request_id(request_id), since=_day(since),
        until=_day(until),
    )  # fmt: skip


def _audit(session, user: User, lang: str, filters: dict, offset: int, verified=None):
    require_role(user, AUDITORS)
    query = _query(**filters)
    events = repository.page(session, query, PAGE_SIZE, offset)
    return page("audit.html.j2", lang, user, events=events, total=repository.count(session, query),
                filters=filters, offset=offset, page_size=PAGE_SIZE,
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
    query = _query(event_type, request_id, since, until)
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
