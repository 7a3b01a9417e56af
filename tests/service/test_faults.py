"""Faults under real processes (issue 18): the database's connections cut mid-job, the broker
restarted empty with jobs queued. The promise each checks: no ticket is lost and a deletion is
published exactly once."""

from __future__ import annotations

import base64
import json
import shutil
import subprocess

import psycopg
import pytest
import redis
from sqlalchemy import select

from models import Job, ModelVersion
from tests.service.conftest import PG_ADMIN, ticket_body
from tests.service.running import free_port, serve, state, wait_for

pytestmark = pytest.mark.service


def published_versions(database) -> list[list[str]]:
    with database.transaction() as session:
        versions = session.scalars(select(ModelVersion).where(ModelVersion.number > 1)).all()
        return [v.ticket_ids for v in versions]


def cut_connections(database_name: str) -> int:
    """What a database restart or a network cut does to every client: their connections die."""
    with psycopg.connect(PG_ADMIN, autocommit=True) as admin:
        rows = admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = %s AND pid <> pg_backend_pid()",
            (database_name,),
        ).fetchall()
    return len(rows)


def test_database_connections_cut_mid_job_the_ticket_still_publishes_once(
    service_env, processes, database, settings
):
    _, keys = service_env
    client = serve(processes)
    processes.start("worker", "--loglevel", "WARNING", FAKE_UNLEARN_S="6")
    processes.start("scheduler")
    response = client.post(
        "/v1/deletion-requests", json=ticket_body(), headers={"X-API-Key": keys["requester"]}
    )
    ticket_id = response.json()["id"]
    wait_for(lambda: state(client, keys, ticket_id) == "unlearning", 60, "unlearning to start")
    name = settings.database_url.rsplit("/", 1)[1]
    assert cut_connections(name) > 0  # the API's, the worker's (heartbeat) and the scheduler's
    # The API answers again on fresh connections (pre-ping), the job goes on or is retried.
    assert client.get("/health/ready").status_code == 200
    wait_for(lambda: state(client, keys, ticket_id) == "published", 90, "publication")
    assert published_versions(database) == [[ticket_id]]


def broker_contents(port: int) -> str:
    """What every queue of a Redis broker holds, task bodies decoded (kombu stores them as
    base64 inside a JSON envelope)."""
    client = redis.Redis(port=port)
    texts = []
    for key in client.scan_iter():
        if client.type(key) != b"list":
            continue
        for item in client.lrange(key, 0, -1):
            envelope = json.loads(item)
            texts.append(json.dumps(envelope))
            if envelope.get("properties", {}).get("body_encoding") == "base64":
                texts.append(base64.b64decode(envelope["body"]).decode())
    return "\n".join(texts)


@pytest.mark.skipif(shutil.which("redis-server") is None, reason="needs redis-server")
def test_broker_restarted_empty_with_jobs_queued_loses_no_ticket(
    service_env, processes, database, tmp_path
):
    _, keys = service_env
    port = free_port()
    broker = {"OBLIVIATE_BROKER_URL": f"redis://127.0.0.1:{port}/0"}

    def start_redis() -> subprocess.Popen:  # a broker of this test's own, keeping nothing
        command = ["redis-server", "--port", str(port), "--save", "", "--appendonly", "no",
                   "--dir", str(tmp_path)]  # fmt: skip
        return subprocess.Popen(command, stdout=subprocess.DEVNULL)

    redis_server = start_redis()
    try:
        client = serve(processes, **broker)
        requester = {"X-API-Key": keys["requester"]}
        first = client.post("/v1/deletion-requests", json=ticket_body(), headers=requester)
        assert first.status_code == 201  # its wake-up waits in the broker: no worker runs yet
        # What the broker holds is a job id, never the ticket's data (issue 18).
        queued = broker_contents(port)
        with database.transaction() as session:
            job_id = str(session.scalars(select(Job.id)).one())
        assert job_id in queued  # the wake-up is there, decoded
        for value in ("customer-42", "ada@example.com", "What is the email of Ada?"):
            assert value not in queued
        redis_server.kill()
        redis_server.wait()
        # Broker down: tickets are still accepted, and readiness says what is missing.
        second = client.post(
            "/v1/deletion-requests", json=ticket_body(subject_id="customer-43"), headers=requester
        )
        assert second.status_code == 201, second.text
        ready = client.get("/health/ready").json()
        assert (ready["status"], ready["broker"]) == ("degraded", "unreachable")
        redis_server = start_redis()  # back, empty: both wake-ups are lost
        processes.start("worker", "--loglevel", "WARNING", FAKE_UNLEARN_S="0.5", **broker)
        processes.start("scheduler", **broker)  # its sweep sends them again
        tickets = [first.json()["id"], second.json()["id"]]
        for ticket_id in tickets:
            wait_for(lambda t=ticket_id: state(client, keys, t) == "published", 90, "publication")
    finally:
        redis_server.kill()
        redis_server.wait()
    assert sorted(map(tuple, published_versions(database))) == sorted((t,) for t in tickets)
