"""The pipeline's failures in one process with the fake engine: retries, what failed attempts
leave behind, leases and their clock."""

import errno
import subprocess
from datetime import timedelta

import pytest
from sqlalchemy import select, update

from domain.jobs.service import claim_job, renew_lease
from models import Job, utcnow
from tests.service.conftest import auth, event_types, submit, ticket_view
from tests.service.fake_engine import FakeRunner
from worker import registry
from worker.engine.errors import OptionError
from worker.inprocess import run_pending_jobs

pytestmark = pytest.mark.service


def test_transient_failure_is_retried_and_publishes_once(api, settings, monkeypatch, tmp_path):
    monkeypatch.setenv("FAKE_FAIL_ONCE", str(tmp_path / "failed-once"))
    ticket_id = submit(api)
    outcomes = [outcome for _, outcome in run_pending_jobs(settings, api.database)]
    assert outcomes == ["assessed", "retry", "published"]
    ticket = ticket_view(api, ticket_id)
    unlearn_job = next(j for j in ticket["jobs"] if j["kind"] == "unlearn")
    assert unlearn_job["attempt"] == 2 and ticket["state"] == "published"
    assert "job.retry_scheduled" in event_types(api, ticket_id)
    staging = settings.artifacts_dir / "tiny" / ".staging"  # failed attempt: nothing left
    assert not staging.exists() or list(staging.iterdir()) == []


def test_a_killed_attempts_leftovers_are_removed_by_the_next_attempt(
    api, settings, monkeypatch, tmp_path
):
    real_discard, calls = registry.discard, []

    def discard_unless_killed(folder):
        calls.append(folder)
        if len(calls) > 1:  # the first attempt's own cleanup never ran, as after kill -9
            real_discard(folder)

    monkeypatch.setattr(registry, "discard", discard_unless_killed)
    monkeypatch.setenv("FAKE_FAIL_ONCE", str(tmp_path / "failed-once"))
    ticket_id = submit(api)
    outcomes = [outcome for _, outcome in run_pending_jobs(settings, api.database)]
    assert outcomes == ["assessed", "retry", "published"]
    first = calls[0]
    assert first.name.endswith("-a1") and not first.exists()  # weights trained on the data
    assert ticket_view(api, ticket_id)["state"] == "published"


@pytest.mark.parametrize("moved", [False, True], ids=["before-the-move", "after-the-move"])
def test_a_disk_full_at_publication_fails_cleanly_with_nothing_left_behind(
    api, settings, monkeypatch, moved
):
    real_store = registry.store_version

    def disk_full(*args, **kwargs):
        if moved:  # the training output is in its version folder; what came next failed
            real_store(*args, **kwargs)
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(registry, "store_version", disk_full)
    ticket_id = submit(api)
    outcomes = [outcome for _, outcome in run_pending_jobs(settings, api.database)]
    assert outcomes == ["assessed", "retry", "retry", "failed"]  # transient, until out of tries
    ticket = ticket_view(api, ticket_id)
    assert ticket["state"] == "failed" and "No space left on device" in ticket["error"]
    # No weights trained on the data are left, neither staged nor as an unregistered version,
    # and production is still version 1.
    model_dir = settings.artifacts_dir / "tiny"
    assert [p.name for p in model_dir.iterdir() if any(p.iterdir())] == []
    models = api.get("/v1/models", headers=auth(api, "operator")).json()["data"]
    assert models[0]["production"]["number"] == 1


@pytest.fixture
def small_disk(settings):
    """The artifacts folder on a real 1 MiB filesystem (tmpfs): writes there end in ENOSPC."""
    folder = settings.artifacts_dir
    folder.mkdir(parents=True, exist_ok=True)
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1M", "tmpfs", str(folder)],
                             capture_output=True, text=True)  # fmt: skip
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a small filesystem here: {mounted.stderr.strip()}")
    yield folder
    subprocess.run(["umount", "--lazy", str(folder)], check=True)


