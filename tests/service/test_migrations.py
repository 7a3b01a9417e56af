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


@pytest.fixture(params=["sqlite", "postgresql"])
def fresh_database(request, tmp_path):
    """An empty database of each kind the service runs on; its URL and how it stores a Uuid."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'obliviate.db'}", lambda value: value.hex
        return
    name = f"obliviate_test_seal_{uuid.uuid4().hex[:8]}"
    _admin(f'CREATE DATABASE "{name}"')
    try:
        yield _sqlalchemy_url(name), lambda value: value
    finally:
        _admin(f'DROP DATABASE "{name}" WITH (FORCE)')


def test_the_free_text_migration_seals_open_tickets_and_downgrade_unseals(fresh_database):
    """Tickets filed before the free text was sealed keep it, now under their data key (the
    caller's key, not the environment's); a closed ticket's leftover plaintext is dropped."""
    from domain.crypto import new_wrapped_key, ticket_cipher

    url, stored = fresh_database
    data_key = "the-deployment's-own-data-key"
    upgrade_database(url, "48e9dc6b3987")
    wrapped = new_wrapped_key(data_key)
    engine = create_engine(url)
    insert = text(
        "INSERT INTO deletion_requests (id, organisation_id, model_name, state, "
        "state_changed_at, subject_hash, legal_basis, jurisdiction, reason, requester, "
        "received_at, due_at, extension_reason, body_hash, record_kind, record_count, "
        "records_hash, wrapped_key, options, progress, created_at) VALUES (:id, :org, 'm', "
        "'received', :at, 'h', 'gdpr_art17', 'EU', :reason, 'r', :at, :at, :extension, 'b', "
        "'qa', 1, 'h', :key, '{}', '{}', :at)"
    )
    org, open_id, closed_id = (uuid.uuid4() for _ in range(3))
    at = "2026-01-01 00:00:00"
    with engine.begin() as connection:
        connection.execute(
            text("INSERT INTO organisations (id, name, created_at) VALUES (:id, 'acme', :at)"),
            {"id": stored(org), "at": at},
        )
        values = {"org": stored(org), "at": at}
        connection.execute(
            insert,
            {
                **values,
                "id": stored(open_id),
                "key": wrapped,
                "reason": "asked by Jane Doe",
                "extension": "Jane is ill",
            },
        )
        # Closed before closing cleared the text: no key, plaintext left behind.
        connection.execute(
            insert,
            {
                **values,
                "id": stored(closed_id),
                "key": None,
                "reason": "asked by John Roe",
                "extension": None,
            },
        )
    upgrade_database(url, data_key=data_key)
    select_sealed = "SELECT id, reason_sealed, extension_reason_sealed FROM deletion_requests"
    with engine.begin() as connection:
        rows = {
            str(row[0]).replace("-", ""): row[1:] for row in connection.execute(text(select_sealed))
        }
    cipher = ticket_cipher(data_key, wrapped)
    reason, extension = rows[open_id.hex]
    assert "Jane" not in reason + extension
    assert cipher.decrypt(reason.encode()) == b"asked by Jane Doe"
    assert cipher.decrypt(extension.encode()) == b"Jane is ill"
    assert rows[closed_id.hex] == (None, None)
    downgrade_database(url, "48e9dc6b3987", data_key=data_key)
    with engine.begin() as connection:
        reasons = connection.execute(text("SELECT reason, extension_reason FROM deletion_requests"))
        assert sorted(map(tuple, reasons), key=lambda row: row[0] or "") == [
            (None, None),
            ("asked by Jane Doe", "Jane is ill"),
        ]
    engine.dispose()
