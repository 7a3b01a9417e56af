"""Each endpoint × each role: forbidden roles get 403, allowed roles get past the check."""

import pytest

from tests.service.conftest import auth, ticket_body

pytestmark = pytest.mark.service

ALL = {"requester", "operator", "auditor", "admin"}
STAFF = {"operator", "auditor", "admin"}
ENDPOINTS = [
    ("POST", "/v1/deletion-requests", ticket_body(), {"requester", "admin"}),
    ("GET", "/v1/deletion-requests", None, ALL),
    ("GET", "/v1/deletion-requests/{ticket}", None, ALL),
    ("GET", "/v1/deletion-requests/{ticket}/events", None, ALL),
    ("POST", "/v1/deletion-requests/{ticket}/extend",
     {"reason": "r", "notice_sent_at": "2026-01-01T00:00:00Z"}, {"operator", "admin"}),
    ("POST", "/v1/deletion-requests/{ticket}/approve", {"reason": "ok"}, {"operator", "admin"}),
    ("POST", "/v1/deletion-requests/{ticket}/reject", {"reason": "no"}, {"operator", "admin"}),
    ("POST", "/v1/deletion-requests/{ticket}/cancel", None, {"requester", "operator", "admin"}),
    ("GET", "/v1/models", None, STAFF),
    ("POST", "/v1/models", {"name": "other", "spec": "/nonexistent"}, {"admin"}),
    ("GET", "/v1/models/tiny/versions", None, STAFF),
    ("GET", "/v1/models/tiny/versions/1", None, STAFF),
    ("POST", "/v1/models/tiny/rollback", {"reason": "r"}, {"operator", "admin"}),
    ("POST", "/v1/models/tiny/versions/1/generate",
     {"questions": ["Who?"], "max_new_tokens": 2}, STAFF),
    ("GET", "/v1/audit/events", None, {"auditor", "admin"}),
    ("GET", "/v1/audit/verify", None, {"auditor", "admin"}),
    ("GET", "/v1/jobs", None, {"operator", "admin"}),
    ("GET", "/v1/keys", None, {"admin"}),
    ("POST", "/v1/keys", {"organisation": "acme", "role": "auditor", "name": "n"}, {"admin"}),
    ("DELETE", "/v1/keys/{key}", None, {"admin"}),
]  # fmt: skip


def test_role_matrix(api):
    ticket = api.post("/v1/deletion-requests", json=ticket_body(), headers=auth(api, "requester"))
    spare_key = api.post(
        "/v1/keys", json={"organisation": "acme", "role": "requester", "name": "spare"},
        headers=auth(api, "admin"),
    ).json()  # fmt: skip
    ids = {"ticket": ticket.json()["id"], "key": spare_key["id"]}
    failures = []
    for method, template, body, allowed in ENDPOINTS:
        for role in sorted(ALL):
            path = template.format(**ids)
            response = api.request(method, path, json=body, headers=auth(api, role))
            forbidden = response.status_code == 403
            if forbidden == (role in allowed) or response.status_code == 401:
                failures.append(f"{role} {method} {template}: {response.status_code}")
    assert failures == []
