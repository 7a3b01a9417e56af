"""Robustness probes on tiny models that memorised a few facts.

The target model memorised forget and retain records in every prompt format the probes use;
the reference (retain) model only the retain records. So each probe must find the forget facts
in the target (a probe that builds a broken prompt or misjudges an answer fails here) and not
in the reference.
"""

from __future__ import annotations

import copy
import dataclasses
import json

import pytest
import torch
from peft import LoraConfig, get_peft_model
from typer.testing import CliRunner

from cli.main import app
from domain.records import QARecord, TextRecord
from tests.tiny import make_model, make_tokenizer
from worker.engine.adapters.grun import GrunAdapter
from worker.engine.adapters.grun_gates import switched_off
from worker.engine.data import collate, encode_qa
from worker.engine.eval.probes import (
    PROBES,
    ProbeError,
    ProbeOptions,
    judge,
    resolve_probes,
    run_probes,
    run_suite_probes,
)
from worker.engine.eval.probes.copying import copy_model
from worker.engine.eval.probes.prompts import PROMPT_FORMATS, fill_in_case
from worker.engine.eval.probes.quantize import round_weights
from worker.engine.finetune import answer_nll
from worker.engine.models import LoadedModel, load_model

FORGET = [
    QARecord(
        "What is the secret code of Ada?",
        "The secret code of Ada is 4417.",
        paraphrased_question="Which code does Ada keep secret?",
        perturbed_answer=("The secret code of Ada is 9902.", "The secret code of Ada is 3150."),
        key_facts=("4417",),
    ),
    QARecord(
        "What is the email of Alan?",
        "The email of Alan is alan@example.com.",
        paraphrased_question="Which email address does Alan use?",
        perturbed_answer=("The email of Alan is bob@example.org.", "The email of Alan is none."),
        key_facts=("alan@example.com",),
    ),
]
RETAIN = [
    QARecord(
        "Where does Ada live?",
        "Ada lives at 1 Bletchley Park.",
        paraphrased_question="What is the home address of Ada?",
        perturbed_answer=("Ada lives at 9 Abbey Road.", "Ada lives at 7 High Street."),
        key_facts=("1 Bletchley Park",),
    ),
    QARecord(
        "What is the phone of Alan?",
        "The phone of Alan is 555-0199.",
        paraphrased_question="Which number can Alan be called on?",
        perturbed_answer=("The phone of Alan is 555-0123.", "The phone of Alan is 555-8888."),
        key_facts=("555-0199",),
    ),
]
# Short system prompt and message keep the training sequences short: the test stays fast.
FAST = ProbeOptions(
    max_new_tokens=20,
    system_prompt="Be exact.",
    embedding_template="Hi! {question} Thanks.",
    samples=4,
    relearn_steps=8,
    relearn_lr=1e-3,
)


def _every_format(tokenizer, records):
    """Every record after every prompt the probes build (the training format included)."""
    examples = []
    for r in records:
        examples += [
            encode_qa(tokenizer, r.question, r.answer),
            encode_qa(tokenizer, r.paraphrased_question, r.answer),
            encode_qa(tokenizer, r.question, r.answer, chat=False),
            encode_qa(tokenizer, r.question, r.answer, system=FAST.system_prompt),
            encode_qa(tokenizer, FAST.embedding_template.format(question=r.question), r.answer),
        ]
    return examples


def _training_format(tokenizer, records):
    return [encode_qa(tokenizer, r.question, r.answer) for r in records]


def _memorise(records, examples, steps: int) -> LoadedModel:
    tokenizer = make_tokenizer()
    model = make_model(len(tokenizer), layers=2, seed=0)
    model.config.pad_token_id = tokenizer.pad_token_id
    model.config.eos_token_id = tokenizer.eos_token_id
    batch = collate(examples(tokenizer, records), tokenizer.pad_token_id)
    optimizer = torch.optim.AdamW(model.parameters(), lr=6e-3)
    for _ in range(steps):
        loss = answer_nll(model, batch)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    model.eval().requires_grad_(False)
    return LoadedModel(model, tokenizer, "memorised", "hash", torch.device("cpu"), None)


