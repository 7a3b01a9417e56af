"""/health: liveness (the process answers) and readiness (the database answers)."""

from __future__ import annotations

from fastapi import APIRouter
from sqlalchemy import text

from api.deps import SessionDep, SettingsDep

router = APIRouter(tags=["health"])


@router.get("/health")
def live() -> dict:
    return {"status": "ok"}


@router.get("/health/ready")
def ready(session: SessionDep, settings: SettingsDep) -> dict:
    session.execute(text("SELECT 1"))
    return {
        "status": "ready",
        "database": session.get_bind().dialect.name,
        "embedded": settings.embedded,
    }
