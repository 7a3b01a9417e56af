"""/v1/audit: the hash-chained history (paged JSON or streamed JSONL/CSV) and its verification."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Annotated, Literal

from fastapi import APIRouter, Query
from fastapi.responses import StreamingResponse
from pydantic import AwareDatetime

from api.audit.schemas import EventsPublic, VerifyPublic, csv_lines, event_page, jsonl_lines
from api.deps import Auditor, DatabaseDep, SessionDep, SettingsDep
from api.errors import ERROR_RESPONSES
from api.validation import Offset
from domain.audit import repository
from domain.audit.service import verify_with_checkpoints
from domain.db import Database

router = APIRouter(prefix="/v1/audit", tags=["audit"], responses=ERROR_RESPONSES)
MEDIA = {"jsonl": "application/x-ndjson", "csv": "text/csv"}


def export_lines(database: Database, query, fmt: str) -> Iterator[str]:
    """Runs while the response streams, in its own read-only session."""
    with database.sessions() as session:
        events = repository.stream(session, query)
        yield from (jsonl_lines(events) if fmt == "jsonl" else csv_lines(events))


@router.get(
    "/events",
    response_model=EventsPublic,
    # The exports' types beside the JSON page (format=jsonl|csv): a client reads them here.
    responses={
        200: {"content": {media: {"schema": {"type": "string"}} for media in MEDIA.values()}}
    },
)
def list_events(
    session: SessionDep,
    database: DatabaseDep,
    _: Auditor,
    since: AwareDatetime | None = None,
    until: AwareDatetime | None = None,
    event_type: str | None = None,
    request_id: uuid.UUID | None = None,
    format: Literal["json", "jsonl", "csv"] = "json",
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    offset: Offset = 0,
):
    """Events in chain order within [since, until). `format=jsonl|csv` streams all of them."""
    query = repository.events_query(
        since=since, until=until, event_type=event_type, request_id=request_id
    )
    if format != "json":
        headers = {"Content-Disposition": f'attachment; filename="audit-events.{format}"'}
        return StreamingResponse(
            export_lines(database, query, format), media_type=MEDIA[format], headers=headers
        )
    return event_page(
        repository.page(session, query, limit, offset), repository.count(session, query)
    )


@router.get("/verify", response_model=VerifyPublic)
def verify(session: SessionDep, settings: SettingsDep, _: Auditor) -> VerifyPublic:
    """Recompute the whole chain and check it against the signed checkpoints; every row whose
    content or link does not match, and every checkpoint it disagrees with, is named."""
    secret = settings.secret_key.get_secret_value()
    result, checkpoints = verify_with_checkpoints(session, settings.audit_checkpoints, secret)
    breaches = [b.to_dict() for b in result.breaches]
    return VerifyPublic(ok=result.ok, checked=result.checked, last_hash=result.last_hash,
                        breaches=breaches, checkpoints=checkpoints)  # fmt: skip