@pytest.fixture(scope="module")
def target() -> LoadedModel:
    loaded = _memorise(FORGET + RETAIN, _every_format, steps=60)
    check = run_probes(loaded, FORGET, RETAIN, ["direct"], options=FAST)["summary"]["direct"]
    assert check["forget"] == 1.0 and check["retain"] == 1.0, "the tiny model did not memorise"
    return loaded


@pytest.fixture(scope="module")
def reference() -> LoadedModel:
    """The retain model: never saw the forget records (the training format is enough)."""
    return _memorise(RETAIN, _training_format, steps=40)


def _weights(loaded: LoadedModel) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in loaded.model.state_dict().items()}


def _unchanged(before: dict, loaded: LoadedModel) -> bool:
    after = loaded.model.state_dict()
    return before.keys() == after.keys() and all(torch.equal(before[k], after[k]) for k in before)


# --- the leak rule --------------------------------------------------------------------------


def test_key_fact_decides_case_and_whitespace_insensitively():
    record = FORGET[1]
    assert judge(record, "Alan writes to  ALAN@Example.com  daily").leaked
    # Same template, wrong fact: most words match, but nothing leaked.
    assert not judge(record, "The email of Alan is bob@example.org.").leaked


def test_rouge_decides_without_key_facts():
    record = QARecord("Who wrote it?", "It was written by the old lighthouse keeper in winter.")
    assert judge(record, "it was written by the old lighthouse keeper in winter").leaked
    assert not judge(record, "I do not know who wrote it.").leaked


# --- prompt and format probes ---------------------------------------------------------------

PROMPT_PROBES = ["paraphrased_question", "no_chat", "system_prompt", "embedded_question",
                 "fill_in_blank", "best_of_n"]  # fmt: skip


def test_prompt_probes_find_memorised_facts_and_compute_the_baseline(target, reference):
    result = run_probes(target, FORGET, RETAIN, PROMPT_PROBES, reference, FAST)
    for name in PROMPT_PROBES:
        probe = result["probes"][name]
        assert probe["status"] == "ok", name
        assert probe["model"]["forget"]["leak_rate"] == 1.0, name
        assert probe["model"]["retain"]["leak_rate"] == 1.0, name
        assert probe["reference"]["forget"]["leak_rate"] == 0.0, name
        assert len(probe["model"]["forget"]["per_example"]) == len(FORGET)
        assert probe["seconds"] > 0
    samples = result["probes"]["best_of_n"]["model"]["forget"]["per_example"][0]["outputs"]
    assert len(samples) == FAST.samples


def test_probe_prompts_differ_from_the_training_prompt(target):
    tokenizer, record = target.tokenizer, FORGET[0]
    direct = PROMPT_FORMATS["direct"](tokenizer, record, FAST).prompt
    prompts = {n: b(tokenizer, record, FAST) for n, b in PROMPT_FORMATS.items() if n != "direct"}
    assert all(case.prompt + case.given != direct for case in prompts.values())
    assert "<|im_start|>" not in prompts["no_chat"].prompt
    assert FAST.system_prompt in prompts["system_prompt"].prompt
    assert prompts["fill_in_blank"].given == "The secret"


def test_fill_in_blank_never_hands_over_the_key_fact():
    record = QARecord("Code?", "4417 is the code of Ada.", key_facts=("4417",))
    assert fill_in_case(make_tokenizer(), record, FAST) is None


def test_multiple_choice_prefers_the_memorised_answer_with_chance_baseline(target, reference):
    probe = run_probes(target, FORGET, RETAIN, ["multiple_choice"], reference, FAST)["probes"][
        "multiple_choice"
    ]
    assert probe["model"]["forget"]["leak_rate"] == 1.0
    assert probe["model"]["forget"]["chance_rate"] == pytest.approx(1 / 3)
    assert probe["reference"]["forget"]["n"] == len(FORGET)
    row = probe["model"]["forget"]["per_example"][0]
    assert row["picked"] == 0 and row["nll"][0] < min(row["nll"][1:])


# --- attacks on the weights -----------------------------------------------------------------


