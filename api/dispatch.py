"""Waking workers after commit. The jobs table is the system of record; a wake-up only says
"look at job X now", so a lost or duplicated wake-up costs nothing but latency."""

from __future__ import annotations

import uuid
from typing import Protocol

from sqlalchemy.orm import Session

WAKE_KEY = "jobs_to_wake"


class Dispatcher(Protocol):
    def wake(self, job_ids: list[uuid.UUID]) -> None: ...


def wake_later(session: Session, job_id: uuid.UUID) -> None:
    """Buffer a wake-up until the transaction that created the job has committed."""
    session.info.setdefault(WAKE_KEY, []).append(job_id)


def wake_after_commit(session: Session, dispatcher: Dispatcher) -> None:
    job_ids = session.info.pop(WAKE_KEY, [])
    if job_ids:
        dispatcher.wake(job_ids)
