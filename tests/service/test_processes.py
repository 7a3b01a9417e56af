"""The service as it runs in production: `obliviate serve` (uvicorn) and `obliviate worker`
(Celery on Redis) as separate processes against PostgreSQL, with the fake fast engine."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time

import httpx
import pytest
import redis
from sqlalchemy import select

from models import Job, ModelVersion
from tests.service.conftest import REDIS_URL, make_keys, ticket_body

pytestmark = pytest.mark.service


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


class Processes:
    def __init__(self, env: dict, logs):
        self.env, self.logs, self.running = env, logs, []

    def start(self, *args: str, **extra_env) -> subprocess.Popen:
        log = (self.logs / f"{args[0]}-{len(self.running)}.log").open("w")
        process = subprocess.Popen(
            [sys.executable, "-m", "cli.main", *args],
            env={**self.env, **extra_env},
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: kill -9 takes the pool children too
        )
        self.running.append(process)
        return process

    def kill(self, process: subprocess.Popen) -> None:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()

    def stop_all(self) -> None:
        """Test processes need no clean shutdown: the database and Redis keys are dropped."""
        for process in self.running:
            if process.poll() is None:
                self.kill(process)


@pytest.fixture
def processes(service_env, tmp_path):
    env, _ = service_env
    running = Processes(env, tmp_path)
    yield running
    running.stop_all()


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_for(predicate, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.3)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def _serve(processes) -> httpx.Client:
    port = _free_port()
    processes.start("serve", "--port", str(port))
    client = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10)

    def up():
        try:
            return client.get("/health/ready").status_code == 200
        except httpx.TransportError:
            return False

    wait_for(up, 60, "the API to answer")
    return client


def _state(client, keys, ticket_id) -> str:
    response = client.get(
        f"/v1/deletion-requests/{ticket_id}", headers={"X-API-Key": keys["operator"]}
    )
    return response.json()["state"]


def test_serve_and_worker_processes_run_a_ticket_to_publication(service_env, processes):
    _, keys = service_env
    client = _serve(processes)
    processes.start("worker", "--loglevel", "WARNING", FAKE_UNLEARN_S="0.5")
    response = client.post(
        "/v1/deletion-requests", json=ticket_body(), headers={"X-API-Key": keys["requester"]}
    )
    assert response.status_code == 201, response.text
    ticket_id = response.json()["id"]
    wait_for(lambda: _state(client, keys, ticket_id) == "published", 90, "publication")
    auditor = {"X-API-Key": keys["auditor"]}
    events = client.get(f"/v1/deletion-requests/{ticket_id}/events", headers=auditor).json()
    assert events["data"][-2]["event_type"] == "ticket.published"
    assert client.get("/v1/audit/verify", headers=auditor).json()["ok"]
    export = client.get("/v1/audit/events?format=csv", headers=auditor)
    assert export.headers["content-type"].startswith("text/csv")
    assert export.text.splitlines()[0].startswith("seq,") and ticket_id in export.text


def test_worker_killed_mid_job_is_retried_and_publishes_exactly_once(
    service_env, processes, database
):
    _, keys = service_env
    client = _serve(processes)
    first = processes.start("worker", "--loglevel", "WARNING", FAKE_UNLEARN_S="8")
    response = client.post(
        "/v1/deletion-requests", json=ticket_body(), headers={"X-API-Key": keys["requester"]}
    )
    ticket_id = response.json()["id"]
    wait_for(lambda: _state(client, keys, ticket_id) == "unlearning", 60, "unlearning to start")
    processes.kill(first)  # kill -9 the worker and its pool: no clean-up runs
    processes.start("worker", "--loglevel", "WARNING", FAKE_UNLEARN_S="1")
    processes.start("scheduler")  # the one process that finds the dead attempt's job
    wait_for(
        lambda: _state(client, keys, ticket_id) == "published", 90, "the retried job to publish"
    )
    with database.transaction() as session:
        unlearn_job = session.scalars(select(Job).where(Job.kind == "unlearn")).one()
        versions = session.scalars(select(ModelVersion).where(ModelVersion.number > 1)).all()
    assert unlearn_job.attempt == 2 and unlearn_job.status == "done"
    assert [v.ticket_ids for v in versions] == [[ticket_id]]
