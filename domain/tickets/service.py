"""Deletion tickets: submit (idempotent), read with organisation scoping, cancel, extend,
approve or reject a held result. Services flush; the caller owns the transaction."""

from __future__ import annotations

import json
import uuid

from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from domain.crypto import keyed_hash, new_wrapped_key, ticket_cipher
from domain.errors import Conflict, Forbidden, InvalidInput, NotFound
from domain.jobs import repository as jobs_repository
from domain.jobs.service import create_job
from domain.keys.service import Principal
from domain.records import RecordError, hash_records, parse_records
from domain.redaction import redact
from domain.settings import Settings
from domain.tickets import free_text, repository
from domain.tickets.commands import Decision, Rerun, TicketCreate, TicketExtend
from domain.tickets.deadlines import LegalBasis, due_at, extended_due_at
from domain.tickets.lifecycle import (
    OPERATOR_CANCELLABLE,
    REQUESTER_CANCELLABLE,
    record_ticket_event,
    transition,
)
from domain.versions import service as registry_service
from models import DeletionRequest, RequestItem, utcnow

RECORD_FIELDS = frozenset(
    {
        "question",
        "answer",
        "paraphrased_answer",
        "perturbed_answer",
        "paraphrased_question",
        "key_facts",
        "text",
    }
)


def _record_hash(secret: str, record) -> str:
    """Keyed: a plain SHA-256 kept forever let anyone with the database confirm a guessed
    record offline (issue 18); with the service's secret it identifies the record, no more."""
    return keyed_hash(secret, "record", json.dumps(record.to_dict(), sort_keys=True, default=str))


def validate_records(rows: list[dict], max_records: int, source: str = "records") -> list:
    """The records' validation (`domain.records`), plus unknown fields refused; errors name
    record and field."""
    if len(rows) > max_records:
        raise InvalidInput("too_many_records", count=len(rows), limit=max_records)
    for index, row in enumerate(rows):
        unknown = sorted(set(row) - RECORD_FIELDS) if isinstance(row, dict) else []
        if unknown:
            raise InvalidInput("unknown_field", source=source, index=index, field=unknown[0])
    try:
        return parse_records(rows, source)
    except RecordError as error:
        where = {"source": error.source, "index": error.index, "field": error.field}
        raise InvalidInput(error.code, **where, **error.params) from error


def submit_ticket(
    session: Session,
    settings: Settings,
    principal: Principal,
    payload: TicketCreate,
    idempotency_key: str | None = None,
) -> tuple[DeletionRequest, bool]:
    """Create the ticket, its encrypted records, its audit event and its assess job.
    Returns (ticket, created); a replay with the same Idempotency-Key returns the first one."""
    secret = settings.secret_key.get_secret_value()
    # Keyed: the body holds the subject identifier, which must not be recoverable by guessing.
    body_hash = keyed_hash(
        secret, "body", json.dumps(payload.model_dump(mode="json"), sort_keys=True)
    )
    if idempotency_key:
        existing = repository.by_idempotency_key(
            session, principal.organisation_id, idempotency_key
        )
        if existing is not None:
            if existing.body_hash != body_hash:
                raise Conflict("idempotency_mismatch")
            return existing, False
    if payload.options and principal.role != "admin":
        # Requesters file against the model's policy; operators do not file tickets.
        raise Forbidden("options_admin_only")
    registry_service.require_model(session, payload.model)
    records = validate_records(payload.records, settings.max_records)
    wrapped_key = new_wrapped_key(settings.data_key.get_secret_value())
    cipher = ticket_cipher(settings.data_key.get_secret_value(), wrapped_key)
    record_hashes = [_record_hash(secret, record) for record in records]
    kinds = {"qa" if hasattr(r, "question") else "text" for r in records}
    received_at = utcnow()
    ticket = DeletionRequest(
        organisation_id=principal.organisation_id,
        created_by_key_id=principal.key_id,
        model_name=payload.model,
        state="received",
        subject_hash=keyed_hash(secret, "subject", payload.subject_id),
        legal_basis=payload.legal_basis.value,
        jurisdiction=payload.jurisdiction,
        reason_sealed=free_text.seal(cipher, payload.reason),
        requester=payload.requester,
        received_at=received_at,
        due_at=due_at(payload.legal_basis, received_at),
        idempotency_key=idempotency_key,
        body_hash=body_hash,
        record_kind=kinds.pop() if len(kinds) == 1 else "mixed",
        record_count=len(records),
        # Keyed (a plain hash of a one-record ticket confirms a guessed record offline); the
        # published version's run.json records this same value for its forget set, so an
        # auditor matches a ticket to its run (worker.registry.store_version).
        records_hash=keyed_hash(secret, "records", hash_records(records)),
        wrapped_key=wrapped_key,
        options=payload.options.model_dump(exclude_none=True) if payload.options else {},
        progress={"stage": "received"},
    )
    try:
        with session.begin_nested():  # a concurrent retry with the same key may win the insert
            repository.add(session, ticket)
    except IntegrityError as error:
        winner = (
            repository.by_idempotency_key(session, principal.organisation_id, idempotency_key)
            if idempotency_key
            else None
        )
        if winner is None or winner.body_hash != body_hash:
            raise Conflict("idempotency_mismatch") from error
        return winner, False
    for position, (record, record_hash) in enumerate(zip(records, record_hashes, strict=True)):
        ciphertext = cipher.encrypt(json.dumps(record.to_dict()).encode())
        session.add(
            RequestItem(
                request_id=ticket.id,
                position=position,
                record_hash=record_hash,
                ciphertext=ciphertext,
            )
        )
    record_ticket_event(
        session,
        ticket,
        "ticket.received",
        actor=principal.actor,
        data={
            "model": ticket.model_name,
            "subject_hash": ticket.subject_hash,
            "legal_basis": ticket.legal_basis,
            "jurisdiction": ticket.jurisdiction,
            "record_count": ticket.record_count,
            "records_hash": ticket.records_hash,
            "due_at": ticket.due_at.isoformat(),
            "options": ticket.options,
        },
    )
    create_job(session, ticket.id, ticket.model_name, "assess", settings.max_attempts)
    return ticket, True


