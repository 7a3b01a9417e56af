"""The publish gate's measurements (worker/runner.py): which records it asks and how it judges."""

import torch

from worker.engine.data import QARecord, TextRecord
from worker.runner import leak_rates


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
        TextRecord("A passage has no question to ask."),
    ]
    result = leak_rates(_Loaded(), records, max_new_tokens=8)
    # Before: records without key facts were skipped, the gate found no measurement and held
    # every such ticket ("leak rate on probe 'direct' was not measured").
    assert result["leak_rate"] == {"direct": 0.5, "paraphrased": 0.0}
    assert result["probed"] == {"direct": 2, "paraphrased": 1}
