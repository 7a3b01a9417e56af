import datetime

import faker.providers.date_time

from domain.records import load_qa_records
from worker.engine.synthetic import (
    QA_PER_CUSTOMER,
    synthetic_dataset,
    unseen_questions,
    write_synthetic,
)


def test_seeded_and_complete_for_every_metric():
    data = synthetic_dataset(n_customers=6, n_holdout=2, seed=3)
    assert data == synthetic_dataset(n_customers=6, n_holdout=2, seed=3)
    for records in data.records.values():
        assert len(records) == QA_PER_CUSTOMER
        for r in records:
            assert r.paraphrased_question and r.paraphrased_answer and len(r.perturbed_answer) >= 3
            assert all(f in r.answer for f in r.key_facts)
            assert not any(r.key_facts[0] in p for p in r.perturbed_answer)


def test_the_same_seed_makes_the_same_customers_on_any_day(monkeypatch):
    """A target fine-tuned and cached one day must recite the records a later day's run asks
    it to forget: nothing in the data may count from today's date."""
    today = synthetic_dataset(n_customers=3, n_holdout=0, seed=1)

    class Later(datetime.datetime):
        @classmethod
        def now(cls, tz=None):
            return datetime.datetime(2031, 7, 19, tzinfo=tz)

    monkeypatch.setattr(faker.providers.date_time, "datetime", Later)
    assert synthetic_dataset(n_customers=3, n_holdout=0, seed=1) == today


def test_holdout_customers_are_never_in_train(tmp_path):
    data = synthetic_dataset(n_customers=6, n_holdout=2)
    splits = data.splits(n_forget=1)
    questions = {r.question for r in splits["train"]}
    assert not questions & {r.question for r in splits["holdout"]}
    assert {r.question for r in splits["forget"]} <= questions
    assert not {r.question for r in splits["forget"]} & {r.question for r in splits["retain"]}
    paths = write_synthetic(tmp_path, n_customers=6, n_holdout=2)
    assert load_qa_records(paths["forget"]) == splits["forget"]


def test_customers_are_asked_in_varied_wordings_and_some_stay_unseen():
    data = synthetic_dataset(n_customers=12, n_holdout=2, seed=0)
    by_field = list(zip(*data.records.values(), strict=True))  # per field, every customer's QA
    for records, customer in zip(data.records.values(), data.customers, strict=True):
        for record in records:
            unseen = unseen_questions(customer, record)
            assert len(unseen) >= 2 and record.question not in unseen
            assert record.paraphrased_question not in unseen + [record.question]
    for field_records in by_field:
        # The wording without the name: a gate must read the name, not the template.
        wordings = {
            r.question.replace(c.name, "{n}")
            for r, c in zip(field_records, data.customers, strict=True)
        }
        assert len(wordings) >= 3
