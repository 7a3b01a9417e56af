"""Jobs as the rest of the service sees them: create (and wake after commit), claim, finish."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from sqlalchemy.orm import Session

from domain.db import database_now
from domain.dispatch import wake_later
from domain.jobs import repository
from models import Job, utcnow


class LeaseLost(RuntimeError):
    """This worker's claim on the job was superseded (its lease expired and it was re-claimed)."""


@dataclass(frozen=True)
class Claim:
    job_id: uuid.UUID
    fence: int
    worker: str


def create_job(
    session: Session, request_id: uuid.UUID, model_name: str, kind: str, max_attempts: int
) -> Job:
    job = Job(request_id=request_id, model_name=model_name, kind=kind, max_attempts=max_attempts)
    repository.add(session, job)
    wake_later(session, job.id)
    return job


def claim_job(session: Session, job_id: uuid.UUID, worker: str, lease_s: float) -> Claim | None:
    fence = repository.claim(session, job_id, worker, database_now(session), lease_s)
    return Claim(job_id, fence, worker) if fence is not None else None


def renew_lease(session: Session, claim: Claim, lease_s: float) -> None:
    if not repository.renew(session, claim.job_id, claim.fence, database_now(session), lease_s):
        raise LeaseLost(f"job {claim.job_id} attempt {claim.fence} lost its lease")


def held_job(session: Session, claim: Claim) -> Job:
    """The job row locked for this transaction, or LeaseLost: every pipeline write goes through
    here, so at most one attempt can ever publish."""
    job = repository.holds(session, claim.job_id, claim.fence)
    if job is None:
        raise LeaseLost(f"job {claim.job_id} attempt {claim.fence} lost its lease")
    return job


def finish_job(job: Job, status: str, error: str | None = None) -> None:
    job.status, job.finished_at, job.last_error = status, utcnow(), error
    job.lease_expires_at = None


def release_for_retry(job: Job, error: str) -> None:
    """Give the job back so another attempt (on any worker) can claim it at once."""
    job.status, job.last_error, job.lease_expires_at, job.lease_owner = "pending", error, None, None
