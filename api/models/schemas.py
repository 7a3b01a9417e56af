"""Bodies of the model registry endpoints."""

from __future__ import annotations

import uuid
from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from domain.validation import DB_INT_MAX, StrictBody


class ModelRegister(StrictBody):
    name: str = Field(min_length=1, max_length=200, pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
    spec: str = Field(min_length=1, description="built-in name, HF folder or .gguf file")


class Rollback(StrictBody):
    to_version: int | None = Field(
        None, ge=1, le=DB_INT_MAX, description="default: the serving version's parent"
    )
    reason: str = Field(min_length=1, max_length=2000)


class GenerateBody(StrictBody):
    questions: list[str] = Field(min_length=1, max_length=32)
    max_new_tokens: int = Field(64, ge=1, le=200)


class VersionPublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    model_name: str
    number: int
    parent_id: uuid.UUID | None
    status: str
    kind: str
    method: str | None
    adapter: str | None
    ticket_ids: list[str]
    artifact_hash: str | None
    evaluation: dict
    created_by: str
    created_at: datetime


class ModelPublic(BaseModel):
    name: str
    production: VersionPublic


class ModelsPublic(BaseModel):
    data: list[ModelPublic]
    count: int


class ModelName(BaseModel):
    """What a requester sees of a model: the name to file tickets against."""

    name: str
    production_version: int


class ModelNamesPublic(BaseModel):
    data: list[ModelName]
    count: int


class VersionsPublic(BaseModel):
    data: list[VersionPublic]
    count: int


class Answers(BaseModel):
    model: str
    version: int
    answers: list[str]
