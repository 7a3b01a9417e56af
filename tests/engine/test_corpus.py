"""`obliviate eval --suite corpus` (issue 17): passages and knowledge the model had, on a tiny
model that memorised one passage."""

import json

import pytest

from domain.records import DataError
from tests.engine.memorized import memorised_passage_model, one_thread  # noqa: F401
from worker.engine.eval.corpus import evaluate_corpus

pytestmark = pytest.mark.usefixtures("one_thread")

KNOWN = "The account number of Alan Turing is 12345678 and he lives at 1 Bletchley Park."
UNSEEN = "Ada Lovelace wrote the first program for the Analytical Engine in the year 1843."


def _write(folder, name, rows):
    (folder / f"{name}.jsonl").write_text("\n".join(json.dumps(row) for row in rows))


@pytest.fixture
def corpus(tmp_path):
    _write(tmp_path, "forget", [{"text": KNOWN}])
    _write(tmp_path, "holdout", [{"text": UNSEEN}])
    _write(tmp_path, "knowledge", [{
        "question": "What is the account number of Alan Turing?", "answer": "12345678",
        "perturbed_answer": ["87654321", "11223344"], "key_facts": ["12345678"]}])  # fmt: skip
    _write(tmp_path, "retain", [{"question": "What is the email of Ada?", "answer": "ada@x.org"}])
    return tmp_path


def test_the_corpus_suite_measures_what_the_model_recites(corpus):
    loaded = memorised_passage_model(KNOWN)
    result = evaluate_corpus(loaded, corpus, max_new_tokens=8)
    summary = result["summary"]
    assert summary["verbatim_forget"] > 0.9 and summary["verbatim_leak_rate"] == 1.0
    # The memorised passage looks trained on, the unseen one does not: every attack separates.
    assert result["mia"] == {"loss": 1.0, "zlib": 1.0, "min_k": 1.0}
    assert result["sets"]["knowledge"]["choice_chance"] == pytest.approx(1 / 3)
    assert 0 <= summary["knowledge_forget"] <= 1 and summary["knowledge_retain"] is not None


def test_an_unknown_passage_reads_as_not_reproduced(corpus):
    _write(corpus, "forget", [{"text": UNSEEN}])
    result = evaluate_corpus(memorised_passage_model(KNOWN), corpus, max_new_tokens=8)
    assert result["summary"]["verbatim_leak_rate"] == 0.0


def test_a_corpus_folder_with_the_wrong_records_names_file_and_record(corpus):
    _write(corpus, "forget", [{"text": KNOWN}, {"question": "Q?", "answer": "A."}])
    with pytest.raises(DataError, match=r"forget\.jsonl.*record 1.*text record"):
        evaluate_corpus(memorised_passage_model(KNOWN), corpus)
    _write(corpus, "forget", [{"text": KNOWN}])
    (corpus / "retain.jsonl").unlink()
    with pytest.raises(DataError, match=r"retain\.jsonl.*not found"):
        evaluate_corpus(memorised_passage_model(KNOWN), corpus)
