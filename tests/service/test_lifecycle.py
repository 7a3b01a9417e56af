"""Every (state, target) pair of the ticket state machine: legal moves write their audit event
in the same transaction, illegal ones are refused with 409 and leave no trace."""

import itertools

import pytest
from sqlalchemy import func, select

from domain.errors import Conflict
from domain.keys.service import get_or_create_organisation
from domain.tickets.lifecycle import CLOSED, STATES, TRANSITIONS, transition
from models import AuditEvent, DeletionRequest, utcnow

pytestmark = pytest.mark.service

LEGAL = {(a, b) for a, targets in TRANSITIONS.items() for b in targets}


def _ticket(session, state: str) -> DeletionRequest:
    organisation = get_or_create_organisation(session, "acme")
    ticket = DeletionRequest(
        organisation_id=organisation.id, model_name="m", state=state, subject_hash="s" * 64,
        legal_basis="gdpr_art17", jurisdiction="EU", requester="r", due_at=utcnow(),
        body_hash="b" * 64, record_kind="qa", record_count=1, records_hash="h" * 64,
        wrapped_key=b"key", options={}, progress={},
    )  # fmt: skip
    session.add(ticket)
    session.flush()
    return ticket


def _events(session) -> int:
    return session.scalar(select(func.count()).select_from(AuditEvent))


def test_the_happy_path_and_review_path_are_legal():
    path = ["received", "assessing", "queued", "unlearning", "evaluating", "published"]
    assert set(itertools.pairwise(path)) <= LEGAL
    assert {("evaluating", "held"), ("held", "approved"), ("approved", "published")} <= LEGAL
    assert {("held", "rejected"), ("queued", "cancelled")} <= LEGAL
    assert ("published", "undone") in LEGAL  # a rollback past its version
    assert {"published", "rejected", "cancelled", "failed", "undone"} == CLOSED


def test_every_transition_pair(database):
    refused = []
    for current, target in itertools.product(STATES, STATES):
        with database.transaction() as session:
            before = _events(session)
        with database.transaction() as session:  # events are appended when it commits
            ticket = _ticket(session, current)
            try:
                transition(session, ticket, target, actor="test")
            except Conflict:
                refused.append((current, target))
                assert ticket.state == current
            else:
                assert ticket.state == target
                assert (ticket.wrapped_key is None) == (target in CLOSED)
        with database.transaction() as session:
            written = _events(session) - before
        if (current, target) in refused:
            assert written == 0
        else:
            assert written == (2 if target in CLOSED else 1)  # closing also destroys the key
    assert set(refused) == set(itertools.product(STATES, STATES)) - LEGAL
