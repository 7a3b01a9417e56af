"""/health: liveness (the process answers) and readiness (the database answers; the broker is
reported)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from sqlalchemy import text

from api.deps import SessionDep, SettingsDep

router = APIRouter(tags=["health"])


@router.get("/health")
def live() -> dict:
    return {"status": "ok"}


@router.get("/health/ready")
def ready(session: SessionDep, settings: SettingsDep, request: Request) -> dict:
    """Ready when the database answers (the system of record). The broker is reported: without
    it tickets are still accepted and the sweep wakes the workers once it is back."""
    session.execute(text("SELECT 1"))
    ping = getattr(request.app.state.dispatcher, "ping", None)
    broker = None if ping is None else ("reachable" if ping() else "unreachable")
    return {
        "status": "degraded" if broker == "unreachable" else "ready",
        "database": session.get_bind().dialect.name,
        "broker": broker or "none (in-process worker)",
        "embedded": settings.embedded,
    }
