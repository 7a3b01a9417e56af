import hashlib
import json
import uuid

import pytest
from sqlalchemy import select, text

from domain.records import hash_records, parse_records
from models import RequestItem
from tests.service.conftest import auth, ticket_body
from worker.inprocess import run_pending_jobs

pytestmark = pytest.mark.service


def test_submit_returns_the_ticket_with_a_gdpr_deadline_and_wakes_a_worker(api):
    response = api.post("/v1/deletion-requests", json=ticket_body(), headers=auth(api, "requester"))
    assert response.status_code == 201, response.text
    ticket = response.json()
    assert ticket["state"] == "received" and ticket["record_count"] == 1
    assert ticket["due_at"][:10] > ticket["received_at"][:10]
    assert "subject_hash" not in ticket  # requesters do not see internals
    assert len(api.dispatcher.woken) == 1


def test_subject_id_is_stored_only_as_a_keyed_hash(api):
    ticket = api.post(
        "/v1/deletion-requests", json=ticket_body(), headers=auth(api, "requester")
    ).json()
    detail = api.get(f"/v1/deletion-requests/{ticket['id']}", headers=auth(api, "auditor")).json()
    assert len(detail["subject_hash"]) == 64 and "customer-42" not in str(detail)


def test_each_record_is_stored_with_a_keyed_hash_not_a_plain_one(api):

    body = ticket_body()
    api.post("/v1/deletion-requests", json=body, headers=auth(api, "requester"))
    record = parse_records(body["records"], "records")[0].to_dict()
    plain = hashlib.sha256(json.dumps(record, sort_keys=True, default=str).encode()).hexdigest()
    with api.database.transaction() as session:
        stored = session.scalars(select(RequestItem.record_hash)).all()
    # A guessed record cannot be confirmed offline from a database copy.
    assert len(stored) == 1 and len(stored[0]) == 64 and stored[0] != plain


def test_records_hash_is_keyed_and_the_published_run_records_the_same_value(api, settings):
    body = ticket_body()
    ticket = api.post("/v1/deletion-requests", json=body, headers=auth(api, "requester")).json()
    plain = hash_records(parse_records(body["records"], "records"))
    # A guessed record set cannot be confirmed offline from the ticket (before: plain sha256).
    assert ticket["records_hash"] != plain and len(ticket["records_hash"]) == 64
    outcomes = [outcome for _, outcome in run_pending_jobs(settings, api.database)]
    assert outcomes[-1] == "published"
    run = json.loads((settings.artifacts_dir / "tiny" / "v2" / "run.json").read_text())
    # run.json's data.forget: what an auditor matches a ticket with its unlearning run by.
    assert run["data"]["forget"] == ticket["records_hash"]
    stored = [p.read_bytes() for p in settings.artifacts_dir.rglob("*") if p.is_file()]
    assert not any(plain.encode() in content for content in stored)


def test_same_idempotency_key_returns_the_same_ticket(api):
    headers = {**auth(api, "requester"), "Idempotency-Key": "retry-1"}
    first = api.post("/v1/deletion-requests", json=ticket_body(), headers=headers)
    second = api.post("/v1/deletion-requests", json=ticket_body(), headers=headers)
    assert (first.status_code, second.status_code) == (201, 200)
    assert first.json()["id"] == second.json()["id"]
    other_body = api.post("/v1/deletion-requests", json=ticket_body(reason="x"), headers=headers)
    assert other_body.status_code == 409
    listed = api.get("/v1/deletion-requests", headers=auth(api, "requester")).json()
    assert listed["count"] == 1


def test_invalid_record_is_422_naming_record_and_field(api):
    records = [{"question": "q", "answer": "a"}, {"question": "q2", "answer": 7}]
    response = api.post(
        "/v1/deletion-requests", json=ticket_body(records=records), headers=auth(api, "requester")
    )
    assert response.status_code == 422
    assert response.json()["index"] == 1 and response.json()["field"] == "answer"


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        (ticket_body(colour="red"), "extra"),
        (ticket_body(records=[{"question": "q", "answer": "a", "secret": 1}]), "secret"),
        (ticket_body(model="nope"), "unknown model"),
        (ticket_body(legal_basis="because"), "legal_basis"),
        # Unknown engine names are refused at the door with the choices, not in a worker.
        (ticket_body(options={"method": "sgd"}), "'graddiff'"),
        (ticket_body(options={"adapter": "qlora"}), "'grun'"),
    ],
)
def test_bad_bodies_are_rejected_with_a_reason(api, body, problem):
    response = api.post("/v1/deletion-requests", json=body, headers=auth(api, "requester"))
    assert response.status_code == 422
    assert problem in response.text


