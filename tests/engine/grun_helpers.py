"""What the GRUN tests share: an fp32 tiny model, a QA batch, gates forced open or shut."""

from __future__ import annotations

import torch

from worker.engine.data import collate, encode_qa
from worker.engine.models import load_model


def load_fp32(model_dir):
    return load_model(str(model_dir), precision="fp32")


def qa_batch(tokenizer, records):
    examples = [encode_qa(tokenizer, r.question, r.answer) for r in records]
    return collate(examples, tokenizer.pad_token_id)


def force_gates(request, logit: float) -> None:
    """Make every gate of a request output `logit` whatever its input (0 weights, fixed bias)."""
    for reft in request.interventions.values():
        force_gates_of(reft, logit)


def force_gates_of(reft, logit: float) -> None:
    with torch.no_grad():
        last = reft.gate[-1] if isinstance(reft.gate, torch.nn.Sequential) else reft.gate
        last.weight.zero_()
        last.bias.fill_(logit)
