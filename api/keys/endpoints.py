"""/v1/keys: admins create, list and revoke API keys."""

from __future__ import annotations

import uuid

from fastapi import APIRouter, status

from api.deps import Admin, SessionDep, SettingsDep
from api.errors import ERROR_RESPONSES
from api.keys.schemas import KeyCreate, KeyCreated, KeyPublic, KeysPublic
from domain.keys import service

router = APIRouter(prefix="/v1/keys", tags=["keys"], responses=ERROR_RESPONSES)


def _public(key, organisation: str) -> dict:
    fields = ("id", "role", "name", "prefix", "created_at", "revoked_at")
    return {"organisation": organisation, **{f: getattr(key, f) for f in fields}}


@router.post("", response_model=KeyCreated, status_code=status.HTTP_201_CREATED)
def create_key(
    body: KeyCreate, session: SessionDep, settings: SettingsDep, principal: Admin
) -> KeyCreated:
    key, token = service.create_key(
        session, settings.secret_key.get_secret_value(), organisation=body.organisation,
        role=body.role, name=body.name, actor=principal.actor,
    )  # fmt: skip
    return KeyCreated(**_public(key, body.organisation), key=token)


@router.get("", response_model=KeysPublic)
def list_keys(session: SessionDep, _: Admin) -> KeysPublic:
    rows = [KeyPublic(**_public(key, org)) for key, org in service.list_keys(session)]
    return KeysPublic(data=rows, count=len(rows))


@router.delete("/{key_id}", response_model=KeyPublic)
def revoke_key(key_id: uuid.UUID, session: SessionDep, principal: Admin) -> KeyPublic:
    key, organisation = service.revoke_key(session, key_id, principal.actor)
    return KeyPublic(**_public(key, organisation))
