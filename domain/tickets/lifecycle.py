"""The ticket state machine, in one place. Every transition writes its audit event in the
caller's transaction; reaching a closed state destroys the ticket's data key.

received → assessing → queued → unlearning → evaluating → published
                                                        ↘ held → approved → published
                                                               ↘ rejected
                                                               ↘ queued (re-run: new budget)
cancelled (requesters: before unlearning; operators: any time before evaluation ends), failed.
A retried job re-enters its stage (assessing → assessing, unlearning/evaluating → unlearning).
published → undone: a rollback took production back past the version that served the deletion;
the records are gone with the data key, so the ticket cannot run again: it must be filed anew.
"""

from __future__ import annotations

from sqlalchemy.orm import Session

from domain.audit.service import record_event
from domain.errors import Conflict
from models import DeletionRequest, utcnow

TRANSITIONS: dict[str, frozenset[str]] = {
    "received": frozenset({"assessing", "cancelled", "failed"}),
    "assessing": frozenset({"assessing", "queued", "cancelled", "failed"}),
    "queued": frozenset({"unlearning", "cancelled", "failed"}),
    "unlearning": frozenset({"unlearning", "evaluating", "cancelled", "failed"}),
    "evaluating": frozenset({"unlearning", "published", "held", "cancelled", "failed"}),
    "held": frozenset({"approved", "rejected", "queued"}),
    "approved": frozenset({"published"}),
    "published": frozenset({"undone"}),
    "rejected": frozenset(),
    "cancelled": frozenset(),
    "failed": frozenset(),
    "undone": frozenset(),
}
STATES = tuple(TRANSITIONS)
# Closed: the data key is destroyed. A published ticket stays closed when a rollback undoes it.
CLOSED = frozenset({"published", "rejected", "cancelled", "failed", "undone"})
REQUESTER_CANCELLABLE = frozenset({"received", "assessing", "queued"})
OPERATOR_CANCELLABLE = REQUESTER_CANCELLABLE | {"unlearning", "evaluating"}


def record_ticket_event(
    session: Session, ticket: DeletionRequest, event_type: str, *, actor: str, data: dict
) -> None:
    """An audit event about `ticket`, filed under the ticket's organisation."""
    record_event(
        session,
        event_type,
        actor=actor,
        request_id=ticket.id,
        organisation_id=ticket.organisation_id,
        data=data,
    )


def can_transition(current: str, target: str) -> bool:
    return target in TRANSITIONS[current]


def transition(
    session: Session, ticket: DeletionRequest, target: str, *, actor: str, data: dict | None = None
) -> None:
    """Move `ticket` to `target` or raise Conflict naming the illegal move."""
    if target not in TRANSITIONS:
        raise ValueError(f"unknown ticket state {target!r}")
    if not can_transition(ticket.state, target):
        raise Conflict("illegal_move", ticket=ticket.id, state=ticket.state, target=target)
    previous, now = ticket.state, utcnow()
    ticket.state, ticket.state_changed_at = target, now
    # A new state starts with no step or ETA of the last one (a held ticket showed the stage
    # "evaluating", a closed one its last ETA).
    ticket.progress = {"stage": target, "updated_at": now.isoformat()}
    record_ticket_event(
        session,
        ticket,
        f"ticket.{target}",
        actor=actor,
        data={"from": previous, "to": target, **(data or {})},
    )
    if target in CLOSED:
        close(session, ticket, actor=actor)


def close(session: Session, ticket: DeletionRequest, *, actor: str) -> None:
    """Destroy the per-ticket data key: the encrypted records become unreadable for good. The
    free text about the request goes with it (the filing and the extension reasons often name
    the person: issue 18); the extension's notice date stays, as the record that it was sent."""
    ticket.closed_at = ticket.closed_at or utcnow()  # an undone ticket closed when published
    ticket.progress = {**ticket.progress, "stage": ticket.state}
    ticket.reason_sealed = ticket.extension_reason_sealed = None
    if ticket.wrapped_key is not None:
        ticket.wrapped_key = None
        record_ticket_event(
            session,
            ticket,
            "ticket.data_key_destroyed",
            actor=actor,
            data={"records_hash": ticket.records_hash, "record_count": ticket.record_count},
        )
    session.flush()
