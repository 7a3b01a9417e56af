"""SQL of deletion tickets and their items."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import bindparam, func, select
from sqlalchemy.orm import Session

from models import DeletionRequest, RequestItem


@dataclass
class TicketFilter:
    organisation_id: uuid.UUID | None = None
    state: str | None = None
    model: str | None = None
    since: datetime | None = None
    until: datetime | None = None


def add(session: Session, row) -> None:
    session.add(row)
    session.flush()


# Built once, the id a parameter: a status poll reads its ticket here (issue 18).
_BY_ID = select(DeletionRequest).where(DeletionRequest.id == bindparam("ticket_id"))
_BY_ID_LOCKED = _BY_ID.with_for_update()


def get(
    session: Session, ticket_id: uuid.UUID, *, for_update: bool = False
) -> DeletionRequest | None:
    query = _BY_ID_LOCKED if for_update else _BY_ID
    return session.scalars(query, {"ticket_id": ticket_id}).first()


def of_job(session: Session, job) -> DeletionRequest:
    """The ticket a job works for, locked (a job's ticket always exists)."""
    query = select(DeletionRequest).where(DeletionRequest.id == job.request_id).with_for_update()
    return session.scalars(query).one()


def by_ids(session: Session, ticket_ids: list[uuid.UUID]) -> list[DeletionRequest]:
    """These tickets, locked for update, in id order (a stable lock order)."""
    if not ticket_ids:
        return []
    query = select(DeletionRequest).where(DeletionRequest.id.in_(ticket_ids))
    return list(session.scalars(query.order_by(DeletionRequest.id).with_for_update()))


# Built once: every submit with an Idempotency-Key asks it (issue 18).
_BY_IDEMPOTENCY_KEY = select(DeletionRequest).where(
    DeletionRequest.organisation_id == bindparam("organisation_id"),
    DeletionRequest.idempotency_key == bindparam("key"),
)


def by_idempotency_key(
    session: Session, organisation_id: uuid.UUID, key: str
) -> DeletionRequest | None:
    parameters = {"organisation_id": organisation_id, "key": key}
    return session.scalars(_BY_IDEMPOTENCY_KEY, parameters).first()


def search(
    session: Session, where: TicketFilter, limit: int, offset: int
) -> tuple[list[DeletionRequest], int]:
    conditions = []
    if where.organisation_id is not None:
        conditions.append(DeletionRequest.organisation_id == where.organisation_id)
    if where.state:
        conditions.append(DeletionRequest.state == where.state)
    if where.model:
        conditions.append(DeletionRequest.model_name == where.model)
    if where.since:
        conditions.append(DeletionRequest.received_at >= where.since)
    if where.until:
        conditions.append(DeletionRequest.received_at < where.until)
    total = session.scalar(select(func.count(DeletionRequest.id)).where(*conditions))
    query = (
        select(DeletionRequest)
        .where(*conditions)
        .order_by(DeletionRequest.received_at.desc())
        .limit(limit)
        .offset(offset)
    )
    return list(session.scalars(query)), total or 0


def items(session: Session, ticket_id: uuid.UUID) -> list[RequestItem]:
    query = (
        select(RequestItem)
        .where(RequestItem.request_id == ticket_id)
        .order_by(RequestItem.position)
    )
    return list(session.scalars(query))
