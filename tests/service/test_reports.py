"""The ticket report (GET /v1/deletion-requests/{id}/report): what a compliance officer reads,
in English and Japanese, with no personal value in it."""

import pytest

from tests.service.conftest import auth, ticket_body
from worker.inprocess import run_pending_jobs

pytestmark = pytest.mark.service


def _decided(api, settings) -> str:
    ticket = api.post("/v1/deletion-requests", json=ticket_body(), headers=auth(api, "requester"))
    run_pending_jobs(settings, api.database)
    return ticket.json()["id"]


def _report(api, ticket_id, role="requester", **params):
    return api.get(f"/v1/deletion-requests/{ticket_id}/report", params=params,
                   headers=auth(api, role))  # fmt: skip


def test_a_published_tickets_report_states_the_verdict_rule_by_rule(api, settings):
    ticket_id = _decided(api, settings)
    report = _report(api, ticket_id, format="json").json()
    assert report["verdict"] == "published"
    rules = {(r["rule"], r["probe"]): r for r in report["rules"]}
    direct = {"rule": "leak_rate", "probe": "direct", "limit": 0.0, "measured": 0.0}
    assert rules["leak_rate", "direct"] == {**direct, "margin": 0.0, "passed": True}
    assert rules["utility", None]["margin"] == pytest.approx(0.1)  # 1.0 against 0.9
    assert {"probe": "direct", "before": 1.0, "after": 0.0} in report["forgetting"]
    assert report["policy"]["sha256"] and report["version"]["number"] == 2
    assert report["tried"]["budget_steps"] == 48  # the default policy's (before: "—")
    # Per-metric appendix tables: every probe run or skipped (with why), other measurements.
    assert {"probe": "relearning", "status": "skipped", "metric": None, "forget": None,
            "retain": None, "reason": "not in this policy"} in report["probes"]  # fmt: skip
    assert report["measurements"] == [{"metric": "forget_prob", "before": 0.9, "after": 0.01}]
    html = _report(api, ticket_id).text
    assert "Robustness probes (leak rate)" in html and "not in this policy" in html
    assert [e["type"] for e in report["events"]][-2:] == ["ticket.published",
                                                          "ticket.data_key_destroyed"]  # fmt: skip
    text = _report(api, ticket_id, format="json").text + _report(api, ticket_id).text
    for personal in ("customer-42", "ada@example.com", "What is the email of Ada"):
        assert personal not in text  # no subject id, no record, no unmasked answer
    # The answers before (a recital) and after (a refusal), masked at evaluation.
    example = {"record": 1, "question": "What is the email of [name]?", "before": "[redacted]",
               "after": "I can't share that."}  # fmt: skip
    assert report["examples"] == [example]


def test_a_held_tickets_report_names_the_missed_rule_in_both_languages(api, settings, monkeypatch):
    monkeypatch.setenv("FAKE_LEAK_AFTER", "0.5")
    ticket_id = _decided(api, settings)
    english = _report(api, ticket_id)
    assert english.status_code == 200 and english.headers["content-type"].startswith("text/html")
    assert "Held for review" in english.text and "MISSED" in english.text
    # Inline plots (one self-contained file): leak rate by probe, utility against forgetting.
    assert english.text.count("<svg") == 2 and "Normal answers kept against" in english.text
    japanese = _report(api, ticket_id, lang="ja")
    assert '<html lang="ja">' in japanese.text and "審査待ち" in japanese.text
    assert "不合格" in japanese.text
    # Rule names and the state in Japanese too (before: "leak rate: direct", "held").
    assert "漏えい率：direct" in japanese.text and "leak rate: direct" not in japanese.text
    assert "状態: 保留（要確認）" in japanese.text


def test_another_organisation_cannot_read_the_report(api, settings):
    ticket_id = _decided(api, settings)
    assert _report(api, ticket_id, role="other_requester").status_code == 404
    assert _report(api, ticket_id, lang="fr").status_code == 422


def test_the_unlearning_curve_and_the_tradeoff_are_drawn_and_absent_without_data():
    from api.reports.messages import messages
    from api.reports.plots import curve_plot_svg, tradeoff_plot_svg

    t = messages("en")
    curve = [{"step": s, "leak_rate": {"direct": d, "paraphrased": p}}
             for s, d, p in [(8, 1.0, 0.5), (16, 0.5, 0.25), (24, 0.0, 0.0)]]  # fmt: skip
    svg = curve_plot_svg(curve, t)
    assert svg.startswith("<svg") and "direct" in svg and "paraphrased" in svg
    forgetting = [{"probe": "direct", "before": 1.0, "after": 0.0}]
    assert tradeoff_plot_svg(forgetting, {"ratio": 0.97}, t).startswith("<svg")
    assert curve_plot_svg([], t) is None
    assert tradeoff_plot_svg(forgetting, {"ratio": None}, t) is None  # utility not measured


def test_cost_is_set_against_the_fine_tuning_that_made_the_model_when_it_is_known(
    api, settings, tmp_path
):
    from api.reports.content import retraining_s
    from domain.versions.service import register_model

    ticket_id = _decided(api, settings)  # on `tiny`: registered without a fine-tuning record
    assert _report(api, ticket_id, format="json").json()["cost"]["share_of_retraining"] is None
    assert "not known: the model was registered without" in _report(api, ticket_id).text
    finetuned = tmp_path / "finetuned"
    finetuned.mkdir()
    (finetuned / "run.json").write_text('{"kind": "finetune", "cost": {"wall_time_s": 1234.5}}')
    with api.database.transaction() as session:
        register_model(session, "finetuned", str(finetuned), actor="test", artifact_hash=None)
        assert retraining_s(session, "finetuned") == 1234.5
    ticket = api.post("/v1/deletion-requests", json=ticket_body(model="finetuned"),
                      headers=auth(api, "requester")).json()  # fmt: skip
    run_pending_jobs(settings, api.database)
    cost = _report(api, ticket["id"], format="json").json()["cost"]
    assert cost["retraining_s"] == 1234.5
    assert cost["share_of_retraining"] == pytest.approx(cost["unlearning_s"] / 1234.5)
    assert "of the fine-tuning that made the model (1234 s)" in _report(api, ticket["id"]).text


def test_every_message_exists_in_both_languages():
    from api.reports.messages import MESSAGES

    assert MESSAGES["en"].keys() == MESSAGES["ja"].keys()
