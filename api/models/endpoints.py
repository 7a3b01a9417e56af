"""/v1/models: the registry, rollback, and spot-check generation for auditors."""

from __future__ import annotations

from fastapi import APIRouter, Request, status

from api.deps import Admin, AnyRole, Operator, SessionDep, Staff
from api.errors import ERROR_RESPONSES
from api.models.schemas import (
    Answers,
    GenerateBody,
    ModelName,
    ModelNamesPublic,
    ModelPublic,
    ModelRegister,
    ModelsPublic,
    Rollback,
    VersionPublic,
    VersionsPublic,
)
from api.validation import VersionNumber
from domain.errors import Conflict, UserError
from domain.versions import service
from worker.registry import base_artifact_hash

router = APIRouter(prefix="/v1/models", tags=["models"], responses=ERROR_RESPONSES)


@router.get("", response_model=ModelsPublic | ModelNamesPublic)
def list_models(session: SessionDep, principal: AnyRole) -> ModelsPublic | ModelNamesPublic:
    """Staff see each model's serving version; requesters the names they may file against."""
    models = service.list_models(session)
    if principal.role == "requester":
        names = [ModelName(name=name, production_version=v.number) for name, v in models]
        return ModelNamesPublic(data=names, count=len(names))
    rows = [
        ModelPublic(name=name, production=VersionPublic.model_validate(v)) for name, v in models
    ]
    return ModelsPublic(data=rows, count=len(rows))


@router.post("", response_model=VersionPublic, status_code=status.HTTP_201_CREATED)
def register_model(body: ModelRegister, session: SessionDep, principal: Admin) -> VersionPublic:
    version = service.register_model(
        session,
        body.name,
        body.spec,
        actor=principal.actor,
        artifact_hash=base_artifact_hash(body.spec),
    )
    return VersionPublic.model_validate(version)


@router.get("/{name}/versions", response_model=VersionsPublic)
def list_versions(name: str, session: SessionDep, _: Staff) -> VersionsPublic:
    rows = [VersionPublic.model_validate(v) for v in service.list_versions(session, name)]
    return VersionsPublic(data=rows, count=len(rows))


@router.get("/{name}/versions/{number}", response_model=VersionPublic)
def get_version(name: str, number: VersionNumber, session: SessionDep, _: Staff) -> VersionPublic:
    return VersionPublic.model_validate(service.get_version(session, name, number))


@router.post("/{name}/rollback", response_model=VersionPublic)
def rollback(name: str, body: Rollback, session: SessionDep, principal: Operator) -> VersionPublic:
    target = service.rollback(
        session, name, to_number=body.to_version, reason=body.reason, actor=principal.actor
    )
    return VersionPublic.model_validate(target)


@router.post("/{name}/versions/{number}/generate", response_model=Answers)
def generate(
    name: str,
    number: VersionNumber,
    body: GenerateBody,
    request: Request,
    session: SessionDep,
    _: Staff,
) -> Answers:
    """Greedy answers of one version, so an auditor can spot-check what it says."""
    spec = service.get_version(session, name, number).spec
    # The request's transaction ends here, not after generating: on SQLite it holds the one
    # write lock, which the worker's progress and heartbeats need meanwhile (and a second
    # transaction of this same request waited 30 s on it, then failed: issue 18).
    session.commit()
    try:
        answers = request.app.state.models.generate(spec, body.questions, body.max_new_tokens)
    except UserError as error:  # its files were moved or deleted since it was registered
        raise Conflict("version_unloadable", number=number, name=name, reason=str(error)) from error
    return Answers(model=name, version=number, answers=answers)
