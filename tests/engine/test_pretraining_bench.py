"""`obliviate bench pretraining` on a tiny model: a ticket over facts the base model was never
fine-tuned on, through the pipeline, measured with the corpus suite, into a row and the table."""

import json

from bench.pretraining import run_pretraining_bench


def test_a_cell_runs_a_ticket_and_measures_the_facts_and_the_neighbours(tiny_model_dir, tmp_path):
    table = run_pretraining_bench([("npo", "grun")], str(tiny_model_dir), "obliviate bench "
                                  "pretraining", "abc123", lambda _: None, tmp_path)  # fmt: skip
    row = json.loads((tmp_path / "pretraining" / "rows.json").read_text())["rows"][0]
    assert row["verdict"] in ("published", "held"), row.get("error")
    assert set(row["leak_after"]) >= {"direct", "paraphrased"}
    for key in ("knowledge_forget", "choice_forget", "knowledge_retain", "choice_retain"):
        assert set(row[key]) == {"before", "after"}
    # The tiny random model knows none of the facts: its ticket says so instead of claiming
    # them forgotten.
    assert "reproduced none of this data" in row["reason"]
    assert row["trainable_parameters"] > 0 and row["unlearn_s"] > 0
    assert "| npo | grun |" in table.read_text() and "at abc123" in table.read_text()
    # Another cell later adds its row; the first keeps its own commit (GRUN over RMU needs no
    # hand-set layer: before, the run was refused).
    table = run_pretraining_bench([("rmu", "grun")], str(tiny_model_dir), "obliviate bench "
                                  "pretraining --cell rmu:grun", "def456", lambda _: None,
                                  tmp_path)  # fmt: skip
    rows = json.loads((tmp_path / "pretraining" / "rows.json").read_text())["rows"]
    assert [(r["method"], r["adapter"], r["commit"]) for r in rows] == [
        ("npo", "grun", "abc123"), ("rmu", "grun", "def456")
    ]  # fmt: skip
    assert "error" not in rows[1] and "| rmu | grun |" in table.read_text()
