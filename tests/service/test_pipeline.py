"""The pipeline in one process with the fake engine: lifecycle, publish/hold, review, rollback
and the queue (its failures: test_pipeline_failures.py)."""

import pytest
from sqlalchemy import select, update

from domain.audit.service import verify_chain
from domain.jobs.service import claim_job
from models import Job, ModelVersion
from tests.service.conftest import auth, event_types, submit, ticket_view
from worker.inprocess import run_pending_jobs
from worker.policy import ModelPolicy

pytestmark = pytest.mark.service


def test_ticket_runs_to_a_published_version(api, settings):
    ticket_id = submit(api)
    outcomes = [outcome for _, outcome in run_pending_jobs(settings, api.database)]
    assert outcomes == ["assessed", "published"]
    ticket = ticket_view(api, ticket_id)
    assert ticket["state"] == "published" and ticket["data_key_destroyed"]
    assert ticket["reason"] is None  # "erasure request by email" went with the data key
    assert ticket["evaluation"]["leak_rate"]["direct"] == 0.0
    assert set(ticket["evaluation"]["stage_s"]) == {"assess", "unlearn", "evaluate"}
    assert event_types(api, ticket_id) == [
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
    ticket_id = submit(api)
    assert [outcome for _, outcome in run_pending_jobs(settings, api.database)][-1] == "published"
    reason = ticket_view(api, ticket_id)["decision_reason"]
    assert reason.startswith("before unlearning the model reproduced none of this data")
    monkeypatch.setenv("FAKE_LEAK_AFTER", "0.5")  # held, for its leak and with the same note
    held = submit(api, subject_id="customer-43")
    run_pending_jobs(settings, api.database)
    reason = ticket_view(api, held)["decision_reason"]
    assert (
        reason.startswith("held for review: leak rate on 'direct'") and "reproduced none" in reason
    )


def test_the_policy_that_decided_a_ticket_is_recorded_with_it(api, settings):
    def decided(ticket_id) -> tuple[dict, dict]:
        run_pending_jobs(settings, api.database)
        events = api.get(f"/v1/deletion-requests/{ticket_id}/events",
                         headers=auth(api, "auditor")).json()["data"]  # fmt: skip
        published = next(e for e in events if e["event_type"] == "ticket.published")
        return ticket_view(api, ticket_id)["evaluation"]["policy"], published["data"]

    policy, event = decided(submit(api))
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
    changed, event = decided(submit(api, subject_id="someone-else"))
    assert changed["source"].endswith("tiny.toml") and event["policy_sha256"] != policy["sha256"]
    assert changed["content"]["publish"]["min_utility_ratio"] == 0.5


def test_policy_miss_holds_for_review_then_operator_approves(api, settings, monkeypatch):
    monkeypatch.setenv("FAKE_LEAK_AFTER", "0.5")
    ticket_id = submit(api)
    run_pending_jobs(settings, api.database)
    ticket = ticket_view(api, ticket_id)
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
    ticket_id = submit(api)
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


def test_a_held_ticket_built_on_a_superseded_version_is_re_run_on_the_serving_one(
    api, settings, monkeypatch
):
    monkeypatch.setenv("FAKE_LEAK_AFTER", "0.5")
    held = submit(api)
    run_pending_jobs(settings, api.database)  # held: its candidate v2 is built on v1
    monkeypatch.setenv("FAKE_LEAK_AFTER", "0")
    submit(api, subject_id="someone-else")
    run_pending_jobs(settings, api.database)  # published as v3: production moved on
    approve = api.post(f"/v1/deletion-requests/{held}/approve", json={"reason": "ok"},
                       headers=auth(api, "operator"))  # fmt: skip
    assert approve.status_code == 409 and "re-run the ticket" in approve.json()["detail"]
    rerun = api.post(f"/v1/deletion-requests/{held}/rerun", json={"reason": "production moved"},
                     headers=auth(api, "operator"))  # fmt: skip
    assert rerun.status_code == 200  # before: stuck, its data key alive, "file it again"
    assert [outcome for _, outcome in run_pending_jobs(settings, api.database)] == ["published"]
    versions = api.get("/v1/models/tiny/versions", headers=auth(api, "operator")).json()["data"]
    by_number = {v["number"]: v for v in versions}
    assert by_number[4]["status"] == "published" and by_number[4]["ticket_ids"] == [held]
    assert by_number[4]["parent_id"] == by_number[3]["id"]


def test_held_ticket_rejected_leaves_production_alone(api, settings, monkeypatch):
    monkeypatch.setenv("FAKE_LEAK_AFTER", "0.5")
    ticket_id = submit(api)
    run_pending_jobs(settings, api.database)
    rejected = api.post(
        f"/v1/deletion-requests/{ticket_id}/reject", json={"reason": "does not forget"},
        headers=auth(api, "operator"),
    )  # fmt: skip
    assert rejected.json()["state"] == "rejected"
    versions = api.get("/v1/models/tiny/versions", headers=auth(api, "operator")).json()["data"]
    assert [v["status"] for v in versions] == ["published", "rejected"]


def test_rollback_moves_production_back_and_names_the_undone_tickets(api, settings):
    ticket_id = submit(api)
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
    ticket = ticket_view(api, ticket_id)
    assert ticket["state"] == "undone" and "rolled back to version 1" in ticket["decision_reason"]
    assert event_types(api, ticket_id)[-1] == "ticket.undone"
    assert ticket["data_key_destroyed"]  # closed already: it cannot run again, only be refiled


def test_jobs_on_one_model_run_one_at_a_time(api, settings):
    tickets = [submit(api), submit(api, subject_id="someone-else")]
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
    first, second = submit(api), submit(api, subject_id="someone-else")
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
    ticket_id = submit(api)
    worker = threading.Thread(target=run_pending_jobs, args=(settings, api.database))
    worker.start()
    deadline = time.monotonic() + 30
    while ticket_view(api, ticket_id)["state"] != "unlearning" and time.monotonic() < deadline:
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
    ticket = ticket_view(api, ticket_id)
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

    submit(api)
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

    submit(api)  # its wake-up went to the test's recording dispatcher, not to a broker
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