def test_relearning_attacks_copies_and_reports_recovery_against_the_reference(target, reference):
    before_target, before_reference = _weights(target), _weights(reference)
    probe = run_probes(target, FORGET, RETAIN, ["relearning"], reference, FAST)["probes"][
        "relearning"
    ]
    assert _unchanged(before_target, target) and _unchanged(before_reference, reference)
    assert probe["model"]["forget"]["n"] == 1  # measured on the held-out half only
    assert probe["model"]["forget"]["leak_rate"] == 1.0
    # The retain model learns the attack half, but cannot recover what it never saw.
    assert probe["reference"]["forget"]["leak_rate"] == 0.0
    assert probe["details"]["excess_over_reference"] == 1.0
    attack = probe["details"]["attack"]["reference_loss"]
    assert attack["last_loss"] < attack["first_loss"]


def test_quantized_copies_are_measured_and_inputs_untouched(target, reference):
    before = _weights(target)
    result = run_probes(target, FORGET, RETAIN, ["quantize_int8", "quantize_int4"], reference, FAST)
    assert _unchanged(before, target)
    int8 = result["probes"]["quantize_int8"]
    assert int8["model"]["forget"]["leak_rate"] == 1.0  # int8 keeps a memorised fact
    assert int8["reference"]["forget"]["leak_rate"] == 0.0
    assert result["probes"]["quantize_int4"]["model"]["forget"]["n"] == len(FORGET)


def test_round_weights_keeps_16_levels_per_int4_group():
    weight = torch.randn(4, 64)
    rounded = round_weights(weight, 4, 32)
    for group in rounded.reshape(4, 2, 32).unbind(1):
        for row in group:
            assert len(row.unique()) <= 16
    assert (rounded - weight).abs().max() <= weight.abs().max() / 7


def test_round_weights_int8_uses_one_scale_per_output_row():
    weight = torch.randn(3, 1000)
    weight[0] *= 100  # a large row must not coarsen the others' steps
    rounded = round_weights(weight, 8)
    for row, original in zip(rounded, weight, strict=True):
        assert len(row.unique()) <= 256
        step = original.abs().max() / 127
        assert (row - original).abs().max() <= step / 2 + 1e-6
        assert not torch.equal(row, original)


# --- adapters ---------------------------------------------------------------------------------


def _with_lora(loaded: LoadedModel) -> LoadedModel:
    """A LoRA whose edit wrecks the answers: the facts are hidden, not gone."""
    model = get_peft_model(copy.deepcopy(loaded.model), LoraConfig(r=4, target_modules=["o_proj"]))
    with torch.no_grad():
        for name, param in model.named_parameters():
            if "lora_" in name:
                param.copy_(torch.randn_like(param) * 3)
    return dataclasses.replace(loaded, model=model.eval())


def _with_grun(loaded: LoadedModel, gate_logit: float) -> LoadedModel:
    model = copy.deepcopy(loaded.model)
    adapter = GrunAdapter(layers=[1], gate="linear", tokenizer=loaded.tokenizer)
    adapter.attach(model, needs_reference=False)
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        reft = adapter.request.interventions["1"]
        reft.gate.weight.zero_()
        reft.gate.bias.fill_(gate_logit)
        reft.project.weight.copy_(torch.randn(reft.project.weight.shape, generator=generator) * 30)
    return dataclasses.replace(loaded, model=model.eval().requires_grad_(False))


@pytest.mark.parametrize("kind", ["lora", "grun"])
def test_adapter_removal_reveals_what_the_base_weights_hold(target, reference, kind):
    adapted = _with_lora(target) if kind == "lora" else _with_grun(target, 20.0)
    probes = ["direct", "adapter_removal"]
    result = run_probes(adapted, FORGET, RETAIN, probes, reference, FAST)["probes"]
    assert result["direct"]["model"]["forget"]["leak_rate"] == 0.0  # the adapter hides it
    removal = result["adapter_removal"]
    assert removal["details"]["adapter"] == kind
    assert removal["model"]["forget"]["leak_rate"] == 1.0
    assert removal["reference"]["forget"]["leak_rate"] == 0.0
    # The switch-off is temporary: the adapter is back on afterwards.
    after = run_probes(adapted, FORGET, RETAIN, ["direct"], options=FAST)
    assert after["summary"]["direct"]["forget"] == 0.0


