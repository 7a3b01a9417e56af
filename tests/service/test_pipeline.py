"""The pipeline in one process with the fake engine: lifecycle, publish/hold, retry, leases."""

import errno
from datetime import timedelta

import pytest
from sqlalchemy import select, update

from domain.audit.service import verify_chain
from domain.jobs.service import claim_job, renew_lease
from models import Job, ModelVersion, utcnow
from tests.service.conftest import auth, ticket_body
from tests.service.fake_engine import FakeRunner
from worker import registry
from worker.engine.errors import OptionError
from worker.inprocess import run_pending_jobs
from worker.policy import ModelPolicy

pytestmark = pytest.mark.service


def _submit(api, **overrides) -> str:
    response = api.post(
        "/v1/deletion-requests", json=ticket_body(**overrides), headers=auth(api, "requester")
    )
    assert response.status_code == 201, response.text
    return response.json()["id"]


def _ticket(api, ticket_id) -> dict:
    return api.get(f"/v1/deletion-requests/{ticket_id}", headers=auth(api, "operator")).json()


def _events(api, ticket_id) -> list[str]:
    data = api.get(f"/v1/deletion-requests/{ticket_id}/events", headers=auth(api, "auditor")).json()
    return [e["event_type"] for e in data["data"]]


def test_ticket_runs_to_a_published_version(api, settings):
    ticket_id = _submit(api)
    outcomes = [outcome for _, outcome in run_pending_jobs(settings, api.database)]
    assert outcomes == ["assessed", "published"]
    ticket = _ticket(api, ticket_id)
    assert ticket["state"] == "published" and ticket["data_key_destroyed"]
    assert ticket["reason"] is None  # "erasure request by email" went with the data key
    assert ticket["evaluation"]["leak_rate"]["direct"] == 0.0
    assert set(ticket["evaluation"]["stage_s"]) == {"assess", "unlearn", "evaluate"}
    assert _events(api, ticket_id) == [
        "ticket.received", "ticket.assessing", "ticket.queued", "ticket.unlearning",
        "ticket.evaluating", "ticket.published", "ticket.data_key_destroyed",
    ]  # fmt: skip
    versions = api.get("/v1/models/tiny/versions", headers=auth(api, "auditor")).json()["data"]
    assert [(v["number"], v["status"]) for v in versions] == [(1, "published"), (2, "published")]
    assert versions[1]["ticket_ids"] == [ticket_id] and versions[1]["adapter"] == "grun"
    production = api.get("/v1/models", headers=auth(api, "auditor")).json()["data"][0]
    assert production["production"]["number"] == 2
    assert api.get("/v1/audit/verify", headers=auth(api, "auditor")).json()["ok"]


def test_a_ticket_about_data_the_model_never_gave_out_says_so(api, settings, monkeypatch):
    monkeypatch.setenv("FAKE_LEAK_BEFORE", "0")
    ticket_id = _submit(api)
    assert [outcome for _, outcome in run_pending_jobs(settings, api.database)][-1] == "published"
    reason = _ticket(api, ticket_id)["decision_reason"]
    assert reason.startswith("before unlearning the model reproduced none of this data")
    monkeypatch.setenv("FAKE_LEAK_AFTER", "0.5")  # held, for its leak and with the same note
    held = _submit(api, subject_id="customer-43")
    run_pending_jobs(settings, api.database)
    reason = _ticket(api, held)["decision_reason"]
    assert (
        reason.startswith("held for review: leak rate on 'direct'") and "reproduced none" in reason
    )


