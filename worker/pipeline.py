"""The flow each job runs: claim → assess → (queue) → unlearn → evaluate → publish or hold.

PostgreSQL is the system of record. Every write names the claim's fence (its attempt number)
and locks the job row, so a worker that lost its lease cannot write, and at most one attempt
ever publishes. Long work (the engine) runs between short transactions, never inside one.

Two jobs per ticket: `assess` (received → assessing → queued) and `unlearn` (queued →
unlearning → evaluating → published | held). Jobs on one model run one at a time (the claim
checks for a live lease on the same model), each on the version serving when it starts.
Queued tickets are NOT merged into one job: one ticket, one module, one version keeps each
version's evidence (evaluation, audit, rollback) about exactly one request; GRUN modules are
small, so the cost of a version per ticket is a few MB, not a copy of the model.
"""

from __future__ import annotations

import importlib
import logging
import time
import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING

from sqlalchemy.orm import Session

from domain.db import Database
from domain.dispatch import Dispatcher, wake_after_commit, wake_later
from domain.errors import Conflict, UserError
from domain.jobs import repository as jobs_repository
from domain.jobs.service import (
    Claim,
    LeaseLost,
    claim_job,
    create_job,
    finish_job,
    held_job,
    release_for_retry,
)
from domain.progress import Cancelled, Progress
from domain.redaction import redacting
from domain.settings import Settings
from domain.tickets import repository as tickets_repository
from domain.tickets.lifecycle import CLOSED, record_ticket_event, transition
from domain.tickets.service import decrypt_records
from domain.versions import service as registry_service
from models import DeletionRequest, Job, utcnow
from worker import registry
from worker.lease import Lease
from worker.policy import load_policy, violations

if TYPE_CHECKING:  # the engine (torch) loads only in a process that runs a stage
    from worker.runner import Runner

log = logging.getLogger(__name__)
PERMANENT_ERRORS = (UserError, Conflict)  # retrying cannot help
PROGRESS_EVERY_S = 2.0
# Said on a ticket whose data the model never gave out before unlearning (issue 17): its leak
# rates after are zero either way, so they prove nothing forgotten.
NOTHING_REPRODUCED = (
    "before unlearning the model reproduced none of this data on any probe, so the "
    "evaluation cannot show it forgotten (the report gives its answer probability before and after)"
)


def load_runner(settings: Settings) -> Runner:
    module, _, attribute = settings.engine_runner.partition(":")
    return getattr(importlib.import_module(module), attribute)()


@dataclass
class Context:
    """What one job run needs; `dispatcher` wakes the follow-up job after its commit."""

    settings: Settings
    database: Database
    dispatcher: Dispatcher
    runner: Runner
    worker: str

    @property
    def actor(self) -> str:
        """Who the audit trail names for this worker's writes."""
        return f"worker:{self.worker}"


def _locked(session: Session, claim: Claim) -> tuple[Job, DeletionRequest]:
    job = held_job(session, claim)
    return job, tickets_repository.of_job(session, job)


def _set_progress(ticket: DeletionRequest, stage: str, **values) -> None:
    ticket.progress = {"stage": stage, **values, "updated_at": utcnow().isoformat()}


def _advance(
    session: Session, context: Context, ticket: DeletionRequest, state: str, data: dict
) -> None:
    """Move the ticket to `state` (audited; `transition` shows it as the current stage)."""
    transition(session, ticket, state, actor=context.actor, data=data)


def run_job(context: Context, job_id: uuid.UUID) -> str:
    """Claim and run one job; returns what happened ("skipped" when someone else holds it or
    it is finished: a duplicate delivery is a no-op)."""
    with context.database.transaction() as session:
        claim = claim_job(session, job_id, context.worker, context.settings.lease_s)
        kind = jobs_repository.get(session, job_id).kind if claim is not None else None
    if claim is None:
        return "skipped"
    stage = _assess if kind == "assess" else _unlearn
    try:
        with Lease(context, claim) as lease:
            return stage(context, claim, lease)
    except LeaseLost:
        log.warning(
            "job %s attempt %s lost its lease; another attempt owns it", job_id, claim.fence
        )
        return "lost"
    except Cancelled:
        return _close(context, claim, "cancelled", job_status="cancelled")
    except PERMANENT_ERRORS as error:
        return _close(context, claim, "failed", job_status="failed", error=str(error))
    except Exception as error:
        log.exception("job %s attempt %s failed", job_id, claim.fence)
        return _retry_or_fail(context, claim, error)


