"""RMU (Li et al. 2024, WMDP): steer the forget inputs' hidden states at one layer towards a
fixed random direction (scrambling what later layers read), keep the retain inputs' states.

Reduction: mean squared error over hidden dimensions, then a token mean over the positions
that count (forget: the positions that predict answer tokens, every token for plain text;
retain: every real token), so the scale does not depend on hidden size or length.
"""

from __future__ import annotations

import torch
from torch import nn

from worker.engine.data import IGNORE_INDEX
from worker.engine.errors import OptionError
from worker.engine.objectives.base import Batch, LossInputs, LossOutput, objective


class _Captured(Exception):
    """Carries a layer's output out of the forward pass, which then stops: the layers above
    the steered one cannot change the loss, so computing them would waste time."""

    def __init__(self, hidden: torch.Tensor):
        super().__init__()
        self.hidden = hidden


def decoder_layers(model: nn.Module) -> nn.ModuleList:
    """The stack of decoder blocks (`...layers`), also inside PEFT or GRUN wrappers."""
    for name, module in model.named_modules():
        if isinstance(module, nn.ModuleList) and name.endswith("layers"):
            return module
    raise ValueError(f"{type(model).__name__} has no decoder layer list for RMU to steer")


def default_layer(model: nn.Module) -> int:
    """A quarter of the way up, where RMU's authors steer (layer 7 of 32)."""
    return len(decoder_layers(model)) // 4


def steered_layer(inputs: LossInputs) -> int:
    """The block RMU steers: `rmu_layer` if set, else a quarter deep (its authors' choice) or,
    under an adapter that edits only some blocks (GRUN), the top edited one: a quarter deep lies
    below GRUN's layers, which could not move it, and the top one is fed by every edit."""
    layer, edited = inputs.settings.rmu_layer, inputs.edited_layers
    if layer is None:
        return max(edited) if edited else default_layer(inputs.model)
    if edited and layer < min(edited):
        raise OptionError(
            f"rmu_layer {layer} lies below the adapter's layers {list(edited)}, which cannot "
            "change it: choose one of them or a block above"
        )
    return layer


def hidden_at(model: nn.Module, layer: int, batch: Batch) -> torch.Tensor:
    """Output of decoder block `layer` (after any hooks already on it, e.g. GRUN's): (B, T, D)."""
    blocks = decoder_layers(model)
    if not 0 <= layer < len(blocks):
        raise OptionError(f"RMU layer {layer} is outside the model's {len(blocks)} decoder layers")

    def capture(module, args, output):
        raise _Captured(output[0] if isinstance(output, tuple) else output)

    handle = blocks[layer].register_forward_hook(capture)
    try:
        model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"])
    except _Captured as captured:
        return captured.hidden
    finally:
        handle.remove()
    raise RuntimeError(f"decoder layer {layer} did not run")


def reference_hidden(inputs: LossInputs, layer: int, batch: Batch) -> torch.Tensor:
    """The reference's output of block `layer` (computed once per sequence and run): (B, T, D)."""
    return inputs.reference_value(
        f"hidden_{layer}", batch, lambda reference, rows: hidden_at(reference, layer, rows)
    )


ADAPTIVE_SCALE = 5.0  # Adaptive RMU (Dang et al. 2024): c = 5 x the reference hidden norm


def steering_vector(dim: int, coefficient, seed: int, device) -> torch.Tensor:
    """c·u with u a random unit vector fixed by the seed (the same at every step and resume)."""
    u = torch.rand(dim, generator=torch.Generator().manual_seed(seed)).to(device)  # (D,)
    return coefficient * u / u.norm()


def adaptive_coefficient(inputs: LossInputs, layer: int, mask: torch.Tensor) -> torch.Tensor:
    """ADAPTIVE_SCALE x the mean norm of the reference's hidden states at the steered tokens."""
    hidden = reference_hidden(inputs, layer, inputs.forget).float()  # (B, T, D)
    norms = hidden.norm(dim=-1)  # (B, T)
    return ADAPTIVE_SCALE * (norms * mask).sum() / mask.sum().clamp_min(1)


def masked_mse(hidden: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """hidden (B, T, D), target broadcastable to it, mask (B, T) -> scalar."""
    per_token = (hidden.float() - target.float()).pow(2).mean(-1)  # (B, T)
    return (per_token * mask).sum() / mask.sum().clamp_min(1)


def answer_predicting_mask(batch: Batch) -> torch.Tensor:
    """(B, T): 1 where the next token is an answer token (every token for plain text)."""
    predicts = batch["labels"][:, 1:] != IGNORE_INDEX  # (B, T-1)
    return torch.nn.functional.pad(predicts, (0, 1)).float()  # (B, T): the last predicts nothing


@objective(
    "rmu",
    needs_reference=True,
    needs_retain=True,
    reduction="MSE over hidden dims, token mean over answer-predicting (forget) / all (retain)",
)
def rmu(inputs: LossInputs) -> LossOutput:
    settings = inputs.settings
    layer = steered_layer(inputs)
    forget_mask = answer_predicting_mask(inputs.forget)  # (B, T)
    coefficient: float | torch.Tensor | None = settings.rmu_steering
    if coefficient is None:
        coefficient = adaptive_coefficient(inputs, layer, forget_mask)
    hidden = hidden_at(inputs.model, layer, inputs.forget)  # (B, T, D)
    target = steering_vector(hidden.shape[-1], coefficient, inputs.seed, hidden.device)
    forget_loss = masked_mse(hidden, target, forget_mask)
    metrics = {"forget": forget_loss.item()}
    loss = settings.gamma * forget_loss
    if settings.alpha and inputs.retain is not None:
        retain_hidden = hidden_at(inputs.model, layer, inputs.retain)
        retain_target = reference_hidden(inputs, layer, inputs.retain)
        retain_mask = inputs.retain["attention_mask"].float()  # (B, T)
        retain_loss = masked_mse(retain_hidden, retain_target, retain_mask)
        metrics["retain"] = retain_loss.item()
        loss = loss + settings.alpha * retain_loss
    return LossOutput(loss, metrics)
