"""Quantization: does rounding the weights undo unlearning?

Full fine-tuning at a small learning rate moves weights by less than a 4-bit step, so a
quantized unlearned model can round back to the original (Zhang et al., ICLR 2025). The
retain model gets the same treatment as its baseline. Layers quantized: every Linear of the
transformer except the output layer (kept in full precision, as GPTQ and AWQ do) and except
GRUN modules (a few thousand parameters a deployment would keep as they are). A LoRA adapter
is merged first, as a quantized deployment would do.
"""

from __future__ import annotations

import torch
from peft import PeftModel
from torch import nn
from transformers import PreTrainedModel

from worker.engine.eval.probes.base import probe
from worker.engine.eval.probes.copying import copy_loaded
from worker.engine.eval.probes.measure import ProbeContext
from worker.engine.eval.probes.prompts import direct_case
from worker.engine.models import LoadedModel

INT4_GROUP = 32  # weights per scale, as GGUF Q4_0


def quantizable_linears(model: PreTrainedModel) -> list[str]:
    """Names of the Linear layers to quantize (see the module docstring for what is left)."""
    output = model.get_output_embeddings()
    return [
        name
        for name, module in model.named_modules()
        if isinstance(module, nn.Linear) and module is not output and "grun_stack" not in name
    ]


def plain_copy(loaded: LoadedModel) -> LoadedModel:
    """A copy with any LoRA merged into its weights."""
    copied = copy_loaded(loaded)
    if isinstance(copied.model, PeftModel):
        copied.model = copied.model.merge_and_unload()
    return copied


@torch.no_grad()
def round_weights(weight: torch.Tensor, bits: int, group: int | None = None) -> torch.Tensor:
    """Symmetric round-to-nearest to `bits`, one absmax scale per `group` input weights
    (None: one per output row, as int8 weight-only schemes do).

    weight (out, in) -> the same shape, holding only the 2**bits levels of its group."""
    out_features, in_features = weight.shape
    size = group if group and in_features % group == 0 else in_features
    top = 2 ** (bits - 1) - 1  # 7 for int4, 127 for int8
    groups = weight.float().reshape(out_features, in_features // size, size)  # (out, g, size)
    scale = groups.abs().amax(-1, keepdim=True).clamp(min=1e-12) / top  # (out, g, 1)
    levels = (groups / scale).round().clamp(-top - 1, top)
    return (levels * scale).reshape(out_features, in_features).to(weight.dtype)


def rounded_copy(loaded: LoadedModel, bits: int, group: int | None) -> LoadedModel:
    """A copy whose weights are rounded to `bits`, computed in the usual precision.

    Weight-only and simulated: the weights hold exactly the values a quantized checkpoint
    stores, dequantized. Activations stay in the model's precision, as in weight-only int8 and
    4-bit deployments; this CPU build has no 4-bit kernels (bitsandbytes needs CUDA), and
    torch.ao's dynamic int8 also quantizes activations, which breaks a 135M model's retain
    answers as much as its forget answers and so measures nothing about unlearning."""
    copied = plain_copy(loaded)
    modules = dict(copied.model.named_modules())
    for name in quantizable_linears(copied.model):
        weight = modules[name].weight
        weight.data = round_weights(weight.data, bits, group)
    return copied


def _quantized(name: str, quantize, note: str):
    @probe(name, "quantization", note)
    def run(ctx: ProbeContext) -> dict:
        model = quantize(ctx.loaded)
        reference = quantize(ctx.reference) if ctx.reference is not None else None
        blocks = ctx.leak_blocks(direct_case, model=model, reference=reference, role=f"+{name}")
        return {**blocks, "details": {"quantized": note, "layers": "Linear except output"}}

    return run


quantize_int8 = _quantized(
    "quantize_int8",
    lambda loaded: rounded_copy(loaded, 8, None),
    "8-bit round-to-nearest weights, one scale per output channel (simulated)",
)
quantize_int4 = _quantized(
    "quantize_int4",
    lambda loaded: rounded_copy(loaded, 4, INT4_GROUP),
    f"4-bit round-to-nearest weights, groups of {INT4_GROUP} (simulated)",
)
