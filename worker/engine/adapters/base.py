"""The adapter protocol and its registry."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from contextlib import AbstractContextManager
from pathlib import Path
from typing import TypeVar

from torch import Tensor, nn

from worker.engine.errors import OptionError

ADAPTERS: dict[str, type[Adapter]] = {}


class Adapter:
    """How the parameters change (PEFT's shape: attach, train, save, load). The hooks below
    `save` matter to some adapters only (GRUN's gate); here they do nothing, so the training
    code calls them on every adapter instead of asking which has them."""

    name: str
    default_lr: float  # the rate this parameterisation trains well at
    # Saves a module beside its base (LoRA, GRUN) rather than whole weights (full): such a
    # folder loads as its base plus `load`.
    saves_module: bool = False
    # Its reference is a second copy of the model unless the run stores every reference value
    # before the first update (full fine-tuning; LoRA and GRUN switch themselves off instead).
    reference_needs_copy: bool = False

    def attach(self, model: nn.Module, *, needs_reference: bool) -> nn.Module:
        """Prepare `model` for training and return the module to call."""
        raise NotImplementedError

    def trainable(self) -> dict[str, nn.Parameter]:
        """The parameters the optimizer updates, by stable name (for checkpoints)."""
        raise NotImplementedError

    def reference(self) -> AbstractContextManager[nn.Module]:
        """Inside: a module that computes what the model computed before training (for the
        full adapter: valid after `settle_reference`, or before any update)."""
        raise NotImplementedError

    def save(self, folder: Path, tokenizer, *, merge: bool = False) -> None:
        """Write the result as safetensors into `folder` (which exists and is empty)."""
        raise NotImplementedError

    @staticmethod
    def load(model: nn.Module, folder: Path) -> nn.Module:
        """`model` (the base) with the module saved in `folder` (only when saves_module)."""
        raise NotImplementedError

    def settle_reference(self, stored: bool) -> None:
        """Called once before the first update. `stored`: every reference value the run will
        ask for is already in the run's store (full fine-tuning then needs no model copy)."""

    def set_diagnostic_questions(self, questions: Mapping[str, Sequence[str]]) -> None:
        """Questions whose values `diagnostics` reports (GRUN: its gates)."""

    def set_gate_questions(self, retain: Sequence[str], paraphrased: Sequence[str]) -> None:
        """More prompts for an adapter's own loss (GRUN: its gate's negatives and positives)."""

    def auxiliary_loss(self, forget_batch: Mapping, retain_batch: Mapping | None) -> Tensor | None:
        """A loss the adapter adds to the objective's (GRUN: its gate classifier); None: none."""
        return None

    def diagnostics(self) -> dict | None:
        """What run.json should record about the trained adapter; None: nothing."""
        return None

    def edited_layers(self) -> tuple[int, ...] | None:
        """The decoder blocks whose output this adapter edits (GRUN's layers); None: it can
        change every block's weights."""
        return None


AdapterT = TypeVar("AdapterT", bound=Adapter)


def register_adapter(cls: type[AdapterT]) -> type[AdapterT]:
    ADAPTERS[cls.name] = cls
    return cls


def default_lr(name: str) -> float:
    """The adapter's own learning rate: each parameterises the change differently (one number
    the CLI, the policy and the benchmarks all read)."""
    if name not in ADAPTERS:
        raise OptionError(f"unknown adapter {name!r}; choose one of {', '.join(sorted(ADAPTERS))}")
    return ADAPTERS[name].default_lr


def get_adapter(name: str, **options) -> Adapter:
    if name not in ADAPTERS:
        raise OptionError(f"unknown adapter {name!r}; choose one of {', '.join(sorted(ADAPTERS))}")
    return ADAPTERS[name](**options)


def named_trainable(model: nn.Module) -> dict[str, nn.Parameter]:
    return {n: p for n, p in model.named_parameters() if p.requires_grad}
