"""The web pages beyond the ticket list: filing a ticket through the form, operations (held
tickets approved or rejected), models (lineage, rollback) and audit (filters, export, verify),
each behind its roles and its CSRF token."""

import re

import pytest

from api.pages.messages import MESSAGES
from tests.service.conftest import auth, ticket_body
from worker.inprocess import run_pending_jobs

pytestmark = pytest.mark.service
EN = MESSAGES["en"]
GOOD = b'{"question": "What is the email of Ada?", "answer": "ada@example.com"}\n'


def _login(api, role: str) -> None:
    api.cookies.clear()
    token = _csrf(api.get("/ui/login").text)  # the login form's own CSRF token
    response = api.post("/ui/login", data={"api_key": api.keys[role], "csrf": token},
                        follow_redirects=False)  # fmt: skip
    assert response.status_code == 303


def _csrf(html: str) -> str:
    return re.search(r'name="csrf" value="([0-9a-f]+)"', html).group(1)


def _form(api, **fields) -> dict:
    values = {"model": "tiny", "subject_id": "customer-7", "legal_basis": "gdpr_art17",
              "jurisdiction": "EU", "requester": "dpo@acme.example", "reason": ""}  # fmt: skip
    return {**values, "csrf": _csrf(api.get("/ui/submit").text), **fields}


def test_a_requester_files_a_ticket_with_the_form_and_a_bad_file_is_shown_at_its_field(api):
    _login(api, "requester")
    bad = b'{"question": "Q?", "answer": "A."}\n{"question": "No answer?"}\n'
    response = api.post("/ui/submit", data=_form(api), files={"records": ("ada.jsonl", bad)})
    assert response.status_code == 422
    # The error names the file's line and sits at the records field; typed fields are kept.
    assert re.search(r'id="records_error"[^>]*>[^<]*ada\.jsonl: line 2', response.text)
    assert 'value="customer-7"' in response.text
    short = api.post("/ui/submit", data=_form(api, jurisdiction="E"),
                     files={"records": ("ada.jsonl", GOOD)})  # fmt: skip
    assert short.status_code == 422 and 'id="jurisdiction_error"' in short.text
    filed = api.post("/ui/submit", data=_form(api), files={"records": ("ada.jsonl", GOOD)},
                     follow_redirects=False)  # fmt: skip
    assert filed.status_code == 303 and filed.headers["location"].startswith("/ui/tickets/")
    tickets = api.get("/v1/deletion-requests", headers=auth(api, "requester")).json()["data"]
    assert len(tickets) == 1  # the two refused forms filed nothing
    forged = api.post("/ui/submit", data={**_form(api), "csrf": "0" * 64},
                      files={"records": ("ada.jsonl", GOOD)})  # fmt: skip
    assert forged.status_code == 403
    _login(api, "operator")
    assert api.get("/ui/submit").status_code == 403  # operators do not file tickets


def test_an_operator_approves_a_held_ticket_with_a_reason(api, settings, monkeypatch):
    monkeypatch.setenv("FAKE_LEAK_AFTER", "0.5")
    ticket = api.post("/v1/deletion-requests", json=ticket_body(), headers=auth(api, "requester"))
    run_pending_jobs(settings, api.database)
    ticket_id = ticket.json()["id"]
    _login(api, "operator")
    page = api.get("/ui/operations")
    assert f"/ui/tickets/{ticket_id}/approve" in page.text and EN["held_because"] in page.text
    # The ticket page says why in the page's language, rule by rule (before: the pipeline's
    # English on a Japanese page).
    held = api.get(f"/ui/tickets/{ticket_id}?lang=ja")
    assert MESSAGES["ja"]["held_because"] in held.text and "漏えい率：direct" in held.text
    assert "held for review" not in held.text
    no_reason = api.post(f"/ui/tickets/{ticket_id}/approve", data={"csrf": _csrf(page.text)})
    assert no_reason.status_code == 422 and EN["reason_required"] in no_reason.text
    why = {"csrf": _csrf(page.text), "reason": "leak is a false positive"}
    done = api.post(f"/ui/tickets/{ticket_id}/approve", data=why)  # followed: post, redirect, get
    assert done.status_code == 200 and EN["approved"] in done.text
    assert done.url.path == "/ui/operations" and done.history[0].status_code == 303
    state = api.get(f"/v1/deletion-requests/{ticket_id}", headers=auth(api, "operator")).json()
    assert state["state"] == "published"
    models = api.get("/ui/models")
    assert "<td>2 (served)</td>" in models.text  # the approved version serves now
    why = {"csrf": _csrf(models.text), "reason": "customer complaint"}
    approved = api.get(f"/ui/tickets/{ticket_id}")
    assert "leak is a false positive" in approved.text  # the operator's own words
    rolled = api.post("/ui/models/tiny/rollback", data=why)
    assert EN["rolled_back"] in rolled.text and "<td>1 (served)</td>" in rolled.text
    undone = api.get(f"/ui/tickets/{ticket_id}?lang=ja")
    assert MESSAGES["ja"]["undone_because"] in undone.text
    _login(api, "requester")
    assert api.get("/ui/operations").status_code == 403
    assert api.get("/ui/models").status_code == 403


def test_an_auditor_filters_exports_and_verifies_the_chain(api):
    api.post("/v1/deletion-requests", json=ticket_body(), headers=auth(api, "requester"))
    _login(api, "auditor")
    page = api.get("/ui/audit?event_type=ticket.received")
    assert "<td>ticket.received</td>" in page.text and "<td>model.registered</td>" not in page.text
    export = api.get("/ui/audit/export?format=csv&event_type=ticket.received")
    assert export.headers["content-type"].startswith("text/csv")
    assert len(export.text.strip().splitlines()) == 2  # the header and the one event
    # A mistyped filter lists nothing and says so at its field (before: every event, as if
    # the filter applied); its export is that page, not a file of every event.
    typo = api.get("/ui/audit?request_id=1b4e28ba-2fa1-11d2-883f")
    assert typo.status_code == 422 and "<td>ticket.received</td>" not in typo.text
    assert re.search(
        r'id="request_id_error"[^>]*>[^<]*' + re.escape(EN["bad_ticket_id"]), typo.text
    )
    bad_day = api.get("/ui/audit/export?format=csv&since=31.12.2026&lang=ja")
    assert bad_day.status_code == 422 and MESSAGES["ja"]["bad_date"] in bad_day.text
    verified = api.post("/ui/audit/verify", data={"csrf": _csrf(page.text)})
    assert EN["chain_ok"] in verified.text and 'class="ok"' in verified.text
    # The answer to a form sits at a POST-only URL: its language link goes to the page itself
    # (before: "?lang=ja" on /ui/audit/verify, a 405).
    assert 'href="/ui/audit?lang=ja"' in verified.text
    assert api.get("/ui/audit?lang=ja").status_code == 200
    _login(api, "requester")
    assert api.get("/ui/audit").status_code == 403
