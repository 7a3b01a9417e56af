"""Per-token quantities every objective is built from, and their reductions.

Token reductions matter (docs/engine.md): a *token mean* over all answer tokens of a batch weighs
long answers more and keeps the scale independent of answer length (the NLL of fine-tuning);
a *sequence sum* is the log-probability of a whole answer (what NPO and DPO compare with the
reference); a *sequence mean* is the length-normalised NLL (SimNPO).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from worker.engine.data import IGNORE_INDEX
from worker.engine.objectives.base import Batch, LossInputs, LossOutput


def token_logprobs(model: nn.Module, batch: Batch) -> tuple[torch.Tensor, torch.Tensor]:
    """log p(label token) at every position and the answer mask, both (B, T-1).

    The output head runs only from the first position that predicts an answer token in any
    row (`logits_to_keep`): the prompt's logits are never used, and on a small model the head
    is a large share of the cost (SmolLM2-135M: 28 M of its 134 M weights). Positions before
    it get log-prob 0, outside the mask like every prompt position."""
    targets = batch["labels"][:, 1:]  # (B, T-1): position t predicts token t+1
    mask = targets != IGNORE_INDEX
    columns = mask.any(0).nonzero()
    first = int(columns[0]) if len(columns) else 0
    keep = torch.arange(first, targets.shape[1], device=targets.device)
    logits = model(
        input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], logits_to_keep=keep
    ).logits  # (B, T-1-first, V)
    # cross_entropy gives -log p and 0 at ignored positions, without a (B, T, V) log-softmax copy.
    nll = F.cross_entropy(
        logits.float().transpose(1, 2), targets[:, first:], ignore_index=IGNORE_INDEX,
        reduction="none",
    )  # fmt: skip
    return F.pad(-nll, (first, 0)), mask.float()


def reference_logprobs(inputs: LossInputs, batch: Batch) -> tuple[torch.Tensor, torch.Tensor]:
    """The reference's token log-probs (computed once per sequence and run) and the answer mask."""
    logp = inputs.reference_value(
        "logprobs", batch, lambda reference, rows: token_logprobs(reference, rows)[0]
    )
    return logp, (batch["labels"][:, 1:] != IGNORE_INDEX).float()


def token_mean_nll(logp: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean NLL over all answer tokens of the batch: scalar."""
    return -(logp * mask).sum() / mask.sum().clamp_min(1)


def sequence_logprob(logp: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """log p(answer | prompt) of each sequence, summed over its answer tokens: (B,)."""
    return (logp * mask).sum(-1)


def sequence_mean_nll(logp: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Length-normalised NLL of each sequence: (B,)."""
    return -(logp * mask).sum(-1) / mask.sum(-1).clamp_min(1)


def answer_nll(model: nn.Module, batch: Batch) -> torch.Tensor:
    return token_mean_nll(*token_logprobs(model, batch))


def masked_kl(model: nn.Module, inputs: LossInputs, batch: Batch) -> torch.Tensor:
    """KL(π_ref ‖ π_θ) per answer position, token mean: scalar. Prompt and padding are masked
    because only the answers are what the retain set asks the model to keep."""
    forward = {"input_ids": batch["input_ids"], "attention_mask": batch["attention_mask"]}
    logp = F.log_softmax(model(**forward).logits[:, :-1].float(), dim=-1)  # (B, T-1, V)
    ref_logp = inputs.reference_value(
        "log_softmax",
        batch,
        lambda reference, rows: F.log_softmax(
            reference(input_ids=rows["input_ids"], attention_mask=rows["attention_mask"])
            .logits[:, :-1]
            .float(),
            dim=-1,
        ),
    )
    per_token = F.kl_div(logp, ref_logp, log_target=True, reduction="none").sum(-1)  # (B, T-1)
    mask = (batch["labels"][:, 1:] != IGNORE_INDEX).float()  # (B, T-1)
    return (per_token * mask).sum() / mask.sum().clamp_min(1)


def retain_term(inputs: LossInputs, retain: Batch) -> torch.Tensor:
    """The retain loss shared by the regularized objectives on `retain` (the inputs' retain
    batch): NLL or masked KL, token mean."""
    if inputs.settings.retain_loss == "kl":
        return masked_kl(inputs.model, inputs, retain)
    return answer_nll(inputs.model, retain)


def with_retain(inputs: LossInputs, forget_loss: torch.Tensor) -> LossOutput:
    """gamma * forget + alpha * retain (the retain term is skipped when alpha is 0)."""
    settings = inputs.settings
    metrics = {"forget": forget_loss.item()}
    loss = settings.gamma * forget_loss
    if settings.alpha and inputs.retain is not None:
        retain_loss = retain_term(inputs, inputs.retain)
        metrics["retain"] = retain_loss.item()
        loss = loss + settings.alpha * retain_loss
    return LossOutput(loss, metrics)
