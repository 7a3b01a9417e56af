"""Frozen weights cast to the compute dtype once per run, not at every forward (issue 14).

Under autocast every `nn.Linear` call casts its fp32 weight to bf16. Autocast keeps those casts
only for weights that require grad; a frozen weight (GRUN's and LoRA's base, the full
adapter's reference copy) is cast again at every call: measured, about a fifth of a GRUN step
on the built-in model, the 28M-parameter output head included. Casting them once, with the
same rounding autocast uses, gives the same numbers, bit for bit (tests/engine/
test_frozen_prefix.py). Trained weights stay fp32 (bf16 weights stall Adam: docs/engine.md).
The fp32 tensors are put back when the run ends, before anything is saved or merged.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch
from torch import nn


@contextmanager
def frozen_linears_cast(model: nn.Module, dtype: torch.dtype | None) -> Iterator[int]:
    """Inside: every frozen fp32 `nn.Linear` of `model` holds `dtype` weights (and bias); yields
    how many were cast. `dtype` None (no autocast): nothing changes."""
    swapped: list[tuple[nn.Linear, torch.Tensor, nn.Parameter | None]] = []
    if dtype is not None:
        for module in model.modules():
            if not isinstance(module, nn.Linear):
                continue
            weight = module.weight
            if not weight.requires_grad and weight.dtype == torch.float32:
                swapped.append((module, weight, module.bias))
                module.weight = nn.Parameter(weight.detach().to(dtype), requires_grad=False)
                if module.bias is not None:
                    module.bias = nn.Parameter(module.bias.detach().to(dtype), requires_grad=False)
    try:
        yield len(swapped)
    finally:
        # Put back the very Parameter objects: ties (the output head and the embedding)
        # and every other reference to them hold again.
        for module, weight, bias in swapped:
            module.weight = weight
            if bias is not None:  # a Linear without bias kept its None: nothing to put back
                module.bias = bias
