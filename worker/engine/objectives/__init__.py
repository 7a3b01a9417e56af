"""Unlearning objectives: one small loss per method, registered by name in `OBJECTIVES`.

Importing this package registers every built-in method (ga, graddiff, npo, simnpo, idk,
idkdpo, rmu). Each `Objective` says whether it needs the reference model, a retain set and
refusal answers, and which token reduction it uses.
"""

from worker.engine.objectives import likelihood, preference, rmu  # noqa: F401  (registers)
from worker.engine.objectives.base import (
    OBJECTIVES,
    Batch,
    LossInputs,
    LossOutput,
    LossSettings,
    Objective,
    get_objective,
    objective,
)
from worker.engine.objectives.preference import dpo_loss, npo_loss, simnpo_loss
from worker.engine.objectives.refusals import builtin_refusals

__all__ = [
    "OBJECTIVES",
    "Batch",
    "LossInputs",
    "LossOutput",
    "LossSettings",
    "Objective",
    "builtin_refusals",
    "dpo_loss",
    "get_objective",
    "npo_loss",
    "objective",
    "simnpo_loss",
]
