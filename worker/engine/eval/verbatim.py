"""Verbatim memorisation of plain-text records, as MUSE's VerbMem measures it.

A passage's first tokens are the prompt, with no chat template (text records are trained that
way, `data.encode_text`); the model continues greedily for as many tokens as the true rest
has, and the continuation is compared with that rest. MUSE cuts 32 prompt tokens and compares
128; a customer's record is often a single sentence, so the prompt here is at most half of it
and at least one token always remains to be reproduced.

The score is MUSE's ROUGE-L F1; whether a passage *leaks* is the evaluation's one ROUGE rule
(`leak.judge_rouge`: recall of the true rest above the threshold), so a text ticket and a QA
ticket without key facts are held to the same standard.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from domain.records import TextRecord
from worker.engine.data import start_ids
from worker.engine.eval.metrics import rouge_l_f1
from worker.engine.eval.probes.leak import judge_rouge
from worker.engine.generate import generate_from_ids
from worker.engine.models import LoadedModel

PREFIX_TOKENS = 32  # MUSE's prompt length
MAX_CONTINUATION = 128  # MUSE's continuation length


@dataclass(frozen=True)
class Passage:
    prefix_ids: list[int]
    rest: str  # the true continuation, decoded from its tokens
    rest_tokens: int


def split_passage(tokenizer, text: str) -> Passage | None:
    """The prompt and the true rest of one passage; None when it has under two tokens."""
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    if len(ids) < 2:
        return None
    cut = min(PREFIX_TOKENS, len(ids) // 2)
    rest_ids = ids[cut : cut + MAX_CONTINUATION]
    prefix = start_ids(tokenizer) + ids[:cut]  # as the passage was trained (data.encode_text)
    return Passage(prefix, tokenizer.decode(rest_ids).strip(), len(rest_ids))


@dataclass(frozen=True)
class Continuation:
    passage: Passage
    generated: str
    score: float  # ROUGE-L F1 against the true rest (VerbMem)
    leaked: bool  # the evaluation's ROUGE rule

    def to_dict(self) -> dict:
        return {"score": self.score, "leaked": self.leaked}


def continue_passages(loaded: LoadedModel, texts: Sequence[TextRecord]) -> list[Continuation]:
    """Each passage's greedy continuation, cut to its true rest's length, scored and judged.
    Passages too short to split are left out."""
    tokenizer = loaded.tokenizer
    passages = [p for p in (split_passage(tokenizer, r.text) for r in texts) if p is not None]
    if not passages:
        return []
    generated = generate_from_ids(
        loaded,
        [p.prefix_ids for p in passages],
        max_new_tokens=max(p.rest_tokens for p in passages),
    )
    result = []
    for passage, text in zip(passages, generated, strict=True):
        # Generation runs to the longest rest; each passage is judged on as many tokens as its
        # own rest has, or a long continuation would be credited with words past the passage.
        own = tokenizer.decode(
            tokenizer(text, add_special_tokens=False)["input_ids"][: passage.rest_tokens]
        ).strip()
        leaked = judge_rouge(own, passage.rest).leaked
        result.append(Continuation(passage, own, rouge_l_f1(own, passage.rest), leaked))
    return result
