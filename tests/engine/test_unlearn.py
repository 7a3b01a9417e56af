"""unlearn(): the recipe around the objectives, its errors, and the `obliviate unlearn` CLI."""

import json
from dataclasses import asdict

import pytest
import torch
from safetensors.torch import load_file
from typer.testing import CliRunner

from cli.main import app
from domain import choices
from domain.progress import Cancelled
from domain.records import DataError, QARecord, TextRecord
from tests.engine.memorized import (
    FORGET,
    RETAIN,
    mean_nll,
    one_thread,  # noqa: F401  (fixture)
)
from worker.engine.adapters import ADAPTERS, FullAdapter, LoraAdapter
from worker.engine.models import BUILTIN_MODELS, load_model
from worker.engine.objectives import OBJECTIVES, LossSettings
from worker.engine.unlearn import UnlearnConfig, unlearn
from worker.policy import ModelPolicy

pytestmark = pytest.mark.usefixtures("one_thread")


def config(model_dir, output, **overrides) -> UnlearnConfig:
    options = dict(output=str(output), model=str(model_dir), method="npo", steps=4, lr=1e-3,
                   batch_size=2, precision="fp32")  # fmt: skip
    return UnlearnConfig(**{**options, **overrides})


def test_unlearning_writes_a_model_that_forgets_and_a_run_record(memorised_dir, tmp_path):
    info = unlearn(config(memorised_dir, tmp_path / "out"), FORGET, RETAIN)
    before = load_model(str(memorised_dir), precision="fp32")
    after = load_model(str(tmp_path / "out"), precision="fp32")
    forget_before = mean_nll(before.model, before.tokenizer, FORGET)
    assert mean_nll(after.model, after.tokenizer, FORGET) > forget_before + 0.15
    run = json.loads((tmp_path / "out" / "run.json").read_text())
    assert run["kind"] == "unlearn" and run["config"]["method"] == "npo"
    assert run["config"]["loss"]["beta"] == 0.1  # the method's default, recorded as used
    assert set(run["data"]) == {"forget", "retain"}
    assert run["cost"]["steps"] == 4 and run["cost"]["tokens"] > 0
    assert run["cost"]["peak_memory_mb"] > 0 and run["cost"]["trainable_parameters"] > 0
    assert info["output_hash"] == after.model_hash


def test_steps_default_to_epochs_over_the_forget_set(memorised_dir, tmp_path):
    info = unlearn(
        config(memorised_dir, tmp_path / "out", method="ga", steps=None, epochs=3), FORGET
    )
    assert info["cost"]["steps"] == 6  # 4 forget records / batch 2 * 3 epochs


def test_same_seed_same_weights_other_seed_other_batches(memorised_dir, tmp_path):
    for name, seed in [("a", 0), ("b", 0), ("c", 1)]:
        unlearn(config(memorised_dir, tmp_path / name, seed=seed), FORGET, RETAIN)
    a, b, c = (load_file(tmp_path / n / "model.safetensors") for n in "abc")
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not all(torch.equal(a[k], c[k]) for k in a)


def test_lora_leaves_the_base_weights_untouched(memorised_dir, tmp_path):
    loaded = load_model(str(memorised_dir), precision="fp32")
    original = {k: v.clone() for k, v in loaded.model.state_dict().items()}
    cfg = config(
        memorised_dir, tmp_path / "lora", adapter="lora", adapter_options={"rank": 4}, lr=1e-2
    )
    unlearn(cfg, FORGET, RETAIN, loaded=loaded)
    base = loaded.model.get_base_model().state_dict()
    for key, value in original.items():
        lora_key = key.replace(".weight", ".base_layer.weight")
        assert torch.equal(base.get(lora_key, base.get(key)), value), key
    saved = load_file(tmp_path / "lora" / "adapter_model.safetensors")
    assert saved and all("lora_" in k for k in saved)  # only the adapter is written
    after = load_model(str(tmp_path / "lora"), precision="fp32")
    base_only = load_model(str(memorised_dir), precision="fp32")
    forget_before = mean_nll(base_only.model, base_only.tokenizer, FORGET)
    assert mean_nll(after.model, after.tokenizer, FORGET) > forget_before + 0.15