def test_upload_jsonl_file(api):
    import json

    metadata = {k: v for k, v in ticket_body().items() if k != "records"}
    lines = "\n".join(json.dumps(r) for r in ticket_body()["records"] * 3)
    response = api.post(
        "/v1/deletion-requests/upload",
        data={"metadata": json.dumps(metadata)},
        files={"records": ("forget.jsonl", lines.encode(), "application/jsonl")},
        headers=auth(api, "requester"),
    )
    assert response.status_code == 201, response.text
    assert response.json()["record_count"] == 3
    bad = api.post(
        "/v1/deletion-requests/upload",
        data={"metadata": json.dumps(metadata)},
        files={"records": ("forget.jsonl", b'{"question": "q", "answer": "a"}\n{oops', "x")},
        headers=auth(api, "requester"),
    )
    assert bad.status_code == 422 and "line 2" in bad.json()["detail"]


def test_another_organisations_ticket_is_404(api):
    ticket = api.post(
        "/v1/deletion-requests", json=ticket_body(), headers=auth(api, "requester")
    ).json()
    for path in ("", "/events"):
        response = api.get(
            f"/v1/deletion-requests/{ticket['id']}{path}", headers=auth(api, "other_requester")
        )
        assert response.status_code == 404
    cancel = api.post(
        f"/v1/deletion-requests/{ticket['id']}/cancel", headers=auth(api, "other_requester")
    )
    assert cancel.status_code == 404
    listed = api.get("/v1/deletion-requests", headers=auth(api, "other_requester")).json()
    assert listed["count"] == 0
    assert (
        api.get(f"/v1/deletion-requests/{uuid.uuid4()}", headers=auth(api, "requester")).status_code
        == 404
    )


def test_cancel_closes_the_ticket_and_destroys_its_data_key(api):
    ticket = api.post(
        "/v1/deletion-requests", json=ticket_body(), headers=auth(api, "requester")
    ).json()
    response = api.post(
        f"/v1/deletion-requests/{ticket['id']}/cancel", headers=auth(api, "requester")
    )
    assert response.json()["state"] == "cancelled"
    detail = api.get(f"/v1/deletion-requests/{ticket['id']}", headers=auth(api, "operator")).json()
    assert detail["data_key_destroyed"] and detail["jobs"][0]["status"] == "cancelled"
    events = api.get(
        f"/v1/deletion-requests/{ticket['id']}/events", headers=auth(api, "requester")
    ).json()
    assert [e["event_type"] for e in events["data"]] == [
        "ticket.received",
        "ticket.cancelled",
        "ticket.data_key_destroyed",
    ]
    again = api.post(f"/v1/deletion-requests/{ticket['id']}/cancel", headers=auth(api, "requester"))
    assert again.status_code == 409


def test_gdpr_deadline_extends_once_with_reason_and_notice(api):
    ticket = api.post(
        "/v1/deletion-requests", json=ticket_body(), headers=auth(api, "requester")
    ).json()
    body = {"reason": "complex request", "notice_sent_at": "2026-01-05T10:00:00Z"}
    path = f"/v1/deletion-requests/{ticket['id']}/extend"
    extended = api.post(path, json=body, headers=auth(api, "operator")).json()
    assert (
        extended["due_at"] > ticket["due_at"] and extended["extension_reason"] == "complex request"
    )
    assert api.post(path, json=body, headers=auth(api, "operator")).status_code == 409
    # While open, the free text reads in clear through the API only: the rows hold tokens under
    # the ticket's data key (before: plaintext beside the encrypted records).
    with api.database.transaction() as session:
        row = session.execute(text("SELECT * FROM deletion_requests")).mappings().one()
    stored = " ".join(str(value) for value in row.values())
    assert "erasure request by email" not in stored and "complex request" not in stored
    assert ticket["reason"] == "erasure request by email"
    # Closed (here: cancelled), the reason goes with the data key; the notice date stays.
    cancel = f"/v1/deletion-requests/{ticket['id']}/cancel"
    closed = api.post(cancel, headers=auth(api, "requester")).json()
    assert closed["extension_reason"] is None and closed["extension_notice_at"] is not None
    assert api.post(path, json=body, headers=auth(api, "operator")).status_code == 409


