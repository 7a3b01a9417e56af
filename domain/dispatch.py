"""Waking workers after commit. The jobs table is the system of record; a wake-up only says
"look at job X now", so a lost or duplicated wake-up costs nothing but latency."""

from __future__ import annotations

import logging
import uuid
from typing import Protocol

from sqlalchemy.orm import Session

WAKE_KEY = "jobs_to_wake"
log = logging.getLogger(__name__)


class Dispatcher(Protocol):
    def wake(self, job_ids: list[uuid.UUID]) -> None: ...


def wake_later(session: Session, job_id: uuid.UUID) -> None:
    """Buffer a wake-up until the transaction that created the job has committed."""
    session.info.setdefault(WAKE_KEY, []).append(job_id)


def wake_after_commit(session: Session, dispatcher: Dispatcher) -> None:
    """Send the buffered wake-ups. The jobs are committed: when the broker cannot be reached
    the request still succeeds and the sweep sends them later (a 500 here made clients without
    an Idempotency-Key file the same ticket twice: issue 18)."""
    job_ids = session.info.pop(WAKE_KEY, [])
    if not job_ids:
        return
    try:
        dispatcher.wake(job_ids)
    except Exception as error:  # the broker's client raises many kinds; all mean "not now"
        log.warning(
            "could not wake workers for %d job(s) (%s); the sweep will send them",
            len(job_ids), type(error).__name__,
        )  # fmt: skip
