"""Full fine-tuning: every weight trains. Its reference (the model before the run) costs a
second copy of the model, unless every reference value was stored before the first update
(`unlearn.warm_reference`): then the run keeps one copy only (issue 14)."""

from __future__ import annotations

import copy
from contextlib import contextmanager
from pathlib import Path
from typing import cast

from torch import nn
from transformers import PreTrainedModel

from worker.engine.adapters.base import Adapter, named_trainable, register_adapter


@register_adapter
class FullAdapter(Adapter):
    name = "full"
    default_lr = 1e-5  # TOFU's usual rate for full fine-tuning
    reference_needs_copy = True

    def __init__(self) -> None:
        self.model: nn.Module | None = None
        self.reference_model: nn.Module | None = None
        self.wants_reference = False
        self.settled = False  # past settle_reference: the live model is no reference any more

    def attach(self, model: nn.Module, *, needs_reference: bool) -> nn.Module:
        self.wants_reference = needs_reference
        self.model = model.requires_grad_(True).train()
        return self.model

    def _attached(self) -> nn.Module:
        assert self.model is not None, "attach() first: every method below runs after it"
        return self.model

    def trainable(self) -> dict[str, nn.Parameter]:
        return named_trainable(self._attached())

    def settle_reference(self, stored: bool) -> None:
        if self.wants_reference and not stored:
            # A second copy in memory: the price of a reference whose values were not stored.
            self.reference_model = copy.deepcopy(self._attached()).eval().requires_grad_(False)
        self.settled = True

    @contextmanager
    def reference(self):
        if self.reference_model is not None:
            yield self.reference_model
            return
        if not self.wants_reference:
            raise RuntimeError("this objective asked for no reference model when attaching")
        if self.settled:
            raise RuntimeError("the reference values were stored before training; this one was not")
        # Before the first update the model is its own reference.
        was_training = self.model.training
        self.model.eval()
        try:
            yield self.model
        finally:
            self.model.train(was_training)

    def diagnostics(self) -> dict | None:
        if not self.wants_reference:
            return None
        return {"reference": "model copy" if self.reference_model is not None else "stored values"}

    def save(self, folder: Path, tokenizer, *, merge: bool = False) -> None:
        # Whole weights: the model load_model gave attach, a transformers model.
        cast(PreTrainedModel, self._attached()).save_pretrained(folder, safe_serialization=True)
        tokenizer.save_pretrained(folder)
