"""`obliviate serve` without a broker: SQLite and a worker thread inside the API process."""

import time

from fastapi.testclient import TestClient

from api.app import create_app
from domain.db import Database, upgrade_database
from domain.keys.service import create_key
from domain.settings import Settings
from domain.versions.service import register_model
from tests.service.conftest import ticket_body


def test_embedded_app_runs_a_ticket_with_its_own_worker_thread(tmp_path, tiny_model_dir):
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
