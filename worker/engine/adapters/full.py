"""Full fine-tuning: every weight trains; the reference is a frozen copy made only on demand."""

from __future__ import annotations

import copy
from contextlib import contextmanager
from pathlib import Path

from torch import nn

from worker.engine.adapters.base import Adapter, named_trainable, register_adapter


@register_adapter
class FullAdapter(Adapter):
    name = "full"
    default_lr = 1e-5  # TOFU's usual rate for full fine-tuning

    def __init__(self) -> None:
        self.model: nn.Module | None = None
        self.reference_model: nn.Module | None = None

    def attach(self, model: nn.Module, *, needs_reference: bool) -> nn.Module:
        if needs_reference:
            # A second copy in memory is the price of a reference with full fine-tuning.
            self.reference_model = copy.deepcopy(model).eval().requires_grad_(False)
        self.model = model.requires_grad_(True).train()
        return self.model

    def trainable(self) -> dict[str, nn.Parameter]:
        return named_trainable(self.model)

    @contextmanager
    def reference(self):
        if self.reference_model is None:
            raise RuntimeError("this objective asked for no reference model when attaching")
        yield self.reference_model

    def save(self, folder: Path, tokenizer, *, merge: bool = False) -> None:
        self.model.save_pretrained(folder, safe_serialization=True)
        tokenizer.save_pretrained(folder)
