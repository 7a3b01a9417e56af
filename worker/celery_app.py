"""The Celery app: only the wake-up call. Jobs live in the database; a task carries a job id,
and a redelivered or duplicate task finds the job claimed and does nothing.

Settings for long GPU jobs: acks late and reject on worker loss (the message survives a dead
worker), one message prefetched per process, a Redis visibility timeout longer than the hard
time limit (else Redis redelivers a job that is still running), and a soft time limit that
leaves room to clean up. Run one worker process per GPU: `obliviate worker`.
"""

from __future__ import annotations

import uuid

from celery import Celery

from domain.settings import Settings, get_settings

QUEUE = "unlearning"
RUN_JOB = "obliviate.run_job"
QUICK = {"max_retries": 2, "interval_start": 0, "interval_step": 0.2, "interval_max": 0.2}


def make_celery(settings: Settings) -> Celery:
    app = Celery("obliviate", broker=settings.broker_url or "redis://127.0.0.1:6379/0")
    transport = {
        "visibility_timeout": settings.job_hard_time_limit_s + 3600,
        "global_keyprefix": settings.broker_key_prefix,
    }
    app.conf.update(
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        task_soft_time_limit=settings.job_soft_time_limit_s,
        task_time_limit=settings.job_hard_time_limit_s,
        task_ignore_result=True,
        task_default_queue=QUEUE,
        task_routes={RUN_JOB: {"queue": QUEUE}},
        broker_transport_options=transport,
        broker_connection_retry_on_startup=True,
        worker_hijack_root_logger=False,
        include=["worker.tasks"],
    )
    return app


class CeleryDispatcher:
    """Sends `run_job(id)` for each job, after the creating transaction has committed."""

    def __init__(self, settings: Settings):
        self.app = make_celery(settings)

    def wake(self, job_ids: list[uuid.UUID]) -> None:
        # Two quick retries, not Celery's default backoff: a request must not hang on a broker
        # that is down; the sweep sends what could not be sent.
        for job_id in job_ids:
            self.app.send_task(RUN_JOB, args=[str(job_id)], queue=QUEUE, retry_policy=QUICK)

    def ping(self) -> bool:
        """Can the broker be reached now? (readiness reports it)"""
        try:
            with self.app.connection_for_write() as connection:
                connection.ensure_connection(max_retries=1, timeout=2)
        except Exception:  # kombu's connection errors differ per transport
            return False
        return True


app = make_celery(get_settings())
