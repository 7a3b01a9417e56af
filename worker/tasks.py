"""Celery tasks: thin edges that pass ids to worker/pipeline.py."""

from __future__ import annotations

import uuid
from functools import cache

from celery.exceptions import SoftTimeLimitExceeded

from api.db import Database
from api.settings import get_settings
from worker.celery_app import RUN_JOB, SWEEP, CeleryDispatcher, app
from worker.inprocess import worker_name
from worker.pipeline import Context, load_runner, run_job, sweep


@cache
def _context() -> Context:
    """One per worker process, made on first use (never at import)."""
    settings = get_settings()
    return Context(
        settings,
        Database(settings),
        CeleryDispatcher(settings),
        load_runner(settings),
        worker_name(settings, "celery"),
    )


@app.task(name=RUN_JOB)
def run_job_task(job_id: str) -> str:
    try:
        return run_job(_context(), uuid.UUID(job_id))
    except SoftTimeLimitExceeded:
        # The lease stops being renewed with this process; the sweep retries or fails the job.
        return "time limit"


@app.task(name=SWEEP)
def sweep_task() -> int:
    return len(sweep(_context()))