def test_a_second_lora_version_trains_against_its_parent_not_the_base(memorised_dir, tmp_path):
    first = config(memorised_dir, tmp_path / "v2", adapter="lora", adapter_options={"rank": 4},
                   lr=1e-2)  # fmt: skip
    unlearn(first, FORGET, RETAIN)
    parent = load_model(str(tmp_path / "v2"), precision="fp32")
    base = load_model(str(memorised_dir), precision="fp32")
    parent_nll = mean_nll(parent.model, parent.tokenizer, FORGET)
    assert parent_nll > mean_nll(base.model, base.tokenizer, FORGET) + 0.15

    loaded = load_model(str(tmp_path / "v2"), precision="fp32")
    adapter = LoraAdapter(rank=4)
    model = adapter.attach(loaded.model, needs_reference=True)
    with adapter.reference() as reference:
        # The reference (what NPO compares against) is version 2, not the base model.
        assert mean_nll(reference, loaded.tokenizer, FORGET) == pytest.approx(parent_nll, rel=1e-4)
    assert mean_nll(model, loaded.tokenizer, FORGET) == pytest.approx(parent_nll, rel=1e-4)

    # Version 3 on top of version 2 loads as version 2 plus its own adapter.
    unlearn(config(tmp_path / "v2", tmp_path / "v3", adapter="lora",
                   adapter_options={"rank": 4}, lr=1e-2), FORGET, RETAIN)  # fmt: skip
    third = load_model(str(tmp_path / "v3"), precision="fp32")
    assert mean_nll(third.model, third.tokenizer, FORGET) > parent_nll


@pytest.mark.parametrize("adapter", ["full", "lora", "grun"])
@pytest.mark.parametrize("method", ["ga", "graddiff", "npo", "simnpo", "rmu"])  # every one on text
def test_plain_text_records_can_be_forgotten(memorised_dir, tmp_path, method, adapter):
    texts = [TextRecord(f"The email of customer {i} is c{i}@example.com.") for i in range(2)]
    options = {"layers": [0, 1], "gate": "linear"} if adapter == "grun" else {}
    cfg = config(memorised_dir, tmp_path / "out", method=method, adapter=adapter,
                 adapter_options=options)  # fmt: skip
    info = unlearn(cfg, texts, RETAIN)
    assert info["cost"]["steps"] == 4 and all(loss == loss for loss in info["losses"])  # no NaN


def test_kl_retain_term_gets_a_reference_model(memorised_dir, tmp_path):
    # GradDiff's forget term needs no reference; its KL retain term does (else: RuntimeError).
    cfg = config(memorised_dir, tmp_path / "out", method="graddiff",
                 loss=LossSettings(retain_loss="kl"))  # fmt: skip
    info = unlearn(cfg, FORGET, RETAIN)
    assert info["config"]["loss"]["retain_loss"] == "kl"


def test_idk_records_its_refusal_list(memorised_dir, tmp_path):
    refusals = tmp_path / "refusals.txt"
    refusals.write_text("No comment.\nAsk someone else.\n")
    builtin = unlearn(config(memorised_dir, tmp_path / "a", method="idk"), FORGET, RETAIN)
    own = unlearn(
        config(memorised_dir, tmp_path / "b", method="idk", refusals=str(refusals)),
        FORGET,
        RETAIN,
    )
    assert builtin["data"]["refusals"] != own["data"]["refusals"]


def test_adapter_auxiliary_loss_is_added_to_the_step_loss(memorised_dir, tmp_path, monkeypatch):
    class WithAuxiliary(FullAdapter):
        name = "full_aux"

        def auxiliary_loss(self, forget_batch, retain_batch):
            assert forget_batch["input_ids"].shape[0] == 2 and retain_batch is not None
            return torch.tensor(5.0)

    monkeypatch.setitem(ADAPTERS, "full_aux", WithAuxiliary)
    plain = unlearn(config(memorised_dir, tmp_path / "a", steps=1), FORGET, RETAIN)
    aux = unlearn(
        config(memorised_dir, tmp_path / "b", steps=1, adapter="full_aux"), FORGET, RETAIN
    )
    assert aux["losses"][0] == pytest.approx(plain["losses"][0] + 5.0)


@pytest.mark.parametrize(
    ("overrides", "forget", "retain", "message"),
    [
        ({"method": "forget-it"}, FORGET, RETAIN, "unknown method 'forget-it'; choose one of ga"),
        ({}, [], RETAIN, "forget: holds no records"),
        (
            {},
            FORGET,
            RETAIN + [FORGET[2]],
            "record 2: 'What is the email of customer 2\\?' also appears .* as record 4",
        ),
        ({}, FORGET, None, "needs a retain set"),
        ({"method": "idk"}, [TextRecord("x")], RETAIN, "record 0: field 'question': method 'idk'"),
    ],
)
def test_bad_requests_fail_before_loading_the_model(tmp_path, overrides, forget, retain, message):
    # The model path does not exist: these errors must come before any model is loaded.
    cfg = config(tmp_path / "no-model", tmp_path / "out", **overrides)
    with pytest.raises((DataError, ValueError), match=message):
        unlearn(cfg, forget, retain)
    assert not (tmp_path / "out").exists() and not (tmp_path / "out.partial").exists()


def test_bad_settings_are_refused(tmp_path):
    with pytest.raises(ValueError, match="unknown retain loss 'l2'; use nll or kl"):
        LossSettings(retain_loss="l2")
    with pytest.raises(ValueError, match="batch_size must be at least 1, got 0"):
        config(tmp_path, tmp_path / "out", batch_size=0)


