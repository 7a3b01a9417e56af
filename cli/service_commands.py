"""Service commands: `obliviate serve`, `worker`, `migrate`, `keys create|list`, `models register`.

Settings come from OBLIVIATE_* environment variables (api/settings.py). Without
OBLIVIATE_BROKER_URL everything runs embedded: SQLite under the cache folder and a worker
thread inside `serve`.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated

import typer
from rich.console import Console
from sqlalchemy import make_url

console = Console()
keys_app = typer.Typer(help="API keys (admins): create and list.", no_args_is_help=True)
models_app = typer.Typer(help="The model registry: register a base model.", no_args_is_help=True)


def shown(url: str) -> str:
    """A database or broker URL without its password, for the console (issue 18: the
    database password was printed)."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ValueError:  # not one URL (a Celery sentinel list): mask every user:password@
        return re.sub(r"://([^:/@;]*):[^@;]*@", r"://\1:***@", url)


def _settings():
    from domain.settings import Settings

    try:
        return Settings()
    except ValueError as error:
        console.print(f"[red]error:[/red] {error}")
        raise typer.Exit(2) from error


def _prepare_embedded(settings) -> None:
    """A laptop needs no separate set-up step: the embedded SQLite database migrates itself."""
    from domain.db import upgrade_service_database

    if settings.is_sqlite:
        upgrade_service_database(settings)


@contextmanager
def _transaction(settings) -> Iterator:
    """One transaction on the configured database; a refused change exits 2 with its reason."""
    from domain.db import Database
    from domain.errors import ServiceError

    _prepare_embedded(settings)
    database = Database(settings)
    try:
        with database.transaction() as session:
            yield session
    except ServiceError as error:
        console.print(f"[red]error:[/red] {error.detail}")
        raise typer.Exit(2) from error
    finally:
        database.dispose()


MAX_DEFAULT_WORKERS = 4


def serve_command(
    host: str = "127.0.0.1",
    port: int = 8000,
    workers: Annotated[
        int | None,
        typer.Option(
            min=1, help="uvicorn processes (with a broker only; default: one per core, at most 4)"
        ),
    ] = None,
) -> None:
    """Run the REST API (docs at /docs). Embedded mode also runs a worker thread."""
    import uvicorn

    settings = _settings()
    _prepare_embedded(settings)
    if settings.embedded and workers not in (None, 1):
        raise typer.BadParameter("embedded mode runs one process; set OBLIVIATE_BROKER_URL")
    # With a broker the API processes share nothing but the database and Redis (rate limits
    # count there), and one process kept one of two cores busy (issue 18: 131-149 status
    # req/s with one, 293-418 with two): one per core unless told otherwise, at most
    # MAX_DEFAULT_WORKERS (each holds its own database pool and, for spot checks, model).
    workers = workers or (1 if settings.embedded else min(MAX_DEFAULT_WORKERS, os.cpu_count() or 1))
    mode = (
        "embedded (in-process worker)"
        if settings.embedded
        else f"broker {shown(settings.broker_url)}, {workers} processes"
    )
    console.print(
        f"obliviate API on http://{host}:{port}  database: {shown(settings.database_url)}  {mode}",
        soft_wrap=True,  # one line in a log too, so tools can read it
    )
    uvicorn.run("api.app:create_app", factory=True, host=host, port=port, workers=workers)


def _broker_settings():
    settings = _settings()
    if settings.embedded:
        console.print("[red]error:[/red] set OBLIVIATE_BROKER_URL (e.g. redis://localhost:6379/0)")
        raise typer.Exit(2)
    return settings


def worker_command(
    concurrency: Annotated[int, typer.Option(help="job processes; one per GPU")] = 1,
    loglevel: str = "INFO",
) -> None:
    """Run a Celery worker on the `unlearning` queue (needs OBLIVIATE_BROKER_URL). Run any
    number; exactly one `obliviate scheduler` beside them finds lost jobs."""
    _broker_settings()
    from worker.celery_app import QUEUE, app

    app.worker_main(
        ["worker", f"--loglevel={loglevel}", f"--concurrency={concurrency}", "-Q", QUEUE]
    )


