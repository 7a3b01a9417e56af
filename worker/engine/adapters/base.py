"""The adapter protocol and its registry."""

from __future__ import annotations

from contextlib import AbstractContextManager
from pathlib import Path
from typing import Protocol

from torch import nn

from worker.engine.errors import OptionError

ADAPTERS: dict[str, type[Adapter]] = {}


class Adapter(Protocol):
    name: str
    default_lr: float  # the rate this parameterisation trains well at

    def attach(self, model: nn.Module, *, needs_reference: bool) -> nn.Module:
        """Prepare `model` for training and return the module to call."""

    def trainable(self) -> dict[str, nn.Parameter]:
        """The parameters the optimizer updates, by stable name (for checkpoints)."""

    def reference(self) -> AbstractContextManager[nn.Module]:
        """Inside: a module that computes what the model computed before training."""

    def save(self, folder: Path, tokenizer, *, merge: bool = False) -> None:
        """Write the result as safetensors into `folder` (which exists and is empty)."""


def register_adapter(cls: type) -> type:
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
