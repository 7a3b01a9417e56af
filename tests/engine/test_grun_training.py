"""GRUN in training: its gate loss (forget vs retain, rewordings, other subjects, general
questions), bad options, and unlearning with every objective and position mode."""

from __future__ import annotations

import pytest
import torch

from domain.records import QARecord
from tests.engine.grun_helpers import force_gates, load_fp32, qa_batch
from tests.engine.memorized import FORGET, RETAIN, mean_nll
from worker.engine.adapters.grun import GrunAdapter
from worker.engine.adapters.grun_gates import gate_report, switched_off
from worker.engine.data import format_prompt
from worker.engine.models import load_model
from worker.engine.objectives import OBJECTIVES, LossSettings
from worker.engine.train import TrainConfig, train
from worker.engine.unlearn import UnlearnConfig, unlearn


def test_gate_loss_teaches_the_gate_to_tell_forget_from_retain(tiny_model_dir, qa_records):
    loaded = load_fp32(tiny_model_dir)
    tokenizer = loaded.tokenizer
    forget = qa_records[:4]
    retain = [
        QARecord("Where does Alan Turing live?", "1 Bletchley Park."),
        QARecord("Name a letter of the alphabet.", "abc"),
        QARecord("I cannot help with that, can you?", "No."),
        QARecord("Account number 12345678 belongs to whom?", "Alan Turing."),
    ]
    forget_batch, retain_batch = qa_batch(tokenizer, forget), qa_batch(tokenizer, retain)
    torch.manual_seed(0)  # the module's initial weights: not whatever earlier tests left
    adapter = GrunAdapter()
    adapter.attach(loaded.model, needs_reference=False)

    def step_loss(step):
        return adapter.auxiliary_loss(forget_batch, retain_batch), 1, {}

    # 40 steps: half the general questions drawn are plain text, so the chat-template
    # negatives that teach this split come half as often as when all were chat (20 steps).
    result = train(
        adapter.trainable(), step_loss, TrainConfig(steps=40, lr=5e-2), device=loaded.device
    )
    assert result.losses[-1] < 0.5 * result.losses[0]
    questions = {"forget": [r.question for r in forget], "retain": [r.question for r in retain]}
    report = gate_report(loaded.model, tokenizer, questions)
    assert report["forget"][0]["above_half"] == 1.0
    assert report["retain"][0]["above_half"] == 0.0
    gates = adapter.diagnostics()
    assert gates["last_training_gates"]["forget"] > 0.5 > gates["last_training_gates"]["retain"]
    assert set(gates["gates"]) == {"general", "trained_forget", "trained_retain"}
    assert gates["gates"]["trained_forget"][0]["above_half"] == 1.0
    assert gates["gates"]["trained_retain"][0]["above_half"] == 0.0


def test_gate_loss_reuses_the_objectives_forwards_and_matches_its_own(tiny_model_dir, qa_records):
    loaded = load_fp32(tiny_model_dir)
    adapter = GrunAdapter(general_negatives=0)  # the same negatives in both calls
    adapter.attach(loaded.model, needs_reference=False)
    forget, retain = (
        qa_batch(loaded.tokenizer, qa_records[:4]),
        qa_batch(loaded.tokenizer, qa_records[4:]),
    )
    own = adapter.auxiliary_loss(forget, retain)  # nothing logged yet: a forward of its own
    assert adapter.extra_gate_forwards == 2
    for batch in (forget, retain):  # what an objective does: full forwards with grad
        loaded.model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"])
    reused = adapter.auxiliary_loss(forget, retain)
    assert adapter.extra_gate_forwards == 2
    assert torch.allclose(reused, own, atol=1e-5)
    reused.backward()
    assert all(p.grad is not None for n, p in adapter.trainable().items() if ".gate." in n)


def test_gate_loss_adds_rewordings_as_positives_and_other_subjects_as_negatives(
    tiny_model_dir, qa_records
):
    loaded = load_fp32(tiny_model_dir)
    adapter = GrunAdapter(retain_negatives=8, paraphrase_positives=4, general_negatives=4)
    adapter.attach(loaded.model, needs_reference=False)
    adapter.set_gate_questions(["Where does Bob live?"], ["Which email does customer 1 use?"])
    force_gates(adapter.request, 2.0)
    forget, retain = (qa_batch(loaded.tokenizer, qa_records[:4]),
                      qa_batch(loaded.tokenizer, qa_records[4:]))  # fmt: skip
    loss = adapter.auxiliary_loss(forget, retain)
    assert set(adapter.training_gates) == {"forget", "paraphrased", "retain", "retain_more",
                                           "general"}  # fmt: skip
    # Every gate at logit 2: positives (4 forget + the rewording in its 2 formats) cost
    # softplus(-2) each, negatives (4 retain + the other question in 2 formats + 4 general)
    # softplus(2); λ_g = 10.
    softplus = torch.nn.functional.softplus
    expected = 10 * (6 * softplus(torch.tensor(-2.0)) + 10 * softplus(torch.tensor(2.0))) / 16
    assert loss.item() == pytest.approx(expected.item(), rel=1e-5)


