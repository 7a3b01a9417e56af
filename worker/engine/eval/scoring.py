"""Batched teacher-forced scoring of answers, sharing each question's prompt.

A TOFU question comes with up to seven answers (true, paraphrased, five perturbed). Scoring them
as seven full sequences runs the prompt seven times; here the prompt runs once, its KV cache is
repeated for every answer, and only the answer tokens run again. The prompt is the same text the
model was trained on (`format_prompt`) and answers are tokenized as in training (`encode_qa`:
answer tokens plus the end token), so the numbers match a full-sequence forward pass.

Per answer token we keep its log-prob, whether the teacher-forced argmax hit it and, on request,
its Min-K++ z-score; every metric in `metrics.py` is a function of these.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from worker.engine.data import collate, encode_text, end_token_ids, format_prompt
from worker.engine.generate import prefill, select_rows
from worker.engine.models import LoadedModel
from worker.engine.objectives.tokens import token_logprobs


@dataclass(frozen=True)
class ScoreRequest:
    question: str
    answers: tuple[str, ...]
    # Min-K++ needs the mean and variance of log-probs over the whole vocabulary at every answer
    # token: costly, so only for the answers flagged here (one flag per answer; empty = none).
    vocab_stats: tuple[bool, ...] = ()


@dataclass
class AnswerScore:
    token_logprobs: list[float]  # log p(token | prompt, earlier answer tokens), end token included
    hits: list[bool]  # teacher-forced argmax == token
    zscores: list[float] | None  # (log p - mean) / std over the vocabulary; None unless asked
    has_end: bool  # the last token is the appended end token

    @property
    def nll_mean(self) -> float:
        return -sum(self.token_logprobs) / len(self.token_logprobs)

    def _content(self, values: list) -> list:
        """Without the end token: OpenUnlearning's token-level metrics skip it."""
        return values[:-1] if self.has_end else values

    @property
    def content_logprobs(self) -> list[float]:
        return self._content(self.token_logprobs)

    @property
    def content_hits(self) -> list[bool]:
        return self._content(self.hits)

    @property
    def content_zscores(self) -> list[float]:
        if self.zscores is None:
            raise ValueError("this answer was scored without vocab_stats")
        return self._content(self.zscores)

    def to_dict(self) -> dict:
        return {
            "token_logprobs": self.token_logprobs,
            "hits": self.hits,
            "zscores": self.zscores,
            "has_end": self.has_end,
        }


@dataclass
class _Tokenized:
    prompt: list[int]
    answers: list[list[int]]
    stats: list[bool]


def tokenize_request(
    tokenizer, request: ScoreRequest, chat: bool, max_answer_tokens: int
) -> _Tokenized:
    prompt = format_prompt(tokenizer, request.question, chat=chat)
    end = end_token_ids(tokenizer)
    answers = [
        tokenizer(a, add_special_tokens=False)["input_ids"][:max_answer_tokens] + end
        for a in request.answers
    ]
    if any(not a for a in answers):
        raise ValueError(f"an answer to {request.question!r} has no tokens")
    stats = list(request.vocab_stats) or [False] * len(answers)
    prompt_ids = tokenizer(prompt, add_special_tokens=False)["input_ids"]
    return _Tokenized(prompt_ids, answers, stats)


def plan_batches(items: Sequence[_Tokenized], token_budget: int) -> list[list[int]]:
    """Group request indices, longest first, so each padded batch stays within `token_budget`.

    Sorting by length keeps the padding inside a batch small.
    """
    order = sorted(range(len(items)), key=lambda i: -max(map(len, items[i].answers)))
    batches: list[list[int]] = []
    current: list[int] = []
    for index in order:
        trial = [*current, index]
        if current and _padded_tokens([items[i] for i in trial]) > token_budget:
            batches.append(current)
            trial = [index]
        current = trial
    if current:
        batches.append(current)
    return batches


def _padded_tokens(items: Sequence[_Tokenized]) -> int:
    """Tokens a batch runs: every prompt once, every answer padded to the longest one."""
    prompt_width = max(len(it.prompt) for it in items)
    answer_width = max(len(a) for it in items for a in it.answers)
    n_answers = sum(len(it.answers) for it in items)
    return len(items) * prompt_width + n_answers * answer_width


