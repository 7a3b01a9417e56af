"""The embedded worker: a thread in the API process that runs jobs from the same jobs table
with the same claim code as the Celery workers, for a laptop without Redis."""

from __future__ import annotations

import logging
import os
import socket
import threading
import uuid

from domain.db import Database
from domain.settings import Settings
from worker.pipeline import Context, load_runner, run_job
from worker.sweep import sweep

log = logging.getLogger(__name__)


class _Collect:
    """A dispatcher that only remembers wake-ups, for the synchronous loop below."""

    def __init__(self) -> None:
        self.job_ids: list[uuid.UUID] = []

    def wake(self, job_ids: list[uuid.UUID]) -> None:
        self.job_ids.extend(job_ids)


def worker_name(settings: Settings, kind: str) -> str:
    return settings.worker_name or f"{kind}@{socket.gethostname()}:{os.getpid()}"


def run_pending_jobs(
    settings: Settings, database: Database | None = None, runner=None, max_jobs: int = 100
) -> list[tuple[uuid.UUID, str]]:
    """Run every claimable job (and the jobs they create) in this thread until none is left.
    Returns (job id, outcome) in order. The demo and scripts call this."""
    own_database = database is None
    database = database or Database(settings)
    collect = _Collect()
    context = Context(
        settings,
        database,
        collect,
        runner or load_runner(settings),
        worker_name(settings, "inline"),
    )
    done: list[tuple[uuid.UUID, str]] = []
    try:
        while len(done) < max_jobs:
            collect.job_ids.clear()
            sweep(context.database, context.dispatcher)
            if not collect.job_ids:
                return done
            for job_id in dict.fromkeys(collect.job_ids):
                done.append((job_id, run_job(context, job_id)))
        return done
    finally:
        if own_database:
            database.dispose()


class InProcessWorker:
    """Dispatcher and worker in one: `wake` nudges the thread, which also polls every
    `poll_s` so jobs left by a crash are picked up."""

    def __init__(self, settings: Settings, database: Database, runner=None, poll_s: float = 2.0):
        self.settings, self.database, self.runner, self.poll_s = settings, database, runner, poll_s
        self._wake, self._stop = threading.Event(), threading.Event()
        self._thread: threading.Thread | None = None

    def wake(self, job_ids: list[uuid.UUID]) -> None:
        self._wake.set()

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="obliviate-worker", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join()

    def _loop(self) -> None:
        runner = self.runner or load_runner(self.settings)
        while not self._stop.is_set():
            self._wake.wait(self.poll_s)
            self._wake.clear()
            try:
                run_pending_jobs(self.settings, self.database, runner)
            except Exception:  # keep serving; the job's own error handling recorded it
                log.exception("in-process worker loop failed")
