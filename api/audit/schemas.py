"""Audit events as the API shows them, and their JSONL / CSV export rows."""

from __future__ import annotations

import csv
import io
import json
import uuid
from collections.abc import Iterable, Iterator
from datetime import datetime

from pydantic import BaseModel, ConfigDict

from models import AuditEvent


class EventPublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    seq: int
    occurred_at: datetime
    actor: str
    organisation_id: uuid.UUID | None
    request_id: uuid.UUID | None
    event_type: str
    data: dict
    prev_hash: str
    hash: str


class EventsPublic(BaseModel):
    data: list[EventPublic]
    count: int


class BreachPublic(BaseModel):
    seq: int  # 0: a line of the checkpoints file
    code: str  # what broke, stable for programs (domain/messages.py)
    problem: str


class VerifyPublic(BaseModel):
    ok: bool
    checked: int
    checkpoints: int = 0  # signed checkpoints the chain was checked against
    last_hash: str
    breaches: list[BreachPublic]


def event_page(events: list[AuditEvent], count: int | None = None) -> EventsPublic:
    return EventsPublic(
        data=[EventPublic.model_validate(e) for e in events],
        count=count if count is not None else len(events),
    )


CSV_COLUMNS = list(EventPublic.model_fields)


def jsonl_lines(events: Iterable[AuditEvent]) -> Iterator[str]:
    for event in events:
        yield EventPublic.model_validate(event).model_dump_json() + "\n"


def csv_lines(events: Iterable[AuditEvent]) -> Iterator[str]:
    """One header line, then one line per event; `data` is a JSON cell."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(CSV_COLUMNS)
    for event in events:
        row = EventPublic.model_validate(event).model_dump(mode="json")
        row["data"] = json.dumps(row["data"], sort_keys=True)
        writer.writerow([row[c] if row[c] is not None else "" for c in CSV_COLUMNS])
        yield buffer.getvalue()
        buffer.seek(0)
        buffer.truncate()
    if buffer.getvalue():
        yield buffer.getvalue()