def _right_pad(rows: Sequence[list[int]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    width = max(len(r) for r in rows)
    ids = torch.tensor([r + [pad_id] * (width - len(r)) for r in rows])
    mask = torch.tensor([[1] * len(r) + [0] * (width - len(r)) for r in rows])
    return ids, mask


def answer_logits(loaded: LoadedModel, items: Sequence[_Tokenized]) -> tuple:
    """Logits predicting every answer token of a batch, the prompt run once per request.

    Returns (logits (R, La, V) float32, answer ids (R, La), answer mask (R, La)); R = all
    answers of all requests, in order.
    """
    model, pad_id, device = loaded.model, loaded.tokenizer.pad_token_id, loaded.device
    prompt_out, prompt_mask = prefill(loaded, [it.prompt for it in items])  # mask (B, Lp)
    owner = torch.tensor([b for b, it in enumerate(items) for _ in it.answers], device=device)
    answers = [a for it in items for a in it.answers]
    answer_ids, answer_mask = _right_pad(answers, pad_id)  # (R, La)
    answer_ids, answer_mask = answer_ids.to(device), answer_mask.to(device)
    first = prompt_out.logits[owner].float()  # (R, 1, V): predicts answer token 0
    if answer_ids.shape[1] == 1:
        return first, answer_ids, answer_mask
    cache = prompt_out.cache
    select_rows(model, cache, owner)  # (B, ...) -> (R, ...): one prompt copy per answer
    # Token t of the answer predicts token t+1, so the last column never needs to run.
    full_mask = torch.cat([prompt_mask[owner], answer_mask[:, :-1]], dim=1)  # (R, Lp + La - 1)
    positions = prompt_mask.sum(-1)[owner, None] + torch.arange(
        answer_ids.shape[1] - 1, device=device
    )
    with loaded.autocast():
        rest = model(
            input_ids=answer_ids[:, :-1],
            attention_mask=full_mask,
            position_ids=positions,
            cache=cache,
            use_cache=True,
        ).logits.float()  # (R, La - 1, V)
    return torch.cat([first, rest], dim=1), answer_ids, answer_mask


def token_stats(logits: torch.Tensor, targets: torch.Tensor, with_vocab: torch.Tensor) -> tuple:
    """Per-token log-prob, argmax hit and (rows flagged in with_vocab) Min-K++ z-score.

    logits (R, L, V) float32, targets (R, L), with_vocab (R,) bool -> three (R, L) tensors.
    """
    lse = logits.logsumexp(-1)  # (R, L)
    logprobs = logits.gather(-1, targets[..., None]).squeeze(-1) - lse  # (R, L)
    hits = logits.argmax(-1) == targets  # (R, L)
    zscores = torch.zeros_like(logprobs)
    if with_vocab.any():
        vocab_logp = logits[with_vocab] - lse[with_vocab, :, None]  # (R', L, V)
        vocab_p = vocab_logp.exp()
        mean = (vocab_p * vocab_logp).sum(-1)  # (R', L): expected log-prob under the model
        var = (vocab_p * vocab_logp.square()).sum(-1) - mean.square()
        zscores[with_vocab] = (logprobs[with_vocab] - mean) / var.clamp(min=1e-6).sqrt()
    return logprobs, hits, zscores


@torch.no_grad()
def score_requests(
    loaded: LoadedModel,
    requests: Sequence[ScoreRequest],
    *,
    chat: bool = True,
    token_budget: int = 2048,
    max_answer_tokens: int = 256,
) -> list[list[AnswerScore]]:
    """Score every answer of every request; result[i][j] is answer j of request i."""
    loaded.model.eval()
    items = [tokenize_request(loaded.tokenizer, r, chat, max_answer_tokens) for r in requests]
    has_end = bool(end_token_ids(loaded.tokenizer))
    results: list[list[AnswerScore]] = [[] for _ in items]
    # One autocast context for every batch: it keeps the bf16 copies of the weights it casts.
    with loaded.autocast():
        for batch in plan_batches(items, token_budget):
            chosen = [items[i] for i in batch]
            logits, targets, mask = answer_logits(loaded, chosen)
            flags = torch.tensor([s for it in chosen for s in it.stats], device=logits.device)
            logprobs, hits, zscores = token_stats(logits, targets, flags)
            owners = [(index, stats) for index in batch for stats in items[index].stats]
            for row, (index, stats) in enumerate(owners):
                n = int(mask[row].sum())
                results[index].append(
                    AnswerScore(
                        token_logprobs=logprobs[row, :n].tolist(),
                        hits=hits[row, :n].tolist(),
                        zscores=zscores[row, :n].tolist() if stats else None,
                        has_end=has_end,
                    )
                )
    return results


@torch.no_grad()
def score_texts(
    loaded: LoadedModel, texts: Sequence[str], batch_size: int = 8
) -> list[list[float]]:
    """log p of every token of each plain text after its first, with no prompt: how text
    records are trained (`data.encode_text`) and what passage attacks and probabilities read."""
    tokenizer = loaded.tokenizer
    loaded.model.eval()
    result: list[list[float]] = []
    with loaded.autocast():
        for start in range(0, len(texts), batch_size):
            examples = [encode_text(tokenizer, t) for t in texts[start : start + batch_size]]
            batch = collate(examples, tokenizer.pad_token_id)
            batch = {k: v.to(loaded.device) for k, v in batch.items()}
            logp, mask = token_logprobs(loaded.model, batch)  # (B, T-1) each
            result.extend(row[keep].tolist() for row, keep in zip(logp, mask.bool(), strict=True))
    return result
