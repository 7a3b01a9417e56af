"""The model registry: register a base model, add versions, move the `production` alias
(publish, rollback), each move an audit event. Files on disk live in worker/registry.py."""

from __future__ import annotations

import re
import uuid
from pathlib import Path

from sqlalchemy.orm import Session

from domain.audit.service import record_event
from domain.choices import BUILTIN_MODEL_NAMES
from domain.errors import Conflict, InvalidInput, NotFound
from domain.tickets import repository as requests_repository
from domain.tickets.lifecycle import transition
from domain.versions import repository
from models import ModelAlias, ModelVersion, utcnow

PRODUCTION = "production"
HUB_ID = re.compile(r"[A-Za-z0-9][\w.-]*/[\w.-]+")  # owner/name on the Hugging Face hub


def check_spec(spec: str) -> None:
    """A spec the engine can resolve (worker.engine.models.resolve_spec): a built-in name, a
    local folder or .gguf file, or a hub id. Refused at registration, not at the first job."""
    if spec in BUILTIN_MODEL_NAMES or Path(spec).expanduser().exists() or HUB_ID.fullmatch(spec):
        return
    raise InvalidInput("bad_model_spec", spec=spec, builtins=list(BUILTIN_MODEL_NAMES))


def require_model(session: Session, name: str) -> ModelVersion:
    """The version serving `name` now; 422 when no such model is registered (a name given in
    a request body, such as a ticket's model)."""
    serving = repository.alias(session, name, PRODUCTION)
    if serving is None:
        raise InvalidInput("unknown_model", name=name)
    return repository.version(session, serving.version_id)


def model_at_path(session: Session, name: str) -> ModelVersion:
    """`require_model` for a model named in the URL: 404 when there is none, as for a
    missing version of it."""
    try:
        return require_model(session, name)
    except InvalidInput as error:
        raise NotFound(error.code, **error.params) from None


def get_version(session: Session, name: str, number: int) -> ModelVersion:
    version = repository.version_by_number(session, name, number)
    if version is None:
        raise NotFound("no_such_version", name=name, number=number)
    return version


def register_model(
    session: Session, name: str, spec: str, *, actor: str, artifact_hash: str | None
) -> ModelVersion:
    check_spec(spec)
    if repository.alias(session, name, PRODUCTION) is not None:
        raise Conflict("model_registered", name=name)
    base = add_version(
        session, name, parent=None, status="published", kind="base", spec=spec,
        method=None, adapter=None, ticket_ids=[], artifact_hash=artifact_hash, evaluation={},
        created_by=actor,
    )  # fmt: skip
    _move_alias(session, name, base, actor=actor, reason="registered")
    return base


def add_version(
    session: Session,
    model_name: str,
    *,
    parent: ModelVersion | None,
    status: str,
    kind: str,
    spec: str,
    method: str | None,
    adapter: str | None,
    ticket_ids: list[str],
    artifact_hash: str | None,
    evaluation: dict,
    created_by: str,
    number: int | None = None,
) -> ModelVersion:
    """A new version row; `number` is the one the caller already named its artifact folder
    after (inside the same transaction), else the next free one."""
    version = ModelVersion(
        model_name=model_name,
        number=number if number is not None else repository.next_number(session, model_name),
        parent_id=parent.id if parent else None,
        status=status,
        kind=kind,
        spec=spec,
        method=method,
        adapter=adapter,
        ticket_ids=ticket_ids,
        artifact_hash=artifact_hash,
        evaluation=evaluation,
        created_by=created_by,
    )
    repository.add(session, version)
    record_event(
        session,
        "model.version_created",
        actor=created_by,
        data={
            "model": model_name,
            "version": version.number,
            "version_id": str(version.id),
            "parent": parent.number if parent else None,
            "status": status,
            "kind": kind,
            "method": method,
            "adapter": adapter,
            "tickets": ticket_ids,
            "artifact_hash": artifact_hash,
        },
    )
    return version


