"""/v1/deletion-requests: submit, read, cancel, extend, approve/reject, and the ticket's events."""

from __future__ import annotations

import uuid
from typing import Annotated, Literal

from fastapi import APIRouter, File, Form, Header, Query, Response, UploadFile, status
from pydantic import AwareDatetime, ValidationError

from api.audit.schemas import EventsPublic, event_page
from api.deps import AnyRole, Canceller, Operator, Requester, SessionDep, SettingsDep
from api.errors import ERROR_RESPONSES, validation_details
from api.requests.schemas import TicketDetail, TicketPublic, TicketsPublic
from api.requests.uploads import at_line, read_records
from api.validation import Offset
from domain.audit.service import events_for_request
from domain.errors import InvalidInput, PayloadTooLarge
from domain.jobs import repository as jobs_repository
from domain.keys.service import Principal
from domain.tickets import free_text, service
from domain.tickets.commands import Decision, Rerun, TicketCreate, TicketExtend, TicketMetadata
from domain.tickets.lifecycle import STATES
from domain.tickets.repository import TicketFilter

router = APIRouter(
    prefix="/v1/deletion-requests", tags=["deletion requests"], responses=ERROR_RESPONSES
)
IdempotencyKey = Annotated[str | None, Header(alias="Idempotency-Key", max_length=200)]


def present_all(
    session, settings, principal: Principal, tickets: list
) -> list[TicketPublic | TicketDetail]:
    """Requesters get the public view; staff also get measurements, hashes and jobs. A fixed
    number of queries however many tickets: their jobs and queue places are read in bulk."""
    ids = [ticket.id for ticket in tickets]
    jobs = jobs_repository.for_requests(session, ids) if principal.role != "requester" else {}
    waiting = service.waiting_states(session, tickets)
    views = [
        TicketPublic.model_validate(ticket)
        if principal.role == "requester"
        else TicketDetail.of(ticket, jobs[ticket.id])
        for ticket in tickets
    ]
    return [
        view.model_copy(update=waiting[ticket.id] | free_text.unsealed(settings, ticket))
        for view, ticket in zip(views, tickets, strict=True)
    ]


def present(session, settings, principal: Principal, ticket) -> TicketPublic | TicketDetail:
    return present_all(session, settings, principal, [ticket])[0]


def _submit(session, settings, principal, payload, idempotency_key, response):
    ticket, created = service.submit_ticket(session, settings, principal, payload, idempotency_key)
    response.status_code = status.HTTP_201_CREATED if created else status.HTTP_200_OK
    return present(session, settings, principal, ticket)


@router.post("", response_model=TicketPublic | TicketDetail, status_code=status.HTTP_201_CREATED)
def submit(
    body: TicketCreate,
    response: Response,
    session: SessionDep,
    settings: SettingsDep,
    principal: Requester,
    idempotency_key: IdempotencyKey = None,
):
    """File a deletion request with inline records. A retry with the same Idempotency-Key
    returns the first ticket (200) instead of filing a second one."""
    return _submit(session, settings, principal, body, idempotency_key, response)


@router.post(
    "/upload", response_model=TicketPublic | TicketDetail, status_code=status.HTTP_201_CREATED
)
def submit_upload(
    response: Response,
    session: SessionDep,
    settings: SettingsDep,
    principal: Requester,
    metadata: Annotated[str, Form(description="the TicketMetadata fields as JSON")],
    records: Annotated[
        UploadFile, File(description="JSON Lines (one record per line) or one JSON array, UTF-8")
    ],
    idempotency_key: IdempotencyKey = None,
):
    """File a deletion request whose records come as an uploaded file; errors name its line."""
    filename = records.filename or "records"
    raw = records.file.read(settings.max_upload_bytes + 1)
    if len(raw) > settings.max_upload_bytes:
        raise PayloadTooLarge("file_too_large", source=filename, limit=settings.max_upload_bytes)
    rows, lines = read_records(raw, filename)
    try:
        payload = TicketCreate(
            **TicketMetadata.model_validate_json(metadata).model_dump(), records=rows
        )
    except ValidationError as error:
        raise InvalidInput("invalid_metadata", errors=validation_details(error)) from error
    try:
        return _submit(session, settings, principal, payload, idempotency_key, response)
    except InvalidInput as error:
        raise at_line(error, filename, lines) from error


