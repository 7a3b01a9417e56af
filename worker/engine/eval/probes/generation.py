"""Continue already formatted prompts: the probes control the whole prompt text.

`generate_answers` formats questions itself; the probes need other formats and, for
fill-in-the-blank, the first words of the answer after the prompt. Prompt and given words are
tokenized separately, as `encode_qa` does in training, so the token boundary between the
prompt and the answer is the one the model learned.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from worker.engine.generate import generate_from_ids
from worker.engine.models import LoadedModel


@dataclass(frozen=True)
class Case:
    """What a probe shows the model for one record."""

    prompt: str  # fully formatted (chat template or not)
    given: str = ""  # answer words already written after the prompt (fill-in-the-blank)

    def judged_text(self, continuation: str) -> str:
        """The answer the leak rule reads: the given words and what the model added."""
        return f"{self.given} {continuation}" if self.given else continuation


def case_ids(tokenizer, case: Case) -> list[int]:
    ids = tokenizer(case.prompt, add_special_tokens=False)["input_ids"]
    if case.given:
        ids = ids + tokenizer(case.given, add_special_tokens=False)["input_ids"]
    return ids


def complete(
    loaded: LoadedModel,
    cases: Sequence[Case],
    *,
    max_new_tokens: int,
    batch_size: int,
    do_sample: bool = False,
    temperature: float = 1.0,
    seed: int = 0,
) -> list[str]:
    """The model's continuation of every case (greedy, or sampled with a fixed seed)."""
    encoded = [case_ids(loaded.tokenizer, case) for case in cases]
    return generate_from_ids(
        loaded, encoded, max_new_tokens=max_new_tokens, batch_size=batch_size,
        do_sample=do_sample, temperature=temperature, seed=seed,
    )  # fmt: skip
