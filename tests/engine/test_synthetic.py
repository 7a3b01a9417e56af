from worker.engine.data import load_qa_records
from worker.engine.synthetic import QA_PER_CUSTOMER, synthetic_dataset, write_synthetic


def test_seeded_and_complete_for_every_metric():
    data = synthetic_dataset(n_customers=6, n_holdout=2, seed=3)
    assert data == synthetic_dataset(n_customers=6, n_holdout=2, seed=3)
    for records in data.records.values():
        assert len(records) == QA_PER_CUSTOMER
        for r in records:
            assert r.paraphrased_question and r.paraphrased_answer and len(r.perturbed_answer) >= 3
            assert all(f in r.answer for f in r.key_facts)
            assert not any(r.key_facts[0] in p for p in r.perturbed_answer)


def test_holdout_customers_are_never_in_train(tmp_path):
    data = synthetic_dataset(n_customers=6, n_holdout=2)
    splits = data.splits(n_forget=1)
    questions = {r.question for r in splits["train"]}
    assert not questions & {r.question for r in splits["holdout"]}
    assert {r.question for r in splits["forget"]} <= questions
    assert not {r.question for r in splits["forget"]} & {r.question for r in splits["retain"]}
    paths = write_synthetic(tmp_path, n_customers=6, n_holdout=2)
    assert load_qa_records(paths["forget"]) == splits["forget"]
