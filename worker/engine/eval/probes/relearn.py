"""Relearning attack: a few fine-tuning steps on part of the forgotten data.

If unlearning only hid the knowledge, training on one half of the forget set brings back the
other half too. The same attack on the retain model, which never saw the data, is the
baseline: it learns the trained half but has nothing to recover on the held-out half.
Attacks run on copies; the models given to the probe never change.
"""

from __future__ import annotations

from collections.abc import Sequence

from domain.records import QARecord
from worker.engine.data import encode_record
from worker.engine.eval.probes.base import ProbeOptions, ProbeSkipped, probe
from worker.engine.eval.probes.copying import copy_loaded
from worker.engine.eval.probes.measure import ProbeContext
from worker.engine.eval.probes.prompts import direct_case
from worker.engine.finetune import answer_nll
from worker.engine.models import LoadedModel
from worker.engine.train import TrainConfig, batch_indices, make_batch, train


def split_halves(records: Sequence[QARecord]) -> tuple[list[QARecord], list[QARecord]]:
    """(attack set, held-out set): alternate records, so both halves mix the kinds of fact."""
    return list(records[0::2]), list(records[1::2])


def attacked_copy(
    loaded: LoadedModel, records: Sequence[QARecord], options: ProbeOptions
) -> tuple[LoadedModel, dict]:
    """A copy of the model fine-tuned (every weight, adapters included) on `records`."""
    attacked = copy_loaded(loaded)
    model = attacked.model.requires_grad_(True).train()
    tokenizer = attacked.tokenizer
    examples = [encode_record(tokenizer, r) for r in records]

    def step_loss(step: int):
        indices = batch_indices(len(examples), options.relearn_batch_size, options.seed, step)
        batch = make_batch(examples, indices, tokenizer.pad_token_id, attacked.device)
        return answer_nll(model, batch), int(batch["attention_mask"].sum()), {}

    config = TrainConfig(steps=options.relearn_steps, lr=options.relearn_lr, seed=options.seed)
    params = dict(model.named_parameters())
    result = train(params, step_loss, config, device=attacked.device, autocast=attacked.autocast)
    model.requires_grad_(False).eval()
    return attacked, {"first_loss": result.losses[0], "last_loss": result.losses[-1]}


@probe(
    "relearning",
    "relearning",
    "fine-tune a copy on half of the forget set; leak on the other half vs the retain model",
)
def relearning(ctx: ProbeContext) -> dict:
    attack_set, held_out = split_halves(ctx.sets["forget"])
    if not held_out:
        raise ProbeSkipped("needs at least 2 forget records (one to train on, one to measure)")
    options = ctx.options
    before = ctx.measure("model", ctx.loaded, "forget_held_out", direct_case, records=held_out)
    attacked, attack = attacked_copy(ctx.loaded, attack_set, options)
    model_blocks = {
        "forget": ctx.measure("model+relearn", attacked, "forget_held_out", direct_case,
                              records=held_out),
        "retain": ctx.measure("model+relearn", attacked, "retain", direct_case),
    }  # fmt: skip
    blocks: dict[str, dict | None] = {"model": model_blocks, "reference": None}
    del attacked  # one attacked copy in memory at a time
    details = {
        "attack": {
            "steps": options.relearn_steps,
            "lr": options.relearn_lr,
            "batch_size": options.relearn_batch_size,
            "trained_on": len(attack_set),
            "measured_on": len(held_out),
            "model_loss": attack,
        },
        "forget_before_attack": before,
    }
    model_rate = model_blocks["forget"]["leak_rate"]
    details["recovered"] = model_rate - before["leak_rate"]
    if ctx.reference is not None:
        attacked_reference, reference_attack = attacked_copy(ctx.reference, attack_set, options)
        reference_block = ctx.measure(
            "reference+relearn", attacked_reference, "forget_held_out", direct_case,
            records=held_out,
        )  # fmt: skip
        blocks["reference"] = {"forget": reference_block}
        details["attack"]["reference_loss"] = reference_attack
        # Leak beyond what the same attack teaches a model that never saw the data.
        details["excess_over_reference"] = model_rate - reference_block["leak_rate"]
    return {**blocks, "details": details}
