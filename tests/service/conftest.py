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
from sqlalchemy import text

from api.db import Database, upgrade_database
from api.settings import Settings

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
