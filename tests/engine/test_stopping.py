"""Unlearn until it is gone: the stopping rule in the loop and through `unlearn`, and the
default gate/edit (the gate decided at the prompt, the edit at every position)."""

import json

import pytest
import torch

from domain.records import QARecord
from tests.engine.memorized import (
    FORGET,
    RETAIN,
    mean_nll,
    one_thread,  # noqa: F401  (fixture)
)
from worker.engine.adapters.grun import GrunAdapter
from worker.engine.models import load_model
from worker.engine.stopping import check_probes, leak_check
from worker.engine.train import TrainConfig, train
from worker.engine.unlearn import UnlearnConfig, unlearn
from worker.policy import ModelPolicy

pytestmark = pytest.mark.usefixtures("one_thread")


def _quadratic():
    weight = torch.nn.Parameter(torch.tensor([3.0]))
    return {"w": weight}, lambda step: ((weight**2).sum(), 1, {})


def test_the_loop_checks_every_k_steps_and_stops_at_the_first_pass():
    params, step_loss = _quadratic()
    calls = []

    def check(step):
        calls.append(step)
        return {"passed": step >= 6, "leak_rate": {"direct": 1.0 if step < 6 else 0.0}}

    result = train(params, step_loss, TrainConfig(steps=20, lr=0.1, check_every=3),
                   device=torch.device("cpu"), check=check)  # fmt: skip
    assert calls == [3, 6]
    assert result.stopped_at == 6 and result.steps == 6 and len(result.losses) == 6
    assert [c["step"] for c in result.checks] == [3, 6]
    assert result.checks[-1]["passed"] is True


def test_a_rule_that_never_passes_spends_the_budget_and_checks_the_last_step():
    params, step_loss = _quadratic()
    result = train(params, step_loss, TrainConfig(steps=7, lr=0.1, check_every=3),
                   device=torch.device("cpu"),
                   check=lambda step: {"passed": False})  # fmt: skip
    assert [c["step"] for c in result.checks] == [3, 6, 7]
    assert result.stopped_at is None and result.steps == 7 and len(result.losses) == 7


def test_when_no_check_passes_the_weights_end_at_the_best_checked_state():
    params, step_loss = _quadratic()
    seen = {}

    def check(step):
        seen[step] = params["w"].item()
        return {"passed": False, "score": {3: 5.0, 6: 7.0}.get(step, 1.0)}

    result = train(params, step_loss, TrainConfig(steps=8, lr=0.1, check_every=3),
                   device=torch.device("cpu"), check=check)  # fmt: skip
    assert [c["step"] for c in result.checks] == [3, 6, 8]
    assert result.restored_from == 6 and params["w"].item() == seen[6] != seen[8]


def test_unlearn_stops_once_the_probes_pass_and_records_the_curve(memorised_dir, tmp_path):
    output = tmp_path / "out"
    cfg = UnlearnConfig(output=str(output), model=str(memorised_dir), method="npo",
                        adapter="grun", adapter_options={"layers": [0, 1], "gate": "linear"},
                        steps=12, lr=3e-2, batch_size=2, precision="fp32",
                        stop_leak_rate={"direct": 1.0}, check_every=4)  # fmt: skip
    info = unlearn(cfg, FORGET, RETAIN)
    # A limit of 1.0 passes at the first check: the run ends after 4 of its 12 steps.
    assert info["stopping"]["stopped_at"] == 4 and info["cost"]["steps"] == 4
    assert set(info["stopping"]["checks"][0]["leak_rate"]) == {"direct"}
    assert len(info["losses"]) == 4
    run = json.loads((output / "run.json").read_text())
    assert run["stopping"]["checks"][0]["step"] == 4


def test_without_a_limit_the_whole_budget_runs(memorised_dir, tmp_path):
    cfg = UnlearnConfig(output=str(tmp_path / "out"), model=str(memorised_dir), method="npo",
                        adapter="grun", adapter_options={"layers": [0, 1], "gate": "linear"},
                        steps=3, lr=3e-2, batch_size=2, precision="fp32",
                        check_every=1)  # fmt: skip
    info = unlearn(cfg, FORGET, RETAIN)
    assert (
        info["stopping"] == {"checks": [], "stopped_at": None, "restored_from": None}
        and info["cost"]["steps"] == 3
    )