def _begin_stage(
    session: Session, context: Context, claim: Claim, state: str
) -> tuple[Job, DeletionRequest] | None:
    """Enter `state`, or close the job when the ticket was closed meanwhile (cancelled)."""
    job, ticket = _locked(session, claim)
    if ticket.state in CLOSED:
        finish_job(job, "cancelled" if ticket.state == "cancelled" else "done")
        return None
    _advance(session, context, ticket, state, {"job_id": str(job.id), "attempt": claim.fence})
    return job, ticket


def _assess(context: Context, claim: Claim, lease: Lease) -> str:
    with context.database.transaction() as session:
        begun = _begin_stage(session, context, claim, "assessing")
        if begun is None:
            return "closed"
        _, ticket = begun
        records = decrypt_records(session, context.settings, ticket)
        spec = registry_service.require_model(session, ticket.model_name).spec
    policy = load_policy(context.settings.policies_dir, ticket.model_name)
    started = time.perf_counter()
    with redacting(records):
        assessment = context.runner.assess(spec, records, policy)
    assessment["stage_s"] = {"assess": time.perf_counter() - started}
    with context.database.transaction() as session:
        job, ticket = _locked(session, claim)
        if ticket.state in CLOSED:  # cancelled while we assessed
            finish_job(job, "cancelled")
            return "closed"
        ticket.assessment = assessment
        _advance(session, context, ticket, "queued", {"leak_rate": assessment.get("leak_rate", {})})
        create_job(session, ticket.id, ticket.model_name, "unlearn", context.settings.max_attempts)
        finish_job(job, "done")
    wake_after_commit(session, context.dispatcher)
    return "assessed"


def _progress_reporter(context: Context, claim: Claim, lease: Lease):
    last = [0.0]

    def report(progress: Progress) -> None:
        now = time.monotonic()
        if now - last[0] < PROGRESS_EVERY_S and progress.step < progress.total:
            return
        last[0] = now
        with context.database.transaction() as session:
            _, ticket = _locked(session, claim)
            _set_progress(
                ticket,
                "unlearning",
                step=progress.step,
                total=progress.total,
                eta_s=round(progress.eta_s, 1),
                loss=progress.loss,
            )

    return report


def _unlearn(context: Context, claim: Claim, lease: Lease) -> str:
    with context.database.transaction() as session:
        begun = _begin_stage(session, context, claim, "unlearning")
        if begun is None:
            return "closed"
        job, ticket = begun
        records = decrypt_records(session, context.settings, ticket)
        parent = registry_service.require_model(session, ticket.model_name)
        parent_id, parent_spec = parent.id, parent.spec
        options, assessment = dict(ticket.options), dict(ticket.assessment or {})
    policy = load_policy(context.settings.policies_dir, ticket.model_name)
    where = (context.settings.artifacts_dir, ticket.model_name, str(claim.job_id))
    registry.discard_earlier_attempts(*where, claim.fence)
    output = registry.staging_folder(*where, claim.fence)
    try:
        with redacting(records):
            started = time.perf_counter()
            run = context.runner.unlearn(
                parent_spec,
                records,
                policy,
                options,
                output,
                _progress_reporter(context, claim, lease),
                lease.should_stop,
            )
            unlearn_s = time.perf_counter() - started
            if lease.lost:
                raise LeaseLost(f"job {claim.job_id} attempt {claim.fence} lost its lease")
            with context.database.transaction() as session:
                _, ticket = _locked(session, claim)
                _advance(session, context, ticket, "evaluating", {"steps": run.get("steps")})
            started = time.perf_counter()
            evaluation = context.runner.evaluate(str(output), records, policy, assessment, run)
        stages = {
            **assessment.get("stage_s", {}),
            "unlearn": unlearn_s,
            "evaluate": time.perf_counter() - started,
        }
        evaluation["stage_s"] = stages
        evaluation["cost"] = {**evaluation.get("cost", {}), "total_s": sum(stages.values())}
        evaluation["policy"] = policy.fingerprint()
        return _publish_or_hold(context, claim, parent_id, output, run, evaluation, policy)
    except BaseException:
        # A failed, cancelled or lost attempt (a full disk at publication included) leaves no
        # model behind: these weights were trained on the data to delete.
        registry.discard(output)
        raise


def _publish_or_hold(context, claim, parent_id, output, run, evaluation, policy) -> str:
    problems = violations(policy.publish, evaluation)
    claimed: list[tuple[str, int]] = []  # the version folder this attempt moved into place
    try:
        return _store_and_decide(
            context, claim, parent_id, output, run, evaluation, problems, claimed
        )
    except BaseException:
        if claimed:
            _discard_unregistered(context, *claimed[0])
        raise