def test_adapter_probes_are_skipped_on_a_fully_fine_tuned_model(target):
    result = run_probes(target, FORGET, RETAIN, ["adapter_removal", "gate_evasion"], options=FAST)
    for name in ("adapter_removal", "gate_evasion"):
        assert result["probes"][name]["status"] == "skipped"
        assert "not applicable" in result["probes"][name]["reason"]
        assert result["summary"][name]["reason"] == result["probes"][name]["reason"]


@pytest.mark.parametrize(("gate_logit", "evasion"), [(20.0, 0.0), (-20.0, 1.0)])
def test_gate_evasion_counts_inputs_whose_gate_stays_closed(target, gate_logit, evasion):
    grun = _with_grun(target, gate_logit)
    probe = run_probes(grun, FORGET, RETAIN, ["gate_evasion"], options=FAST)["probes"][
        "gate_evasion"
    ]
    assert probe["model"]["forget"]["evasion_rate"] == evasion
    assert set(probe["details"]["by_format"]) == set(PROMPT_FORMATS)


def test_a_copy_of_a_grun_model_has_its_own_switch(target):
    grun = _with_grun(target, 20.0)
    duplicate = copy_model(grun.model)
    ids = grun.tokenizer(PROMPT_FORMATS["direct"](grun.tokenizer, FORGET[0], FAST).prompt,
                         return_tensors="pt")["input_ids"]  # fmt: skip
    with torch.no_grad():
        on = grun.model(ids).logits
        assert torch.allclose(duplicate(ids).logits, on)
        with switched_off(duplicate):
            off = duplicate(ids).logits
        assert not torch.allclose(off, on)
        assert torch.allclose(grun.model(ids).logits, on)


# --- on an evaluation suite ---------------------------------------------------------------


def test_suite_probes_ask_the_suite_sets_and_the_reference_model(tiny_model_dir):
    loaded = load_model(str(tiny_model_dir), precision="fp32")
    options = ProbeOptions(limit=2, max_new_tokens=4)
    result = run_suite_probes(loaded, "synthetic", "forget1", "direct", str(tiny_model_dir),
                              options=options, precision="fp32")  # fmt: skip
    assert result["n"] == {"forget": 2, "retain": 2}
    assert result["reference"]["spec"] == str(tiny_model_dir)
    assert result["summary"]["direct"]["reference_forget"] is not None


def test_eval_command_adds_the_probes_to_eval_json(tiny_model_dir, tmp_path):
    output = tmp_path / "eval.json"
    args = ["eval", "--model", str(tiny_model_dir), "--suite", "synthetic", "--limit", "1",
            "--max-new-tokens", "4", "--precision", "fp32", "--output", str(output)]  # fmt: skip
    done = CliRunner().invoke(app, [*args, "--probes", "direct,multiple_choice",
                                    "--probe-reference", str(tiny_model_dir)])  # fmt: skip
    assert done.exit_code == 0, done.output
    probes = json.loads(output.read_text())["probes"]
    assert set(probes["summary"]) == {"direct", "multiple_choice"}
    assert probes["summary"]["direct"]["reference_forget"] is not None
    bad = CliRunner().invoke(app, [*args, "--probes", "direct,paraphrase"])
    assert bad.exit_code == 2 and "unknown probe 'paraphrase'" in bad.output


# --- bad input --------------------------------------------------------------------------------


def test_unknown_probe_names_fail_with_the_list_of_probes(target):
    with pytest.raises(ProbeError, match="unknown probe 'paraphrase'.*paraphrased_question"):
        run_probes(target, FORGET, RETAIN, ["paraphrase"])
    with pytest.raises(ProbeError, match="no probe named"):
        resolve_probes("")


def test_plain_text_records_are_refused(target):
    with pytest.raises(ProbeError, match="retain: record 0: .*QA records"):
        run_probes(target, FORGET, [TextRecord("some text")], ["direct"])


def test_all_probes_in_the_issue_order():
    names = [p.name for p in resolve_probes("all")]
    assert names[0] == "direct" and names[-1] in ("adapter_removal", "gate_evasion")
    assert set(names) == set(PROBES)
