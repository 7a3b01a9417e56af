"""The scheduler's periodic sweep: what no worker will do because its worker died or its
wake-up was lost (pipeline.py runs the jobs themselves)."""

from __future__ import annotations

import uuid

from sqlalchemy.exc import NoResultFound
from sqlalchemy.orm import Session

from domain.db import Database, database_now
from domain.dispatch import Dispatcher
from domain.jobs import repository as jobs_repository
from domain.jobs.service import finish_job
from domain.settings import Settings
from domain.tickets import repository as tickets_repository
from domain.tickets.lifecycle import CLOSED, transition
from worker import registry


def sweep(database: Database, dispatcher: Dispatcher) -> list[uuid.UUID]:
    """Periodic: fail jobs whose last attempt's lease expired, then wake every claimable job
    (pending ones whose wake-up was lost, and running ones whose worker died)."""
    with database.transaction() as session:
        now = database_now(session)  # the leases' clock, not this process's
        for job in jobs_repository.exhausted(session, now):
            ticket = tickets_repository.of_job(session, job)
            finish_job(job, "failed", "the worker stopped heartbeating on the last attempt")
            if ticket.state not in CLOSED:
                transition(
                    session,
                    ticket,
                    "failed",
                    actor="system:sweep",
                    data={"job_id": str(job.id), "attempts": job.attempt},
                )
        job_ids = jobs_repository.claimable_ids(session, now)
        _discard_finished_attempts(session, database.settings)
    if job_ids:
        dispatcher.wake(job_ids)
    return job_ids


def _discard_finished_attempts(session: Session, settings: Settings) -> None:
    """Remove what attempts of finished jobs left in staging: weights trained on the data to
    delete. A clean failure removes its own and a retry its killed predecessors'; nobody else
    would remove a killed last attempt's, nor a killed attempt's whose ticket was cancelled."""
    for job_id, folder in registry.staged_attempts(settings.artifacts_dir):
        try:
            job = jobs_repository.get(session, uuid.UUID(job_id))
        except (ValueError, NoResultFound):  # not ours, or its job row is gone
            continue
        if job.status not in ("pending", "running"):
            registry.discard(folder)