def test_a_real_disk_full_while_writing_the_weights_fails_cleanly(
    api, settings, monkeypatch, small_disk
):
    monkeypatch.setenv("FAKE_WEIGHTS_MB", "4")  # 4 MiB of weights on a 1 MiB filesystem
    monkeypatch.setenv("FAKE_WEIGHTS_ALLOCATE", "1")
    ticket_id = submit(api)
    outcomes = [outcome for _, outcome in run_pending_jobs(settings, api.database)]
    assert outcomes == ["assessed", "retry", "retry", "failed"]
    ticket = ticket_view(api, ticket_id)
    assert ticket["state"] == "failed" and "No space left on device" in ticket["error"]
    # Each attempt's partial output went with it: the filesystem is empty again.
    leftovers = [p for p in small_disk.rglob("*") if p.is_file()]
    assert leftovers == []
    models = api.get("/v1/models", headers=auth(api, "operator")).json()["data"]
    assert models[0]["production"]["number"] == 1


def test_the_sweep_removes_what_attempts_of_finished_jobs_left_in_staging(api, settings):
    from worker.sweep import sweep

    submit(api)
    run_pending_jobs(settings, api.database)  # published: its jobs are done
    submit(api, subject_id="someone-else")  # its assess job is pending
    with api.database.transaction() as session:
        done = session.scalars(select(Job).where(Job.kind == "unlearn")).one()
        pending = session.scalars(select(Job).where(Job.status == "pending")).one()
    where = (settings.artifacts_dir, "tiny")
    # As a killed last attempt leaves them: nobody retries this job, so nobody cleaned up.
    left = [registry.staging_folder(*where, str(done.id), 3)]
    left.append(left[0].with_name(left[0].name + ".partial"))
    live = registry.staging_folder(*where, str(pending.id), 1)
    for folder in (*left, live):
        folder.mkdir(parents=True)
        (folder / "weights.safetensors").write_bytes(b"trained on the data")
    sweep(api.database, api.dispatcher)
    assert [folder.exists() for folder in left] == [False, False]
    assert live.exists()  # a job that may still run keeps its attempt


def test_a_user_error_fails_the_ticket_at_once_instead_of_burning_retries(
    api, settings, monkeypatch
):
    def refuse(*args, **kwargs):
        raise OptionError("lr must be positive, got -1.0")  # an engine-level user error

    monkeypatch.setattr(FakeRunner, "unlearn", refuse)
    ticket_id = submit(api)
    outcomes = [outcome for _, outcome in run_pending_jobs(settings, api.database)]
    assert outcomes == ["assessed", "failed"]
    ticket = ticket_view(api, ticket_id)
    unlearn_job = next(j for j in ticket["jobs"] if j["kind"] == "unlearn")
    assert unlearn_job["attempt"] == 1 and unlearn_job["status"] == "failed"
    assert ticket["state"] == "failed" and "lr must be positive" in ticket["error"]
    assert "job.retry_scheduled" not in event_types(api, ticket_id)


def test_expired_lease_is_reclaimed_and_the_stale_worker_cannot_write(api, settings):
    submit(api)
    with api.database.transaction() as session:
        job_id = session.scalars(select(Job.id)).one()
        first = claim_job(session, job_id, "dead-worker", lease_s=60)
    with api.database.transaction() as session:
        assert claim_job(session, job_id, "other", lease_s=60) is None  # the lease is live
        session.execute(update(Job).values(lease_expires_at=utcnow() - timedelta(seconds=1)))
    with api.database.transaction() as session:
        second = claim_job(session, job_id, "new-worker", lease_s=60)
    assert (first.fence, second.fence) == (1, 2)
    from domain.jobs.service import LeaseLost, held_job

    with pytest.raises(LeaseLost), api.database.transaction() as session:
        renew_lease(session, first, 60)
    with pytest.raises(LeaseLost), api.database.transaction() as session:
        held_job(session, first)


def test_a_worker_whose_clock_runs_ahead_cannot_take_a_live_lease(api, monkeypatch):
    submit(api)
    with api.database.transaction() as session:
        job_id = session.scalars(select(Job.id)).one()
        first = claim_job(session, job_id, "worker-a", lease_s=60)
    # Worker b's clock is two hours fast: by its own time the lease ran out long ago.
    fast = utcnow() + timedelta(hours=2)
    for module in ("domain.jobs.service", "worker.pipeline"):  # what reads this process's clock
        monkeypatch.setattr(f"{module}.utcnow", lambda: fast)
    with api.database.transaction() as session:
        assert claim_job(session, job_id, "worker-b", lease_s=60) is None
    with api.database.transaction() as session:  # and worker a still holds it
        renew_lease(session, first, 60)
