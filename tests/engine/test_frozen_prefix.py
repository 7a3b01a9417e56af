"""Computing only what changes (issue 14): a step with reference values stored once per run,
and (GRUN) started at the lowest GRUN layer from stored hidden states, gives the loss and
gradients of the step that computes everything. Tolerance: 1e-5 relative in fp32 (the same
operations on the same numbers; only the order of a few reductions may differ)."""

from __future__ import annotations

from contextlib import nullcontext

import pytest
import torch

from tests.engine.memorized import FORGET, RETAIN
from worker.engine.adapters import get_adapter
from worker.engine.adapters.frozen_prefix import FrozenPrefix, layer_window
from worker.engine.adapters.grun_module import decoder_of
from worker.engine.attention import training_attention
from worker.engine.data import collate, encode_qa
from worker.engine.models import load_model
from worker.engine.objectives import OBJECTIVES, LossSettings, get_objective
from worker.engine.objectives.refusals import refusals_for
from worker.engine.precision import frozen_linears_cast
from worker.engine.unlearn import UnlearnConfig, UnlearnData, step_loss_factory, unlearn


def _step(model_dir, method: str, adapter_name: str, cache_mb: int, steps: int, eager=False,
          **loss):  # fmt: skip
    """Loss and gradients of the last of `steps` calls of step 0 (the same batches each call),
    with every store `cache_mb` MiB large (0: off); `eager`: in a run's training attention."""
    loaded = load_model(str(model_dir), precision="fp32")
    torch.manual_seed(0)  # the same initial module on both paths
    options = {"layers": [1], "prefix_cache_mb": cache_mb} if adapter_name == "grun" else {}
    adapter = get_adapter(adapter_name, **options)
    objective = get_objective(method)
    settings = LossSettings(rmu_layer=1, beta=objective.default_beta, **loss)
    loaded.model = adapter.attach(loaded.model, needs_reference=True)
    refusals = refusals_for(None) if objective.needs_refusals else []
    data = UnlearnData(list(FORGET), list(RETAIN), refusals)
    cfg = UnlearnConfig(
        output="unused", method=method, adapter=adapter_name, reference_cache_mb=cache_mb
    )
    step_loss = step_loss_factory(cfg, objective, settings, data)(loaded, adapter)
    attention = training_attention(loaded.model, loaded.device) if eager else nullcontext()
    with attention:
        assert loaded.model.config._attn_implementation == ("eager" if eager else "sdpa")
        for _ in range(steps):
            params = adapter.trainable()
            for p in params.values():
                p.grad = None
            loss, _, _ = step_loss(0)
            loss.backward()
    assert loaded.model.config._attn_implementation == "sdpa"  # the model's own, put back
    grads = {name: p.grad.clone() for name, p in params.items() if p.grad is not None}
    return loss.detach(), grads, adapter, step_loss.reference_values


CASES = [(m, a) for m in sorted(OBJECTIVES) for a in ("full", "lora", "grun")]
CASES += [("graddiff-kl", a) for a in ("full", "lora", "grun")]  # the KL retain term


@pytest.mark.parametrize(("method", "adapter_name"), CASES)
def test_the_cached_step_gives_the_loss_and_gradients_of_the_whole_forward(
    memorised_dir, method, adapter_name
):
    loss_options = {}
    if method == "graddiff-kl":
        method, loss_options = "graddiff", {"retain_loss": "kl"}
    args = (memorised_dir, method, adapter_name)
    loss, grads, _, _ = _step(*args, cache_mb=0, steps=2, **loss_options)
    cached_loss, cached_grads, adapter, store = _step(*args, cache_mb=64, steps=2, **loss_options)
    if method in ("npo", "idkdpo", "rmu") or loss_options:  # they ask the reference
        assert store.stats()["hits"] > 0 and store.stats()["misses"] > 0
    if adapter_name == "grun":
        stats = adapter.prefix.stats()
        assert stats["hits"] > 0 and stats["sequences"] > 0  # the second call ran from layer 1
    assert cached_loss == pytest.approx(loss.item(), rel=1e-5, abs=1e-6)
    assert grads.keys() == cached_grads.keys() and grads
    for name, grad in grads.items():
        assert torch.allclose(cached_grads[name], grad, rtol=1e-5, atol=1e-6), name