def test_missing_or_revoked_key_is_401(api):
    assert api.get("/v1/deletion-requests").status_code == 401
    assert api.get("/v1/deletion-requests", headers={"X-API-Key": "obl_x_y"}).status_code == 401
    keys = api.get("/v1/keys", headers=auth(api, "admin")).json()["data"]
    requester = next(k for k in keys if k["name"] == "requester")
    assert api.delete(f"/v1/keys/{requester['id']}", headers=auth(api, "admin")).status_code == 200
    assert api.get("/v1/deletion-requests", headers=auth(api, "requester")).status_code == 401


def test_audit_export_streams_jsonl_within_a_time_range(api):
    ticket = api.post(
        "/v1/deletion-requests", json=ticket_body(), headers=auth(api, "requester")
    ).json()
    headers = auth(api, "auditor")
    lines = api.get("/v1/audit/events?format=jsonl", headers=headers).text.splitlines()
    import json

    events = [json.loads(line) for line in lines]
    assert [e["seq"] for e in events] == list(range(1, len(events) + 1))
    assert events[-1]["request_id"] == ticket["id"] and "customer-42" not in "".join(lines)
    later = api.get("/v1/audit/events", params={"since": "2999-01-01T00:00:00Z"}, headers=headers)
    assert later.json()["count"] == 0


def test_list_filters_by_state_and_model(api):
    api.post("/v1/deletion-requests", json=ticket_body(), headers=auth(api, "requester"))
    headers = auth(api, "operator")
    assert api.get("/v1/deletion-requests?state=received", headers=headers).json()["count"] == 1
    assert api.get("/v1/deletion-requests?state=published", headers=headers).json()["count"] == 0
    assert api.get("/v1/deletion-requests?model=other", headers=headers).json()["count"] == 0
    assert api.get("/v1/deletion-requests?state=bogus", headers=headers).status_code == 422


def test_a_list_page_asks_the_database_a_fixed_number_of_times(api):
    """A page of tickets reads their jobs and queue places in bulk, not one query per ticket,
    and each ticket still shows its own jobs and place in the queue."""
    from sqlalchemy import event

    statements, engine = [], api.app.state.database.engine  # the app's own engine

    def count(*_):
        statements.append(1)

    def list_page(role):
        statements.clear()
        event.listen(engine, "before_cursor_execute", count)
        try:
            page = api.get("/v1/deletion-requests", headers=auth(api, role)).json()
        finally:
            event.remove(engine, "before_cursor_execute", count)
        return page, len(statements)

    for subject in ("a", "b"):
        api.post(
            "/v1/deletion-requests",
            json=ticket_body(subject_id=subject),
            headers=auth(api, "requester"),
        )
    small = {role: list_page(role)[1] for role in ("requester", "operator")}
    for subject in ("c", "d", "e", "f"):
        api.post(
            "/v1/deletion-requests",
            json=ticket_body(subject_id=subject),
            headers=auth(api, "requester"),
        )
    for role in ("requester", "operator"):
        page, statements_used = list_page(role)
        assert page["count"] == 6 and statements_used == small[role] > 0
        assert sorted(t["queue_position"] for t in page["data"]) == [1, 2, 3, 4, 5, 6]
    assert all(len(t["jobs"]) == 1 for t in page["data"])  # the operator's view


def test_concurrent_retries_with_one_idempotency_key_file_one_ticket(api, settings):
    import threading

    from domain.keys.service import authenticate
    from domain.tickets.commands import TicketCreate
    from domain.tickets.service import submit_ticket

    with api.database.transaction() as session:
        principal = authenticate(session, "test-secret-key", api.keys["requester"])
    barrier, ids = threading.Barrier(2), []

    def submit():
        with api.database.transaction() as session:
            barrier.wait()
            ticket, _ = submit_ticket(
                session, settings, principal, TicketCreate(**ticket_body()), "same"
            )
            ids.append(ticket.id)

    threads = [threading.Thread(target=submit) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(ids) == 2 and ids[0] == ids[1]
