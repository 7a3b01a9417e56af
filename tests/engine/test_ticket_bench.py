"""`obliviate bench tickets` on a tiny model: a real ticket through the pipeline, its row, the
table, and the roles that keep neighbours out of every run."""

import json

import pytest

from bench.tickets import TicketBench, run_ticket_bench
from bench.tickets_report import summary


def test_roles_keep_subjects_and_neighbours_out_of_retain_and_utility(tiny_model_dir):
    bench = TicketBench(subjects=3, model=str(tiny_model_dir), customers=16)
    roles = bench.roles(bench.target().data)
    trained = [set(ids) for ids in roles.values()]
    assert sum(map(len, trained)) == len(set().union(*trained))  # no customer has two roles
    assert len(roles["subjects"]) == 3 and len(roles["neighbours"]) == 4
    with pytest.raises(ValueError, match="room for 4 subjects"):
        TicketBench(subjects=5, customers=16).roles(bench.target().data)


def test_a_ticket_runs_through_the_pipeline_into_a_row_and_the_table(tiny_model_dir, tmp_path):
    bench = TicketBench(subjects=1, seeds=1, model=str(tiny_model_dir), customers=10, epochs=1)
    table = run_ticket_bench(bench, "obliviate bench tickets", "abc123", lambda _: None, tmp_path)
    stored = json.loads((tmp_path / "tickets" / "rows.json").read_text())
    assert stored["commit"] == "abc123" and len(stored["rows"]) == 1
    row = stored["rows"][0]
    assert row["subject"] == "C00008" and row["verdict"] in ("published", "held")
    assert set(row["leak_after"]) >= {"direct", "paraphrased", "unseen", "adapter_removal"}
    assert 0 <= row["neighbours_recall"]["after"] <= 1 and row["stage_s"]["unlearn"] > 0
    text = table.read_text()
    assert "| C00008 | 0 |" in text and "Commit: abc123" in text


def _row(verdict, paraphrased, before, after):
    return {
        "verdict": verdict,
        "leak_after": {"direct": 0.0, "paraphrased": paraphrased, "unseen": 0.5},
        "neighbours_recall": {"before": before, "after": after},
        "general_unchanged": 1.0, "fluency": 1.0, "utility_ratio": 1.0, "wall_s": 10.0,
        "stage_s": {"unlearn": 5.0},
    }  # fmt: skip


def test_summary_averages_what_the_targets_are_judged_on():
    rows = [
        _row("published", 0.0, 0.5, 0.5),
        _row("held", 0.25, 0.5, 0.25),
        _row("held", 0.5, 0, 0),
    ]
    s = summary(rows)
    assert s["published"] == pytest.approx(1 / 3)
    assert s["paraphrased"] == pytest.approx(0.25)
    assert s["neighbours_kept"] == pytest.approx(0.75)  # a neighbour set never recalled is left out
