"""The laptop default end to end with the REAL engine on the tiny model: SQLite, jobs run in
process, GRUN over NPO with a retain term, a version that loads as base + module."""

import pytest

from api.embedded import EmbeddedService
from domain.records import TextRecord
from tests.service.conftest import write_tiny_policy
from worker.engine.models import load_model


@pytest.fixture
def service(tmp_path):
    service = EmbeddedService.open(
        database_url=f"sqlite:///{tmp_path / 'obliviate.db'}",
        artifacts_dir=tmp_path / "artifacts",
        policies_dir=tmp_path / "policies",
    )
    yield service
    service.close()


def test_ticket_unlearns_the_tiny_model_with_grun_and_publishes_a_loadable_version(
    service, tiny_model_dir, qa_records, monkeypatch
):
    import worker.runner

    loads = []
    monkeypatch.setattr(
        worker.runner, "load_model", lambda spec: loads.append(spec) or load_model(spec)
    )
    # The model's retain file holds every customer, the subject too: the ticket's records are
    # left out of it, not refused.
    forget, retain = qa_records[:2], qa_records
    write_tiny_policy(service.policy_path("tiny").parent, "tiny", retain)
    assert service.register_model("tiny", str(tiny_model_dir)) == 1
    ticket_id = service.submit("tiny", forget, subject_id="customer-0")
    updates = []
    final = service.run_until_closed(ticket_id, on_update=lambda t: updates.append(t["state"]))
    assert final["state"] == "published", final["error"]
    assert final["data_key_destroyed"] and updates[-1] == "published"
    assert loads == [str(tiny_model_dir)]  # one load: assess, unlearn, evaluate share it
    evaluation = final["evaluation"]
    assert set(evaluation["leak_rate"]) == {"direct", "paraphrased", "adapter_removal"}
    assert {row["status"] for row in evaluation["robustness"].values()} == {"ok"}
    assert evaluation["forget_prob"]["after"] != evaluation["forget_prob"]["before"]
    assert evaluation["utility"]["ratio"] > 0 and evaluation["cost"]["total_s"] > 0
    versions = service.versions("tiny")
    assert [(v["number"], v["adapter"], v["status"]) for v in versions] == [
        (1, None, "published"),
        (2, "grun", "published"),
    ]
    loaded = load_model(service.production_spec("tiny"), precision="fp32")  # base + module
    assert loaded.model_hash != versions[0]["artifact_hash"]
    assert [e["event_type"] for e in service.events(ticket_id)][-2:] == [
        "ticket.published",
        "ticket.data_key_destroyed",
    ]
    assert service.verify()["ok"]


def test_a_model_without_a_policy_file_measures_utility_on_general_questions(
    service, tiny_model_dir, qa_records
):
    service.register_model("bare", str(tiny_model_dir))
    ticket_id = service.submit("bare", qa_records[:2], subject_id="customer-0")
    final = service.run_until_closed(ticket_id)
    assert final["state"] in ("published", "held"), final["error"]
    evaluation = final["evaluation"]
    # No utility or retain file: the general questions with the parent's own answers serve,
    # so the defaults can decide (before: always held, "utility was not measured").
    utility = evaluation["utility"]
    assert utility["source"] == "general questions" and utility["ratio"] is not None
    assert utility["before"] > 0 and "direct" in evaluation["leak_rate"]
    decided = [
        e for e in service.events(ticket_id) if e["event_type"] == f"ticket.{final['state']}"
    ]
    assert "utility was not measured" not in decided[0]["data"].get("violations", [])


def test_a_ticket_over_text_is_measured_by_continuing_its_passages(
    service, tiny_model_dir, qa_records
):
    write_tiny_policy(service.policy_path("tiny").parent, "tiny", qa_records)
    service.register_model("tiny", str(tiny_model_dir))
    passages = [
        TextRecord("The account number of Alan Turing is 12345678 and he lives in Bletchley."),
        TextRecord("Question: What is the email of Ada Lovelace? Answer: ada@example.com"),
    ]
    final = service.run_until_closed(service.submit("tiny", passages, subject_id="customer-9"))
    # Before: a text ticket was held, "leak rate on probe 'direct' was not measured".
    assert final["state"] == "published", final["decision_reason"] or final["error"]
    evaluation = final["evaluation"]
    assert set(evaluation["leak_rate"]) == {"verbatim", "adapter_removal"}
    assert evaluation["probed"] == {"verbatim": 2}
    assert evaluation["not_applicable"] == ["direct", "paraphrased", "no_chat"]
    assert set(evaluation["verbatim_score"]) == {"before", "after"}
