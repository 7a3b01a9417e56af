"""Deletion tickets and their records; the records are encrypted with a per-ticket key."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import JSON, ForeignKey, Integer, LargeBinary, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from models.base import Base, CreatedAt, UTCDateTime, UUIDKey, utcnow


class DeletionRequest(UUIDKey, CreatedAt, Base):
    __tablename__ = "deletion_requests"
    __table_args__ = (UniqueConstraint("organisation_id", "idempotency_key"),)

    organisation_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("organisations.id"), index=True)
    created_by_key_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("api_keys.id"))
    model_name: Mapped[str] = mapped_column(String(200), index=True)
    state: Mapped[str] = mapped_column(String(20), index=True)
    state_changed_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    # Who and why: the subject is only ever stored as a keyed HMAC.
    subject_hash: Mapped[str] = mapped_column(String(64), index=True)
    legal_basis: Mapped[str] = mapped_column(String(40))
    jurisdiction: Mapped[str] = mapped_column(String(40))
    # The free text is a Fernet token under the ticket's data key (domain.tickets.free_text).
    reason_sealed: Mapped[str | None] = mapped_column(Text)
    requester: Mapped[str] = mapped_column(String(200))
    received_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    due_at: Mapped[datetime] = mapped_column(UTCDateTime)
    extension_reason_sealed: Mapped[str | None] = mapped_column(Text)
    extension_notice_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    idempotency_key: Mapped[str | None] = mapped_column(String(200))
    body_hash: Mapped[str] = mapped_column(String(64))
    # The data: how many records, their hash, and the wrapped per-ticket key (None = destroyed).
    record_kind: Mapped[str] = mapped_column(String(10))
    record_count: Mapped[int] = mapped_column(Integer)
    records_hash: Mapped[str] = mapped_column(String(64))
    wrapped_key: Mapped[bytes | None] = mapped_column(LargeBinary)
    # Operator overrides of the deployment's method/adapter, and what the pipeline measured.
    options: Mapped[dict] = mapped_column(JSON, default=dict)
    progress: Mapped[dict] = mapped_column(JSON, default=dict)
    assessment: Mapped[dict | None] = mapped_column(JSON)
    evaluation: Mapped[dict | None] = mapped_column(JSON)
    version_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("model_versions.id"))
    decision_reason: Mapped[str | None] = mapped_column(Text)
    error: Mapped[str | None] = mapped_column(Text)
    closed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class RequestItem(UUIDKey, Base):
    """One record to forget, as Fernet ciphertext of its JSON; record_hash is a keyed hash
    (HMAC with the service secret) of the plaintext."""

    __tablename__ = "request_items"
    __table_args__ = (UniqueConstraint("request_id", "position"),)

    request_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("deletion_requests.id"), index=True)
    position: Mapped[int] = mapped_column(Integer)
    record_hash: Mapped[str] = mapped_column(String(64))
    ciphertext: Mapped[bytes] = mapped_column(LargeBinary)
