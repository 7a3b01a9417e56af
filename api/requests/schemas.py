"""Request and response bodies of deletion tickets. Bodies reject unknown fields; each role gets
the response model holding only what it may see."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from api.requests.deadlines import LegalBasis
from api.validation import PastDatetime, StrictBody
from domain.choices import ADAPTERS, METHODS


class TicketOptions(StrictBody):
    """Operators may choose the unlearning method and adapter for one ticket."""

    # Literal: an unknown name is a 422 naming the choices, not a job that fails in a worker.
    method: Literal[METHODS] | None = None  # type: ignore[valid-type]
    adapter: Literal[ADAPTERS] | None = None  # type: ignore[valid-type]


class TicketMetadata(StrictBody):
    model: str = Field(min_length=1, max_length=200, description="registered model name")
    subject_id: str = Field(
        min_length=1, max_length=500, description="the data subject; stored only as a keyed HMAC"
    )
    legal_basis: LegalBasis
    jurisdiction: str = Field(min_length=2, max_length=40, examples=["EU", "US-CA"])
    reason: str | None = Field(None, max_length=2000)
    requester: str = Field(min_length=1, max_length=200, description="who filed it, e.g. a DPO")
    options: TicketOptions | None = None


class TicketCreate(TicketMetadata):
    records: list[dict[str, Any]] = Field(
        min_length=1, description="QA records {question, answer, key_facts, ...} or {text}"
    )


class TicketExtend(StrictBody):
    reason: str = Field(min_length=1, max_length=2000)
    notice_sent_at: PastDatetime


class Decision(StrictBody):
    reason: str = Field(min_length=1, max_length=2000)


class Rerun(StrictBody):
    """Unlearn a held ticket again, with what the operator changes; the data stays."""

    reason: str = Field(min_length=1, max_length=2000)
    steps: int | None = Field(None, ge=1, le=100_000, description="a larger step budget")
    method: Literal[METHODS] | None = None  # type: ignore[valid-type]
    adapter: Literal[ADAPTERS] | None = None  # type: ignore[valid-type]


class Progress(BaseModel):
    stage: str | None = None
    step: int | None = None
    total: int | None = None
    eta_s: float | None = None
    loss: float | None = None
    updated_at: datetime | None = None


class TicketPublic(BaseModel):
    """What a requester sees."""

    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    model_name: str
    state: str
    legal_basis: str
    jurisdiction: str
    requester: str
    reason: str | None
    received_at: datetime
    due_at: datetime
    extension_reason: str | None
    record_count: int
    records_hash: str
    progress: Progress
    decision_reason: str | None
    closed_at: datetime | None


class JobPublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    request_id: uuid.UUID
    model_name: str
    kind: str
    status: str
    attempt: int
    max_attempts: int
    lease_owner: str | None
    lease_expires_at: datetime | None
    heartbeat_at: datetime | None
    cancel_requested: bool
    last_error: str | None
    created_at: datetime
    finished_at: datetime | None


class TicketDetail(TicketPublic):
    """What operators, auditors and admins see: the measurements and the machinery."""

    organisation_id: uuid.UUID
    subject_hash: str
    options: dict
    assessment: dict | None
    evaluation: dict | None
    version_id: uuid.UUID | None
    error: str | None
    data_key_destroyed: bool
    jobs: list[JobPublic]

    @classmethod
    def of(cls, ticket, jobs) -> TicketDetail:
        """The staff view of a ticket row and its job rows."""
        return cls(
            **TicketPublic.model_validate(ticket).model_dump(),
            organisation_id=ticket.organisation_id,
            subject_hash=ticket.subject_hash,
            options=ticket.options,
            assessment=ticket.assessment,
            evaluation=ticket.evaluation,
            version_id=ticket.version_id,
            error=ticket.error,
            data_key_destroyed=ticket.wrapped_key is None,
            jobs=[JobPublic.model_validate(job) for job in jobs],
        )


class TicketsPublic(BaseModel):
    data: list[TicketPublic | TicketDetail]
    count: int
