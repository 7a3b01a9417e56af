"""SQL of API keys and organisations."""

from __future__ import annotations

import uuid

from sqlalchemy import bindparam, func, select
from sqlalchemy.orm import Session

from models import ApiKey, Organisation


def organisation_by_name(session: Session, name: str) -> Organisation | None:
    return session.scalars(select(Organisation).where(Organisation.name == name)).first()


def add(session: Session, row) -> None:
    session.add(row)
    session.flush()


# Built once, the prefix a parameter: every request authenticates (issue 18).
_BY_PREFIX = select(ApiKey).where(ApiKey.prefix == bindparam("prefix"))


def key_by_prefix(session: Session, prefix: str) -> ApiKey | None:
    return session.scalars(_BY_PREFIX, {"prefix": prefix}).first()


def key_by_id(session: Session, key_id: uuid.UUID) -> ApiKey | None:
    return session.get(ApiKey, key_id)


def active_admin_count(session: Session) -> int:
    query = select(func.count()).where(ApiKey.role == "admin", ApiKey.revoked_at.is_(None))
    return session.scalar(query.select_from(ApiKey)) or 0


def list_keys(session: Session) -> list[ApiKey]:
    return list(session.scalars(select(ApiKey).order_by(ApiKey.created_at)))


def organisation_names(session: Session, ids: set[uuid.UUID]) -> dict[uuid.UUID, str]:
    rows = session.execute(
        select(Organisation.id, Organisation.name).where(Organisation.id.in_(ids))
    )
    return dict(rows.all())