def test_config_round_trips_through_json(tmp_path):
    cfg = config(tmp_path, tmp_path / "out", loss=LossSettings(alpha=2.0, retain_loss="kl"))
    again = UnlearnConfig(**json.loads(json.dumps(asdict(cfg))))
    assert again == cfg and isinstance(again.loss, LossSettings)


def test_resumed_run_matches_an_uninterrupted_one(memorised_dir, tmp_path):
    # 4 forget records, batch 2: 2 steps and one checkpoint per epoch; 2 epochs.
    straight = config(memorised_dir, tmp_path / "straight", steps=None, epochs=2)
    unlearn(straight, FORGET, RETAIN)
    calls = []

    def stop_after_one_epoch():
        calls.append(1)
        return len(calls) > 2

    with pytest.raises(Cancelled):
        unlearn(
            config(memorised_dir, tmp_path / "resumed", steps=None, epochs=2),
            FORGET,
            RETAIN,
            should_stop=stop_after_one_epoch,
        )
    resumed = config(memorised_dir, tmp_path / "resumed", steps=None, epochs=2, resume=True)
    info = unlearn(resumed, FORGET, RETAIN)
    assert len(info["losses"]) == 4
    a = load_file(tmp_path / "straight" / "model.safetensors")
    b = load_file(tmp_path / "resumed" / "model.safetensors")
    assert all(torch.allclose(a[k], b[k], atol=1e-6) for k in a)


def test_cli_unlearns_and_reports_errors(memorised_dir, tmp_path):
    forget, retain = tmp_path / "forget.jsonl", tmp_path / "retain.jsonl"
    forget.write_text("\n".join(json.dumps(r.to_dict()) for r in FORGET))
    retain.write_text("\n".join(json.dumps(r.to_dict()) for r in RETAIN))
    common = ["unlearn", "--model", str(memorised_dir), "--forget", str(forget),
              "--retain", str(retain), "--steps", "2", "--precision", "fp32"]  # fmt: skip
    runner = CliRunner()
    ok = runner.invoke(app, [*common, "--output", str(tmp_path / "out"), "--method", "graddiff",
                             "--adapter", "lora", "--lora-rank", "4", "--merge"])  # fmt: skip
    assert ok.exit_code == 0, ok.output
    assert "wrote" in ok.output and (tmp_path / "out" / "model.safetensors").is_file()
    run = json.loads((tmp_path / "out" / "run.json").read_text())
    assert run["config"]["adapter_options"] == {"rank": 4}
    bad = runner.invoke(app, [*common, "--output", str(tmp_path / "bad"), "--method", "nope"])
    assert bad.exit_code == 2 and "unknown method 'nope'" in bad.output
    overlap = tmp_path / "overlap.jsonl"
    overlap.write_text(json.dumps(QARecord(FORGET[0].question, FORGET[0].answer).to_dict()))
    clash = runner.invoke(
        app, [*common[:6], str(overlap), *common[7:], "--output", str(tmp_path / "clash")]
    )
    unwrapped = " ".join(clash.output.split())  # rich wraps long lines
    assert clash.exit_code == 2 and "also appears in the retain set" in unwrapped


def test_the_names_the_api_accepts_are_the_engine_registries():
    assert sorted(choices.METHODS) == sorted(OBJECTIVES)
    assert sorted(choices.ADAPTERS) == sorted(ADAPTERS)
    assert sorted(choices.BUILTIN_MODEL_NAMES) == sorted(BUILTIN_MODELS)


@pytest.mark.parametrize(("adapter", "lr"), [("full", 1e-5), ("lora", 1e-4), ("grun", 4e-3)])
def test_each_adapter_trains_at_its_own_rate_unless_told(adapter, lr):
    # Before: the CLI ran GRUN at full fine-tuning's 1e-5, and a ticket whose admin chose the
    # full adapter would have run at the policy's GRUN rate 4e-3.
    assert UnlearnConfig(output="out", adapter=adapter).lr == lr
    assert UnlearnConfig(output="out", adapter=adapter, lr=3e-4).lr == 3e-4
    assert ModelPolicy(source="defaults").unlearning.lr is None  # the policy defers to it


def test_the_cli_runs_grun_at_grun_rate(memorised_dir, tmp_path):
    records = tmp_path / "forget.jsonl"
    records.write_text("\n".join(json.dumps(r.to_dict()) for r in FORGET))
    result = CliRunner().invoke(app, ["unlearn", "--forget", str(records), "--output",
                                      str(tmp_path / "out"), "--model", str(memorised_dir),
                                      "--adapter", "grun", "--method", "ga", "--steps", "1",
                                      "--precision", "fp32"])  # fmt: skip
    assert result.exit_code == 0, result.output
    assert json.loads((tmp_path / "out" / "run.json").read_text())["config"]["lr"] == 4e-3