@router.get("", response_model=TicketsPublic)
def list_requests(
    session: SessionDep,
    settings: SettingsDep,
    principal: AnyRole,
    state: Literal[STATES] | None = None,  # type: ignore[valid-type]
    model: str | None = None,
    since: AwareDatetime | None = None,
    until: AwareDatetime | None = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    offset: Offset = 0,
) -> TicketsPublic:
    where = TicketFilter(state=state, model=model, since=since, until=until)
    tickets, total = service.list_tickets(session, principal, where, limit, offset)
    return TicketsPublic(data=present_all(session, settings, principal, tickets), count=total)


@router.get("/{ticket_id}", response_model=TicketPublic | TicketDetail)
def get_request(
    ticket_id: uuid.UUID, session: SessionDep, settings: SettingsDep, principal: AnyRole
):
    ticket = service.visible_ticket(session, principal, ticket_id)
    return present(session, settings, principal, ticket)


@router.get("/{ticket_id}/events", response_model=EventsPublic)
def request_events(ticket_id: uuid.UUID, session: SessionDep, principal: AnyRole) -> EventsPublic:
    ticket = service.visible_ticket(session, principal, ticket_id)
    return event_page(events_for_request(session, ticket.id))


@router.post("/{ticket_id}/cancel", response_model=TicketPublic | TicketDetail)
def cancel(
    ticket_id: uuid.UUID, session: SessionDep, settings: SettingsDep, principal: Canceller,
    body: Decision | None = None,
):  # fmt: skip
    """Requesters cancel before unlearning starts; operators also stop a running job."""
    reason = body.reason if body else None
    ticket = service.cancel_ticket(session, settings, principal, ticket_id, reason)
    return present(session, settings, principal, ticket)


@router.post("/{ticket_id}/extend", response_model=TicketPublic | TicketDetail)
def extend(
    ticket_id: uuid.UUID,
    body: TicketExtend,
    session: SessionDep,
    settings: SettingsDep,
    principal: Operator,
):
    """Extend the statutory deadline once (GDPR: by two months), with the reason and notice."""
    ticket = service.extend_deadline(session, settings, principal, ticket_id, body)
    return present(session, settings, principal, ticket)


@router.post("/{ticket_id}/approve", response_model=TicketPublic | TicketDetail)
def approve(
    ticket_id: uuid.UUID, body: Decision, session: SessionDep, settings: SettingsDep,
    principal: Operator,
):  # fmt: skip
    """Publish a held result although the policy was not met."""
    ticket = service.approve_ticket(session, settings, principal, ticket_id, body)
    return present(session, settings, principal, ticket)


@router.post("/{ticket_id}/rerun", response_model=TicketPublic | TicketDetail)
def rerun(
    ticket_id: uuid.UUID, body: Rerun, session: SessionDep, settings: SettingsDep,
    principal: Operator,
):  # fmt: skip
    """Unlearn a held ticket again with a larger budget or another method/adapter."""
    ticket = service.rerun_ticket(session, settings, principal, ticket_id, body)
    return present(session, settings, principal, ticket)


@router.post("/{ticket_id}/reject", response_model=TicketPublic | TicketDetail)
def reject(
    ticket_id: uuid.UUID, body: Decision, session: SessionDep, settings: SettingsDep,
    principal: Operator,
):  # fmt: skip
    ticket = service.reject_ticket(session, settings, principal, ticket_id, body)
    return present(session, settings, principal, ticket)
