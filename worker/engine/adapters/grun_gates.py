"""Reading GRUN's gates: their logits on a batch, their values on prompts, and the reports
(run.json's gate report, the evaluation's, the probes'); and switching every module off."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from contextlib import contextmanager, nullcontext

import torch
from torch import nn

from worker.engine.adapters.frozen_prefix import decoder_of, layer_window
from worker.engine.adapters.grun_module import GrunRequest, GrunStack
from worker.engine.data import Example, collate, format_prompt


def gate_logits(model: nn.Module, requests: Sequence[GrunRequest], input_ids, attention_mask):
    """(B, len(requests), layers) gate logits at each row's last prompt token. Runs the decoder
    up to the highest layer involved, without the layers above it and the output head: the
    gates never need them.

    The decoder runs without grad: only the gates themselves carry a graph (issue 14). A gate
    loss on these logits therefore trains the gates and not the edits below them, and the pass
    costs a forward with no backward through the frozen layers: on the built-in model the gate
    loss's 16 drawn prompts are more tokens than the objective's forget and retain batches."""
    stack = GrunStack.of(model)
    top = max(layer for r in requests for layer in r.config.layers)
    decoder = decoder_of(model)
    with stack.soft(), stack.recording(requests) as records:
        with torch.no_grad(), layer_window(decoder, 0, top + 1):
            decoder(input_ids=input_ids, attention_mask=attention_mask, use_cache=False)
        pairs = zip(requests, records, strict=True)
        per_request = [request.logits_from_record(record) for request, record in pairs]
    return torch.stack(per_request, 1)


@contextmanager
def switched_off(model: nn.Module):
    """Every GRUN module on the model off: what the base weights alone say (the adapter-removal
    probe: whoever holds the base weights can do this)."""
    stack = GrunStack.of(model)
    stack.enabled = False
    try:
        yield model
    finally:
        stack.enabled = True


@torch.no_grad()
def gate_values_of_ids(
    model: nn.Module, ids: Sequence[Sequence[int]], pad_id: int, *, batch_size=16, autocast=None
) -> torch.Tensor:
    """σ(gate) (N, requests, layers) for tokenized prompts, each at its last prompt token."""
    requests = GrunStack.of(model).in_order()
    if not requests:
        raise ValueError("the model carries no GRUN module")
    device = next(model.parameters()).device
    values = []
    for start in range(0, len(ids), batch_size):
        # Right padding: positions count from 0 in every row, as in training batches.
        batch = collate([Example(list(row), list(row)) for row in ids[start : start + batch_size]],
                        pad_id)  # fmt: skip
        with autocast() if autocast else nullcontext():
            logits = gate_logits(
                model, requests, batch["input_ids"].to(device), batch["attention_mask"].to(device)
            )
        values.append(torch.sigmoid(logits.float()).cpu())
    return torch.cat(values)


def gate_values(
    model: nn.Module, tokenizer, prompts: Sequence[str], *, batch_size: int = 16, autocast=None
) -> torch.Tensor:
    """σ(gate) (N, requests, layers) for formatted prompts (e.g. a robustness probe's)."""
    ids = [tokenizer(p, add_special_tokens=False)["input_ids"] for p in prompts]
    return gate_values_of_ids(
        model, ids, tokenizer.pad_token_id, batch_size=batch_size, autocast=autocast
    )


def summarize_gates(values: torch.Tensor) -> list[dict]:
    """values (N, R, L) -> per request: mean gate, fraction of prompts above 0.5, per-layer
    means and per-prompt values (a prompt's gate = mean over the request's layers)."""
    per_prompt = values.mean(2)  # (N, R)
    return [
        {
            "mean": per_prompt[:, r].mean().item(),
            "above_half": (per_prompt[:, r] > 0.5).float().mean().item(),
            "per_layer_mean": values[:, r].mean(0).tolist(),
            "per_question": per_prompt[:, r].tolist(),
        }
        for r in range(per_prompt.shape[1])
    ]


def gate_report(
    model: nn.Module,
    tokenizer,
    question_sets: Mapping[str, Sequence[str]],
    *,
    chat: bool = True,
    system: str | None = None,
    autocast=None,
) -> dict[str, list[dict]]:
    """Per question set, per request in stack order: `summarize_gates` of its questions."""
    report: dict[str, list[dict]] = {}
    for name, questions in question_sets.items():
        if questions:
            prompts = [format_prompt(tokenizer, q, chat=chat, system=system) for q in questions]
            report[name] = summarize_gates(
                gate_values(model, tokenizer, prompts, autocast=autocast)
            )
    return report
