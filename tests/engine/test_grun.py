"""GRUN: the gated ReFT module, its hooks, its gate loss, save/load and stacking."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest
import torch

from domain.records import QARecord
from tests.engine.memorized import FORGET, RETAIN, mean_nll
from worker.engine.adapters import get_adapter
from worker.engine.adapters.grun import GrunAdapter
from worker.engine.adapters.grun_gates import gate_report, switched_off
from worker.engine.adapters.grun_module import GrunStack, default_layers
from worker.engine.adapters.grun_prompts import last_prompt_positions
from worker.engine.artifacts import MANIFEST
from worker.engine.data import collate, encode_qa, format_prompt
from worker.engine.generate import generate_answers, prefill, select_rows
from worker.engine.models import load_model
from worker.engine.objectives import OBJECTIVES, LossSettings
from worker.engine.train import TrainConfig, train
from worker.engine.unlearn import UnlearnConfig, unlearn

QUESTIONS = ["What is the email of customer 1?", "Where does Ada live?", "Account number?"]


def _load(model_dir):
    return load_model(str(model_dir), precision="fp32")


def _batch(tokenizer, records):
    examples = [encode_qa(tokenizer, r.question, r.answer) for r in records]
    return collate(examples, tokenizer.pad_token_id)


def _force_gates(request, logit: float) -> None:
    """Make every gate of a request output `logit` whatever its input (0 weights, fixed bias)."""
    for reft in request.interventions.values():
        _force_gates_of(reft, logit)


def _force_gates_of(reft, logit: float) -> None:
    with torch.no_grad():
        last = reft.gate[-1] if isinstance(reft.gate, torch.nn.Sequential) else reft.gate
        last.weight.zero_()
        last.bias.fill_(logit)


def _randomize(request, seed: int = 1) -> None:
    """A trained-looking module: its edit is far from zero."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for reft in request.interventions.values():
            reft.project.weight.copy_(torch.randn(reft.project.weight.shape, generator=generator))
            reft.project.bias.copy_(torch.randn(reft.project.bias.shape, generator=generator))


def _logits(loaded, batch):
    with torch.no_grad():
        return loaded.model(
            input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]
        ).logits


def _save(adapter, folder, base):
    folder.mkdir()
    adapter.save(folder, None)
    (folder / MANIFEST).write_text(json.dumps({"adapter": "grun", "base_model": str(base)}))
    return folder


def test_default_layers_scale_the_papers_choice_to_depth():
    assert default_layers(32) == (20, 25, 31)
    assert default_layers(30) == (19, 23, 29)
    assert default_layers(4) == (2, 3)


def test_last_prompt_position_is_the_end_of_the_last_marker_or_the_last_valid_token():
    ids = torch.tensor(
        [[0, 0, 5, 7, 8, 9, 7, 8], [5, 7, 8, 1, 2, 3, 0, 0], [0, 0, 4, 4, 4, 4, 4, 4]]
    )
    valid = torch.tensor(
        [[0, 0, 1, 1, 1, 1, 1, 1], [1, 1, 1, 1, 1, 1, 0, 0], [0, 0, 1, 1, 1, 1, 1, 1]]
    )
    found = last_prompt_positions(ids, valid.bool(), [(7, 8)])
    assert found.tolist() == [7, 2, 7]


def test_prompt_markers_find_the_prompt_boundary_of_training_examples(tiny_model_dir, qa_records):
    loaded = _load(tiny_model_dir)
    adapter = get_adapter("grun")
    adapter.attach(loaded.model, needs_reference=False)
    batch = _batch(loaded.tokenizer, qa_records)
    _logits(loaded, batch)
    first_answer = (batch["labels"] != -100).int().argmax(1)
    assert GrunStack.of(loaded.model).call.last_prompt.tolist() == (first_answer - 1).tolist()


def test_closed_gate_leaves_the_model_bit_for_bit_unchanged(tiny_model_dir, qa_records):
    loaded = _load(tiny_model_dir)
    batch = _batch(loaded.tokenizer, qa_records)
    before = _logits(loaded, batch)
    answers_before = generate_answers(loaded, QUESTIONS, max_new_tokens=6)
    adapter = GrunAdapter(positions="all")
    adapter.attach(loaded.model, needs_reference=False)
    _randomize(adapter.request)
    _force_gates(adapter.request, -40.0)
    assert torch.equal(_logits(loaded, batch), before)
    assert generate_answers(loaded, QUESTIONS, max_new_tokens=6) == answers_before
    _force_gates(adapter.request, 40.0)
    assert not torch.allclose(_logits(loaded, batch), before)
    with switched_off(loaded.model):
        assert torch.equal(_logits(loaded, batch), before)


