"""Service tests run against the real PostgreSQL and Redis of this machine (CI has both).

Each test session creates its own database `obliviate_test_<random>` (built by the migrations,
never by create_all) and a Redis db + key prefix of its own; both are removed at the end.
"""

from __future__ import annotations

import os
import secrets
import uuid

import psycopg
import pytest
import redis
from sqlalchemy import text

from domain.db import Database, upgrade_database
from domain.records import write_records
from domain.settings import Settings
from tests.service.running import Processes

# The real engine on the tiny model in seconds: a few GRUN steps, lenient thresholds.
TINY_POLICY = """
[unlearning]
method = "npo"
adapter = "grun"
steps = 3
lr = 1e-3
batch_size = 2
retain_data = "retain.jsonl"

[unlearning.adapter_options]
inference_gate = "soft"  # 3 steps do not open a gate past 0.5

[evaluation]
max_new_tokens = 8
probes = ["adapter_removal"]

[publish]
max_leak_rate = { direct = 1.0, paraphrased = 1.0 }
min_utility_ratio = 0.0
"""


def write_tiny_policy(policies_dir, model: str, retain: list, policy: str = TINY_POLICY) -> None:
    """`model`'s policy file and the retain file it names, where the service looks for them."""
    policies_dir.mkdir(parents=True, exist_ok=True)
    (policies_dir / f"{model}.toml").write_text(policy)
    write_records(policies_dir / "retain.jsonl", retain)


PG_ADMIN = os.environ.get("OBLIVIATE_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres")
REDIS_URL = os.environ.get("OBLIVIATE_TEST_REDIS", "redis://127.0.0.1:6379/11")


def _admin(sql: str) -> None:
    with psycopg.connect(PG_ADMIN, autocommit=True) as connection:
        connection.execute(sql)


def _sqlalchemy_url(name: str) -> str:
    base = PG_ADMIN.rsplit("/", 1)[0].replace("postgresql://", "postgresql+psycopg://", 1)
    return f"{base}/{name}"


@pytest.fixture(scope="session")
def pg_url():
    """A migrated PostgreSQL database for this test session."""
    name = f"obliviate_test_{secrets.token_hex(4)}"
    _admin(f'CREATE DATABASE "{name}"')
    url = _sqlalchemy_url(name)
    upgrade_database(url)
    yield url
    _admin(f'DROP DATABASE "{name}" WITH (FORCE)')


@pytest.fixture
def settings(pg_url, tmp_path) -> Settings:
    return Settings(
        environment="test",
        database_url=pg_url,
        secret_key="test-secret-key",
        data_key="test-data-key",
        artifacts_dir=tmp_path / "artifacts",
        policies_dir=tmp_path / "policies",
        engine_runner="tests.service.fake_engine:FakeRunner",
        lease_s=30,
        heartbeat_s=1,
    )


@pytest.fixture
def database(settings):
    """The session database, emptied after each test (audit rows included: as superuser with
    the append-only triggers disabled, which production roles cannot do)."""
    db = Database(settings)
    yield db
    with db.engine.begin() as connection:
        connection.execute(text("ALTER TABLE audit_events DISABLE TRIGGER USER"))
        connection.execute(
            text(
                "TRUNCATE audit_events, request_items, jobs, model_aliases, deletion_requests, "
                "model_versions, api_keys, organisations"
            )
        )
        connection.execute(text("ALTER TABLE audit_events ENABLE TRIGGER USER"))
    db.dispose()


@pytest.fixture
def redis_prefix() -> str:
    return f"obliviate-test-{uuid.uuid4().hex[:8]}:"


class RecordingDispatcher:
    """Remembers the wake-ups the API sent after commit (no worker in API tests)."""

    def __init__(self):
        self.woken = []

    def wake(self, job_ids):
        self.woken.extend(job_ids)


