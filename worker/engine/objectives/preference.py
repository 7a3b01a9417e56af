"""Objectives that compare with the reference model: NPO, SimNPO (reference-free), IdkDPO.

NPO and DPO use the *sequence sum* of answer-token log-probs: they compare whole answers'
likelihoods with the reference, as in their papers. SimNPO uses the *sequence mean* NLL: its
point is to replace the reference by length normalisation.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from worker.engine.objectives.base import LossInputs, LossOutput, objective
from worker.engine.objectives.tokens import (
    reference_logprobs,
    sequence_logprob,
    sequence_mean_nll,
    token_logprobs,
    with_retain,
)

SEQUENCE_SUM = "sequence sum of answer-token log-probs: whole answers compared with the reference"


def npo_loss(logp: torch.Tensor, ref_logp: torch.Tensor, beta: float) -> torch.Tensor:
    """-(2/β)·mean log σ(-β·(log π_θ(y|x) - log π_ref(y|x))); inputs (B,) sequence log-probs."""
    return -(2 / beta) * F.logsigmoid(-beta * (logp - ref_logp)).mean()


def simnpo_loss(mean_nll: torch.Tensor, beta: float, delta: float) -> torch.Tensor:
    """-(2/β)·mean log σ(β·NLL_mean(y|x) - δ); input (B,) length-normalised NLLs."""
    return -(2 / beta) * F.logsigmoid(beta * mean_nll - delta).mean()


def dpo_loss(
    chosen: torch.Tensor,
    chosen_ref: torch.Tensor,
    rejected: torch.Tensor,
    rejected_ref: torch.Tensor,
    beta: float,
) -> torch.Tensor:
    """-(2/β)·mean log σ(β·[(log π_θ(c) - log π_ref(c)) - (log π_θ(r) - log π_ref(r))]).

    Inputs (B,) sequence log-probs. The 2/β factor (as in OpenUnlearning, not in the DPO paper)
    makes the gradient at the start the plain log-prob difference, the same scale as NPO's, so
    one learning rate suits every method.
    """
    margin = (chosen - chosen_ref) - (rejected - rejected_ref)  # (B,)
    return -(2 / beta) * F.logsigmoid(beta * margin).mean()


def beta_of(inputs: LossInputs) -> float:
    """β: `unlearn.resolve_settings` fills in the objective's default when none was given."""
    assert inputs.settings.beta is not None, "every objective here has a default beta"
    return inputs.settings.beta


def sequence_logprobs(inputs: LossInputs, batch) -> tuple[torch.Tensor, torch.Tensor]:
    """Sequence log-probs under the model (with grad) and the reference (without): (B,), (B,)."""
    logp = sequence_logprob(*token_logprobs(inputs.model, batch))
    ref_logp = sequence_logprob(*reference_logprobs(inputs, batch))
    return logp, ref_logp


@objective("npo", needs_reference=True, needs_retain=True, reduction=SEQUENCE_SUM, default_beta=0.1)
def npo(inputs: LossInputs) -> LossOutput:
    """Negative preference optimisation on the forget answers + alpha * retain term (NPO+RT)."""
    logp, ref_logp = sequence_logprobs(inputs, inputs.forget)
    return with_retain(inputs, npo_loss(logp, ref_logp, beta_of(inputs)))


@objective(
    "simnpo",
    needs_reference=False,
    needs_retain=True,
    reduction="sequence mean NLL: length normalisation replaces the reference model",
    default_beta=4.5,
)
def simnpo(inputs: LossInputs) -> LossOutput:
    mean_nll = sequence_mean_nll(*token_logprobs(inputs.model, inputs.forget))
    forget_loss = simnpo_loss(mean_nll, beta_of(inputs), inputs.settings.delta)
    return with_retain(inputs, forget_loss)


@objective(
    "idkdpo",
    needs_reference=True,
    needs_retain=True,
    needs_refusals=True,
    reduction=SEQUENCE_SUM,
    default_beta=0.1,
)
def idk_dpo(inputs: LossInputs) -> LossOutput:
    """DPO with a refusal as the chosen answer and the true answer as the rejected one."""
    chosen, chosen_ref = sequence_logprobs(inputs, inputs.forget_refusal)
    rejected, rejected_ref = sequence_logprobs(inputs, inputs.forget)
    forget_loss = dpo_loss(chosen, chosen_ref, rejected, rejected_ref, beta_of(inputs))
    return with_retain(inputs, forget_loss)