def test_drawn_prompts_of_different_lengths_are_batched_apart_with_the_same_loss(
    tiny_model_dir, qa_records, monkeypatch
):
    """Short plain prompts are not padded to the chat prompts' length (issue 14): fewer tokens
    go through the gate pass, and the gate loss and its gradients are those of one batch."""
    from worker.engine.adapters import grun
    from worker.engine.adapters.frozen_prefix import decoder_of

    loaded = load_fp32(tiny_model_dir)
    adapter = GrunAdapter(layers=[0, 1], general_negatives=4)
    adapter.attach(loaded.model, needs_reference=False)
    adapter.set_gate_questions(["Where does Bob live?", "Who employs Eve?"],
                               ["Which email does customer 1 use?"])  # fmt: skip
    forget, retain = (qa_batch(loaded.tokenizer, qa_records[:4]),
                      qa_batch(loaded.tokenizer, qa_records[4:]))  # fmt: skip
    tokens: list[int] = []
    decoder_of(loaded.model).register_forward_pre_hook(
        lambda module, args, kwargs: tokens.append(kwargs["input_ids"].numel()), with_kwargs=True
    )

    def loss_and_grads():
        tokens.clear()
        loss = adapter.auxiliary_loss(forget, retain)
        for pool in adapter.pools.values():
            pool.cursor = 0  # the next call draws the same prompts
        loss.backward()
        grads = {
            name: p.grad.clone() for name, p in adapter.trainable().items() if p.grad is not None
        }
        adapter.request.zero_grad()
        return loss.item(), grads, sum(tokens)

    grouped, grouped_grads, grouped_tokens = loss_and_grads()
    monkeypatch.setattr(grun, "length_groups", lambda lengths: [list(range(len(lengths)))])
    one, one_grads, one_tokens = loss_and_grads()
    assert grouped == pytest.approx(one, rel=1e-5)
    assert grouped_grads.keys() == one_grads.keys() and grouped_grads
    for name, grad in one_grads.items():
        torch.testing.assert_close(grouped_grads[name], grad, rtol=1e-4, atol=1e-6)
    assert grouped_tokens < one_tokens


def test_a_gate_pass_of_its_own_trains_the_gates_and_not_the_edits(tiny_model_dir, qa_records):
    # Prompts no objective forward covered (here all of them) get their gates from a pass
    # without grad through the model: the gate loss then reaches the gates only.
    loaded = load_fp32(tiny_model_dir)
    adapter = GrunAdapter(layers=[0, 1])
    adapter.attach(loaded.model, needs_reference=False)
    adapter.set_gate_questions(["Where does Bob live?"], ["Which email does customer 1 use?"])
    forget, retain = (qa_batch(loaded.tokenizer, qa_records[:4]),
                      qa_batch(loaded.tokenizer, qa_records[4:]))  # fmt: skip
    adapter.auxiliary_loss(forget, retain).backward()
    grads = {name: p.grad for name, p in adapter.trainable().items()}
    gates = [name for name in grads if ".gate." in name]
    assert gates and all(grads[name].abs().sum() > 0 for name in gates)
    assert all(grads[name] is None for name in grads if ".gate." not in name)


@pytest.mark.parametrize("plain_prompts", [True, False])
def test_drawn_questions_come_in_the_chat_template_and_as_plain_text(tiny_model_dir,
                                                                     plain_prompts):  # fmt: skip
    loaded = load_fp32(tiny_model_dir)
    tokenizer = loaded.tokenizer
    adapter = GrunAdapter(plain_prompts=plain_prompts)
    adapter.attach(loaded.model, needs_reference=False)
    adapter.set_gate_questions(["Where does Bob live?"], ["Which email does customer 1 use?"])
    drawn = [tokenizer.decode(e.input_ids) for e in adapter.pools["paraphrased"].draw(4)]
    chat, plain = (format_prompt(tokenizer, "Which email does customer 1 use?", chat=chat)
                   for chat in (True, False))  # fmt: skip
    assert drawn == ([chat, plain] if plain_prompts else [chat])


