"""Bodies of the API key endpoints."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field

from domain.validation import StrictBody


class KeyCreate(StrictBody):
    organisation: str = Field(min_length=1, max_length=200)
    role: Literal["requester", "operator", "auditor", "admin"]
    name: str = Field(min_length=1, max_length=200)


class KeyPublic(BaseModel):
    id: uuid.UUID
    organisation: str
    role: str
    name: str
    prefix: str
    created_at: datetime
    revoked_at: datetime | None


class KeyCreated(KeyPublic):
    key: str = Field(description="shown once; only its keyed hash is stored")


class KeysPublic(BaseModel):
    data: list[KeyPublic]
    count: int
