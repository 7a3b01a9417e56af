"""Celery tasks: thin edges that pass ids to worker/pipeline.py.

A soft time limit raises inside the job; the pipeline treats it like any crash (the attempt is
released for a retry, or the ticket fails after the last attempt).
"""

from __future__ import annotations

import uuid
from functools import cache

from domain.db import Database
from domain.settings import get_settings
from worker.celery_app import RUN_JOB, CeleryDispatcher, app
from worker.inprocess import worker_name
from worker.pipeline import Context, load_runner, run_job


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
    return run_job(_context(), uuid.UUID(job_id))
