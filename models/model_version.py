"""Model versions and aliases. A version is loadable from `spec`: the base model's own spec for
version 1, else a folder under the artifacts root whose manifest names its parent, so a GRUN or
LoRA version is "base + ordered modules" and a full fine-tune is whole weights."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import JSON, ForeignKey, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from models.base import Base, CreatedAt, UTCDateTime, UUIDKey, utcnow

VERSION_STATUSES = ("published", "candidate", "rejected")


class ModelVersion(UUIDKey, CreatedAt, Base):
    __tablename__ = "model_versions"
    __table_args__ = (UniqueConstraint("model_name", "number"),)

    model_name: Mapped[str] = mapped_column(String(200), index=True)
    number: Mapped[int] = mapped_column(Integer)
    parent_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("model_versions.id"))
    status: Mapped[str] = mapped_column(String(12))
    kind: Mapped[str] = mapped_column(String(10))  # base, adapter, full
    spec: Mapped[str] = mapped_column(Text)
    method: Mapped[str | None] = mapped_column(String(40))
    adapter: Mapped[str | None] = mapped_column(String(40))
    ticket_ids: Mapped[list] = mapped_column(JSON, default=list)
    artifact_hash: Mapped[str | None] = mapped_column(String(64))
    evaluation: Mapped[dict] = mapped_column(JSON, default=dict)
    created_by: Mapped[str] = mapped_column(String(100))


class ModelAlias(Base):
    """A name (`production`) pointing at the version being served; moving it is audited."""

    __tablename__ = "model_aliases"

    model_name: Mapped[str] = mapped_column(String(200), primary_key=True)
    alias: Mapped[str] = mapped_column(String(40), primary_key=True)
    version_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("model_versions.id"))
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
