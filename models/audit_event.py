"""The append-only audit trail: each row's hash covers the previous row's hash and its own
canonical JSON, so any edit, deletion or reordering breaks the chain from that row on."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import JSON, BigInteger, ForeignKey, String, Uuid
from sqlalchemy.orm import Mapped, mapped_column

from models.base import Base, UTCDateTime


class AuditEvent(Base):
    __tablename__ = "audit_events"

    seq: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    occurred_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    actor: Mapped[str] = mapped_column(String(100))  # "key:<uuid>", "worker:<name>", "system"
    organisation_id: Mapped[uuid.UUID | None] = mapped_column(Uuid, index=True)
    request_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("deletion_requests.id"), index=True
    )
    event_type: Mapped[str] = mapped_column(String(60))
    data: Mapped[dict] = mapped_column(JSON)  # ids, hashes and numbers; never personal data
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64), unique=True)