def test_without_a_retain_batch_general_questions_are_the_gates_negatives(
    tiny_model_dir, qa_records
):
    loaded = load_fp32(tiny_model_dir)
    adapter = GrunAdapter()
    adapter.attach(loaded.model, needs_reference=False)
    adapter.auxiliary_loss(qa_batch(loaded.tokenizer, qa_records), None)
    assert set(adapter.training_gates) == {"forget", "general"}
    with_retain = GrunAdapter(general_negatives=2)
    with_retain.attach(loaded.model, needs_reference=False)
    with_retain.auxiliary_loss(
        qa_batch(loaded.tokenizer, qa_records), qa_batch(loaded.tokenizer, qa_records)
    )
    assert set(with_retain.training_gates) == {"forget", "retain", "general"}


def test_bad_options_are_refused_with_a_reason(tiny_model_dir, tmp_path):
    loaded = load_fp32(tiny_model_dir)
    with pytest.raises(ValueError, match="positions"):
        GrunAdapter(positions="middle").attach(loaded.model, needs_reference=False)
    with pytest.raises(ValueError, match="initial_gate"):
        GrunAdapter(initial_gate=1.0)
    with pytest.raises(ValueError, match="outside"):
        GrunAdapter(layers=[9]).attach(loaded.model, needs_reference=False)
    adapter = GrunAdapter()
    adapter.attach(loaded.model, needs_reference=False)
    with pytest.raises(ValueError, match="merged"):
        adapter.save(tmp_path, None, merge=True)


@pytest.mark.parametrize("method", sorted(OBJECTIVES))
def test_every_objective_trains_with_grun(memorised_dir, tmp_path, method):
    output = tmp_path / "out"
    settings = LossSettings()  # RMU steers GRUN's top layer by default
    cfg = UnlearnConfig(
        output=str(output),
        model=str(memorised_dir),
        method=method,
        adapter="grun",
        # A few steps leave the gates under 0.5: the soft gate shows what training changed.
        adapter_options={"layers": [0, 1], "gate": "linear", "inference_gate": "soft"},
        steps=5,
        lr=3e-2,
        loss=settings,
    )
    info = unlearn(cfg, FORGET, RETAIN)
    assert info["cost"]["trainable_parameters"] == 2 * (4 * 64 + 4 * 64 + 4 + 64 + 1)  # R, W, b, g
    # The gate loss reuses the objective's forwards of the forget and retain prompts; GA never
    # runs the retain batch, so there the gate loss runs it itself (one forward per step).
    assert info["diagnostics"]["gate_loss_extra_forwards"] == (5 if method == "ga" else 0)
    gates = info["diagnostics"]["gates"]["general"][0]
    assert 0.0 <= gates["mean"] <= 1.0
    base = load_model(str(memorised_dir), precision="fp32")
    after = load_model(str(output), precision="fp32")
    assert len(after.model.grun_stack.requests) == 1
    tokenizer = base.tokenizer
    before_nll = mean_nll(base.model, tokenizer, FORGET)
    after_nll = mean_nll(after.model, tokenizer, FORGET)
    # RMU steers hidden states and IdkNLL pulls towards refusals: both raise the true answers'
    # NLL less directly than the methods that push it up.
    assert after_nll > before_nll + {"rmu": 0.0, "idk": 0.01}.get(method, 0.1)
    with switched_off(after.model):
        assert mean_nll(after.model, tokenizer, FORGET) == pytest.approx(before_nll)


@pytest.mark.parametrize("positions", ["prompt", "all"])
def test_every_position_mode_unlearns(memorised_dir, tmp_path, positions):
    cfg = UnlearnConfig(
        output=str(tmp_path / "out"),
        model=str(memorised_dir),
        method="npo",
        adapter="grun",
        adapter_options={
            "layers": [0, 1],
            "gate": "linear",
            "positions": positions,
            "inference_gate": "soft",
        },  # fmt: skip
        steps=5,
        lr=3e-2,
    )
    unlearn(cfg, FORGET, RETAIN)
    base = load_model(str(memorised_dir), precision="fp32")
    after = load_model(str(tmp_path / "out"), precision="fp32")
    assert after.model.grun_stack.requests[0].config.positions == positions
    tokenizer = base.tokenizer
    assert mean_nll(after.model, tokenizer, FORGET) > mean_nll(base.model, tokenizer, FORGET) + 0.1