def scheduler_command(
    once: Annotated[bool, typer.Option(help="sweep once and exit (cron, tests)")] = False,
) -> None:
    """The one periodic process: every OBLIVIATE_SWEEP_INTERVAL_S it fails jobs whose last
    attempt stopped heartbeating, wakes every claimable job (lost wake-ups, dead workers), and
    appends a signed checkpoint of the audit chain to OBLIVIATE_AUDIT_CHECKPOINTS.

    Its own process, not Celery beat inside each worker (every worker replica ran one) and not
    a task on the job queue (where it waited behind multi-hour jobs)."""
    settings = _broker_settings()
    from domain.audit.checkpoints import take_checkpoint
    from domain.db import Database
    from worker.celery_app import CeleryDispatcher
    from worker.sweep import sweep

    database, dispatcher = Database(settings), CeleryDispatcher(settings)
    while True:
        try:
            woken = sweep(database, dispatcher)
            if woken:
                console.print(f"sweep: woke {len(woken)} job(s)")
            with database.transaction() as session:
                secret = settings.secret_key.get_secret_value()
                take_checkpoint(session, settings.audit_checkpoints, secret)
        except Exception as error:  # a database or broker outage: try again next interval
            console.print(f"sweep failed ({type(error).__name__}); retrying")
        if once:
            return
        time.sleep(settings.sweep_interval_s)


def migrate_command(
    revision: Annotated[str, typer.Argument(help="target revision")] = "head",
    down: Annotated[bool, typer.Option(help="downgrade to REVISION instead")] = False,
    grant_to: Annotated[
        str | None, typer.Option(help="PostgreSQL: the app's role, granted use but no ownership")
    ] = None,
) -> None:
    """Apply the database migrations (alembic upgrade head), as the schema's owner."""
    from domain.db import downgrade_database, grant_app_role, upgrade_database

    settings = _settings()
    migrate = downgrade_database if down else upgrade_database
    migrate(settings.database_url, revision, data_key=settings.data_key.get_secret_value())
    if grant_to:
        grant_app_role(settings.database_url, grant_to)
    console.print(
        f"database at {'revision ' + revision if down else revision}: "
        f"{shown(settings.database_url)}"
    )


@keys_app.command("create")
def keys_create(
    organisation: Annotated[str, typer.Option(help="created if it does not exist")],
    role: Annotated[str, typer.Option(help="requester, operator, auditor or admin")] = "admin",
    name: Annotated[str, typer.Option(help="what the key is for")] = "cli",
) -> None:
    """Create an API key and print it (shown once; only its hash is stored)."""
    from domain.keys.service import create_key

    settings = _settings()
    with _transaction(settings) as session:
        key, token = create_key(
            session, settings.secret_key.get_secret_value(), organisation=organisation,
            role=role, name=name, actor="cli",
        )  # fmt: skip
    console.print(f"{role} key {key.prefix} for {organisation}:")
    print(token)


@keys_app.command("list")
def keys_list() -> None:
    """List API keys (prefix, role, organisation, revoked)."""
    from domain.db import Database
    from domain.keys.service import list_keys

    database = Database(_settings())
    with database.transaction() as session:
        for key, organisation in list_keys(session):
            revoked = f"revoked {key.revoked_at:%Y-%m-%d}" if key.revoked_at else "active"
            console.print(f"{key.prefix}  {key.role:<9}  {organisation:<20}  {key.name}  {revoked}")
    database.dispose()


@models_app.command("register")
def models_register(
    name: Annotated[str, typer.Argument(help="the name tickets will use")],
    spec: Annotated[str, typer.Argument(help="built-in name, HF folder or .gguf file")],
) -> None:
    """Register a base model as version 1 and point `production` at it."""
    from domain.versions.service import register_model
    from worker.registry import base_artifact_hash

    with _transaction(_settings()) as session:
        register_model(session, name, spec, actor="cli", artifact_hash=base_artifact_hash(spec))
    console.print(f"registered {name} = {spec} (version 1, production)")


def register(app: typer.Typer) -> None:
    """Add this area's commands to the `obliviate` app."""
    app.command("serve")(serve_command)
    app.command("worker")(worker_command)
    app.command("scheduler")(scheduler_command)
    app.command("migrate")(migrate_command)
    app.add_typer(keys_app, name="keys")
    app.add_typer(models_app, name="models")