def test_the_policy_that_decided_a_ticket_is_recorded_with_it(api, settings):
    def decided(ticket_id) -> tuple[dict, dict]:
        run_pending_jobs(settings, api.database)
        events = api.get(f"/v1/deletion-requests/{ticket_id}/events",
                         headers=auth(api, "auditor")).json()["data"]  # fmt: skip
        published = next(e for e in events if e["event_type"] == "ticket.published")
        return _ticket(api, ticket_id)["evaluation"]["policy"], published["data"]

    policy, event = decided(_submit(api))
    assert policy["source"] == "defaults"
    assert (
        event["policy_sha256"]
        == policy["sha256"]
        == ModelPolicy("defaults").fingerprint()["sha256"]
    )
    assert policy["content"]["publish"]["min_utility_ratio"] == 0.9
    # The file changes: the next ticket names the new content; the first keeps its own.
    settings.policies_dir.mkdir(parents=True, exist_ok=True)
    (settings.policies_dir / "tiny.toml").write_text("[publish]\nmin_utility_ratio = 0.5\n")
    changed, event = decided(_submit(api, subject_id="someone-else"))
    assert changed["source"].endswith("tiny.toml") and event["policy_sha256"] != policy["sha256"]
    assert changed["content"]["publish"]["min_utility_ratio"] == 0.5


def test_policy_miss_holds_for_review_then_operator_approves(api, settings, monkeypatch):
    monkeypatch.setenv("FAKE_LEAK_AFTER", "0.5")
    ticket_id = _submit(api)
    run_pending_jobs(settings, api.database)
    ticket = _ticket(api, ticket_id)
    assert ticket["state"] == "held" and not ticket["data_key_destroyed"]
    models = api.get("/v1/models", headers=auth(api, "operator")).json()["data"]
    assert models[0]["production"]["number"] == 1  # the held candidate is not served
    approved = api.post(
        f"/v1/deletion-requests/{ticket_id}/approve", json={"reason": "leak is in public data"},
        headers=auth(api, "operator"),
    )  # fmt: skip
    assert approved.json()["state"] == "published"
    models = api.get("/v1/models", headers=auth(api, "operator")).json()["data"]
    assert models[0]["production"]["number"] == 2


def test_a_held_ticket_tells_the_requester_why_and_reruns_with_a_larger_budget(
    api, settings, monkeypatch
):
    monkeypatch.setenv("FAKE_LEAK_AFTER", "0.5")
    ticket_id = _submit(api)
    run_pending_jobs(settings, api.database)
    seen = api.get(f"/v1/deletion-requests/{ticket_id}", headers=auth(api, "requester")).json()
    assert seen["state"] == "held"
    assert "leak rate on 'direct' is 0.500 > 0.0" in seen["decision_reason"]  # before: null
    assert seen["progress"]["stage"] == "held" and seen["progress"].get("eta_s") is None

    path, body = f"/v1/deletion-requests/{ticket_id}/rerun", {"reason": "more", "steps": 96}
    rerun = api.post(path, json=body, headers=auth(api, "operator"))
    assert rerun.status_code == 200 and rerun.json()["state"] == "queued"
    monkeypatch.setenv("FAKE_LEAK_AFTER", "0")
    outcomes = [outcome for _, outcome in run_pending_jobs(settings, api.database)]
    assert outcomes == ["published"]  # the data was kept: no new ticket, no new assessment
    events = api.get(f"/v1/deletion-requests/{ticket_id}/events",
                     headers=auth(api, "auditor")).json()["data"]  # fmt: skip
    evaluating = [e["data"] for e in events if e["event_type"] == "ticket.evaluating"]
    assert [e["steps"] for e in evaluating] == [10, 96]  # the budget the operator raised
    versions = api.get("/v1/models/tiny/versions", headers=auth(api, "operator")).json()["data"]
    assert [v["status"] for v in versions] == ["published", "rejected", "published"]


def test_held_ticket_rejected_leaves_production_alone(api, settings, monkeypatch):
    monkeypatch.setenv("FAKE_LEAK_AFTER", "0.5")
    ticket_id = _submit(api)
    run_pending_jobs(settings, api.database)
    rejected = api.post(
        f"/v1/deletion-requests/{ticket_id}/reject", json={"reason": "does not forget"},
        headers=auth(api, "operator"),
    )  # fmt: skip
    assert rejected.json()["state"] == "rejected"
    versions = api.get("/v1/models/tiny/versions", headers=auth(api, "operator")).json()["data"]
    assert [v["status"] for v in versions] == ["published", "rejected"]