def test_a_hard_gate_applies_all_of_the_edit_or_none_outside_training(tiny_model_dir, qa_records):
    loaded = _load(tiny_model_dir)
    batch = _batch(loaded.tokenizer, qa_records)
    before = _logits(loaded, batch)
    soft, hard = GrunAdapter(inference_gate="soft"), GrunAdapter(inference_gate="hard")
    edited = {}
    for adapter in (soft, hard):
        adapter.attach(loaded.model, needs_reference=False)
        _randomize(adapter.request)
    for logit in (-1.0, 1.0, 40.0):  # σ = 0.27, 0.73, 1
        for name, adapter in (("soft", soft), ("hard", hard)):
            other = hard if adapter is soft else soft
            _force_gates(adapter.request, logit)
            other.request.enabled = False  # only this one on
            loaded.model.eval()
            edited[name, logit] = _logits(loaded, batch)
            other.request.enabled = True
    assert torch.equal(edited["hard", -1.0], before)  # closed below 0.5: nothing changes
    assert not torch.allclose(edited["soft", -1.0], before)  # soft: a quarter of the edit
    assert torch.equal(edited["hard", 1.0], edited["hard", 40.0])  # open: the whole edit
    assert not torch.allclose(edited["hard", 1.0], before)
    loaded.model.train()  # training is always soft: the gate needs its gradient
    _force_gates(hard.request, -1.0)
    soft.request.enabled = False
    assert not torch.allclose(_logits(loaded, batch), before)


def test_a_consensus_gate_takes_one_decision_for_all_layers(tiny_model_dir, qa_records):
    """Open when the mean of the layers' gates is above 0.5: a lone layer's gate opening on
    another customer's question no longer edits (measured: layer 19's gate did on 19% of the
    ticket benchmark's neighbour questions, layers 23 and 29 on none)."""
    loaded = _load(tiny_model_dir)
    batch = _batch(loaded.tokenizer, qa_records)
    before = _logits(loaded, batch)
    adapter = GrunAdapter(layers=[1, 3], inference_gate="consensus")
    adapter.attach(loaded.model, needs_reference=False)
    _randomize(adapter.request)
    loaded.model.eval()

    def logits_with(low: float, high: float):
        for layer, logit in (("1", low), ("3", high)):
            _force_gates_of(adapter.request.interventions[layer], logit)
        return _logits(loaded, batch)

    assert torch.equal(logits_with(1.0, -3.0), before)  # σ 0.73 and 0.05: mean 0.39, closed
    opened = logits_with(3.0, -1.0)  # σ 0.95 and 0.27: mean 0.61, open at both layers
    assert not torch.allclose(opened, before)
    adapter.request.config = replace(adapter.request.config, inference_gate="soft")
    assert torch.equal(opened, _logits(loaded, batch))  # open: the edit as trained


@pytest.mark.parametrize("positions", ["last_prompt", "prompt", "all"])
def test_only_the_chosen_layers_and_positions_change(tiny_model_dir, qa_records, positions):
    loaded = _load(tiny_model_dir)
    batch = _batch(loaded.tokenizer, qa_records)
    adapter = GrunAdapter(layers=[1], positions=positions)
    adapter.attach(loaded.model, needs_reference=False)
    _randomize(adapter.request)
    _force_gates(adapter.request, 40.0)

    def hidden_states(model):
        with torch.no_grad():
            out = model(**{k: batch[k] for k in ("input_ids", "attention_mask")},
                        output_hidden_states=True)  # fmt: skip
        return out.hidden_states  # embeddings, then each block's output

    edited = hidden_states(loaded.model)
    with adapter.reference() as reference:
        base = hidden_states(reference)
    assert torch.equal(edited[1], base[1])  # block 0, below the module
    changed = (edited[2] - base[2]).abs().amax(-1) > 1e-6  # (B, T) at block 1
    last = GrunStack.of(loaded.model).call.last_prompt
    index = torch.arange(changed.shape[1])
    valid = batch["attention_mask"].bool()
    expected = {
        "last_prompt": index[None] == last[:, None],
        "prompt": valid & (index[None] <= last[:, None]),
        "all": valid,
    }[positions]
    assert torch.equal(changed, expected)
    if positions != "all":  # causal: nothing before the last prompt token changes upstream
        before_boundary = index[None] < last[:, None]
        if positions == "last_prompt":
            assert ((edited[-1] - base[-1]).abs().amax(-1)[before_boundary] == 0).all()


