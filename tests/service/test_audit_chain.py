import json
import uuid

import pytest
from sqlalchemy import text

from domain.audit.checkpoints import read_checkpoints, take_checkpoint
from domain.audit.repository import AUDIT_LOCK_ID
from domain.audit.service import record_event, verify_chain
from domain.db import Database, upgrade_database
from domain.settings import Settings

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


def _event_types(db: Database) -> list[str]:
    with db.transaction() as session:
        rows = session.execute(text("SELECT event_type FROM audit_events ORDER BY seq"))
        return [row[0] for row in rows]


def _chain_lock_free(db: Database) -> bool:
    with db.engine.begin() as connection:
        query = text("SELECT pg_try_advisory_xact_lock(:id)")
        return bool(connection.execute(query, {"id": AUDIT_LOCK_ID}).scalar())


def test_events_are_appended_at_commit_and_a_rolled_back_savepoint_drops_its_own(database):
    with database.transaction() as session:
        record_event(session, "outer.before", actor="test")
        try:
            with session.begin_nested():
                record_event(session, "inside.failed", actor="test")
                with session.begin_nested():
                    record_event(session, "inside.deeper", actor="test")
                raise ValueError("the form's service call failed")
        except ValueError:
            pass
        with session.begin_nested():
            record_event(session, "inside.kept", actor="test")
        record_event(session, "outer.after", actor="test")
        assert _chain_lock_free(database)  # the lock is taken at commit, not at the first event
    with pytest.raises(RuntimeError), database.transaction() as session:
        record_event(session, "rolled.back", actor="test")
        raise RuntimeError
    assert _event_types(database) == ["outer.before", "inside.kept", "outer.after"]
    with database.transaction() as session:
        assert verify_chain(session).ok


def test_concurrent_appends_form_one_chain(database):
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda _: _write_events(database, 5), range(8)))
    with database.transaction() as session:
        result = verify_chain(session)
    assert result.ok and result.checked == 40


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
    assert result.breaches[0].code == "row_edited" and "edited" in result.breaches[0].text()


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


def _rewrite_from(db: Database, seq: int) -> None:
    """What someone with the superuser's rights can do: edit row `seq` and recompute every
    later hash, so that the chain verifies again on its own."""
    from domain.audit.chain import chain_hash, event_fields
    from models import AuditEvent

    with db.engine.begin() as connection:
        connection.execute(text("ALTER TABLE audit_events DISABLE TRIGGER USER"))
    with db.transaction() as session:
        rows = session.query(AuditEvent).order_by(AuditEvent.seq).all()
        prev = next(r.hash for r in rows if r.seq == seq - 1)
        for row in rows:
            if row.seq < seq:
                continue
            if row.seq == seq:
                row.data = {"i": 999}
            fields = event_fields(row.seq, row.occurred_at, row.actor, row.organisation_id,
                                  row.request_id, row.event_type, row.data)  # fmt: skip
            row.prev_hash, row.hash = prev, chain_hash(prev, fields)
            prev = row.hash
    with db.engine.begin() as connection:
        connection.execute(text("ALTER TABLE audit_events ENABLE TRIGGER USER"))


def _verify(db: Database, checkpoints):
    with db.transaction() as session:
        return verify_chain(session, checkpoints=checkpoints)


def test_a_rewritten_history_is_caught_by_a_signed_checkpoint(database, tmp_path):
    _write_events(database, 6)
    path = tmp_path / "checkpoints.jsonl"
    with database.transaction() as session:
        assert take_checkpoint(session, path, "secret").seq == 6
    _rewrite_from(database, 3)
    points, bad = read_checkpoints(path, "secret")
    assert _verify(database, []).ok  # the chain alone verifies: this was undetected before
    result = _verify(database, points)
    assert not result.ok and [b.seq for b in result.breaches] == [6]
    assert result.breaches[0].code == "history_rewritten" and bad == []


