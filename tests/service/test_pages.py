"""The web pages (/ui): log in with a key, see your tickets, open one, cancel it with the
form (CSRF-checked), read its report; nothing of another organisation's."""

import re

import pytest

from api.pages.messages import MESSAGES
from tests.service.conftest import auth, ticket_body

pytestmark = pytest.mark.service


def _login(api, role: str, lang: str = "en", key: str | None = None):
    """The login form as a browser sends it: fetched first, with its CSRF token."""
    form = api.get(f"/ui/login?lang={lang}")
    data = {"api_key": key or api.keys[role], "csrf": _csrf(form.text)}
    return api.post(f"/ui/login?lang={lang}", data=data, follow_redirects=False)


def _csrf(html: str) -> str:
    return re.search(r'name="csrf" value="([0-9a-f]+)"', html).group(1)


def test_login_sets_an_httponly_strict_cookie_and_a_bad_key_is_shown_at_the_field(api):
    response = _login(api, "requester")
    assert response.status_code == 303 and response.headers["location"].startswith("/ui/tickets")
    cookie = response.headers["set-cookie"]
    assert (
        "HttpOnly" in cookie and "SameSite=strict" in cookie and api.keys["requester"] not in cookie
    )
    bad = _login(api, "requester", key="ob_nope_nope")
    assert bad.status_code == 401
    assert 'id="api_key_error"' in bad.text and 'aria-invalid="true"' in bad.text
    assert '<label for="api_key">' in bad.text  # every field has its label
    # Login CSRF: a form posted without the token its page set (another site's) logs no one in.
    api.cookies.clear()
    forged = api.post("/ui/login", data={"api_key": api.keys["requester"], "csrf": "0" * 32},
                      follow_redirects=False)  # fmt: skip
    assert forged.status_code == 403 and "session" not in forged.headers.get("set-cookie", "")


def test_in_production_the_session_cookie_is_secure_even_behind_a_tls_proxy(api, settings,
                                                                         monkeypatch):  # fmt: skip
    # The proxy ends TLS: the app sees http. Before: no Secure flag, the session could leak.
    assert "Secure" not in _login(api, "requester").headers["set-cookie"]  # not production, http
    monkeypatch.setattr(settings, "environment", "production")
    api.cookies.clear()
    assert "Secure" in _login(api, "requester").headers["set-cookie"]
    monkeypatch.setattr(settings, "secure_cookies", False)  # a stack served without TLS, said
    api.cookies.clear()
    assert "Secure" not in _login(api, "requester").headers["set-cookie"]


def test_a_requester_lists_opens_and_cancels_a_ticket_through_the_forms(api):
    ticket = api.post("/v1/deletion-requests", json=ticket_body(), headers=auth(api, "requester"))
    ticket_id = ticket.json()["id"]
    _login(api, "requester")
    listing = api.get("/ui/tickets")
    assert f"/ui/tickets/{ticket_id}" in listing.text
    page = api.get(f"/ui/tickets/{ticket_id}")
    assert "received" in page.text and f"/ui/tickets/{ticket_id}/report" in page.text
    assert 'http-equiv="refresh"' in page.text  # an open ticket's progress stays live
    # A form without the session's CSRF token (what a cross-site page would send) is refused.
    forged = api.post(f"/ui/tickets/{ticket_id}/cancel", data={"csrf": "0" * 64})
    assert forged.status_code == 403
    assert api.get(f"/v1/deletion-requests/{ticket_id}", headers=auth(api, "requester")).json()[
        "state"] == "received"  # fmt: skip
    done = api.post(f"/ui/tickets/{ticket_id}/cancel", data={"csrf": _csrf(page.text)},
                    follow_redirects=False)  # fmt: skip
    # Post, redirect, get: a reload shows the page instead of sending the form again.
    assert done.status_code == 303 and done.headers["location"].endswith("&done=cancelled")
    done = api.get(done.headers["location"])
    assert done.status_code == 200 and MESSAGES["en"]["cancelled"] in done.text
    assert "<td>cancelled</td>" in done.text and 'http-equiv="refresh"' not in done.text
    report = api.get(f"/ui/tickets/{ticket_id}/report?lang=ja")
    assert '<html lang="ja">' in report.text


def test_pages_need_a_session_and_never_show_another_organisations_ticket(api):
    ticket = api.post("/v1/deletion-requests", json=ticket_body(), headers=auth(api, "requester"))
    api.cookies.clear()
    anonymous = api.get("/ui/tickets", follow_redirects=False)
    assert anonymous.status_code == 303 and anonymous.headers["location"].startswith("/ui/login")
    _login(api, "other_requester")
    assert ticket.json()["id"] not in api.get("/ui/tickets").text
    assert api.get(f"/ui/tickets/{ticket.json()['id']}").status_code == 404
    japanese = api.get("/ui/tickets?lang=ja")
    assert MESSAGES["ja"]["no_tickets"] in japanese.text


def test_every_page_string_exists_in_both_languages():
    assert MESSAGES["en"].keys() == MESSAGES["ja"].keys()


def test_every_ticket_state_has_a_name_in_both_languages():
    from api.pages.messages import STATE_NAMES
    from domain.tickets.lifecycle import STATES

    assert set(STATE_NAMES["en"]) == set(STATE_NAMES["ja"]) == set(STATES)