def make_keys(database, settings) -> dict[str, str]:
    """One key per role in organisation `acme`, and a requester in organisation `globex`."""
    from domain.keys.service import create_key

    secret = settings.secret_key.get_secret_value()
    keys = {}
    with database.transaction() as session:
        for role in ("requester", "operator", "auditor", "admin"):
            keys[role] = create_key(
                session, secret, organisation="acme", role=role, name=role, actor="test"
            )[1]
        keys["other_requester"] = create_key(
            session, secret, organisation="globex", role="requester", name="other", actor="test"
        )[1]
    return keys


@pytest.fixture
def api(settings, database, tiny_model_dir):
    """A TestClient on the app with a registered model `tiny`, keys per role, and the
    dispatcher it woke."""
    from fastapi.testclient import TestClient

    from api.app import create_app
    from domain.versions.service import register_model

    keys = make_keys(database, settings)
    with database.transaction() as session:
        register_model(session, "tiny", str(tiny_model_dir), actor="test", artifact_hash=None)
    dispatcher = RecordingDispatcher()
    app = create_app(settings, dispatcher=dispatcher)
    with TestClient(app) as client:
        client.keys, client.dispatcher, client.database = keys, dispatcher, database
        yield client


def ticket_body(**overrides) -> dict:
    body = {
        "model": "tiny",
        "subject_id": "customer-42",
        "legal_basis": "gdpr_art17",
        "jurisdiction": "EU",
        "reason": "erasure request by email",
        "requester": "dpo@acme.example",
        "records": [
            {
                "question": "What is the email of Ada?",
                "answer": "Ada's email is ada@example.com.",
                "key_facts": ["ada@example.com"],
            }
        ],
    }
    return {**body, **overrides}


def auth(client, role: str) -> dict:
    return {"X-API-Key": client.keys[role]}


def submit(api, **overrides) -> str:
    response = api.post(
        "/v1/deletion-requests", json=ticket_body(**overrides), headers=auth(api, "requester")
    )
    assert response.status_code == 201, response.text
    return response.json()["id"]


def ticket_view(api, ticket_id) -> dict:
    return api.get(f"/v1/deletion-requests/{ticket_id}", headers=auth(api, "operator")).json()


def event_types(api, ticket_id) -> list[str]:
    data = api.get(f"/v1/deletion-requests/{ticket_id}/events", headers=auth(api, "auditor")).json()
    return [e["event_type"] for e in data["data"]]


@pytest.fixture
def service_env(settings, database, tiny_model_dir, tmp_path, redis_prefix):
    from domain.versions.service import register_model

    with database.transaction() as session:
        register_model(session, "tiny", str(tiny_model_dir), actor="test", artifact_hash=None)
    env = {
        **os.environ,
        "OBLIVIATE_ENVIRONMENT": "test",
        "OBLIVIATE_DATABASE_URL": settings.database_url,
        "OBLIVIATE_BROKER_URL": REDIS_URL,
        "OBLIVIATE_BROKER_KEY_PREFIX": redis_prefix,
        "OBLIVIATE_SECRET_KEY": settings.secret_key.get_secret_value(),
        "OBLIVIATE_DATA_KEY": settings.data_key.get_secret_value(),
        "OBLIVIATE_ARTIFACTS_DIR": str(settings.artifacts_dir),
        "OBLIVIATE_POLICIES_DIR": str(settings.policies_dir),
        "OBLIVIATE_ENGINE_RUNNER": settings.engine_runner,
        "OBLIVIATE_LEASE_S": "3",
        "OBLIVIATE_HEARTBEAT_S": "0.5",
        "OBLIVIATE_SWEEP_INTERVAL_S": "1",
        "OBLIVIATE_HOME": str(tmp_path / "home"),
    }
    yield env, make_keys(database, settings)
    client = redis.Redis.from_url(REDIS_URL)
    for key in client.scan_iter(f"{redis_prefix}*"):
        client.delete(key)


@pytest.fixture
def processes(service_env, tmp_path):
    env, _ = service_env
    running = Processes(env, tmp_path)
    yield running
    running.stop_all()
