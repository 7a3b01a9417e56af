"""SQL of the model registry: versions and aliases."""

from __future__ import annotations

import uuid

from sqlalchemy import bindparam, func, select
from sqlalchemy.orm import Session

from models import ModelAlias, ModelVersion


def add(session: Session, row) -> None:
    session.add(row)
    session.flush()


def version(session: Session, version_id: uuid.UUID) -> ModelVersion:
    """A version by id: ids come from foreign keys and aliases, so it exists."""
    return session.get_one(ModelVersion, version_id)


def version_by_number(session: Session, model_name: str, number: int) -> ModelVersion | None:
    query = select(ModelVersion).where(
        ModelVersion.model_name == model_name, ModelVersion.number == number
    )
    return session.scalars(query).first()


def versions(session: Session, model_name: str) -> list[ModelVersion]:
    query = (
        select(ModelVersion)
        .where(ModelVersion.model_name == model_name)
        .order_by(ModelVersion.number)
    )
    return list(session.scalars(query))


def next_number(session: Session, model_name: str) -> int:
    current = session.scalar(
        select(func.max(ModelVersion.number)).where(ModelVersion.model_name == model_name)
    )
    return (current or 0) + 1


# Built once, the names parameters: every submit looks its model's alias up (issue 18).
_ALIAS = select(ModelAlias).where(
    ModelAlias.model_name == bindparam("model_name"), ModelAlias.alias == bindparam("name")
)
_ALIAS_LOCKED = _ALIAS.with_for_update()


def alias(
    session: Session, model_name: str, name: str, *, for_update: bool = False
) -> ModelAlias | None:
    query = _ALIAS_LOCKED if for_update else _ALIAS
    return session.scalars(query, {"model_name": model_name, "name": name}).first()


def aliases(session: Session, model_name: str | None = None) -> list[ModelAlias]:
    query = select(ModelAlias).order_by(ModelAlias.model_name, ModelAlias.alias)
    if model_name is not None:
        query = query.where(ModelAlias.model_name == model_name)
    return list(session.scalars(query))
