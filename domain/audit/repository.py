"""SQL of the audit trail: the append lock, the chain's tail, ranges of events."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import datetime

from sqlalchemy import func, select, text
from sqlalchemy.orm import Session

from models import AuditEvent

# Any constant works; it only has to be the same for every writer of the chain.
AUDIT_LOCK_ID = 0x0B11_F1A7E


def lock_chain(session: Session) -> None:
    """Serialize appends until this transaction ends (SQLite's BEGIN IMMEDIATE already does)."""
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("SELECT pg_advisory_xact_lock(:id)"), {"id": AUDIT_LOCK_ID})


def chain_tail(session: Session) -> AuditEvent | None:
    return session.scalars(select(AuditEvent).order_by(AuditEvent.seq.desc()).limit(1)).first()


def add(session: Session, event: AuditEvent) -> None:
    session.add(event)
    session.flush()


def events_query(
    *,
    request_id: uuid.UUID | None = None,
    organisation_id: uuid.UUID | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    event_type: str | None = None,
):
    query = select(AuditEvent).order_by(AuditEvent.seq)
    if request_id is not None:
        query = query.where(AuditEvent.request_id == request_id)
    if organisation_id is not None:
        query = query.where(AuditEvent.organisation_id == organisation_id)
    if since is not None:
        query = query.where(AuditEvent.occurred_at >= since)
    if until is not None:
        query = query.where(AuditEvent.occurred_at < until)
    if event_type is not None:
        query = query.where(AuditEvent.event_type == event_type)
    return query


def count(session: Session, query) -> int:
    return session.scalar(select(func.count()).select_from(query.order_by(None).subquery())) or 0


def page(session: Session, query, limit: int, offset: int) -> list[AuditEvent]:
    return list(session.scalars(query.limit(limit).offset(offset)))


def stream(session: Session, query, batch: int = 500) -> Iterator[AuditEvent]:
    """Events in seq order, read in batches so an export never holds the whole table."""
    last = -1
    while True:
        rows = list(session.scalars(query.where(AuditEvent.seq > last).limit(batch)))
        yield from rows
        if len(rows) < batch:
            return
        last = rows[-1].seq
