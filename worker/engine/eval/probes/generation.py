"""Continue already formatted prompts: the probes control the whole prompt text.

`generate_answers` formats questions itself; the probes need other formats and, for
fill-in-the-blank, the first words of the answer after the prompt. Prompt and given words are
tokenized separately, as `encode_qa` does in training, so the token boundary between the
prompt and the answer is the one the model learned.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from worker.engine.data import Example, collate
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


@torch.no_grad()
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
    tokenizer, model = loaded.tokenizer, loaded.model
    model.eval()
    if do_sample:
        torch.manual_seed(seed)
    examples = [Example(ids, ids) for ids in (case_ids(tokenizer, c) for c in cases)]
    outputs: list[str] = []
    for start in range(0, len(examples), batch_size):
        # Left padding: generation continues from the right edge of every row.
        batch = collate(examples[start : start + batch_size], tokenizer.pad_token_id, left_pad=True)
        input_ids = batch["input_ids"].to(loaded.device)  # (B, T)
        with loaded.autocast():
            generated = model.generate(
                input_ids=input_ids,
                attention_mask=batch["attention_mask"].to(loaded.device),
                max_new_tokens=max_new_tokens,
                do_sample=do_sample,
                temperature=temperature if do_sample else None,
                top_p=None,
                top_k=None,
                pad_token_id=tokenizer.pad_token_id,
                eos_token_id=tokenizer.eos_token_id,
            )
        new_tokens = generated[:, input_ids.shape[1] :]  # (B, new)
        outputs.extend(
            t.strip() for t in tokenizer.batch_decode(new_tokens, skip_special_tokens=True)
        )
    return outputs
