"""Dependencies as named Annotated aliases, so endpoints read like typed functions."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterator
from typing import Annotated

from fastapi import Depends, Request, Security
from fastapi.security import APIKeyHeader
from sqlalchemy.orm import Session

from domain.db import Database
from domain.dispatch import wake_after_commit
from domain.errors import Forbidden
from domain.keys.service import Principal, authenticate
from domain.settings import Settings

api_key_header = APIKeyHeader(name="X-API-Key", auto_error=False)


# Dependencies that do no I/O are `async def`: FastAPI runs a plain `def` dependency in its
# thread pool, a hop that cost more than the work on every request (a status poll ran five).
async def get_settings(request: Request) -> Settings:
    return request.app.state.settings


async def get_database(request: Request) -> Database:
    return request.app.state.database


def get_session(request: Request) -> Iterator[Session]:
    """The request owns the transaction: commit when the endpoint returns, roll back if it
    raises, and only then wake the workers for the jobs it created."""
    database: Database = request.app.state.database
    with database.sessions() as session:
        with session.begin():
            yield session
        wake_after_commit(session, request.app.state.dispatcher)


SettingsDep = Annotated[Settings, Depends(get_settings)]
DatabaseDep = Annotated[Database, Depends(get_database)]
# scope="function": committed before the response is sent, so a client's next call sees it.
SessionDep = Annotated[Session, Depends(get_session, scope="function")]


def get_principal(
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    token: str | None = Security(api_key_header),
) -> Principal:
    principal = authenticate(session, settings.secret_key.get_secret_value(), token)
    request.app.state.rate_limiter.hit(str(principal.key_id))
    return principal


PrincipalDep = Annotated[Principal, Depends(get_principal)]


def require(*roles: str) -> Callable[[Principal], Awaitable[Principal]]:
    async def check(principal: PrincipalDep) -> Principal:  # no I/O: on the event loop
        if principal.role not in roles:
            raise Forbidden("role_needs", role=principal.role, roles=list(roles))
        return principal

    return check


Requester = Annotated[Principal, Depends(require("requester", "admin"))]
AnyRole = Annotated[Principal, Depends(require("requester", "operator", "auditor", "admin"))]
Canceller = Annotated[Principal, Depends(require("requester", "operator", "admin"))]
Staff = Annotated[Principal, Depends(require("operator", "auditor", "admin"))]
Operator = Annotated[Principal, Depends(require("operator", "admin"))]
Auditor = Annotated[Principal, Depends(require("auditor", "admin"))]
Admin = Annotated[Principal, Depends(require("admin"))]
