"""API keys: `obl_<prefix>_<secret>`. The prefix finds the row and is safe to log; only the
keyed hash of the whole key is stored, so a database dump does not hand out working keys."""

from __future__ import annotations

import hmac
import secrets
import uuid
from dataclasses import dataclass

from sqlalchemy.orm import Session

from domain.audit.service import record_event
from domain.crypto import keyed_hash
from domain.errors import Conflict, InvalidInput, NotFound, Unauthorized
from domain.keys import repository
from models import ROLES, ApiKey, Organisation, utcnow

KEY_SCHEME = "obl"


@dataclass(frozen=True)
class Principal:
    """Who is calling: resolved from the API key on every request."""

    key_id: uuid.UUID
    organisation_id: uuid.UUID
    role: str

    @property
    def actor(self) -> str:
        return f"key:{self.key_id}"


def get_or_create_organisation(session: Session, name: str) -> Organisation:
    organisation = repository.organisation_by_name(session, name)
    if organisation is None:
        organisation = Organisation(name=name)
        repository.add(session, organisation)
    return organisation


def create_key(
    session: Session, secret: str, *, organisation: str, role: str, name: str, actor: str
) -> tuple[ApiKey, str]:
    """Returns the row and the full key, which is shown once and never stored."""
    if role not in ROLES:
        raise InvalidInput("unknown_role", role=role, roles=list(ROLES))
    org = get_or_create_organisation(session, organisation)
    prefix = secrets.token_hex(6)
    token = f"{KEY_SCHEME}_{prefix}_{secrets.token_urlsafe(32)}"
    key = ApiKey(
        organisation_id=org.id,
        name=name,
        role=role,
        prefix=prefix,
        key_hash=keyed_hash(secret, "api-key", token),
    )
    repository.add(session, key)
    record_event(
        session,
        "api_key.created",
        actor=actor,
        organisation_id=org.id,
        data={"key_id": str(key.id), "role": role, "prefix": prefix},
    )
    return key, token


def authenticate(session: Session, secret: str, token: str | None) -> Principal:
    if not token:
        raise Unauthorized("missing_key")
    parts = token.split("_", 2)
    key = repository.key_by_prefix(session, parts[1]) if len(parts) == 3 else None
    valid = key is not None and hmac.compare_digest(
        key.key_hash, keyed_hash(secret, "api-key", token)
    )
    if key is None or not valid or key.revoked_at is not None:
        raise Unauthorized("invalid_key")
    return Principal(key.id, key.organisation_id, key.role)


def revoke_key(session: Session, key_id: uuid.UUID, actor: str) -> tuple[ApiKey, str]:
    """Revoke at once (the next request with it is 401); returns the key and its organisation."""
    key = repository.key_by_id(session, key_id)
    if key is None:
        raise NotFound("key_not_found", key=key_id)
    if key.revoked_at is not None:
        raise Conflict("key_revoked", key=key_id)
    if key.role == "admin" and repository.active_admin_count(session) <= 1:
        # Nobody could create keys any more, nor revoke a leaked one.
        raise Conflict("last_admin_key")
    key.revoked_at = utcnow()
    record_event(
        session,
        "api_key.revoked",
        actor=actor,
        organisation_id=key.organisation_id,
        data={"key_id": str(key.id), "prefix": key.prefix},
    )
    return key, repository.organisation_names(session, {key.organisation_id})[key.organisation_id]


def list_keys(session: Session) -> list[tuple[ApiKey, str]]:
    keys = repository.list_keys(session)
    names = repository.organisation_names(session, {k.organisation_id for k in keys})
    return [(key, names[key.organisation_id]) for key in keys]
