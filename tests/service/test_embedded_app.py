"""`obliviate serve` without a broker: SQLite and a worker thread inside the API process."""

import time

from fastapi.testclient import TestClient

from api.app import create_app
from domain.db import Database, upgrade_database
from domain.keys.service import create_key
from domain.settings import Settings
from domain.versions.service import register_model
from tests.service.conftest import ticket_body


def embedded(tmp_path, tiny_model_dir) -> tuple[Settings, str]:
    """The laptop stack's settings (SQLite, in-process worker) with model `tiny` and an admin
    key."""
    settings = Settings(
        database_url=f"sqlite:///{tmp_path / 'obliviate.db'}",
        artifacts_dir=tmp_path / "artifacts",
        policies_dir=tmp_path / "policies",
        engine_runner="tests.service.fake_engine:FakeRunner",
    )
    upgrade_database(settings.database_url)
    database = Database(settings)
    with database.transaction() as session:
        register_model(session, "tiny", str(tiny_model_dir), actor="test", artifact_hash=None)
        _, key = create_key(
            session, "dev-secret-change-me", organisation="acme", role="admin", name="a", actor="t"
        )
    database.dispose()
    return settings, key


def test_embedded_app_runs_a_ticket_with_its_own_worker_thread(tmp_path, tiny_model_dir):
    settings, key = embedded(tmp_path, tiny_model_dir)
    with TestClient(create_app(settings)) as client:
        headers = {"X-API-Key": key}
        ticket = client.post("/v1/deletion-requests", json=ticket_body(), headers=headers).json()
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            state = client.get(f"/v1/deletion-requests/{ticket['id']}", headers=headers).json()[
                "state"
            ]
            if state == "published":
                break
            time.sleep(0.2)
        assert state == "published"
        assert client.get("/health/ready").json() == {
            "status": "ready",
            "database": "sqlite",
            "broker": "none (in-process worker)",
            "embedded": True,
        }


def test_spot_checks_and_polls_answer_while_the_embedded_worker_runs_a_ticket(
    tmp_path, tiny_model_dir, monkeypatch
):
    monkeypatch.setenv("FAKE_UNLEARN_S", "4")  # progress and heartbeats write meanwhile
    settings, key = embedded(tmp_path, tiny_model_dir)
    headers = {"X-API-Key": key}
    with TestClient(create_app(settings)) as client:
        ticket = client.post("/v1/deletion-requests", json=ticket_body(), headers=headers).json()
        statuses, state, deadline = [], "received", time.monotonic() + 60
        while state != "published" and time.monotonic() < deadline:
            spot_check = {"questions": ["Who is Ada?"], "max_new_tokens": 4}
            answer = client.post("/v1/models/tiny/versions/1/generate", json=spot_check,
                                 headers=headers)  # fmt: skip
            view = client.get(f"/v1/deletion-requests/{ticket['id']}", headers=headers)
            statuses += [answer.status_code, view.status_code]
            state = view.json()["state"]
        # Before: "database is locked" (500) on every spot-check while a ticket ran.
        assert state == "published" and len(statuses) >= 4
        assert set(statuses) == {200}