def test_deleted_last_rows_are_caught_and_a_forged_checkpoint_is_named(database, tmp_path):
    _write_events(database, 5)
    path = tmp_path / "checkpoints.jsonl"
    with database.transaction() as session:
        take_checkpoint(session, path, "secret")
    with database.engine.begin() as connection:
        connection.execute(text("ALTER TABLE audit_events DISABLE TRIGGER USER"))
        connection.execute(text("DELETE FROM audit_events WHERE seq > 3"))
        connection.execute(text("ALTER TABLE audit_events ENABLE TRIGGER USER"))
    points, _ = read_checkpoints(path, "secret")
    result = _verify(database, points)
    assert [b.seq for b in result.breaches] == [5] and "ends at 3" in result.breaches[0].text()
    # A checkpoint rewritten to match the shortened chain fails its signature.
    forged = json.loads(path.read_text())
    forged.update(seq=3)
    path.write_text(json.dumps(forged) + "\n")
    points, bad = read_checkpoints(path, "secret")
    assert points == [] and bad == [1]  # the line the forger wrote


def test_the_app_role_appends_to_the_trail_but_cannot_disable_rewrite_or_truncate_it(pg_url):
    import secrets

    import sqlalchemy

    from domain.db import grant_app_role
    from tests.service.conftest import _admin

    role = f"obliviate_app_{secrets.token_hex(4)}"
    _admin(f'CREATE ROLE "{role}" LOGIN NOSUPERUSER')  # trust auth here: no password
    try:
        grant_app_role(pg_url, role)
        url = sqlalchemy.make_url(pg_url).set(username=role, password=None)
        app = Database(Settings(database_url=url.render_as_string(hide_password=False)))
        with app.transaction() as session:
            record_event(session, "probe", actor="app-role", data={})  # it can append
        for statement in ("ALTER TABLE audit_events DISABLE TRIGGER USER",
                          "TRUNCATE audit_events", "UPDATE audit_events SET actor = 'x'",
                          "DELETE FROM audit_events"):  # fmt: skip
            with pytest.raises(sqlalchemy.exc.ProgrammingError), app.engine.begin() as connection:
                connection.execute(text(statement))  # owner or privilege required
        app.dispose()
    finally:
        owner = sqlalchemy.create_engine(pg_url)  # the grants live in the test's database
        with owner.begin() as connection:
            connection.execute(text(f'DROP OWNED BY "{role}"'))
        owner.dispose()
        _admin(f'DROP ROLE "{role}"')


def test_the_scheduler_keeps_signed_checkpoints_and_verify_names_a_later_rewrite(
    api, settings, database, tmp_path, monkeypatch
):
    from typer.testing import CliRunner

    from cli.main import app
    from tests.service.conftest import auth, submit
    from worker.celery_app import CeleryDispatcher

    path = tmp_path / "outside-the-database" / "checkpoints.jsonl"
    monkeypatch.setattr(settings, "audit_checkpoints", path)  # the API's settings object
    submit(api)  # some history: ticket.received and the rest
    monkeypatch.setattr(CeleryDispatcher, "wake", lambda self, ids: None)
    env = {
        "OBLIVIATE_DATABASE_URL": settings.database_url,
        "OBLIVIATE_BROKER_URL": "redis://127.0.0.1:6379/0",
        "OBLIVIATE_SECRET_KEY": settings.secret_key.get_secret_value(),
        "OBLIVIATE_DATA_KEY": settings.data_key.get_secret_value(),
        "OBLIVIATE_AUDIT_CHECKPOINTS": str(path),
    }
    result = CliRunner().invoke(app, ["scheduler", "--once"], env=env)
    assert result.exit_code == 0, result.output
    points, bad = read_checkpoints(path, settings.secret_key.get_secret_value())
    assert len(points) == 1 and bad == []
    verify = api.get("/v1/audit/verify", headers=auth(api, "auditor")).json()
    assert verify["ok"]
    _rewrite_from(database, 2)  # and every later hash recomputed: the chain alone verifies
    verify = api.get("/v1/audit/verify", headers=auth(api, "auditor")).json()
    assert not verify["ok"] and verify["breaches"][0]["seq"] == points[0].seq
    assert verify["breaches"][0]["code"] == "history_rewritten"
    assert "rewritten" in verify["breaches"][0]["problem"]
