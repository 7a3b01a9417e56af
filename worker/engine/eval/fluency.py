"""Fluency of generated answers, reported beside ROUGE.

Unlearning often turns answers into loops ("the the the...") or nothing at all; ROUGE only
says the answer no longer matches, not that the model broke. Two measures:
- `fluency` (always): 1 − the share of repeated word trigrams; 1 = no loops, 0 = a loop or an
  empty answer. Cheap, model-free.
- `perplexity` (optional): of the generated answer, given its question, under another model
  (the original, pre-unlearning one): high when the answer is not language that model would
  write. Costs one teacher-forced pass of that model over the generations.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence

from worker.engine.eval.scoring import ScoreRequest, score_requests
from worker.engine.models import LoadedModel

WORD = re.compile(r"\w+")


def repetition_rate(text: str, n: int = 3) -> float:
    """Share of word n-grams that already occurred earlier in the text (0 for short texts)."""
    words = WORD.findall(text.casefold())
    grams = [tuple(words[i : i + n]) for i in range(len(words) - n + 1)]
    if not grams:
        return 0.0
    return 1 - len(set(grams)) / len(grams)


def fluency(text: str) -> float:
    """1 − repetition rate; an answer without a single word scores 0."""
    if not WORD.search(text):
        return 0.0
    return 1 - repetition_rate(text)


def generation_perplexity(
    judge: LoadedModel, questions: Sequence[str], generations: Sequence[str], **score_options
) -> list[float | None]:
    """exp(mean NLL) of each generation given its question under `judge`; None if empty."""
    nonempty = [i for i, g in enumerate(generations) if g.strip()]
    requests = [ScoreRequest(questions[i], (generations[i],)) for i in nonempty]
    scores = score_requests(judge, requests, **score_options)
    result: list[float | None] = [None] * len(generations)
    for index, (score,) in zip(nonempty, scores, strict=True):
        result[index] = math.exp(score.nll_mean)
    return result
