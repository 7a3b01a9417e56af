import uuid

import pytest
from sqlalchemy import create_engine, inspect, text

from domain.db import downgrade_database, upgrade_database
from tests.service.conftest import _admin, _sqlalchemy_url

pytestmark = pytest.mark.service

TABLES = {
    "organisations",
    "api_keys",
    "deletion_requests",
    "request_items",
    "audit_events",
    "jobs",
    "model_versions",
    "model_aliases",
}


def _tables(url: str) -> set[str]:
    engine = create_engine(url)
    try:
        return set(inspect(engine).get_table_names()) - {"alembic_version"}
    finally:
        engine.dispose()


def test_postgres_migrations_go_up_down_and_up_again():
    name = "obliviate_test_migrations"
    _admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    _admin(f'CREATE DATABASE "{name}"')
    url = _sqlalchemy_url(name)
    try:
        upgrade_database(url)
        assert _tables(url) == TABLES
        downgrade_database(url)
        assert _tables(url) == set()
        upgrade_database(url)
        assert _tables(url) == TABLES
    finally:
        _admin(f'DROP DATABASE "{name}" WITH (FORCE)')


def test_sqlite_migrations_go_up_and_down(tmp_path):
    url = f"sqlite:///{tmp_path / 'obliviate.db'}"
    upgrade_database(url)
    assert _tables(url) == TABLES
    downgrade_database(url)
    assert _tables(url) == set()


@pytest.mark.parametrize(
    "statement",
    ["UPDATE audit_events SET actor = 'x'", "DELETE FROM audit_events", "TRUNCATE audit_events"],
)
def test_postgres_refuses_to_change_audit_rows(pg_url, statement):
    engine = create_engine(pg_url)
    with engine.begin() as connection:
        connection.execute(
            text(
                "INSERT INTO audit_events (seq, occurred_at, actor, event_type, data, prev_hash,"
                " hash) VALUES (999999, now(), 'test', 'probe', '{}', 'p', 'h-trigger-probe')"
            )
        )
    try:
        with pytest.raises(Exception, match="append-only"), engine.begin() as connection:
            connection.execute(text(statement))
    finally:
        with engine.begin() as connection:
            connection.execute(text("ALTER TABLE audit_events DISABLE TRIGGER USER"))
            connection.execute(text("DELETE FROM audit_events WHERE seq = 999999"))
            connection.execute(text("ALTER TABLE audit_events ENABLE TRIGGER USER"))
        engine.dispose()


def test_sqlite_refuses_to_change_audit_rows(tmp_path):
    url = f"sqlite:///{tmp_path / 'obliviate.db'}"
    upgrade_database(url)
    engine = create_engine(url)
    with engine.begin() as connection:
        connection.execute(
            text(
                "INSERT INTO audit_events (seq, occurred_at, actor, event_type, data, prev_hash,"
                " hash) VALUES (1, '2026-01-01', 'test', 'probe', '{}', 'p', 'h')"
            )
        )
    for statement in ("UPDATE audit_events SET actor = 'x'", "DELETE FROM audit_events"):
        with pytest.raises(Exception, match="append-only"), engine.begin() as connection:
            connection.execute(text(statement))
    engine.dispose()


def test_migrate_does_not_print_the_database_password(pg_url, monkeypatch):
    from sqlalchemy import make_url
    from typer.testing import CliRunner

    from cli.main import app

    url = make_url(pg_url).set(password="s3cret-pass")  # trust auth here: any password works
    monkeypatch.setenv("OBLIVIATE_DATABASE_URL", url.render_as_string(hide_password=False))
    result = CliRunner().invoke(app, ["migrate"])
    assert result.exit_code == 0, result.output
    assert "s3cret-pass" not in result.output and "***" in result.output


def test_the_free_text_migration_seals_open_tickets_and_downgrade_unseals(tmp_path):
    """Tickets filed before the free text was sealed keep it, now under their data key; a
    closed ticket (no key, no text) passes through."""
    from domain.crypto import new_wrapped_key, ticket_cipher
    from domain.settings import Settings

    url = f"sqlite:///{tmp_path / 'obliviate.db'}"
    upgrade_database(url, "48e9dc6b3987")
    wrapped = new_wrapped_key(Settings().data_key.get_secret_value())
    engine = create_engine(url)
    insert = text(
        "INSERT INTO deletion_requests (id, organisation_id, model_name, state, "
        "state_changed_at, subject_hash, legal_basis, jurisdiction, reason, requester, "
        "received_at, due_at, extension_reason, body_hash, record_kind, record_count, "
        "records_hash, wrapped_key, options, progress, created_at) VALUES (:id, :org, 'm', "
        "'received', 't', 'h', 'gdpr_art17', 'EU', :reason, 'r', 't', 't', :extension, 'b', "
        "'qa', 1, 'h', :key, '{}', '{}', 't')"
    )
    org = uuid.uuid4().hex  # how SQLite stores a Uuid
    with engine.begin() as connection:
        connection.execute(
            text("INSERT INTO organisations (id, name, created_at) VALUES (:id, 'acme', 't')"),
            {"id": org},
        )
        values = {"org": org, "extension": None}
        connection.execute(
            insert, {**values, "id": "a", "reason": "asked by Jane Doe", "key": wrapped}
        )
        connection.execute(insert, {**values, "id": "b", "reason": None, "key": None})
    upgrade_database(url)
    with engine.begin() as connection:
        rows = dict(
            connection.execute(text("SELECT id, reason_sealed FROM deletion_requests")).all()
        )
    cipher = ticket_cipher(Settings().data_key.get_secret_value(), wrapped)
    assert "Jane" not in rows["a"] and cipher.decrypt(rows["a"].encode()) == b"asked by Jane Doe"
    assert rows["b"] is None
    downgrade_database(url, "48e9dc6b3987")
    with engine.begin() as connection:
        reason = connection.execute(text("SELECT reason FROM deletion_requests WHERE id = 'a'"))
        assert reason.scalar_one() == "asked by Jane Doe"
    engine.dispose()
