"""Engines and sessions. On SQLite every transaction takes the write lock at BEGIN, which
serializes audit-chain appends the way the advisory lock does on PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import Engine, create_engine, event, func, select, text
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

from domain.settings import Settings


def make_engine(database_url: str) -> Engine:
    url = make_url(database_url)
    if url.get_backend_name() != "sqlite":
        return create_engine(url, pool_pre_ping=True, hide_parameters=True)
    if url.database and url.database != ":memory:":
        Path(url.database).parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(
        url, connect_args={"check_same_thread": False, "timeout": 30}, hide_parameters=True
    )

    @event.listens_for(engine, "connect")
    def _sqlite_pragmas(dbapi_connection, _record):
        dbapi_connection.isolation_level = None  # we emit BEGIN ourselves, below
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _begin_immediate(connection):
        connection.exec_driver_sql("BEGIN IMMEDIATE")

    return engine


def database_now(session: Session) -> datetime:
    """The time every lease is measured in: the database server's clock, so that workers whose
    own clocks drift cannot see a live lease as expired (or keep a dead one alive). SQLite is
    the embedded stack's, with its one process and one clock: that clock."""
    if session.get_bind().dialect.name == "sqlite":
        return datetime.now(UTC)
    now = session.scalar(select(func.now()))  # the transaction's start, timezone-aware
    assert now is not None
    return now.astimezone(UTC)


class Database:
    """The engine and session factory of one settings object (the app and workers each hold one)."""

    def __init__(self, settings: Settings):
        self.settings = settings
        self.engine = make_engine(settings.database_url)
        self.sessions = sessionmaker(self.engine, expire_on_commit=False)

    @contextmanager
    def transaction(self) -> Iterator[Session]:
        """A session whose work commits on success and rolls back on any error."""
        with self.sessions() as session, session.begin():
            yield session

    def dispose(self) -> None:
        self.engine.dispose()


def alembic_config(database_url: str, data_key: str | None = None):
    """Alembic pointed at our migrations folder, wherever the package is installed. `data_key`:
    the caller's, for migrations that re-encrypt (None: the settings' from the environment)."""
    from importlib.util import find_spec

    from alembic.config import Config

    # Located, not imported: the migrations import this package (their env.py reads settings).
    spec = find_spec("migrations")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("the migrations package is not installed beside obliviate")
    config = Config()
    folder = next(iter(spec.submodule_search_locations))  # also for a namespace package
    config.set_main_option("script_location", str(folder))
    config.attributes["database_url"] = database_url
    config.attributes["data_key"] = data_key
    return config


def upgrade_database(
    database_url: str, revision: str = "head", data_key: str | None = None
) -> None:
    from alembic import command

    command.upgrade(alembic_config(database_url, data_key), revision)


def upgrade_service_database(settings: Settings) -> None:
    """The service's own database at head, with its data key (a migration that seals stored
    text needs it): what starting the embedded stack does."""
    upgrade_database(settings.database_url, data_key=settings.data_key.get_secret_value())


def grant_app_role(database_url: str, role: str) -> None:
    """Let the application's own database role use the tables, and the audit trail only to read
    and append: it owns nothing, so it cannot disable the append-only triggers, truncate, or
    rewrite rows (issue 18: the compose file ran the app as the superuser that owns them).
    Run by the owner after each migration (`obliviate migrate --grant-to ROLE`)."""
    engine = make_engine(database_url)
    if engine.dialect.name != "postgresql":
        raise ValueError("database roles exist on PostgreSQL only")
    name = engine.dialect.identifier_preparer.quote(role)
    with engine.begin() as connection:
        for statement in (
            f"GRANT USAGE ON SCHEMA public TO {name}",
            f"GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO {name}",
            f"REVOKE UPDATE, DELETE, TRUNCATE ON audit_events FROM {name}",
            f"GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO {name}",
        ):
            connection.execute(text(statement))
    engine.dispose()


def downgrade_database(
    database_url: str, revision: str = "base", data_key: str | None = None
) -> None:
    from alembic import command

    command.downgrade(alembic_config(database_url, data_key), revision)
