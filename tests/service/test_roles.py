"""Each endpoint × each role: forbidden roles get 403, allowed roles get past the check."""

import pytest

from tests.service.conftest import auth, ticket_body

pytestmark = pytest.mark.service

ALL = {"requester", "operator", "auditor", "admin"}
STAFF = {"operator", "auditor", "admin"}
ENDPOINTS = [
    ("POST", "/v1/deletion-requests", ticket_body(), {"requester", "admin"}),
    ("POST", "/v1/deletion-requests/upload", None, {"requester", "admin"}),  # 422: no file
    ("GET", "/v1/deletion-requests", None, ALL),
    ("GET", "/v1/deletion-requests/{ticket}", None, ALL),
    ("GET", "/v1/deletion-requests/{ticket}/events", None, ALL),
    ("POST", "/v1/deletion-requests/{ticket}/extend",
     {"reason": "r", "notice_sent_at": "2026-01-01T00:00:00Z"}, {"operator", "admin"}),
    ("POST", "/v1/deletion-requests/{ticket}/approve", {"reason": "ok"}, {"operator", "admin"}),
    ("POST", "/v1/deletion-requests/{ticket}/reject", {"reason": "no"}, {"operator", "admin"}),
    ("POST", "/v1/deletion-requests/{ticket}/rerun", {"reason": "r"}, {"operator", "admin"}),
    ("POST", "/v1/deletion-requests/{ticket}/cancel", None, {"requester", "operator", "admin"}),
    ("GET", "/v1/deletion-requests/{ticket}/report", None, ALL),
    ("GET", "/v1/models", None, ALL),  # requesters: the names only
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


def test_every_route_is_in_the_role_matrix(api):
    """A new endpoint cannot go untested: the matrix is checked against the app's routes."""
    paths = api.app.openapi()["paths"]  # every route of every included router
    routes = {(method.upper(), path) for path, item in paths.items() for method in item
              if path.startswith("/v1/")}  # fmt: skip
    assert len(routes) > 15
    named = {(method, template.replace("{ticket}", "{request_id}").replace("{key}", "{key_id}"))
             for method, template, _, _ in ENDPOINTS}  # fmt: skip
    unmatched = {(m, p) for m, p in routes if not any(
        m == nm and _same_shape(p, np) for nm, np in named)}  # fmt: skip
    assert unmatched == set()


def _same_shape(path: str, template: str) -> bool:
    """/v1/models/{name}/versions/{number} matches /v1/models/tiny/versions/1."""
    parts, named = path.strip("/").split("/"), template.strip("/").split("/")
    return len(parts) == len(named) and all(
        p == n or p.startswith("{") for p, n in zip(parts, named, strict=True)
    )


def test_requesters_see_the_model_names_they_may_file_against_and_no_more(api):
    names = api.get("/v1/models", headers=auth(api, "requester")).json()
    assert names == {"data": [{"name": "tiny", "production_version": 1}], "count": 1}
    staff = api.get("/v1/models", headers=auth(api, "operator")).json()
    assert staff["data"][0]["production"]["number"] == 1


def test_the_last_admin_key_cannot_be_revoked(api):
    keys = api.get("/v1/keys", headers=auth(api, "admin")).json()["data"]
    admin = next(k for k in keys if k["role"] == "admin" and k["revoked_at"] is None)
    response = api.delete(f"/v1/keys/{admin['id']}", headers=auth(api, "admin"))
    assert response.status_code == 409 and "last active admin key" in response.json()["detail"]
    second = api.post("/v1/keys", json={"organisation": "acme", "role": "admin", "name": "b"},
                      headers=auth(api, "admin")).json()  # fmt: skip
    assert api.delete(f"/v1/keys/{second['id']}", headers=auth(api, "admin")).status_code == 200


def test_choosing_the_method_is_refused_with_who_may(api):
    body = ticket_body(options={"method": "npo"})
    response = api.post("/v1/deletion-requests", json=body, headers=auth(api, "requester"))
    assert response.status_code == 403 and "only an admin" in response.json()["detail"]


def test_the_openapi_schema_documents_every_error_status(api):
    for path, item in api.app.openapi()["paths"].items():
        if path.startswith("/v1/"):
            for method, operation in item.items():
                documented = set(operation["responses"])
                assert {"401", "403", "404", "409", "413", "422"} <= documented, (method, path)
    exports = api.app.openapi()["paths"]["/v1/audit/events"]["get"]["responses"]["200"]["content"]
    assert {"application/json", "application/x-ndjson", "text/csv"} <= set(exports)
