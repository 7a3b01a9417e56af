"""The service as it runs in production: `obliviate serve` (uvicorn) and `obliviate worker`
(Celery on Redis) as separate processes against PostgreSQL, with the fake fast engine."""

from __future__ import annotations

import os

import pytest
from sqlalchemy import select

from models import Job, ModelVersion
from tests.service.conftest import ticket_body
from tests.service.running import serve, state, wait_for

pytestmark = pytest.mark.service


def test_serve_and_worker_processes_run_a_ticket_to_publication(service_env, processes):
    _, keys = service_env
    client = serve(processes)
    processes.start("worker", "--loglevel", "WARNING", FAKE_UNLEARN_S="0.5")
    response = client.post(
        "/v1/deletion-requests", json=ticket_body(), headers={"X-API-Key": keys["requester"]}
    )
    assert response.status_code == 201, response.text
    ticket_id = response.json()["id"]
    wait_for(lambda: state(client, keys, ticket_id) == "published", 90, "publication")
    auditor = {"X-API-Key": keys["auditor"]}
    events = client.get(f"/v1/deletion-requests/{ticket_id}/events", headers=auditor).json()
    assert events["data"][-2]["event_type"] == "ticket.published"
    assert client.get("/v1/audit/verify", headers=auditor).json()["ok"]
    export = client.get("/v1/audit/events?format=csv", headers=auditor)
    assert export.headers["content-type"].startswith("text/csv")
    assert export.text.splitlines()[0].startswith("seq,") and ticket_id in export.text


@pytest.mark.parametrize(
    ("stage", "slow"),
    [("unlearning", {"FAKE_UNLEARN_S": "8"}), ("evaluating", {"FAKE_EVALUATE_S": "8"})],
)
def test_worker_killed_mid_job_is_retried_and_publishes_exactly_once(
    service_env, processes, database, settings, stage, slow
):
    _, keys = service_env
    client = serve(processes)
    first = processes.start("worker", "--loglevel", "WARNING", **slow)
    response = client.post(
        "/v1/deletion-requests", json=ticket_body(), headers={"X-API-Key": keys["requester"]}
    )
    ticket_id = response.json()["id"]
    wait_for(lambda: state(client, keys, ticket_id) == stage, 60, f"{stage} to start")
    processes.kill(first)  # kill -9 the worker and its pool: no clean-up runs
    processes.start("worker", "--loglevel", "WARNING", FAKE_UNLEARN_S="1")
    processes.start("scheduler")  # the one process that finds the dead attempt's job
    wait_for(
        lambda: state(client, keys, ticket_id) == "published", 90, "the retried job to publish"
    )
    with database.transaction() as session:
        unlearn_job = session.scalars(select(Job).where(Job.kind == "unlearn")).one()
        versions = session.scalars(select(ModelVersion).where(ModelVersion.number > 1)).all()
    assert unlearn_job.attempt == 2 and unlearn_job.status == "done"
    assert [v.ticket_ids for v in versions] == [[ticket_id]]
    # The killed attempt's training output (weights trained on the data) is gone; only the
    # published version's folder is left.
    model_dir = settings.artifacts_dir / "tiny"
    assert sorted(p.name for p in model_dir.iterdir() if p.name != ".staging") == ["v2"]
    assert list((model_dir / ".staging").iterdir()) == []


def test_worker_killed_while_publishing_leaves_one_version_and_serves_the_previous_one(
    service_env, processes, database, settings
):
    """kill -9 between moving the output into its version folder and the commit that registers
    it (the weights are being hashed): nothing is published, the retry publishes once."""
    import time

    _, keys = service_env
    client = serve(processes)
    first = processes.start("worker", "--loglevel", "WARNING", FAKE_WEIGHTS_MB="3000")
    response = client.post(
        "/v1/deletion-requests", json=ticket_body(), headers={"X-API-Key": keys["requester"]}
    )
    ticket_id = response.json()["id"]
    folder = settings.artifacts_dir / "tiny" / "v2"
    deadline = time.monotonic() + 60
    while not folder.exists():  # moved into place: the hash of 3 GB runs now
        assert time.monotonic() < deadline, "the publication never started"
        time.sleep(0.002)
    processes.kill(first)
    operator = {"X-API-Key": keys["operator"]}

    def served():
        models = client.get("/v1/models", headers=operator).json()["data"]
        return [(m["name"], m["production"]["number"]) for m in models]

    versions = client.get("/v1/models/tiny/versions", headers=operator).json()["data"]
    assert [v["number"] for v in versions] == [1] and served() == [("tiny", 1)]
    processes.start("worker", "--loglevel", "WARNING")
    processes.start("scheduler")  # finds the dead attempt's job
    wait_for(lambda: state(client, keys, ticket_id) == "published", 90, "the retry to publish")
    versions = client.get("/v1/models/tiny/versions", headers=operator).json()["data"]
    assert [v["number"] for v in versions] == [1, 2] and served() == [("tiny", 2)]
    model_dir = settings.artifacts_dir / "tiny"
    assert sorted(p.name for p in model_dir.iterdir() if p.name != ".staging") == ["v2"]
    assert list((model_dir / ".staging").iterdir()) == []


def test_urls_are_printed_without_passwords_also_a_list_of_sentinels():
    from cli.service_commands import shown

    assert shown("postgresql+psycopg://app:s3cret@db/obliviate") == (
        "postgresql+psycopg://app:***@db/obliviate"
    )
    # Celery's sentinel broker is a ';'-list, which no URL parser reads (before: a crash).
    assert shown("sentinel://:pw1@h1:26379;sentinel://:pw2@h2:26379") == (
        "sentinel://:***@h1:26379;sentinel://:***@h2:26379"
    )


def test_serve_prints_no_password_and_runs_one_process_per_core(processes, settings, tmp_path):
    from sqlalchemy import make_url

    url = make_url(settings.database_url).set(password="s3cret-pass")  # trust auth: any works
    broker = "redis://:br0ker-pass@127.0.0.1:1/0"  # nothing listens: readiness says degraded
    client = serve(
        processes,
        OBLIVIATE_DATABASE_URL=url.render_as_string(hide_password=False),
        OBLIVIATE_BROKER_URL=broker,
    )
    assert client.get("/health/ready").json()["status"] in ("ready", "degraded")
    printed = (tmp_path / "serve-0.log").read_text()
    assert "s3cret-pass" not in printed and "br0ker-pass" not in printed and "***" in printed
    # With a broker, the default is one API process per core, up to 4 (before: one in all).
    assert f"{min(4, os.cpu_count())} processes" in printed