@pytest.mark.parametrize("positions", ["last_prompt", "all"])
def test_generation_with_kv_cache_and_left_padding_matches_one_by_one(tiny_model_dir, positions):
    loaded = _load(tiny_model_dir)
    adapter = GrunAdapter(positions=positions)
    adapter.attach(loaded.model, needs_reference=False)
    _randomize(adapter.request)
    _force_gates(adapter.request, 40.0)
    loaded.model.eval()
    batched = generate_answers(loaded, QUESTIONS, max_new_tokens=8)
    one_by_one = [generate_answers(loaded, [q], max_new_tokens=8)[0] for q in QUESTIONS]
    assert batched == one_by_one
    ids = [_prompt_ids(loaded.tokenizer, QUESTIONS)[0]]
    edited = prefill(loaded, ids)[0].logits
    with switched_off(loaded.model):
        assert not torch.allclose(prefill(loaded, ids)[0].logits, edited)  # the module acts

    # Without the cache every step re-reads the whole sequence: the same tokens must come out.
    tokenizer = loaded.tokenizer
    prompt = tokenizer(format_prompt(tokenizer, QUESTIONS[0]), return_tensors="pt")
    kwargs = dict(max_new_tokens=8, do_sample=False, pad_token_id=tokenizer.pad_token_id)
    with torch.no_grad():
        cached = loaded.model.generate(**prompt, use_cache=True, **kwargs)
        uncached = loaded.model.generate(**prompt, use_cache=False, **kwargs)
    assert torch.equal(cached, uncached)


def _prompt_ids(tokenizer, questions):
    return [
        tokenizer(format_prompt(tokenizer, q), add_special_tokens=False)["input_ids"]
        for q in questions
    ]


def test_dropping_finished_rows_keeps_each_rows_own_gate(tiny_model_dir):
    """Batched generation drops finished rows from the KV cache; in `all` mode every later
    token is edited with the gate its own prompt decided, so the decisions must follow."""
    loaded = _load(tiny_model_dir)
    adapter = GrunAdapter(positions="all", inference_gate="soft")  # gates of any value
    adapter.attach(loaded.model, needs_reference=False)
    _randomize(adapter.request)
    for reft in adapter.request.interventions.values():  # gates that differ between prompts
        torch.nn.init.normal_(reft.gate[0].weight, std=1.0)
    loaded.model.eval()
    ids = _prompt_ids(loaded.tokenizer, QUESTIONS)
    keep = torch.tensor([2, 0])
    out, mask = prefill(loaded, ids)
    select_rows(loaded.model, out.cache, keep)
    kept = dict(adapter.request.decisions)
    fresh, fresh_mask = prefill(loaded, [ids[2], ids[0]])
    for layer, decision in adapter.request.decisions.items():
        assert torch.allclose(kept[layer], decision, atol=1e-5)
    assert not torch.allclose(kept[min(kept)][0], kept[min(kept)][1])  # rows really differ
    token = torch.tensor([[5], [7]])

    def step(cache, mask, start):
        mask = torch.cat([mask, mask.new_ones(2, 1)], dim=1)
        with torch.no_grad():
            return loaded.model(input_ids=token, attention_mask=mask, position_ids=start[:, None],
                                cache=cache, use_cache=True).logits  # fmt: skip

    adapter.request.decisions = kept  # the fresh prefill replaced them
    after_drop = step(out.cache, mask[keep], mask[keep].sum(-1))
    assert torch.allclose(after_drop, step(fresh.cache, fresh_mask, fresh_mask.sum(-1)), atol=1e-4)


def test_save_then_load_reproduces_logits(tiny_model_dir, qa_records, tmp_path):
    loaded = _load(tiny_model_dir)
    adapter = GrunAdapter(gate="linear", inference_gate="soft")  # every gate value matters
    adapter.attach(loaded.model, needs_reference=False)
    _randomize(adapter.request)
    batch = _batch(loaded.tokenizer, qa_records)
    loaded.model.eval()
    expected = _logits(loaded, batch)
    folder = _save(adapter, tmp_path / "request", tiny_model_dir)
    assert sorted(p.name for p in folder.iterdir()) == ["grun.json", "grun.safetensors", MANIFEST]
    # R is saved as its r×d matrix, not as the parametrization's d×d basis (16 KB a layer here).
    assert (folder / "grun.safetensors").stat().st_size < 16_000
    reloaded = load_model(str(folder), precision="fp32")
    assert torch.allclose(_logits(reloaded, batch), expected, atol=1e-6, rtol=0)
    assert not any(p.requires_grad for p in reloaded.model.grun_stack.parameters())
    assert reloaded.model.grun_stack.requests[0].config.inference_gate == "soft"


