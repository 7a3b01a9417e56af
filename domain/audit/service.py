"""Append events to the chain and verify it. The caller owns the transaction, so a state
change and its event commit (or roll back) together.

Appending takes the chain's one lock (every event links to the one before it), held until the
transaction ends. An event is therefore queued when recorded and appended just before its
transaction commits (`_append_queued`): the lock then covers the append and the commit only,
not the rest of the request's work; concurrent submits serialised on it for their whole
transaction (benchmarks/results/load.md). A savepoint rolled back drops what it queued."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import event as orm_events
from sqlalchemy.orm import Session, SessionTransaction

from domain.audit import repository
from domain.audit.chain import GENESIS_HASH, chain_hash, event_fields
from domain.audit.checkpoints import Checkpoint, check_against, read_checkpoints
from domain.messages import error_text
from models import AuditEvent, utcnow

QUEUE = "audit_queue"  # Session.info key: [(savepoint or None, event arguments), ...]


def record_event(
    session: Session,
    event_type: str,
    *,
    actor: str,
    data: dict | None = None,
    request_id: uuid.UUID | None = None,
    organisation_id: uuid.UUID | None = None,
) -> None:
    """Queue an event for the chain; it is appended when the transaction commits."""
    arguments = (actor, organisation_id, request_id, event_type, dict(data or {}))
    session.info.setdefault(QUEUE, []).append((session.get_nested_transaction(), arguments))


@orm_events.listens_for(Session, "before_commit")
def _append_queued(session: Session) -> None:
    if session.in_nested_transaction() or not session.info.get(QUEUE):
        return  # a savepoint's events wait for the outer commit
    queued = session.info.pop(QUEUE)
    repository.lock_chain(session)
    tail = repository.chain_tail(session)
    seq, prev_hash = (tail.seq + 1, tail.hash) if tail else (1, GENESIS_HASH)
    for _, (actor, organisation_id, request_id, event_type, data) in queued:
        fields = event_fields(seq, utcnow(), actor, organisation_id, request_id, event_type, data)
        digest = chain_hash(prev_hash, fields)
        repository.add(session, AuditEvent(**fields, prev_hash=prev_hash, hash=digest))
        seq, prev_hash = seq + 1, digest


@orm_events.listens_for(Session, "after_soft_rollback")
def _drop_rolled_back(session: Session, previous: SessionTransaction) -> None:
    """A savepoint's rollback drops the events queued inside it; the outer one's, all."""
    if not previous.nested:
        session.info.pop(QUEUE, None)
        return

    def inside(savepoint: SessionTransaction | None) -> bool:
        while savepoint is not None:
            if savepoint is previous:
                return True
            savepoint = savepoint.parent
        return False

    session.info[QUEUE] = [item for item in session.info.get(QUEUE, []) if not inside(item[0])]


@dataclass
class Breach:
    """Where the chain breaks (`seq`; 0: a checkpoint line) and how: `code` in
    domain/messages.py, so a page can say it in its reader's language."""

    seq: int
    code: str
    params: dict = field(default_factory=dict)

    def text(self, lang: str = "en") -> str:
        return error_text(lang, self.code, self.params)

    def to_dict(self) -> dict:
        """As the API answers it: the code for programs, the problem in English."""
        return {"seq": self.seq, "code": self.code, "problem": self.text()}


@dataclass
class VerifyResult:
    ok: bool
    checked: int
    last_hash: str
    breaches: list[Breach]


def verify_chain(
    session: Session, max_breaches: int = 100, checkpoints: Sequence[Checkpoint] = ()
) -> VerifyResult:
    """Recompute every hash in order; name each row whose content or link does not match, and
    each signed checkpoint (kept outside the database) the chain no longer agrees with: a
    rewrite with every later hash recomputed, or deleted last rows, verify on their own."""
    prev_hash, expected_seq, checked, breaches = GENESIS_HASH, 1, 0, []
    wanted, seen = {point.seq for point in checkpoints}, {}
    for event in repository.stream(session, repository.events_query()):
        if event.seq in wanted:
            seen[event.seq] = event.hash
        checked += 1
        if event.seq != expected_seq:
            breaches.append(Breach(event.seq, "rows_missing", {"expected": expected_seq}))
        if event.prev_hash != prev_hash:
            breaches.append(Breach(event.seq, "link_broken"))
        fields = event_fields(
            event.seq,
            event.occurred_at,
            event.actor,
            event.organisation_id,
            event.request_id,
            event.event_type,
            event.data,
        )
        if chain_hash(event.prev_hash, fields) != event.hash:
            breaches.append(Breach(event.seq, "row_edited"))
        prev_hash, expected_seq = event.hash, event.seq + 1
        if len(breaches) >= max_breaches:
            break
    problems = check_against(list(checkpoints), seen, expected_seq - 1, checked)
    breaches += [Breach(seq, code, params) for seq, code, params in problems]
    return VerifyResult(not breaches, checked, prev_hash, breaches)


def verify_with_checkpoints(session: Session, path: Path, secret: str) -> tuple[VerifyResult, int]:
    """The chain against the signed checkpoints file: one result whose breaches also name
    every checkpoint line whose signature does not hold (seq 0), and how many did."""
    points, bad_lines = read_checkpoints(path, secret)
    result = verify_chain(session, checkpoints=points)
    breaches = result.breaches + [Breach(0, "bad_checkpoint", {"number": n}) for n in bad_lines]
    return VerifyResult(not breaches, result.checked, result.last_hash, breaches), len(points)


def events_for_request(session: Session, request_id: uuid.UUID) -> list[AuditEvent]:
    return list(repository.stream(session, repository.events_query(request_id=request_id)))