def visible_ticket(
    session: Session, principal: Principal, ticket_id: uuid.UUID, *, for_update: bool = False
) -> DeletionRequest:
    """The ticket, or 404 also when it belongs to another organisation and the caller is a
    requester (no hint that it exists)."""
    ticket = repository.get(session, ticket_id, for_update=for_update)
    scoped = principal.role == "requester"
    if ticket is None or (scoped and ticket.organisation_id != principal.organisation_id):
        raise NotFound("ticket_not_found", ticket=ticket_id)
    return ticket


def list_tickets(
    session: Session, principal: Principal, where: repository.TicketFilter, limit: int, offset: int
):
    if principal.role == "requester":
        where.organisation_id = principal.organisation_id
    return repository.search(session, where, limit, offset)


def operator_text(
    session: Session, settings: Settings, ticket: DeletionRequest, text: str | None
) -> str | None:
    """An operator's free text as the ticket keeps it: without any value of the ticket's
    records (a reason that quotes the person's data would outlive the data key, and every role
    reads it: issue 18). Read while the key is alive, before the ticket closes."""
    if text is None or ticket.wrapped_key is None:
        return text
    return redact(text, decrypt_records(session, settings, ticket))


def waiting_states(session: Session, tickets: list[DeletionRequest]) -> dict[uuid.UUID, dict]:
    """Where each open ticket stands beyond its state: its place in its model's queue (1 = next
    to run), and whether an operator's cancel waits for the running job to stop. One query for
    all of them: a status poll is the service's most frequent request, a list page the largest."""
    open_ids = [ticket.id for ticket in tickets if not ticket.closed_at]
    jobs = jobs_repository.open_jobs(session, open_ids) if open_ids else {}
    states = {}
    for ticket in tickets:
        ticket_jobs = jobs.get(ticket.id, [])
        pending = [ahead + 1 for status, _, ahead in ticket_jobs if status == "pending"]
        states[ticket.id] = {
            "queue_position": pending[0] if pending else None,
            "cancel_pending": any(s == "running" and cancel for s, cancel, _ in ticket_jobs),
        }
    return states


def cancel_ticket(
    session: Session,
    settings: Settings,
    principal: Principal,
    ticket_id: uuid.UUID,
    reason: str | None,
) -> DeletionRequest:
    ticket = visible_ticket(session, principal, ticket_id, for_update=True)
    allowed = (
        OPERATOR_CANCELLABLE if principal.role in ("operator", "admin") else REQUESTER_CANCELLABLE
    )
    if ticket.state not in allowed:
        raise Conflict("too_late_to_cancel", ticket=ticket.id, state=ticket.state)
    running = False
    for job in jobs_repository.for_request(session, ticket.id):
        if job.status == "pending":
            job.status, job.finished_at = "cancelled", utcnow()
        elif job.status == "running":
            job.cancel_requested, running = True, True
    # Kept in both cases: a running job's cancel closes the ticket later, from the worker.
    ticket.decision_reason = operator_text(session, settings, ticket, reason)
    if running and ticket.state in ("unlearning", "evaluating"):
        # Cooperative: the training loop sees the flag and the worker closes the ticket.
        record_ticket_event(
            session,
            ticket,
            "ticket.cancel_requested",
            actor=principal.actor,
            data={"state": ticket.state},
        )
    else:
        transition(
            session, ticket, "cancelled", actor=principal.actor, data={"reason_given": bool(reason)}
        )
    return ticket