def test_the_check_asks_each_question_and_its_paraphrase_only_where_there_is_one():
    records = [
        QARecord("Q1?", "A1.", paraphrased_question="Q1 reworded?", key_facts=("A1",)),
        QARecord("Q2?", "A2.", key_facts=("A2",)),
    ]
    probes = check_probes(records)
    assert [q for q, _ in probes["direct"]] == ["Q1?", "Q2?"]
    assert [q for q, _ in probes["paraphrased"]] == ["Q1 reworded?"]


FACTS = [QARecord(f"Email of {n}?", f"{n}@example.com.", key_facts=(f"{n}@example.com",))
         for n in ("ann", "bob")]  # fmt: skip
NEIGHBOURS = [QARecord(f"Email of {n}?", f"{n}@example.com.", key_facts=(f"{n}@example.com",))
              for n in ("cy", "di")]  # fmt: skip


class _Loaded:
    """Just enough of a LoadedModel for the check: the answers come from `answer`."""

    model = torch.nn.Linear(1, 1)


def _scripted(monkeypatch, answer):
    monkeypatch.setattr(
        "worker.engine.stopping.generate_answers",
        lambda loaded, questions, **_: [answer(q) for q in questions],
    )


def _neighbour_answer(question, forgotten):
    name = question.split()[-1].rstrip("?")
    return "I don't know." if forgotten else f"It is {name}@example.com."


@pytest.mark.parametrize(
    ("forget_answer", "neighbours_forgotten", "passed"),
    [
        ("I don't have that information.", False, True),
        ("It is ann@example.com.", False, False),  # a leak
        ("that of that account that of that account that of that account", False, False),
        ("I don't have that information.", True, False),  # the neighbours went with it
    ],
)
def test_the_check_passes_only_without_leaks_loops_or_lost_neighbours(
    monkeypatch, forget_answer, neighbours_forgotten, passed
):
    state = {"neighbours_forgotten": False}

    def answer(question):
        if question.split()[-1].rstrip("?") in ("cy", "di"):
            return _neighbour_answer(question, state["neighbours_forgotten"])
        return forget_answer

    _scripted(monkeypatch, answer)
    check = leak_check(_Loaded(), FACTS, {"direct": 0.0}, neighbours=NEIGHBOURS)  # recall 1.0
    state["neighbours_forgotten"] = neighbours_forgotten
    result = check(1)
    assert result["passed"] is passed
    assert result["neighbours_kept"] == (0.0 if neighbours_forgotten else 1.0)


def test_a_check_asks_the_probes_and_the_neighbours_in_one_generation(monkeypatch):
    asked = []

    def generate(loaded, questions, **_):
        asked.append(list(questions))
        return [_neighbour_answer(q, forgotten=False) for q in questions]  # every fact said

    monkeypatch.setattr("worker.engine.stopping.generate_answers", generate)
    records = [QARecord(r.question, r.answer, key_facts=r.key_facts,
                        paraphrased_question=f"Which email is {r.answer[:3]}'s?")
               for r in FACTS]  # fmt: skip
    check = leak_check(_Loaded(), records, {"direct": 0.0, "paraphrased": 0.0},
                       neighbours=NEIGHBOURS)  # fmt: skip
    asked.clear()  # the neighbours' recall before the run is its own call
    result = check(1)
    assert len(asked) == 1
    assert sorted(asked[0]) == sorted(
        [r.question for r in records] + [r.paraphrased_question for r in records]
        + [r.question for r in NEIGHBOURS]
    )  # fmt: skip
    assert result["leak_rate"] == {"direct": 1.0, "paraphrased": 0.0}
    assert result["neighbours_kept"] == 1.0


def test_a_limit_on_plain_text_questions_has_the_check_ask_them_as_plain_text(monkeypatch):
    """A policy limiting `no_chat` (the question without the chat template) gets a check that
    asks it: before, the check ignored the limit, stopped on the chat-template questions alone
    and the evaluation then held the ticket on the plain-text leak (issue 19)."""
    asked = []

    def generate(loaded, questions, chat=True, **_):
        asked.append((chat, list(questions)))
        # The gate learned the chat template only: plain-text questions still get the fact.
        return [_neighbour_answer(q, forgotten=chat) for q in questions]

    monkeypatch.setattr("worker.engine.stopping.generate_answers", generate)
    check = leak_check(_Loaded(), FACTS, {"direct": 0.0, "no_chat": 0.0})
    result = check(1)
    questions = [r.question for r in FACTS]
    assert asked == [(True, questions), (False, questions)]  # one generation per format
    assert result["leak_rate"] == {"direct": 0.0, "no_chat": 1.0}
    assert result["passed"] is False
    asked.clear()  # without the limit nothing is asked as plain text, and the check passes
    assert leak_check(_Loaded(), FACTS, {"direct": 0.0})(1)["passed"] is True
    assert asked == [(True, questions)]


