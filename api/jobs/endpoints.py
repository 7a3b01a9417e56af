"""/v1/jobs: what the workers are doing, for operations."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query
from pydantic import BaseModel

from api.deps import Operator, SessionDep
from api.errors import ERROR_RESPONSES
from api.requests.schemas import JobPublic
from api.validation import Offset
from domain.jobs import repository

router = APIRouter(prefix="/v1/jobs", tags=["jobs"], responses=ERROR_RESPONSES)


class JobsPublic(BaseModel):
    data: list[JobPublic]
    count: int


@router.get("", response_model=JobsPublic)
def list_jobs(
    session: SessionDep,
    _: Operator,
    status: str | None = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    offset: Offset = 0,
) -> JobsPublic:
    jobs, total = repository.list_jobs(session, status, limit, offset)
    return JobsPublic(data=[JobPublic.model_validate(j) for j in jobs], count=total)
