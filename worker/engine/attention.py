"""Plain (eager) attention while a run trains on the CPU (issue 14).

transformers' default, PyTorch's fused `scaled_dot_product_attention`, is the slower one on the
CPU for what unlearning and fine-tuning train on (sequences under ~200 tokens), above all in its
backward (`_scaled_dot_product_flash_attention_for_cpu_backward`). Measured on the built-in
model, 8 steps each (benchmarks/results/unlearn_cost.md has the table): NPO through GRUN
0.92 → 0.73 s/step, NPO with full fine-tuning 2.72 → 2.42 s/step. Both compute the same
attention (softmax(QKᵀ/√d)V with the same masks), to float rounding. On a GPU the fused kernel
is the fast one, so nothing changes there.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import torch

from worker.engine.adapters.frozen_prefix import config_of


@contextmanager
def training_attention(model: Any, device: torch.device) -> Iterator[None]:
    """Inside: `model` (a transformers model, or peft's wrapper of one: typed as `LoadedModel`
    types it, its attributes are dynamic) uses eager attention when it runs on the CPU; its own
    choice is put back at the end."""
    config = config_of(model)
    before = config._attn_implementation
    if device.type != "cpu" or before == "eager":
        yield
        return
    model.set_attn_implementation("eager")
    try:
        yield
    finally:
        model.set_attn_implementation(before)