def test_rollback_moves_production_back_and_names_the_undone_tickets(api, settings):
    ticket_id = _submit(api)
    run_pending_jobs(settings, api.database)
    response = api.post(
        "/v1/models/tiny/rollback", json={"reason": "bad outputs"}, headers=auth(api, "operator")
    )
    assert response.status_code == 200 and response.json()["number"] == 1
    events = api.get(
        "/v1/audit/events?event_type=model.alias_moved", headers=auth(api, "auditor")
    ).json()
    last = events["data"][-1]["data"]
    assert last["rollback"] and last["tickets_undone"] == [ticket_id] and last["to_version"] == 1
    # The ticket itself says its deletion is no longer served (before: still "published").
    ticket = _ticket(api, ticket_id)
    assert ticket["state"] == "undone" and "rolled back to version 1" in ticket["decision_reason"]
    assert _events(api, ticket_id)[-1] == "ticket.undone"
    assert ticket["data_key_destroyed"]  # closed already: it cannot run again, only be refiled


def test_transient_failure_is_retried_and_publishes_once(api, settings, monkeypatch, tmp_path):
    monkeypatch.setenv("FAKE_FAIL_ONCE", str(tmp_path / "failed-once"))
    ticket_id = _submit(api)
    outcomes = [outcome for _, outcome in run_pending_jobs(settings, api.database)]
    assert outcomes == ["assessed", "retry", "published"]
    ticket = _ticket(api, ticket_id)
    unlearn_job = next(j for j in ticket["jobs"] if j["kind"] == "unlearn")
    assert unlearn_job["attempt"] == 2 and ticket["state"] == "published"
    assert "job.retry_scheduled" in _events(api, ticket_id)
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
    ticket_id = _submit(api)
    outcomes = [outcome for _, outcome in run_pending_jobs(settings, api.database)]
    assert outcomes == ["assessed", "retry", "published"]
    first = calls[0]
    assert first.name.endswith("-a1") and not first.exists()  # weights trained on the data
    assert _ticket(api, ticket_id)["state"] == "published"


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
    ticket_id = _submit(api)
    outcomes = [outcome for _, outcome in run_pending_jobs(settings, api.database)]
    assert outcomes == ["assessed", "retry", "retry", "failed"]  # transient, until out of tries
    ticket = _ticket(api, ticket_id)
    assert ticket["state"] == "failed" and "No space left on device" in ticket["error"]
    # No weights trained on the data are left, neither staged nor as an unregistered version,
    # and production is still version 1.
    model_dir = settings.artifacts_dir / "tiny"
    assert [p.name for p in model_dir.iterdir() if any(p.iterdir())] == []
    models = api.get("/v1/models", headers=auth(api, "operator")).json()["data"]
    assert models[0]["production"]["number"] == 1


def test_the_sweep_removes_what_attempts_of_finished_jobs_left_in_staging(api, settings):
    from worker.sweep import sweep

    _submit(api)
    run_pending_jobs(settings, api.database)  # published: its jobs are done
    _submit(api, subject_id="someone-else")  # its assess job is pending
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
    ticket_id = _submit(api)
    outcomes = [outcome for _, outcome in run_pending_jobs(settings, api.database)]
    assert outcomes == ["assessed", "failed"]
    ticket = _ticket(api, ticket_id)
    unlearn_job = next(j for j in ticket["jobs"] if j["kind"] == "unlearn")
    assert unlearn_job["attempt"] == 1 and unlearn_job["status"] == "failed"
    assert ticket["state"] == "failed" and "lr must be positive" in ticket["error"]
    assert "job.retry_scheduled" not in _events(api, ticket_id)


def test_expired_lease_is_reclaimed_and_the_stale_worker_cannot_write(api, settings):
    _submit(api)
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
    _submit(api)
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


def test_jobs_on_one_model_run_one_at_a_time(api, settings):
    tickets = [_submit(api), _submit(api, subject_id="someone-else")]
    # Each waiting ticket shows its place in its model's queue, requesters included.
    for place, ticket_id in enumerate(tickets, start=1):
        view = api.get(f"/v1/deletion-requests/{ticket_id}", headers=auth(api, "requester"))
        assert view.json()["queue_position"] == place
    with api.database.transaction() as session:
        first, second = session.scalars(select(Job.id).order_by(Job.created_at)).all()
        assert claim_job(session, first, "w1", lease_s=60) is not None
    with api.database.transaction() as session:
        assert claim_job(session, second, "w2", lease_s=60) is None


