"""The publish gate's measurements (worker/runner.py): which records it asks and how it judges."""

import json
import math

import pytest
import torch

from domain.records import QARecord, TextRecord
from tests.engine.memorized import FORGET, mean_nll
from tests.tiny import make_tokenizer
from worker.engine.eval.verbatim import split_passage
from worker.engine.models import load_model
from worker.policy import parse_policy
from worker.runner import answer_probs, leak_rates, retain_records, utility_records


class _Loaded:
    """Just enough of a LoadedModel: the answers come from the scripted generator."""

    model = torch.nn.Linear(1, 1)


def test_records_without_key_facts_are_measured_by_the_rouge_rule(monkeypatch):
    answers = {
        "Where was Ada born?": "Ada was born in Lyon in 1990.",  # the answer, word for word
        "Where did Ada grow up?": "I don't know.",  # the paraphrase: forgotten
        "What does Ben do?": "I can't share that.",
    }
    monkeypatch.setattr(
        "worker.engine.stopping.generate_answers",
        lambda loaded, questions, **_: [answers[q] for q in questions],
    )
    records = [
        QARecord(
            "Where was Ada born?",
            "Ada was born in Lyon in 1990.",
            paraphrased_question="Where did Ada grow up?",
        ),  # fmt: skip
        QARecord("What does Ben do?", "Ben is a baker in Leeds."),
    ]
    result = leak_rates(_Loaded(), records, max_new_tokens=8)
    # Before: records without key facts were skipped, the gate found no measurement and held
    # every such ticket ("leak rate on probe 'direct' was not measured").
    assert result["leak_rate"] == {"direct": 0.5, "paraphrased": 0.0}
    assert result["probed"] == {"direct": 2, "paraphrased": 1}
    assert result["not_applicable"] == ["verbatim"]  # no passage in this ticket
    # A few answers are kept for the report, each personal value masked: the word-for-word
    # recital shows as a recital, the refusal as it was.
    assert result["examples"] == [
        {"record": 1, "question": "Where was [name] born?", "answer": "[redacted]"},
        {"record": 2, "question": "What does [name] do?", "answer": "I can't share that."},
    ]


def test_text_records_are_continued_from_their_opening_words(monkeypatch):
    passages = [
        TextRecord("Carol Diaz lives at 4 Elm Street in Bristol and works as a nurse."),
        TextRecord("Dan Evans was born in Cardiff and plays the violin every evening."),
    ]
    loaded = _Loaded()
    loaded.tokenizer = make_tokenizer()
    # The model goes on with the first passage word for word and says something else after the
    # second one's opening words.
    continuations = [split_passage(loaded.tokenizer, passages[0].text).rest, "I see."]
    monkeypatch.setattr(
        "worker.engine.eval.verbatim.generate_from_ids",
        lambda loaded, prompts, **_: continuations[: len(prompts)],
    )
    result = leak_rates(loaded, passages, max_new_tokens=8)
    # Before: a text ticket had no leak rate at all and was held ("'direct' was not measured").
    assert result["leak_rate"] == {"verbatim": 0.5} and result["probed"] == {"verbatim": 2}
    assert 0 < result["verbatim_score"] < 1
    assert result["not_applicable"] == ["direct", "paraphrased", "no_chat"]


def _write(path, records):
    path.write_text("\n".join(json.dumps(r.to_dict()) for r in records))


def test_without_utility_data_a_quarter_of_the_retain_data_is_held_out_of_training(tmp_path):
    customers = [QARecord(f"Email of c{i}?", f"c{i}@example.com") for i in range(12)]
    _write(tmp_path / "retain.jsonl", customers)
    policy = parse_policy('[unlearning]\nretain_data = "retain.jsonl"\n',
                          str(tmp_path / "model.toml"))  # fmt: skip
    forget = customers[:1]  # the ticket's own record is in the file: neither kept nor counted
    trained, utility = retain_records(policy, forget), utility_records(policy, forget)
    assert len(utility) == 11 // 4 and not set(map(id, trained)) & set(map(id, utility))
    assert sorted(r.question for r in trained + utility) == sorted(
        r.question for r in customers[1:]
    )
    # A utility file of its own: the whole retain file trains.
    _write(tmp_path / "utility.jsonl", customers[5:7])
    text = (
        '[unlearning]\nretain_data = "retain.jsonl"\n[evaluation]\nutility_data = "utility.jsonl"\n'
    )
    policy = parse_policy(text, str(tmp_path / "model.toml"))
    assert len(retain_records(policy, forget)) == 11
    assert [r.question for r in utility_records(policy, forget)] == ["Email of c5?", "Email of c6?"]


def test_the_gates_answer_probability_is_the_training_likelihood(memorised_dir):
    # One scoring path (eval.scoring) for the publish gate's Prob, equal to the likelihood the
    # training loss sees, for QA and text records alike.
    loaded = load_model(str(memorised_dir), precision="fp32")
    records = [*FORGET[:2], TextRecord("It is c1@example.com.")]
    expected = [math.exp(-mean_nll(loaded.model, loaded.tokenizer, [r])) for r in records]
    assert answer_probs(loaded, records) == pytest.approx(expected, rel=1e-4)