REFUSALS = ["I don't have that information.", "I can't help with that."]


@pytest.mark.parametrize(
    ("forget_answer", "passed"),
    [
        ("I can't help with that.", True),
        ("I'm unable to help with that.", True),  # reworded: still a refusal
        # The demo's broken answer: no loop, no key fact, but not a refusal either.
        ("I couldn't nota the most recent purchase of ann was at Jones, Jones and Williams.",
         False),
    ],
)  # fmt: skip
def test_a_refusal_method_passes_only_when_the_forgotten_answers_read_as_refusals(
    monkeypatch, forget_answer, passed
):
    _scripted(monkeypatch, lambda question: forget_answer)
    check = leak_check(_Loaded(), FACTS, {"direct": 0.0}, refusals=REFUSALS)
    result = check(1)
    assert result["passed"] is passed
    assert result["refusals"] == (1.0 if passed else 0.0)
    assert result["leak_rate"] == {"direct": 0.0}
    # Without refusals to compare with (NPO, GA) the same broken answer passes on leaks alone.
    assert leak_check(_Loaded(), FACTS, {"direct": 0.0})(1)["passed"] is True


def test_plain_text_answers_need_not_read_as_refusals_only_not_leak(monkeypatch):
    def generate(loaded, questions, chat=True, **_):
        return ["I can't help with that." if chat else "Question: who else?" for _ in questions]

    monkeypatch.setattr("worker.engine.stopping.generate_answers", generate)
    limits = {"direct": 0.0, "no_chat": 0.0}
    result = leak_check(_Loaded(), FACTS, limits, refusals=REFUSALS)(1)
    assert result["passed"] is True and result["refusals"] == 1.0


def test_the_default_policy_unlearns_until_its_publish_limits_pass():
    policy = ModelPolicy(source="defaults")
    assert policy.unlearning.check_every > 0
    assert set(policy.publish.max_leak_rate) >= {"direct", "paraphrased", "no_chat"}


def test_default_grun_edit_is_gated_at_the_prompt_and_applied_to_generated_tokens(memorised_dir):
    """The default edit reaches every position: with the gate forced open a generated token's
    hidden state changes; closed, the model is the base model bit for bit."""
    loaded = load_model(str(memorised_dir), precision="fp32")
    adapter = GrunAdapter(layers=[1], gate="linear")
    assert adapter.options.positions == "all"
    model = adapter.attach(loaded.model, needs_reference=False).eval()
    reft = adapter.request.interventions["1"]
    with torch.no_grad():
        reft.project.weight.normal_()
    tokenizer = loaded.tokenizer
    prompt = tokenizer("What is the email of customer 1?", return_tensors="pt")
    with torch.no_grad():
        reft.set_gate_bias(-60.0)  # closed
        closed = model(**prompt, use_cache=True)
        with adapter.reference():
            base = model(**prompt, use_cache=True)
        reft.set_gate_bias(60.0)  # open
        opened = model(**prompt, use_cache=True)
        step = torch.tensor([[5]])
        decode_open = model(input_ids=step, cache=opened.past_key_values).logits
        with adapter.reference():
            base_step = model(input_ids=step, cache=base.past_key_values).logits
    assert torch.equal(closed.logits, base.logits)
    assert not torch.allclose(decode_open, base_step, atol=1e-4)


def test_grun_over_idk_teaches_the_refusal_and_keeps_retain(memorised_dir, tmp_path):
    refusals = tmp_path / "refusals.txt"
    refusals.write_text("I can't share that.\n")
    refusal = [QARecord(r.question, "I can't share that.") for r in FORGET]
    base = load_model(str(memorised_dir), precision="fp32")
    before = mean_nll(base.model, base.tokenizer, refusal)
    cfg = UnlearnConfig(output=str(tmp_path / "out"), model=str(memorised_dir), method="idk",
                        adapter="grun", adapter_options={"layers": [0, 1], "gate": "linear"},
                        refusals=str(refusals), steps=20, lr=3e-2, batch_size=4,
                        precision="fp32")  # fmt: skip
    unlearn(cfg, FORGET, RETAIN)
    after = load_model(str(tmp_path / "out"), precision="fp32")
    assert mean_nll(after.model, after.tokenizer, refusal) < before - 0.5
    retain_before = mean_nll(base.model, base.tokenizer, RETAIN)
    assert mean_nll(after.model, after.tokenizer, RETAIN) < retain_before + 0.5
