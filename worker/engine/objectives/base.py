"""What an objective is: a small loss of typed inputs, registered by name.

An objective only computes a loss. Which parameters change (full, LoRA, GRUN) is the adapter's
business; the reference model (the model before unlearning) reaches an objective only through
`LossInputs.reference`, the adapter's `reference()` context manager.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass, field

import torch
from torch import nn

from worker.engine.errors import OptionError
from worker.engine.objectives.reference import ReferenceValues

Batch = dict[str, torch.Tensor]  # input_ids, attention_mask, labels, each (B, T)
RETAIN_LOSSES = ("nll", "kl")


@dataclass
class LossSettings:
    """Loss weights and method knobs. Loss = gamma * L_forget + alpha * L_retain."""

    gamma: float = 1.0  # weight of the forget term
    alpha: float = 1.0  # weight of the retain term (0 turns it off)
    beta: float | None = None  # NPO / IdkDPO: 0.1, SimNPO: 4.5 (the objective's default)
    delta: float = 0.0  # SimNPO margin
    retain_loss: str = "nll"  # "nll": NLL of retain answers; "kl": KL(ref || model) on them
    rmu_layer: int | None = None  # block whose output RMU steers; None: rmu.steered_layer decides
    # RMU steering coefficient c (norm of the target vector). None: adaptive, 5 x the mean norm
    # of the reference's hidden states on the forget tokens: hidden norms differ by model and
    # layer (measured: ~115 at layer 7 of SmolLM2-135M, ~8 in the tiny test model), so no
    # fixed number suits every model.
    rmu_steering: float | None = None

    def __post_init__(self) -> None:
        if self.retain_loss not in RETAIN_LOSSES:
            raise OptionError(
                f"unknown retain loss {self.retain_loss!r}; use {' or '.join(RETAIN_LOSSES)}"
            )
        if self.beta is not None and self.beta <= 0:
            raise OptionError(f"beta must be positive, got {self.beta}")


@dataclass
class LossInputs:
    model: nn.Module  # the model being trained (adapter attached)
    reference: Callable[[], AbstractContextManager[nn.Module]]  # adapter.reference
    forget: Batch
    retain: Batch | None
    settings: LossSettings
    # The forget questions with refusal answers instead of the true ones (idk, idkdpo).
    forget_refusal: Batch | None = None
    seed: int = 0  # the run's seed, for fixed random directions (RMU)
    # The run's store of reference values (None: computed at every step).
    reference_values: ReferenceValues | None = None
    # The decoder blocks the adapter edits (GRUN's layers); None: it can change every block.
    edited_layers: tuple[int, ...] | None = None

    def reference_value(
        self, kind: str, batch: Batch, compute: Callable[[nn.Module, Batch], torch.Tensor]
    ) -> torch.Tensor:
        """`compute(reference model, batch)` without grad, from the run's store when it has it."""

        def run(rows: Batch) -> torch.Tensor:
            with torch.no_grad(), self.reference() as reference:
                return compute(reference, rows)

        if self.reference_values is None:
            return run(batch)
        return self.reference_values.get(kind, batch, run)


@dataclass
class LossOutput:
    loss: torch.Tensor  # scalar, differentiable
    metrics: dict[str, float] = field(default_factory=dict)  # the terms, for progress and logs


@dataclass(frozen=True)
class Objective:
    name: str
    loss: Callable[[LossInputs], LossOutput]
    needs_reference: bool  # the forget term compares with the model before unlearning
    needs_retain: bool  # has a retain term (on by default: "regularized" unlearning)
    needs_refusals: bool  # trains towards refusal answers; forget records must be QA
    reduction: str  # which token reduction the forget term uses, and why
    default_beta: float | None = None

    def uses_reference(self, settings: LossSettings) -> bool:
        """A KL retain term needs the reference even when the forget term does not."""
        kl_retain = self.needs_retain and settings.retain_loss == "kl" and settings.alpha != 0
        return self.needs_reference or kl_retain


OBJECTIVES: dict[str, Objective] = {}


def objective(
    name: str,
    *,
    needs_reference: bool,
    needs_retain: bool,
    reduction: str,
    needs_refusals: bool = False,
    default_beta: float | None = None,
) -> Callable:
    """Register a loss function under `name` (used as a decorator)."""

    def register(loss: Callable[[LossInputs], LossOutput]) -> Callable:
        OBJECTIVES[name] = Objective(
            name, loss, needs_reference, needs_retain, needs_refusals, reduction, default_beta
        )
        return loss

    return register


def get_objective(name: str) -> Objective:
    if name not in OBJECTIVES:
        raise OptionError(f"unknown method {name!r}; choose one of {', '.join(sorted(OBJECTIVES))}")
    return OBJECTIVES[name]
