"""Quantization: does rounding the weights undo unlearning?

Full fine-tuning at a small learning rate moves weights by less than a 4-bit step, so a
quantized unlearned model can round back to the original (Zhang et al., ICLR 2025). The
retain model gets the same treatment as its baseline. Layers quantized: every Linear of the
transformer except the output layer (kept in full precision, as GPTQ and AWQ do) and except
GRUN modules (a few thousand parameters a deployment would keep as they are). A LoRA adapter
is merged first, as a quantized deployment would do.
"""

from __future__ import annotations

import dataclasses
import warnings

import torch
from peft import PeftModel
from torch import nn

from worker.engine.eval.probes.base import ProbeSkipped, probe
from worker.engine.eval.probes.copying import copy_loaded
from worker.engine.eval.probes.measure import ProbeContext
from worker.engine.eval.probes.prompts import direct_case
from worker.engine.models import LoadedModel

INT4_GROUP = 32  # weights per scale, as GGUF Q4_0


def quantizable_linears(model: nn.Module) -> list[str]:
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


def int8_copy(loaded: LoadedModel) -> LoadedModel:
    """Int8 weights with dynamically quantized activations (torch.ao, CPU kernels only)."""
    try:
        from torch.ao.quantization import quantize_dynamic
    except ImportError as error:  # removed in a later torch; torchao replaces it
        raise ProbeSkipped(f"torch.ao.quantization is not available: {error}") from None
    copied = plain_copy(loaded)
    model = copied.model.cpu()
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*deprecated.*")
        quantize_dynamic(model, set(quantizable_linears(model)), dtype=torch.qint8, inplace=True)
    # Quantized kernels run fp32 activations on the CPU: no autocast.
    return dataclasses.replace(copied, model=model, device=torch.device("cpu"), autocast_dtype=None)


@torch.no_grad()
def round_to_int4(weight: torch.Tensor, group: int = INT4_GROUP) -> torch.Tensor:
    """Symmetric round-to-nearest 4-bit, one absmax scale per `group` input weights.

    weight (out, in) -> the same shape, holding only the 16 levels of its group."""
    out_features, in_features = weight.shape
    size = group if in_features % group == 0 else in_features
    groups = weight.float().reshape(out_features, in_features // size, size)  # (out, g, size)
    scale = groups.abs().amax(-1, keepdim=True).clamp(min=1e-12) / 7  # (out, g, 1)
    levels = (groups / scale).round().clamp(-8, 7)
    return (levels * scale).reshape(out_features, in_features).to(weight.dtype)


def int4_copy(loaded: LoadedModel) -> LoadedModel:
    """Weights rounded to 4 bits in place of a copy, computed in the usual precision.

    Simulated: this CPU build has no 4-bit kernels (bitsandbytes needs CUDA), so the weights
    hold exactly the values a 4-bit checkpoint stores, dequantized."""
    copied = plain_copy(loaded)
    modules = dict(copied.model.named_modules())
    for name in quantizable_linears(copied.model):
        weight = modules[name].weight
        weight.data = round_to_int4(weight.data)
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
    "quantize_int8", int8_copy, "int8 dynamic quantization (torch.ao quantize_dynamic, CPU)"
)
quantize_int4 = _quantized(
    "quantize_int4",
    int4_copy,
    f"4-bit round-to-nearest weights, groups of {INT4_GROUP} (simulated)",
)
