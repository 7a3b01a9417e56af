"""Units of work for the workers. PostgreSQL is the system of record: a job is claimed with a
fenced update (the attempt number is the fence) and held by a lease the worker keeps renewing."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import Boolean, ForeignKey, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from models.base import Base, CreatedAt, UTCDateTime, UUIDKey

JOB_KINDS = ("assess", "unlearn")
JOB_STATUSES = ("pending", "running", "done", "failed", "cancelled")


class Job(UUIDKey, CreatedAt, Base):
    __tablename__ = "jobs"

    request_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("deletion_requests.id"), index=True)
    model_name: Mapped[str] = mapped_column(String(200), index=True)
    kind: Mapped[str] = mapped_column(String(10))
    status: Mapped[str] = mapped_column(String(10), index=True, default="pending")
    attempt: Mapped[int] = mapped_column(Integer, default=0)
    max_attempts: Mapped[int] = mapped_column(Integer, default=3)
    lease_owner: Mapped[str | None] = mapped_column(String(200))
    lease_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    heartbeat_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    cancel_requested: Mapped[bool] = mapped_column(Boolean, default=False)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_error: Mapped[str | None] = mapped_column(Text)
