"""SQL of jobs: creation, the fenced claim, heartbeats and fenced completion.

The fence is the attempt number a worker got when it claimed the job: every later write
names it, so a worker whose lease expired and whose job was re-claimed can no longer write.
"""

from __future__ import annotations

import uuid
import zlib
from datetime import datetime, timedelta

from sqlalchemy import and_, bindparam, exists, func, or_, select, text, update
from sqlalchemy.orm import Session, aliased

from models import Job


def add(session: Session, job: Job) -> None:
    session.add(job)
    session.flush()


def get(session: Session, job_id: uuid.UUID) -> Job:
    return session.get_one(Job, job_id)


def for_request(session: Session, request_id: uuid.UUID) -> list[Job]:
    return for_requests(session, [request_id])[request_id]


def for_requests(session: Session, request_ids: list[uuid.UUID]) -> dict[uuid.UUID, list[Job]]:
    """Each ticket's jobs, oldest first, in one query: a list page must not ask per ticket."""
    jobs: dict[uuid.UUID, list[Job]] = {request_id: [] for request_id in request_ids}
    query = select(Job).where(Job.request_id.in_(request_ids)).order_by(Job.created_at)
    for job in session.scalars(query):
        jobs[job.request_id].append(job)
    return jobs


# Another job, compared with the one a query is about. Built once: an alias made per call is
# a new statement to SQLAlchemy's compiled cache, and adapting its columns took a third of a
# status poll's CPU (py-spy, issue 18).
_OTHER = aliased(Job, name="other")
# How many open jobs on the same model were queued before a job.
_AHEAD = (
    select(func.count())
    .where(
        _OTHER.model_name == Job.model_name,
        _OTHER.status.in_(("pending", "running")),
        _OTHER.created_at < Job.created_at,
    )
    .scalar_subquery()
)


# The tickets' ids are a parameter, so the statement is built once: building it (the `in_` of
# the ids and the rest) was half of this query's CPU in a status poll (issue 18).
_OPEN_JOBS = select(Job.request_id, Job.status, Job.cancel_requested, _AHEAD).where(
    Job.request_id.in_(bindparam("request_ids", expanding=True)),
    Job.status.in_(("pending", "running")),
)


def open_jobs(
    session: Session, request_ids: list[uuid.UUID]
) -> dict[uuid.UUID, list[tuple[str, bool, int]]]:
    """The tickets' pending and running jobs in one query: per ticket (status, cancel
    requested, how many jobs on the same model run before it: oldest first, one at a time)."""
    jobs: dict[uuid.UUID, list[tuple[str, bool, int]]] = {rid: [] for rid in request_ids}
    rows = session.execute(_OPEN_JOBS, {"request_ids": request_ids}).tuples()
    for request_id, status, cancel, before in rows:
        jobs[request_id].append((status, bool(cancel), int(before)))
    return jobs


def _claimable(now: datetime):
    return or_(
        Job.status == "pending",
        and_(Job.status == "running", Job.lease_expires_at < now),
    )


def _model_busy(now: datetime):
    """Another job on the same model holds a live lease: jobs on one model run one at a time."""
    return exists().where(
        _OTHER.model_name == Job.model_name,
        _OTHER.id != Job.id,
        _OTHER.status == "running",
        _OTHER.lease_expires_at >= now,
    )


def claimable_ids(session: Session, now: datetime, limit: int = 100) -> list[uuid.UUID]:
    """Jobs a worker could claim now (pending, or running with an expired lease), oldest first."""
    query = (
        select(Job.id)
        .where(_claimable(now), Job.attempt < Job.max_attempts, ~_model_busy(now))
        .order_by(Job.created_at)
        .limit(limit)
    )
    return list(session.scalars(query))


def exhausted(session: Session, now: datetime) -> list[Job]:
    """Running jobs whose lease expired on their last allowed attempt."""
    query = select(Job).where(
        Job.status == "running", Job.lease_expires_at < now, Job.attempt >= Job.max_attempts
    )
    return list(session.scalars(query))


def lock_model(session: Session, model_name: str) -> None:
    """Serialize claims per model until the claiming transaction ends."""
    if session.get_bind().dialect.name == "postgresql":
        key = zlib.crc32(f"model:{model_name}".encode())
        session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": key})


def claim(
    session: Session, job_id: uuid.UUID, worker: str, now: datetime, lease_s: float
) -> int | None:
    """Take the job if nobody holds it; return the new attempt number (the fence) or None."""
    model_name = session.scalar(select(Job.model_name).where(Job.id == job_id))
    if model_name is None:
        return None
    lock_model(session, model_name)
    statement = (
        update(Job)
        .where(Job.id == job_id, _claimable(now), Job.attempt < Job.max_attempts, ~_model_busy(now))
        .values(
            status="running",
            attempt=Job.attempt + 1,
            lease_owner=worker,
            lease_expires_at=now + timedelta(seconds=lease_s),
            heartbeat_at=now,
            started_at=now,
        )
        .returning(Job.attempt)
        .execution_options(synchronize_session=False)
    )
    return session.scalar(statement)


def renew(session: Session, job_id: uuid.UUID, fence: int, now: datetime, lease_s: float) -> bool:
    """Extend the lease; False when the job is no longer ours."""
    statement = (
        update(Job)
        .where(Job.id == job_id, Job.attempt == fence, Job.status == "running")
        .values(lease_expires_at=now + timedelta(seconds=lease_s), heartbeat_at=now)
        .execution_options(synchronize_session=False)
    )
    return session.execute(statement).rowcount == 1  # type: ignore[attr-defined]  # an UPDATE


def holds(session: Session, job_id: uuid.UUID, fence: int) -> Job | None:
    """The job row, locked for this transaction, if `fence` still holds it."""
    query = select(Job).where(Job.id == job_id, Job.attempt == fence, Job.status == "running")
    return session.scalars(query.with_for_update()).first()


def cancel_requested(session: Session, job_id: uuid.UUID) -> bool:
    return bool(session.scalar(select(Job.cancel_requested).where(Job.id == job_id)))


def list_jobs(
    session: Session, status: str | None, limit: int, offset: int
) -> tuple[list[Job], int]:
    query = select(Job).order_by(Job.created_at.desc())
    if status:
        query = query.where(Job.status == status)
    count_query = select(func.count(Job.id))
    if status:
        count_query = count_query.where(Job.status == status)
    total = session.scalar(count_query) or 0
    return list(session.scalars(query.limit(limit).offset(offset))), total
