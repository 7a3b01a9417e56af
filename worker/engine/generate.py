"""Batched greedy (or sampled) generation: left padding, KV cache, finished rows dropped.

`model.generate` keeps every row of a batch running until the longest answer ends, so one
rambling answer makes 31 finished rows pay for 200 steps. Here a row leaves the batch (and its
slice of the KV cache) as soon as it emits an end token, and prompts are sorted by length so
little padding is run. Greedy results equal `model.generate(do_sample=False)`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TypedDict, Unpack

import torch

from worker.engine.data import format_prompt
from worker.engine.models import LoadedModel


def stop_token_ids(loaded: LoadedModel) -> list[int]:
    """The tokenizer's end token plus any the generation config adds (e.g. <|endoftext|>)."""
    ids = {loaded.tokenizer.eos_token_id}
    config_ids = getattr(getattr(loaded.model, "generation_config", None), "eos_token_id", None)
    ids.update(config_ids if isinstance(config_ids, list) else [config_ids])
    return sorted(i for i in ids if i is not None)


def left_pad(rows: Sequence[list[int]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Token ids and attention mask (B, T), padded on the left so every row ends at T."""
    width = max(len(r) for r in rows)
    ids = torch.tensor([[pad_id] * (width - len(r)) + list(r) for r in rows])
    mask = torch.tensor([[0] * (width - len(r)) + [1] * len(r) for r in rows])
    return ids, mask


def prefill(loaded: LoadedModel, prompt_ids: Sequence[list[int]]) -> tuple:
    """Run a batch of prompts once, left-padded, keeping the KV cache for what follows.

    Returns (the model's output: logits (B, 1, V) of the last position only, and its cache;
    the attention mask (B, T) on the model's device).
    """
    ids, mask = left_pad(prompt_ids, loaded.tokenizer.pad_token_id)  # (B, T)
    ids, mask = ids.to(loaded.device), mask.to(loaded.device)
    positions = (mask.cumsum(-1) - 1).clamp(min=0)  # left padding shifts positions
    with loaded.autocast():
        out = loaded.model(
            input_ids=ids,
            attention_mask=mask,
            position_ids=positions,
            use_cache=True,
            logits_to_keep=1,  # only the last position predicts the next token
        )
    return out, mask


def select_rows(model: torch.nn.Module, cache, indices: torch.Tensor) -> None:
    """Keep (or repeat) the batch rows `indices` of the KV cache and of any module state.

    Modules that remember per-row state between KV-cache steps (e.g. a gate decided on the
    prompt) take part by defining `batch_select_indices(indices)`, the cache's own method name.
    """
    cache.batch_select_indices(indices)
    for module in model.modules():
        select = getattr(module, "batch_select_indices", None)  # not an nn.Module method
        if select is not None:
            select(indices)


def _next_tokens(
    logits: torch.Tensor, do_sample: bool, temperature: float, generator
) -> torch.Tensor:
    """logits (B, V) -> next token ids (B,)."""
    if not do_sample:
        return logits.argmax(-1)
    probs = torch.softmax(logits.float() / temperature, dim=-1)
    return torch.multinomial(probs, 1, generator=generator).squeeze(-1)


@torch.no_grad()
def generate_batch(
    loaded: LoadedModel,
    prompt_ids: Sequence[list[int]],
    *,
    max_new_tokens: int,
    do_sample: bool = False,
    temperature: float = 1.0,
    generator: torch.Generator | None = None,
) -> list[list[int]]:
    """New token ids for each prompt, end token excluded."""
    model, device = loaded.model, loaded.device
    stops = torch.tensor(stop_token_ids(loaded), device=device)
    out, mask = prefill(loaded, prompt_ids)  # mask (B, T)
    rows = torch.arange(len(prompt_ids), device=device)  # which prompt each live row answers
    new_tokens: list[list[int]] = [[] for _ in prompt_ids]
    next_position = mask.sum(-1)  # (B,)
    for step in range(max_new_tokens):
        token = _next_tokens(out.logits[:, -1], do_sample, temperature, generator)  # (B,)
        finished = torch.isin(token, stops)
        for row, value, done in zip(rows.tolist(), token.tolist(), finished.tolist(), strict=True):
            if not done:
                new_tokens[row].append(value)
        live = ~finished
        if step == max_new_tokens - 1 or not live.any():
            break
        cache = out.cache
        if not live.all():  # drop finished rows from the batch and the KV cache
            keep = live.nonzero().squeeze(-1)
            select_rows(model, cache, keep)
            rows, token, mask, next_position = (
                rows[keep],
                token[keep],
                mask[keep],
                next_position[keep],
            )
        mask = torch.cat([mask, mask.new_ones(len(rows), 1)], dim=1)  # (B', T + 1)
        with loaded.autocast():
            out = model(
                input_ids=token[:, None],
                attention_mask=mask,
                position_ids=next_position[:, None],
                cache=cache,
                use_cache=True,
            )
        next_position = next_position + 1
    return new_tokens


class Decoding(TypedDict, total=False):
    """How to decode (defaults in `generate_from_ids`); the wrappers pass it through as is."""

    max_new_tokens: int
    batch_size: int
    do_sample: bool
    temperature: float
    seed: int


def generate_from_prompts(
    loaded: LoadedModel, prompts: Sequence[str], **decoding: Unpack[Decoding]
) -> list[str]:
    """Continue already formatted prompt texts (e.g. a chat prompt with a prefilled answer)."""
    encoded = [loaded.tokenizer(p, add_special_tokens=False)["input_ids"] for p in prompts]
    return generate_from_ids(loaded, encoded, **decoding)


def generate_from_ids(
    loaded: LoadedModel,
    encoded: Sequence[list[int]],
    *,
    max_new_tokens: int = 200,
    batch_size: int = 64,
    do_sample: bool = False,
    temperature: float = 1.0,
    seed: int = 0,
) -> list[str]:
    """Continue already tokenized prompts; returns the decoded continuations in input order."""
    tokenizer = loaded.tokenizer
    order = sorted(range(len(encoded)), key=lambda i: len(encoded[i]))  # similar lengths together
    generator = torch.Generator(device=loaded.device).manual_seed(seed) if do_sample else None
    loaded.model.eval()
    answers: list[str] = [""] * len(encoded)
    # One autocast context around every step: it keeps the bf16 copies of the weights it casts
    # (for parameters that require grad) instead of re-casting 135M weights at every token.
    with loaded.autocast():
        for start in range(0, len(order), batch_size):
            chosen = order[start : start + batch_size]
            outputs = generate_batch(
                loaded,
                [encoded[i] for i in chosen],
                max_new_tokens=max_new_tokens,
                do_sample=do_sample,
                temperature=temperature,
                generator=generator,
            )
            for index, tokens in zip(chosen, outputs, strict=True):
                answers[index] = tokenizer.decode(tokens, skip_special_tokens=True).strip()
    return answers


def generate_answers(
    loaded: LoadedModel,
    questions: Sequence[str],
    *,
    chat: bool = True,
    system: str | None = None,
    **decoding: Unpack[Decoding],
) -> list[str]:
    """Answer each question; prompts are formatted exactly as in training."""
    prompts = [format_prompt(loaded.tokenizer, q, chat=chat, system=system) for q in questions]
    return generate_from_prompts(loaded, prompts, **decoding)