def _move_alias(
    session: Session,
    model_name: str,
    target: ModelVersion,
    *,
    actor: str,
    reason: str,
    data: dict | None = None,
) -> None:
    current = repository.alias(session, model_name, PRODUCTION, for_update=True)
    previous = repository.version(session, current.version_id) if current else None
    if current is None:
        repository.add(
            session, ModelAlias(model_name=model_name, alias=PRODUCTION, version_id=target.id)
        )
    else:
        current.version_id, current.updated_at = target.id, utcnow()
    record_event(
        session,
        "model.alias_moved",
        actor=actor,
        data={
            "model": model_name,
            "alias": PRODUCTION,
            "from_version": previous.number if previous else None,
            "to_version": target.number,
            "reason": reason,
            **(data or {}),
        },
    )


def publish_version(session: Session, version: ModelVersion, *, actor: str) -> None:
    """Serve `version`, refused unless it was built on the version serving now (a later ticket
    may have moved production meanwhile; publishing would silently drop its forgetting)."""
    serving = require_model(session, version.model_name)
    if version.parent_id != serving.id:
        raise Conflict("built_on_other_version", number=version.number,
                       name=version.model_name, serving=serving.number)  # fmt: skip
    version.status = "published"
    _move_alias(
        session,
        version.model_name,
        version,
        actor=actor,
        reason="published",
        data={"tickets": version.ticket_ids},
    )


def publish_candidate(
    session: Session, version_id: uuid.UUID | None, *, actor: str
) -> ModelVersion:
    version = repository.version(session, version_id) if version_id else None
    if version is None or version.status != "candidate":
        raise Conflict("no_candidate_version")
    publish_version(session, version, actor=actor)
    return version


def reject_candidate(session: Session, version_id: uuid.UUID, *, actor: str) -> None:
    version = repository.version(session, version_id)
    if version is not None and version.status == "candidate":
        version.status = "rejected"
        record_event(
            session,
            "model.version_rejected",
            actor=actor,
            data={"model": version.model_name, "version": version.number},
        )


def rollback(
    session: Session, name: str, *, to_number: int | None, reason: str, actor: str
) -> ModelVersion:
    """Point production back at an earlier published version (default: the serving one's
    parent). The event lists the tickets whose forgetting the rollback undoes."""
    serving = model_at_path(session, name)
    target = (
        get_version(session, name, to_number)
        if to_number
        else repository.version(session, serving.parent_id)
        if serving.parent_id
        else None
    )
    if target is None:
        raise Conflict("no_parent", number=serving.number, name=name)
    if target.status != "published" or target.number >= serving.number:
        raise Conflict("not_earlier", number=target.number)
    undone = [
        t
        for v in repository.versions(session, name)
        if target.number < v.number <= serving.number and v.status == "published"
        for t in v.ticket_ids
    ]
    _move_alias(
        session,
        name,
        target,
        actor=actor,
        reason=reason,
        data={"rollback": True, "tickets_undone": undone},
    )
    for ticket in requests_repository.by_ids(session, [uuid.UUID(t) for t in undone]):
        if ticket.state == "published":
            ticket.decision_reason = (
                f"version {ticket_version(session, ticket)} of {name!r}, which served this "
                f"deletion, was rolled back to version {target.number}: the data may be answered "
                "again; file the request again"
            )
            transition(session, ticket, "undone", actor=actor,
                       data={"rolled_back_to": target.number})  # fmt: skip
    return target


def ticket_version(session: Session, ticket) -> int | None:
    version = repository.version(session, ticket.version_id) if ticket.version_id else None
    return version.number if version else None


def list_models(session: Session) -> list[tuple[str, ModelVersion]]:
    return [
        (a.model_name, repository.version(session, a.version_id))
        for a in repository.aliases(session)
        if a.alias == PRODUCTION
    ]


def list_versions(session: Session, name: str) -> list[ModelVersion]:
    model_at_path(session, name)
    return repository.versions(session, name)