def _discard_unregistered(context: Context, model_name: str, number: int) -> None:
    """After a failed publication, remove the version folder it moved into place unless its row
    was committed after all (a commit whose answer was lost keeps its files)."""
    try:
        with context.database.transaction() as session:
            registered = registry_service.repository.version_by_number(session, model_name, number)
    except Exception:  # the database is away: the retry's store_version replaces the folder
        log.exception("could not check version %s of %s after a failed publication", number,
                      model_name)  # fmt: skip
        return
    if registered is None:
        registry.discard(
            registry.version_folder(context.settings.artifacts_dir, model_name, number)
        )


def _store_and_decide(context, claim, parent_id, output, run, evaluation, problems, claimed):
    """Move the attempt's output into its version folder, add the version and publish it or hold
    the ticket, in one transaction."""
    actor = context.actor
    with context.database.transaction() as session:
        job, ticket = _locked(session, claim)
        parent = registry_service.repository.version(session, parent_id)
        serving = registry_service.require_model(session, ticket.model_name)
        if serving.id != parent_id:
            problems.append(
                f"production moved from version {parent.number} to {serving.number} meanwhile"
            )
        number = registry_service.repository.next_number(session, ticket.model_name)
        claimed.append((ticket.model_name, number))
        info = {
            "parent": parent.number,
            "tickets": [str(ticket.id)],
            "method": run["method"],
            "adapter": run["adapter"],
        }
        folder, artifact_hash = registry.store_version(
            output, context.settings.artifacts_dir, ticket.model_name, number, info,
            forget_hash=ticket.records_hash,
        )  # fmt: skip
        version = registry_service.add_version(
            session, ticket.model_name, parent=parent, status="candidate", spec=str(folder),
            kind="full" if run["adapter"] == "full" else "adapter", method=run["method"],
            adapter=run["adapter"], ticket_ids=[str(ticket.id)], artifact_hash=artifact_hash,
            evaluation=evaluation, created_by=actor, number=number,
        )  # fmt: skip
        ticket.version_id, ticket.evaluation = version.id, evaluation
        summary = {
            "version": version.number,
            "leak_rate": evaluation.get("leak_rate", {}),
            "utility_ratio": evaluation.get("utility", {}).get("ratio"),
            "policy_sha256": evaluation["policy"]["sha256"],
        }
        notes = [] if evaluation.get("reproduced_before", True) else [NOTHING_REPRODUCED]
        summary["notes"] = notes
        if problems:
            # The requester sees why (before: only the operator view and the events did).
            ticket.decision_reason = "held for review: " + "; ".join(problems + notes)
            transition(
                session, ticket, "held", actor=actor, data={**summary, "violations": problems}
            )
        else:
            ticket.decision_reason = "; ".join(notes) or None
            registry_service.publish_version(session, version, actor=actor)
            transition(session, ticket, "published", actor=actor, data=summary)
        finish_job(job, "done")
    return "held" if problems else "published"


def _close(
    context: Context, claim: Claim, state: str, *, job_status: str, error: str | None = None
) -> str:
    try:
        with context.database.transaction() as session:
            job, ticket = _locked(session, claim)
            finish_job(job, job_status, error)
            if ticket.state not in CLOSED:
                ticket.error = error
                transition(
                    session,
                    ticket,
                    state,
                    actor=context.actor,
                    data={"job_id": str(job.id), "error": type(error).__name__ if error else None},
                )
    except LeaseLost:
        return "lost"
    return state


def _retry_or_fail(context: Context, claim: Claim, error: Exception) -> str:
    message = f"{type(error).__name__}: {error}"
    try:
        with context.database.transaction() as session:
            job, ticket = _locked(session, claim)
            if job.attempt >= job.max_attempts:
                finish_job(job, "failed", message)
                ticket.error = message
                transition(
                    session,
                    ticket,
                    "failed",
                    actor=context.actor,
                    data={"job_id": str(job.id), "attempts": job.attempt},
                )
                return "failed"
            release_for_retry(job, message)
            record_ticket_event(
                session,
                ticket,
                "job.retry_scheduled",
                actor=context.actor,
                data={"job_id": str(job.id), "attempt": job.attempt, "error": type(error).__name__},
            )
            wake_later(session, job.id)
        wake_after_commit(session, context.dispatcher)
    except LeaseLost:
        return "lost"
    return "retry"
