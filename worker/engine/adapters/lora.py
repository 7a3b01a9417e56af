"""LoRA through peft. The reference is the same model with the adapter disabled: no copy."""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from peft import LoraConfig, PeftModel, get_peft_model
from torch import nn

from worker.engine.adapters.base import Adapter, named_trainable, register_adapter

DEFAULT_TARGETS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


@dataclass
class LoraOptions:
    rank: int = 16
    alpha: int = 32
    dropout: float = 0.0
    target_modules: tuple[str, ...] = field(default=DEFAULT_TARGETS)


@register_adapter
class LoraAdapter(Adapter):
    name = "lora"
    default_lr = 1e-4  # the usual 10x of full fine-tuning
    saves_module = True

    def __init__(self, rank: int = 16, alpha: int = 32, dropout: float = 0.0, target_modules=None):
        self.options = LoraOptions(rank, alpha, dropout, tuple(target_modules or DEFAULT_TARGETS))
        self.model: PeftModel | None = None

    def attach(self, model: nn.Module, *, needs_reference: bool) -> nn.Module:
        model = fold_parent(model)
        config = LoraConfig(
            r=self.options.rank,
            lora_alpha=self.options.alpha,
            lora_dropout=self.options.dropout,
            target_modules=list(self.options.target_modules),
            task_type="CAUSAL_LM",
        )
        self.model = get_peft_model(model, config)
        self.model.train()
        return self.model

    def _attached(self) -> PeftModel:
        assert self.model is not None, "attach() first: every method below runs after it"
        return self.model

    def trainable(self) -> dict[str, nn.Parameter]:
        return named_trainable(self._attached())

    @contextmanager
    def reference(self):
        with self.model.disable_adapter():
            yield self.model

    def save(self, folder: Path, tokenizer, *, merge: bool = False) -> None:
        model = self._attached()
        if merge:
            model.merge_and_unload().save_pretrained(folder, safe_serialization=True)
        else:
            # str: peft's annotation (it joins paths with os.path, which takes either).
            model.save_pretrained(str(folder), safe_serialization=True)
        tokenizer.save_pretrained(folder)

    @staticmethod
    def load(model: nn.Module, folder: Path) -> nn.Module:
        """Base model + a saved (unmerged) LoRA folder, for generation and evaluation. A parent
        LoRA version is folded in first, as it was when this adapter was trained on it."""
        return PeftModel.from_pretrained(fold_parent(model), folder).eval()


def fold_parent(model: nn.Module) -> nn.Module:
    """A parent LoRA version merged into the in-memory weights (the files stay as they are).

    The new adapter is then the only one: `disable_adapter()` gives the parent version, which
    is what a second version must train against (NPO's reference, KL, RMU) and what adapter
    removal reveals. Without this, disabling switched the parent's LoRA off too, and the
    reference was the base model (issue 15: forget NLL 0.14 = base instead of the parent's
    4.6)."""
    return model.merge_and_unload() if isinstance(model, PeftModel) else model
