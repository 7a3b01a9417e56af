"""What an adapter hides: the leak with it switched off, and inputs GRUN's gate lets through.

With LoRA or GRUN the base weights still hold the knowledge; whoever holds them can remove the
adapter. For full fine-tuning there is nothing to remove: the weights themselves changed.
"""

from __future__ import annotations

import contextlib

from peft import PeftModel
from torch import nn

from worker.engine.adapters.grun_gates import gate_values, switched_off
from worker.engine.adapters.grun_module import GrunStack
from worker.engine.eval.probes.base import ProbeSkipped, probe
from worker.engine.eval.probes.measure import ProbeContext
from worker.engine.eval.probes.prompts import PROMPT_FORMATS, direct_case


def adapter_kind(model: nn.Module) -> str | None:
    """ "lora", "grun" or None (a plain model: full fine-tuning or no unlearning)."""
    if isinstance(model, PeftModel):
        return "lora"
    stack = getattr(model, "grun_stack", None)
    if isinstance(stack, GrunStack) and len(stack.requests):
        return "grun"
    return None


def adapter_off(model: nn.Module, kind: str) -> contextlib.AbstractContextManager:
    if kind == "lora":
        assert isinstance(model, PeftModel), "what adapter_kind calls lora"
        return model.disable_adapter()
    return switched_off(model)


@probe("adapter_removal", "adapter", "LoRA or GRUN switched off: what the base weights still say")
def adapter_removal(ctx: ProbeContext) -> dict:
    kind = adapter_kind(ctx.loaded.model)
    if kind is None:
        raise ProbeSkipped("not applicable: no LoRA or GRUN adapter (full fine-tuning)")
    with adapter_off(ctx.loaded.model, kind):
        removed = {name: ctx.measure("model-adapter", ctx.loaded, name, direct_case)
                   for name in ctx.sets}  # fmt: skip
    # The reference has no adapter: its baseline is the direct probe's.
    baseline = ctx.leak_blocks(direct_case)
    details = {
        "adapter": kind,
        "with_adapter": {name: block["leak_rate"] for name, block in baseline["model"].items()},
    }
    return {"model": removed, "reference": baseline["reference"], "details": details}


@probe(
    "gate_evasion",
    "adapter",
    "GRUN: share of inputs, in every probe format, whose gate stays below the threshold",
)
def gate_evasion(ctx: ProbeContext) -> dict:
    """An input evades when no GRUN request's gate (mean over its layers) reaches the
    threshold: the module then leaves it unedited. High on forget is bad; on retain, good."""
    loaded, options = ctx.loaded, ctx.options
    if adapter_kind(loaded.model) != "grun":
        raise ProbeSkipped("not applicable: the model carries no GRUN module")
    blocks: dict[str, dict] = {}
    by_format: dict[str, dict[str, float]] = {}
    for set_name, records in ctx.sets.items():
        rows: list[dict] = []
        for format_name, build in PROMPT_FORMATS.items():
            built = [(i, build(loaded.tokenizer, r, options)) for i, r in enumerate(records)]
            cases = [(i, c) for i, c in built if c is not None]
            if not cases:
                continue
            prompts = [c.prompt + c.given for _, c in cases]
            values = gate_values(
                loaded.model, loaded.tokenizer, prompts, autocast=loaded.autocast
            )  # (N, requests, layers)
            gates = values.mean(2).amax(1)  # (N,): the most open request, its layers averaged
            evaded = gates < options.gate_threshold
            by_format.setdefault(format_name, {})[set_name] = evaded.float().mean().item()
            rows.extend(
                {"index": i, "question": records[i].question, "format": format_name,
                 "gate": g, "evaded": e}
                for (i, _), g, e in zip(cases, gates.tolist(), evaded.tolist(), strict=True)
            )  # fmt: skip
        evaded_count = sum(row["evaded"] for row in rows)
        blocks[set_name] = {
            "n": len(rows),
            "evaded": evaded_count,
            "evasion_rate": evaded_count / len(rows) if rows else None,
            "per_example": rows,
        }
    details = {"threshold": options.gate_threshold, "by_format": by_format,
               "reference": "not applicable: the retain model has no gate"}  # fmt: skip
    return {"model": blocks, "reference": None, "details": details}
