import uuid

import pytest
from sqlalchemy import text

from api.audit.service import record_event, verify_chain
from api.db import Database, upgrade_database
from api.settings import Settings

pytestmark = pytest.mark.service


def _write_events(db: Database, n: int) -> None:
    for i in range(n):
        with db.transaction() as session:
            record_event(session, "probe", actor="test", data={"i": i, "id": str(uuid.uuid4())})


def _tamper(db: Database, seq: int, sql_prefix: str, suffix: str) -> None:
    with db.engine.begin() as connection:
        connection.execute(text(sql_prefix))
        connection.execute(
            text("UPDATE audit_events SET data = :data WHERE seq = :seq"),
            {"data": '{"i": 999}', "seq": seq},
        )
        connection.execute(text(suffix))


def test_chain_links_each_event_to_the_previous_one(database):
    _write_events(database, 3)
    with database.transaction() as session:
        result = verify_chain(session)
    assert result.ok and result.checked == 3 and result.breaches == []


def test_verify_names_the_row_a_superuser_edited_on_postgres(database):
    _write_events(database, 5)
    _tamper(
        database,
        3,
        "ALTER TABLE audit_events DISABLE TRIGGER USER",
        "ALTER TABLE audit_events ENABLE TRIGGER USER",
    )
    with database.transaction() as session:
        result = verify_chain(session)
    assert not result.ok
    assert [b.seq for b in result.breaches] == [3]
    assert "edited" in result.breaches[0].problem


def test_verify_names_a_deleted_row_on_sqlite(tmp_path):
    settings = Settings(database_url=f"sqlite:///{tmp_path / 'o.db'}")
    upgrade_database(settings.database_url)
    db = Database(settings)
    _write_events(db, 4)
    with db.engine.begin() as connection:
        connection.execute(text("DROP TRIGGER audit_events_no_delete"))
        connection.execute(text("DELETE FROM audit_events WHERE seq = 2"))
    with db.transaction() as session:
        result = verify_chain(session)
    db.dispose()
    assert [b.seq for b in result.breaches] == [3, 3]  # a gap, and a broken link, at row 3