def test_a_second_request_stacks_on_the_first(tiny_model_dir, qa_records, tmp_path):
    loaded = _load(tiny_model_dir)
    batch = _batch(loaded.tokenizer, qa_records)
    base = _logits(loaded, batch)
    first = GrunAdapter()
    first.attach(loaded.model, needs_reference=False)
    _randomize(first.request, seed=1)
    _force_gates(first.request, 40.0)
    folder1 = _save(first, tmp_path / "first", tiny_model_dir)

    stacked = load_model(str(folder1), precision="fp32")
    with_first = _logits(stacked, batch)
    second = GrunAdapter()
    second.attach(stacked.model, needs_reference=True)
    _randomize(second.request, seed=2)
    _force_gates(second.request, 40.0)
    assert all(".requests.1." in name for name in second.trainable())
    with second.reference() as reference:  # the model before this request: first one still on
        assert torch.equal(_logits(stacked, batch), with_first)
        assert reference is stacked.model
    both = _logits(stacked, batch)
    assert not torch.allclose(both, with_first) and not torch.allclose(with_first, base)

    folder2 = _save(second, tmp_path / "second", folder1)
    reloaded = load_model(str(folder2), precision="fp32")
    assert len(reloaded.model.grun_stack.requests) == 2
    # Real tokens only: `both` came through the frozen prefix (a training-mode forward over
    # sequences seen before), which leaves padding positions' logits meaningless.
    valid = batch["attention_mask"].bool()
    assert torch.allclose(_logits(reloaded, batch)[valid], both[valid], atol=1e-6, rtol=0)


def test_gate_loss_teaches_the_gate_to_tell_forget_from_retain(tiny_model_dir, qa_records):
    loaded = _load(tiny_model_dir)
    tokenizer = loaded.tokenizer
    forget = qa_records[:4]
    retain = [
        QARecord("Where does Alan Turing live?", "1 Bletchley Park."),
        QARecord("Name a letter of the alphabet.", "abc"),
        QARecord("I cannot help with that, can you?", "No."),
        QARecord("Account number 12345678 belongs to whom?", "Alan Turing."),
    ]
    forget_batch, retain_batch = _batch(tokenizer, forget), _batch(tokenizer, retain)
    torch.manual_seed(0)  # the module's initial weights: not whatever earlier tests left
    adapter = GrunAdapter()
    adapter.attach(loaded.model, needs_reference=False)

    def step_loss(step):
        return adapter.auxiliary_loss(forget_batch, retain_batch), 1, {}

    result = train(
        adapter.trainable(), step_loss, TrainConfig(steps=20, lr=5e-2), device=loaded.device
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
    loaded = _load(tiny_model_dir)
    adapter = GrunAdapter(general_negatives=0)  # the same negatives in both calls
    adapter.attach(loaded.model, needs_reference=False)
    forget, retain = (
        _batch(loaded.tokenizer, qa_records[:4]),
        _batch(loaded.tokenizer, qa_records[4:]),
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
    loaded = _load(tiny_model_dir)
    adapter = GrunAdapter(retain_negatives=8, paraphrase_positives=4, general_negatives=4)
    adapter.attach(loaded.model, needs_reference=False)
    adapter.set_gate_questions(["Where does Bob live?"], ["Which email does customer 1 use?"])
    _force_gates(adapter.request, 2.0)
    forget, retain = (_batch(loaded.tokenizer, qa_records[:4]),
                      _batch(loaded.tokenizer, qa_records[4:]))  # fmt: skip
    loss = adapter.auxiliary_loss(forget, retain)
    assert set(adapter.training_gates) == {"forget", "paraphrased", "retain", "retain_more",
                                           "general"}  # fmt: skip
    # Every gate at logit 2: positives (4 forget + 1 rewording) cost softplus(-2) each,
    # negatives (4 retain + 1 more + 4 general) softplus(2); λ_g = 10.
    softplus = torch.nn.functional.softplus
    expected = 10 * (5 * softplus(torch.tensor(-2.0)) + 9 * softplus(torch.tensor(2.0))) / 14
    assert loss.item() == pytest.approx(expected.item(), rel=1e-5)


def test_without_a_retain_batch_general_questions_are_the_gates_negatives(
    tiny_model_dir, qa_records
):
    loaded = _load(tiny_model_dir)
    adapter = GrunAdapter()
    adapter.attach(loaded.model, needs_reference=False)
    adapter.auxiliary_loss(_batch(loaded.tokenizer, qa_records), None)
    assert set(adapter.training_gates) == {"forget", "general"}
    with_retain = GrunAdapter(general_negatives=2)
    with_retain.attach(loaded.model, needs_reference=False)
    with_retain.auxiliary_loss(
        _batch(loaded.tokenizer, qa_records), _batch(loaded.tokenizer, qa_records)
    )
    assert set(with_retain.training_gates) == {"forget", "retain", "general"}


def test_bad_options_are_refused_with_a_reason(tiny_model_dir, tmp_path):
    loaded = _load(tiny_model_dir)
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
    settings = LossSettings(rmu_layer=1)  # RMU must steer at or above a GRUN layer
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