@pytest.mark.parametrize("adapter_name", ["full", "lora", "grun"])
def test_training_in_eager_attention_gives_the_loss_and_gradients_of_the_fused_kernel(
    memorised_dir, adapter_name
):
    # A run trains in eager attention on the CPU (faster there); the step must not change.
    # Tolerance 1e-4 relative: the same attention, summed in another order.
    loss, grads, _, _ = _step(memorised_dir, "npo", adapter_name, cache_mb=64, steps=2)
    eager_loss, eager_grads, _, _ = _step(
        memorised_dir, "npo", adapter_name, cache_mb=64, steps=2, eager=True
    )
    assert eager_loss == pytest.approx(loss.item(), rel=1e-4)
    assert grads.keys() == eager_grads.keys() and grads
    for name, grad in grads.items():
        assert torch.allclose(eager_grads[name], grad, rtol=1e-4, atol=1e-6), name


def _batch(tokenizer, records):
    examples = [encode_qa(tokenizer, r.question, r.answer) for r in records]
    return collate(examples, tokenizer.pad_token_id)


def test_a_sequence_is_reused_in_any_batch_and_padding(memorised_dir):
    loaded = load_model(str(memorised_dir), precision="fp32")
    decoder = decoder_of(loaded.model)
    whole = _batch(loaded.tokenizer, FORGET[:3])
    with torch.no_grad():
        expected = loaded.model(**whole).logits
    prefix = FrozenPrefix(decoder, 1).install()
    loaded.model.train()
    with torch.no_grad():
        loaded.model(**_batch(loaded.tokenizer, FORGET[:3] + RETAIN[:2]))  # stores, longer pads
        reused = loaded.model(**whole).logits  # every row stored: starts at layer 1
    assert prefix.stats()["hits"] == 1 and prefix.stats()["misses"] == 1
    valid = whole["attention_mask"].bool()
    assert torch.allclose(reused[valid], expected[valid], atol=1e-5)
    assert len(decoder.layers) == 2  # the whole stack is back after the shortened call


def test_the_store_stays_within_its_limit_and_the_rest_is_computed_whole(memorised_dir):
    loaded = load_model(str(memorised_dir), precision="fp32")
    prefix = FrozenPrefix(decoder_of(loaded.model), 1, max_bytes=1).install()
    loaded.model.train()
    batch = _batch(loaded.tokenizer, FORGET[:2])
    with torch.no_grad():
        loaded.model(**batch)
        loaded.model(**batch)
    assert prefix.stats()["sequences"] == 0 and prefix.stats()["misses"] == 2
    prefix.remove()
    with torch.no_grad():
        loaded.model(**batch)
    assert prefix.stats()["misses"] == 2  # removed: no longer consulted


def test_evaluation_and_generation_never_use_the_store(memorised_dir):
    loaded = load_model(str(memorised_dir), precision="fp32")
    prefix = FrozenPrefix(decoder_of(loaded.model), 1).install()
    loaded.model.eval()
    with torch.no_grad():
        loaded.model(**_batch(loaded.tokenizer, FORGET[:2]))
    assert prefix.stats() | {"start_layer": 0} == {
        "start_layer": 0, "sequences": 0, "megabytes": 0.0, "hits": 0, "misses": 0,
    }  # fmt: skip


def test_a_layer_window_restores_the_whole_stack_even_after_an_error(memorised_dir):
    loaded = load_model(str(memorised_dir), precision="fp32")
    decoder = decoder_of(loaded.model)
    layers = list(decoder.layers)
    with pytest.raises(RuntimeError), layer_window(decoder, 0, 1):
        assert len(decoder.layers) == 1
        raise RuntimeError("boom")
    assert list(decoder.layers) == layers


