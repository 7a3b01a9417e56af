"""Batched greedy (or sampled) generation with left padding and the KV cache."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from worker.engine.data import format_prompt
from worker.engine.models import LoadedModel


@torch.no_grad()
def generate_answers(
    loaded: LoadedModel,
    questions: Sequence[str],
    *,
    max_new_tokens: int = 200,
    batch_size: int = 16,
    chat: bool = True,
    system: str | None = None,
    do_sample: bool = False,
    temperature: float = 1.0,
    seed: int = 0,
) -> list[str]:
    """Answer each question; prompts are formatted exactly as in training."""
    tokenizer, model = loaded.tokenizer, loaded.model
    prompts = [format_prompt(tokenizer, q, chat=chat, system=system) for q in questions]
    answers: list[str] = []
    tokenizer.padding_side = "left"  # generation continues from the right edge of every row
    model.eval()
    if do_sample:
        torch.manual_seed(seed)
    for start in range(0, len(prompts), batch_size):
        encoded = tokenizer(
            prompts[start : start + batch_size],
            return_tensors="pt",
            padding=True,
            add_special_tokens=False,
        ).to(loaded.device)
        with loaded.autocast():
            output = model.generate(
                **encoded,
                max_new_tokens=max_new_tokens,
                do_sample=do_sample,
                temperature=temperature if do_sample else None,
                top_p=None,
                top_k=None,
                pad_token_id=tokenizer.pad_token_id,
                eos_token_id=tokenizer.eos_token_id,
            )
        new_tokens = output[:, encoded["input_ids"].shape[1] :]  # (B, new)
        answers.extend(
            t.strip() for t in tokenizer.batch_decode(new_tokens, skip_special_tokens=True)
        )
    return answers
