"""Append events to the chain and verify it. Services flush; the caller owns the transaction,
so a state change and its event commit (or roll back) together."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy.orm import Session

from domain.audit import repository
from domain.audit.chain import GENESIS_HASH, chain_hash, event_fields
from domain.audit.checkpoints import Checkpoint, check_against, read_checkpoints
from models import AuditEvent, utcnow


def record_event(
    session: Session,
    event_type: str,
    *,
    actor: str,
    data: dict | None = None,
    request_id: uuid.UUID | None = None,
    organisation_id: uuid.UUID | None = None,
) -> AuditEvent:
    repository.lock_chain(session)
    tail = repository.chain_tail(session)
    seq, prev_hash = (tail.seq + 1, tail.hash) if tail else (1, GENESIS_HASH)
    fields = event_fields(
        seq, utcnow(), actor, organisation_id, request_id, event_type, dict(data or {})
    )
    event = AuditEvent(**fields, prev_hash=prev_hash, hash=chain_hash(prev_hash, fields))
    repository.add(session, event)
    return event


@dataclass
class Breach:
    seq: int
    problem: str


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
            breaches.append(Breach(event.seq, f"expected seq {expected_seq}: rows missing"))
        if event.prev_hash != prev_hash:
            breaches.append(Breach(event.seq, "prev_hash does not match the previous row"))
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
            breaches.append(Breach(event.seq, "content does not match its hash (row edited)"))
        prev_hash, expected_seq = event.hash, event.seq + 1
        if len(breaches) >= max_breaches:
            break
    problems = check_against(list(checkpoints), seen, expected_seq - 1, checked)
    breaches += [Breach(seq, problem) for seq, problem in problems]
    return VerifyResult(not breaches, checked, prev_hash, breaches)


def verify_with_checkpoints(session: Session, path: Path, secret: str) -> tuple[VerifyResult, int]:
    """The chain against the signed checkpoints file: one result whose breaches also name
    every checkpoint line whose signature does not hold (seq 0), and how many did."""
    points, bad_lines = read_checkpoints(path, secret)
    result = verify_chain(session, checkpoints=points)
    breaches = result.breaches + [Breach(0, problem) for problem in bad_lines]
    return VerifyResult(not breaches, result.checked, result.last_hash, breaches), len(points)


def events_for_request(session: Session, request_id: uuid.UUID) -> list[AuditEvent]:
    return list(repository.stream(session, repository.events_query(request_id=request_id)))