def _bf16_step(model_dir, method: str, adapter_name: str, cast_frozen: bool):
    """Loss and gradients of one step under bf16 autocast, the frozen Linear weights cast
    once beforehand or (as autocast does) at every call."""
    loaded = load_model(str(model_dir), precision="bf16")
    torch.manual_seed(0)
    options = {"layers": [1]} if adapter_name == "grun" else {}
    adapter = get_adapter(adapter_name, **options)
    objective = get_objective(method)
    loaded.model = adapter.attach(loaded.model, needs_reference=True)
    refusals = refusals_for(None) if objective.needs_refusals else []
    data = UnlearnData(list(FORGET), list(RETAIN), refusals)
    cfg = UnlearnConfig(output="unused", method=method, adapter=adapter_name)
    settings = LossSettings(rmu_layer=1, beta=objective.default_beta)
    step_loss = step_loss_factory(cfg, objective, settings, data)(loaded, adapter)
    head = loaded.model.get_output_embeddings()
    tied = head.weight
    with frozen_linears_cast(loaded.model, torch.bfloat16 if cast_frozen else None) as count:
        with loaded.autocast():
            loss, _, _ = step_loss(0)
        loss.backward()
    params = adapter.trainable()
    grads = {name: p.grad.clone() for name, p in params.items() if p.grad is not None}
    # Afterwards the run's model is fp32 again, with the same Parameter objects.
    assert head.weight is tied and head.weight.dtype == torch.float32
    return loss.detach(), grads, count


# Full fine-tuning trains every weight of the model: nothing to cast (its reference copy is
# asked once per sequence, then read from the reference store).
@pytest.mark.parametrize(
    ("method", "adapter_name"), [("npo", "grun"), ("idk", "grun"), ("npo", "lora")]
)
def test_frozen_weights_cast_once_give_the_step_autocast_gives(memorised_dir, method, adapter_name):
    loss, grads, none_cast = _bf16_step(memorised_dir, method, adapter_name, cast_frozen=False)
    cast_loss, cast_grads, count = _bf16_step(memorised_dir, method, adapter_name, cast_frozen=True)
    assert none_cast == 0 and count > 0
    assert torch.equal(cast_loss, loss)  # the same rounding as autocast's: bit for bit
    assert grads.keys() == cast_grads.keys() and grads
    for name, grad in grads.items():
        assert torch.equal(cast_grads[name], grad), name


@pytest.mark.parametrize(
    ("method", "loss_options"),
    [("npo", {}), ("idkdpo", {}), ("rmu", {"rmu_layer": 1}), ("graddiff", {"retain_loss": "kl"})],
)
def test_full_fine_tuning_stores_its_reference_instead_of_copying_the_model(
    memorised_dir, tmp_path, method, loss_options
):
    # Every reference value is computed before the first update: the run keeps one copy of
    # the model, and its losses are those of the run that keeps a frozen second copy, step
    # after step while the weights move away from the reference.
    runs = {}
    for cache_mb in (0, 64):
        cfg = UnlearnConfig(
            output=str(tmp_path / f"out{cache_mb}"), model=str(memorised_dir), method=method,
            adapter="full", steps=4, lr=1e-3, batch_size=2, precision="fp32",
            reference_cache_mb=cache_mb, loss=LossSettings(**loss_options),
        )  # fmt: skip
        runs[cache_mb] = unlearn(cfg, FORGET, RETAIN)
    assert runs[0]["diagnostics"]["reference"] == "model copy"
    assert runs[64]["diagnostics"]["reference"] == "stored values"
    assert runs[64]["losses"] == pytest.approx(runs[0]["losses"], rel=1e-5, abs=1e-6)
    assert runs[64]["losses"][0] != runs[64]["losses"][-1]  # the weights did move
