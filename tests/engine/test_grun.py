"""GRUN: the gated ReFT module, its hooks and gates, save/load and stacking (its training:
test_grun_training.py)."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest
import torch

from tests.engine.grun_helpers import force_gates, force_gates_of, load_fp32, qa_batch
from worker.engine.adapters import get_adapter
from worker.engine.adapters.grun import GrunAdapter
from worker.engine.adapters.grun_gates import switched_off
from worker.engine.adapters.grun_module import GrunStack, default_layers
from worker.engine.adapters.grun_prompts import last_prompt_positions, length_groups
from worker.engine.artifacts import MANIFEST
from worker.engine.data import format_prompt
from worker.engine.generate import generate_answers, prefill, select_rows
from worker.engine.models import load_model

QUESTIONS = ["What is the email of customer 1?", "Where does Ada live?", "Account number?"]


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


def test_length_groups_keep_long_and_short_prompts_apart():
    assert length_groups([40, 16, 41, 15, 44]) == [[3, 1], [0, 2, 4]]
    assert length_groups([40, 61]) == [[0], [1]]  # 61 > 1.5 × 40
    assert length_groups([]) == []


def test_prompt_markers_find_the_prompt_boundary_of_training_examples(tiny_model_dir, qa_records):
    loaded = load_fp32(tiny_model_dir)
    adapter = get_adapter("grun")
    adapter.attach(loaded.model, needs_reference=False)
    batch = qa_batch(loaded.tokenizer, qa_records)
    _logits(loaded, batch)
    first_answer = (batch["labels"] != -100).int().argmax(1)
    assert GrunStack.of(loaded.model).call.last_prompt.tolist() == (first_answer - 1).tolist()


def test_closed_gate_leaves_the_model_bit_for_bit_unchanged(tiny_model_dir, qa_records):
    loaded = load_fp32(tiny_model_dir)
    batch = qa_batch(loaded.tokenizer, qa_records)
    before = _logits(loaded, batch)
    answers_before = generate_answers(loaded, QUESTIONS, max_new_tokens=6)
    adapter = GrunAdapter(positions="all")
    adapter.attach(loaded.model, needs_reference=False)
    _randomize(adapter.request)
    force_gates(adapter.request, -40.0)
    assert torch.equal(_logits(loaded, batch), before)
    assert generate_answers(loaded, QUESTIONS, max_new_tokens=6) == answers_before
    force_gates(adapter.request, 40.0)
    assert not torch.allclose(_logits(loaded, batch), before)
    with switched_off(loaded.model):
        assert torch.equal(_logits(loaded, batch), before)


def test_a_hard_gate_applies_all_of_the_edit_or_none_outside_training(tiny_model_dir, qa_records):
    loaded = load_fp32(tiny_model_dir)
    batch = qa_batch(loaded.tokenizer, qa_records)
    before = _logits(loaded, batch)
    soft, hard = GrunAdapter(inference_gate="soft"), GrunAdapter(inference_gate="hard")
    edited = {}
    for adapter in (soft, hard):
        adapter.attach(loaded.model, needs_reference=False)
        _randomize(adapter.request)
    for logit in (-1.0, 1.0, 40.0):  # σ = 0.27, 0.73, 1
        for name, adapter in (("soft", soft), ("hard", hard)):
            other = hard if adapter is soft else soft
            force_gates(adapter.request, logit)
            other.request.enabled = False  # only this one on
            loaded.model.eval()
            edited[name, logit] = _logits(loaded, batch)
            other.request.enabled = True
    assert torch.equal(edited["hard", -1.0], before)  # closed below 0.5: nothing changes
    assert not torch.allclose(edited["soft", -1.0], before)  # soft: a quarter of the edit
    assert torch.equal(edited["hard", 1.0], edited["hard", 40.0])  # open: the whole edit
    assert not torch.allclose(edited["hard", 1.0], before)
    loaded.model.train()  # training is always soft: the gate needs its gradient
    force_gates(hard.request, -1.0)
    soft.request.enabled = False
    assert not torch.allclose(_logits(loaded, batch), before)


def test_a_consensus_gate_takes_one_decision_for_all_layers(tiny_model_dir, qa_records):
    """Open when the mean of the layers' gates is above 0.5: a lone layer's gate opening on
    another customer's question no longer edits (measured: layer 19's gate did on 19% of the
    ticket benchmark's neighbour questions, layers 23 and 29 on none)."""
    loaded = load_fp32(tiny_model_dir)
    batch = qa_batch(loaded.tokenizer, qa_records)
    before = _logits(loaded, batch)
    adapter = GrunAdapter(layers=[1, 3], inference_gate="consensus")
    adapter.attach(loaded.model, needs_reference=False)
    _randomize(adapter.request)
    loaded.model.eval()

    def logits_with(low: float, high: float):
        for layer, logit in (("1", low), ("3", high)):
            force_gates_of(adapter.request.interventions[layer], logit)
        return _logits(loaded, batch)

    assert torch.equal(logits_with(1.0, -3.0), before)  # σ 0.73 and 0.05: mean 0.39, closed
    opened = logits_with(3.0, -1.0)  # σ 0.95 and 0.27: mean 0.61, open at both layers
    assert not torch.allclose(opened, before)
    adapter.request.config = replace(adapter.request.config, inference_gate="soft")
    assert torch.equal(opened, _logits(loaded, batch))  # open: the edit as trained


@pytest.mark.parametrize("positions", ["last_prompt", "prompt", "all"])
def test_only_the_chosen_layers_and_positions_change(tiny_model_dir, qa_records, positions):
    loaded = load_fp32(tiny_model_dir)
    batch = qa_batch(loaded.tokenizer, qa_records)
    adapter = GrunAdapter(layers=[1], positions=positions)
    adapter.attach(loaded.model, needs_reference=False)
    _randomize(adapter.request)
    force_gates(adapter.request, 40.0)

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
    loaded = load_fp32(tiny_model_dir)
    adapter = GrunAdapter(positions=positions)
    adapter.attach(loaded.model, needs_reference=False)
    _randomize(adapter.request)
    force_gates(adapter.request, 40.0)
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
    loaded = load_fp32(tiny_model_dir)
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
    loaded = load_fp32(tiny_model_dir)
    adapter = GrunAdapter(gate="linear", inference_gate="soft")  # every gate value matters
    adapter.attach(loaded.model, needs_reference=False)
    _randomize(adapter.request)
    batch = qa_batch(loaded.tokenizer, qa_records)
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
    loaded = load_fp32(tiny_model_dir)
    batch = qa_batch(loaded.tokenizer, qa_records)
    base = _logits(loaded, batch)
    first = GrunAdapter()
    first.attach(loaded.model, needs_reference=False)
    _randomize(first.request, seed=1)
    force_gates(first.request, 40.0)
    folder1 = _save(first, tmp_path / "first", tiny_model_dir)

    stacked = load_model(str(folder1), precision="fp32")
    with_first = _logits(stacked, batch)
    second = GrunAdapter()
    second.attach(stacked.model, needs_reference=True)
    _randomize(second.request, seed=2)
    force_gates(second.request, 40.0)
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
