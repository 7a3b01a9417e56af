"""The service without a server: SQLite under the cache folder and jobs run in this process,
through the same services, state machine, audit chain and pipeline as the deployed service.
`obliviate demo` and notebooks use it:

    service = EmbeddedService.open()
    service.register_model("demo", "/path/to/model")
    ticket_id = service.submit("demo", records, subject_id="cust-0042")
    final = service.run_until_closed(ticket_id, on_update=print)
    service.events(ticket_id); service.versions("demo"); service.verify()
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from api.audit.schemas import EventPublic
from api.models.schemas import VersionPublic
from api.requests.endpoints import present
from domain.audit.service import events_for_request, verify_chain
from domain.db import Database, upgrade_service_database
from domain.errors import InvalidInput
from domain.keys import repository as keys_repository
from domain.keys.service import Principal, create_key, get_or_create_organisation
from domain.settings import Settings
from domain.tickets import service as tickets
from domain.tickets.commands import TicketCreate, TicketOptions
from domain.tickets.lifecycle import CLOSED
from domain.versions import service as registry_service

EMBEDDED_ORGANISATION = "embedded"


@dataclass
class EmbeddedService:
    settings: Settings
    database: Database

    @classmethod
    def open(cls, settings: Settings | None = None, **overrides) -> EmbeddedService:
        """Migrate (idempotent) and open the database of `settings` (default: the embedded
        SQLite file); keyword overrides are Settings fields, e.g. policies_dir=..."""
        settings = settings or Settings(**overrides)
        upgrade_service_database(settings)
        return cls(settings, Database(settings))

    def close(self) -> None:
        self.database.dispose()

    def policy_path(self, model_name: str) -> Path:
        """Where the model's policy TOML is read from (see worker/policy.py for its keys)."""
        return self.settings.policies_dir / f"{model_name}.toml"

    def register_model(self, name: str, spec: str) -> int:
        """Register `spec` as version 1 of `name`; a name already registered is kept as it is.
        Returns the number of the version serving now."""
        from worker.registry import base_artifact_hash

        with self.database.transaction() as session:
            try:
                version = registry_service.require_model(session, name)
            except InvalidInput:  # not registered yet
                version = registry_service.register_model(
                    session, name, spec, actor="embedded", artifact_hash=base_artifact_hash(spec)
                )
            return version.number

    def _principal(self, session, role: str) -> Principal:
        """The embedded caller: one key per role in the `embedded` organisation."""
        organisation = get_or_create_organisation(session, EMBEDDED_ORGANISATION)
        for key in keys_repository.list_keys(session):
            same = key.organisation_id == organisation.id and key.role == role
            if same and key.name == "embedded" and key.revoked_at is None:
                return Principal(key.id, organisation.id, role)
        secret = self.settings.secret_key.get_secret_value()
        key, _ = create_key(
            session, secret, organisation=EMBEDDED_ORGANISATION, role=role, name="embedded",
            actor="embedded",
        )  # fmt: skip
        return Principal(key.id, organisation.id, role)

    def submit(
        self,
        model: str,
        records: list,
        *,
        subject_id: str,
        legal_basis: str = "gdpr_art17",
        jurisdiction: str = "EU",
        requester: str = "obliviate demo",
        reason: str | None = None,
        method: str | None = None,
        adapter: str | None = None,
    ) -> uuid.UUID:
        """File a ticket; `records` are dicts or engine records (QARecord, TextRecord)."""
        rows = [r if isinstance(r, dict) else r.to_dict() for r in records]
        options = TicketOptions(method=method, adapter=adapter) if method or adapter else None
        payload = TicketCreate(
            model=model, subject_id=subject_id, legal_basis=legal_basis, jurisdiction=jurisdiction,
            requester=requester, reason=reason, records=rows, options=options,
        )  # fmt: skip
        with self.database.transaction() as session:
            role = "admin" if options else "requester"
            ticket, _ = tickets.submit_ticket(
                session, self.settings, self._principal(session, role), payload
            )
            return ticket.id

    def run_pending_jobs(self, runner=None) -> list[tuple[uuid.UUID, str]]:
        """Run every job there is (assess, then unlearn) in this thread, to the end."""
        from worker.inprocess import run_pending_jobs

        return run_pending_jobs(self.settings, self.database, runner)

    def run_until_closed(
        self,
        ticket_id: uuid.UUID,
        *,
        on_update: Callable[[dict], None] | None = None,
        runner=None,
        poll_s: float = 0.5,
    ) -> dict:
        """Run the jobs in a background thread and call `on_update(ticket)` whenever the
        ticket's state or progress changes; return the ticket once held or closed."""
        errors: list[BaseException] = []

        def work():
            try:
                self.run_pending_jobs(runner)
            except BaseException as error:  # re-raised in the caller's thread below
                errors.append(error)

        thread = threading.Thread(target=work, name="obliviate-embedded-worker", daemon=True)
        thread.start()
        last = None
        while True:
            alive = thread.is_alive()
            ticket = self.ticket(ticket_id)
            seen = (ticket["state"], ticket["progress"])
            if on_update and seen != last:
                on_update(ticket)
            last = seen
            if not alive:
                break
            time.sleep(poll_s)
        if errors:
            raise errors[0]
        return ticket

    def ticket(self, ticket_id: uuid.UUID) -> dict:
        """The ticket as an operator sees it (state, progress, assessment, evaluation, jobs)."""
        with self.database.transaction() as session:
            principal = Principal(uuid.UUID(int=0), uuid.UUID(int=0), "operator")
            row = tickets.visible_ticket(session, principal, ticket_id)
            detail = present(session, self.settings, principal, row)  # as GET /v1/... gives it
            return {**detail.model_dump(mode="json"), "closed": row.state in CLOSED}

    def approve(self, ticket_id: uuid.UUID, reason: str) -> dict:
        from domain.tickets.commands import Decision

        with self.database.transaction() as session:
            operator = self._principal(session, "operator")
            tickets.approve_ticket(
                session, self.settings, operator, ticket_id, Decision(reason=reason)
            )
        return self.ticket(ticket_id)

    def events(self, ticket_id: uuid.UUID) -> list[dict]:
        with self.database.transaction() as session:
            return [
                EventPublic.model_validate(e).model_dump(mode="json")
                for e in events_for_request(session, ticket_id)
            ]

    def versions(self, model: str) -> list[dict]:
        with self.database.transaction() as session:
            return [
                VersionPublic.model_validate(v).model_dump(mode="json")
                for v in registry_service.list_versions(session, model)
            ]

    def production_spec(self, model: str) -> str:
        """What to load (`load_model(spec)`) to get the version serving now."""
        with self.database.transaction() as session:
            return registry_service.require_model(session, model).spec

    def ticket_version_spec(self, ticket_id: uuid.UUID) -> str | None:
        """What to load to get the version made for this ticket (published or held)."""
        with self.database.transaction() as session:
            ticket = tickets.visible_ticket(
                session, self._principal(session, "operator"), ticket_id
            )
            if ticket.version_id is None:
                return None
            return registry_service.repository.version(session, ticket.version_id).spec

    def verify(self) -> dict:
        with self.database.transaction() as session:
            result = verify_chain(session)
        return {
            "ok": result.ok,
            "checked": result.checked,
            "breaches": [b.to_dict() for b in result.breaches],
        }