def test_two_tickets_give_two_stacked_versions_and_a_valid_chain(api, settings):
    first, second = _submit(api), _submit(api, subject_id="someone-else")
    run_pending_jobs(settings, api.database)
    with api.database.transaction() as session:
        versions = session.scalars(select(ModelVersion).order_by(ModelVersion.number)).all()
        assert [v.number for v in versions] == [1, 2, 3]
        assert versions[2].parent_id == versions[1].id
        assert {t for v in versions for t in v.ticket_ids} == {first, second}
        assert verify_chain(session).ok


def test_operator_cancels_a_running_unlearning_job_cooperatively(api, settings, monkeypatch):
    import threading
    import time

    monkeypatch.setenv("FAKE_UNLEARN_S", "20")
    ticket_id = _submit(api)
    worker = threading.Thread(target=run_pending_jobs, args=(settings, api.database))
    worker.start()
    deadline = time.monotonic() + 30
    while _ticket(api, ticket_id)["state"] != "unlearning" and time.monotonic() < deadline:
        time.sleep(0.2)
    too_late = api.post(f"/v1/deletion-requests/{ticket_id}/cancel", headers=auth(api, "requester"))
    assert too_late.status_code == 409  # requesters cannot stop a running job
    response = api.post(f"/v1/deletion-requests/{ticket_id}/cancel",
                        json={"reason": "filed against the wrong model"},
                        headers=auth(api, "operator"))  # fmt: skip
    assert response.status_code == 200
    # The job stops at its next step; until then the ticket says a cancel is pending.
    assert response.json()["state"] == "unlearning" and response.json()["cancel_pending"]
    worker.join(30)
    ticket = _ticket(api, ticket_id)
    assert ticket["state"] == "cancelled" and ticket["data_key_destroyed"]
    assert ticket["decision_reason"] == "filed against the wrong model"  # before: dropped
    assert not ticket["cancel_pending"]
    assert next(j for j in ticket["jobs"] if j["kind"] == "unlearn")["status"] == "cancelled"
    with api.database.transaction() as session:
        assert session.scalars(select(ModelVersion).where(ModelVersion.number > 1)).all() == []
    staging = settings.artifacts_dir / "tiny" / ".staging"  # the cancelled attempt's model
    assert not staging.exists() or list(staging.iterdir()) == []


def test_duplicate_delivery_of_a_claimed_or_finished_job_does_nothing(api, settings):
    from worker.inprocess import _Collect
    from worker.pipeline import Context, load_runner, run_job

    _submit(api)
    context = Context(settings, api.database, _Collect(), load_runner(settings), "duplicate")
    with api.database.transaction() as session:
        job_id = session.scalars(select(Job.id)).one()
        claim_job(session, job_id, "first", lease_s=60)
    assert run_job(context, job_id) == "skipped"  # held by a live lease
    with api.database.transaction() as session:
        session.execute(update(Job).values(status="done", lease_expires_at=None))
    assert run_job(context, job_id) == "skipped"  # finished
    with api.database.transaction() as session:
        assert session.get(Job, job_id).attempt == 1


def test_the_scheduler_sweeps_once_and_wakes_a_job_whose_wake_up_was_lost(
    api, settings, monkeypatch
):
    from typer.testing import CliRunner

    from cli.main import app
    from worker.celery_app import CeleryDispatcher

    _submit(api)  # its wake-up went to the test's recording dispatcher, not to a broker
    sent = []
    monkeypatch.setattr(CeleryDispatcher, "wake", lambda self, ids: sent.extend(ids))
    env = {
        "OBLIVIATE_DATABASE_URL": settings.database_url,
        "OBLIVIATE_BROKER_URL": "redis://127.0.0.1:6379/0",
        "OBLIVIATE_SECRET_KEY": "test-secret-key",
        "OBLIVIATE_DATA_KEY": "test-data-key",
    }
    result = CliRunner().invoke(app, ["scheduler", "--once"], env=env)
    assert result.exit_code == 0, result.output
    assert len(sent) == 1 and "woke 1 job" in result.output
