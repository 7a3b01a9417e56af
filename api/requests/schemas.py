"""Request and response bodies of deletion tickets. Bodies reject unknown fields; each role gets
the response model holding only what it may see."""

from __future__ import annotations

import uuid
from datetime import datetime

from pydantic import BaseModel, ConfigDict


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
    reason: str | None = None  # free text, sealed with the ticket's key: gone once it closes
    received_at: datetime
    due_at: datetime
    extension_reason: str | None = None  # the same
    extension_notice_at: datetime | None  # when the person was told of the extension
    record_count: int
    records_hash: str
    progress: Progress
    decision_reason: str | None
    closed_at: datetime | None
    queue_position: int | None = None  # 1 = the next job to run on its model; None: not waiting
    cancel_pending: bool = False  # an operator's cancel waits for the running job to stop


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