def extend_deadline(
    session: Session,
    settings: Settings,
    principal: Principal,
    ticket_id: uuid.UUID,
    body: TicketExtend,
) -> DeletionRequest:
    ticket = visible_ticket(session, principal, ticket_id, for_update=True)
    if ticket.closed_at is not None:
        raise Conflict("ticket_closed", ticket=ticket.id)
    if ticket.extension_notice_at is not None:
        raise Conflict("already_extended", ticket=ticket.id)
    basis = LegalBasis(ticket.legal_basis)
    try:
        new_due = extended_due_at(basis, ticket.due_at)
    except ValueError as error:
        raise Conflict("not_extendable", basis=basis.value) from error
    previous, ticket.due_at = ticket.due_at, new_due
    free_text.seal_extension(settings, ticket, body.reason)
    ticket.extension_notice_at = body.notice_sent_at
    record_ticket_event(
        session,
        ticket,
        "ticket.deadline_extended",
        actor=principal.actor,
        data={
            "previous_due_at": previous.isoformat(),
            "due_at": new_due.isoformat(),
            "notice_sent_at": body.notice_sent_at.isoformat(),
        },
    )
    return ticket


def _decide(
    session: Session,
    settings: Settings,
    principal: Principal,
    ticket_id: uuid.UUID,
    verdict: str,
    body: Decision,
) -> DeletionRequest:
    """Record an operator's verdict ("approved" or "rejected") on a held ticket."""
    ticket = visible_ticket(session, principal, ticket_id, for_update=True)
    reason = operator_text(session, settings, ticket, body.reason)
    transition(
        session,
        ticket,
        verdict,
        actor=principal.actor,
        data={"version_id": str(ticket.version_id)},
    )
    ticket.decision_reason = reason
    return ticket


def approve_ticket(
    session: Session,
    settings: Settings,
    principal: Principal,
    ticket_id: uuid.UUID,
    body: Decision,
) -> DeletionRequest:
    """Publish the held candidate version: an operator accepts what the policy did not."""
    ticket = _decide(session, settings, principal, ticket_id, "approved", body)
    version = registry_service.publish_candidate(session, ticket.version_id, actor=principal.actor)
    transition(
        session, ticket, "published", actor=principal.actor, data={"version": version.number}
    )
    return ticket


def reject_ticket(
    session: Session,
    settings: Settings,
    principal: Principal,
    ticket_id: uuid.UUID,
    body: Decision,
) -> DeletionRequest:
    ticket = _decide(session, settings, principal, ticket_id, "rejected", body)
    if ticket.version_id is not None:
        registry_service.reject_candidate(session, ticket.version_id, actor=principal.actor)
    return ticket


def rerun_ticket(
    session: Session, settings: Settings, principal: Principal, ticket_id: uuid.UUID, body: Rerun
) -> DeletionRequest:
    """Unlearn a held ticket again with a changed budget, method or adapter: its candidate
    version is rejected, its data (still encrypted, its key alive) is kept, and it queues."""
    ticket = visible_ticket(session, principal, ticket_id, for_update=True)
    changes = body.model_dump(exclude={"reason"}, exclude_none=True)
    data = {"rerun": True, "changes": changes, "rejected_version_id": str(ticket.version_id)}
    transition(session, ticket, "queued", actor=principal.actor, data=data)
    if ticket.version_id is not None:
        registry_service.reject_candidate(session, ticket.version_id, actor=principal.actor)
    ticket.version_id, ticket.evaluation = None, None
    ticket.options = {**ticket.options, **changes}
    ticket.decision_reason = f"re-run: {operator_text(session, settings, ticket, body.reason)}"
    create_job(session, ticket.id, ticket.model_name, "unlearn", settings.max_attempts)
    return ticket


def decrypt_records(session: Session, settings: Settings, ticket: DeletionRequest) -> list:
    """The ticket's records in clear, for the worker; impossible once the ticket is closed."""

    cipher = free_text.open_key(settings, ticket)
    rows = [
        json.loads(cipher.decrypt(item.ciphertext)) for item in repository.items(session, ticket.id)
    ]
    return parse_records(rows, f"ticket {ticket.id}")
