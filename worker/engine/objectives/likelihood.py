"""Objectives on answer likelihood alone: GA, GradDiff, IdkNLL.

All three use the token mean over answer tokens (the NLL of fine-tuning, negated for GA):
the step size then does not grow with answer length, so the learning rates of fine-tuning
carry over, and a batch of long answers does not dominate a step.
"""

from __future__ import annotations

from worker.engine.objectives.base import LossInputs, LossOutput, objective
from worker.engine.objectives.tokens import answer_nll, with_retain

TOKEN_MEAN = "token mean over answer tokens: length-independent scale, as in fine-tuning"


@objective("ga", needs_reference=False, needs_retain=False, reduction=TOKEN_MEAN)
def gradient_ascent(inputs: LossInputs) -> LossOutput:
    """-NLL(f): push the forget answers' likelihood down, with nothing holding the rest."""
    forget_loss = -answer_nll(inputs.model, inputs.forget)
    return LossOutput(inputs.settings.gamma * forget_loss, {"forget": forget_loss.item()})


@objective("graddiff", needs_reference=False, needs_retain=True, reduction=TOKEN_MEAN)
def gradient_difference(inputs: LossInputs) -> LossOutput:
    """-NLL(f) + alpha * (NLL(r) or KL(ref || model) on r)."""
    return with_retain(inputs, -answer_nll(inputs.model, inputs.forget))


@objective(
    "idk", needs_reference=False, needs_retain=True, needs_refusals=True, reduction=TOKEN_MEAN
)
def idk_nll(inputs: LossInputs) -> LossOutput:
    """NLL of a refusal answer to each forget question + alpha * retain term."""
    assert inputs.forget_refusal is not None, "needs_refusals: the run draws refusal batches"
    return with_retain(inputs, answer_nll(inputs.model, inputs.forget_refusal))
