"""Unlearn until it is gone: the stopping rule's check, run by the training loop every k steps.

The check asks the model being trained the forget questions (as filed, and reworded where the
record has a paraphrase), greedily, and judges each answer with the one leak rule of the
evaluation (`eval.probes.leak.judge`). The run stops once every probe's leak rate is at or
below its limit, so a ticket spends the steps its data needs, not a fixed count.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from statistics import fmean

import torch

from worker.engine.data import QARecord, Record
from worker.engine.eval.probes.leak import judge
from worker.engine.generate import generate_answers
from worker.engine.models import LoadedModel

# The probes the check can ask cheaply, by the name the publish policy uses for them.
CHECK_PROBES: dict[str, Callable[[QARecord], str | None]] = {
    "direct": lambda r: r.question,
    "paraphrased": lambda r: r.paraphrased_question,
}


def check_probes(records: Sequence[Record]) -> dict[str, list[tuple[str, QARecord]]]:
    """Per probe, the (question, record) pairs it asks; probes with no question are left out."""
    qa = [r for r in records if isinstance(r, QARecord)]
    pairs = {
        name: [(ask(r), r) for r in qa if ask(r)] for name, ask in CHECK_PROBES.items()
    }
    return {name: rows for name, rows in pairs.items() if rows}


def leak_check(
    loaded: LoadedModel,
    records: Sequence[Record],
    limits: Mapping[str, float],
    max_new_tokens: int = 48,
) -> Callable[[int], dict]:
    """`check(step)` for `train()`: leak rate per probe named in `limits`, and whether all pass.

    Limits naming a probe the check cannot ask are ignored here (the evaluation still gates
    on them); with no askable probe at all the rule cannot pass and the run uses its budget."""
    probes = {name: rows for name, rows in check_probes(records).items() if name in limits}

    def check(step: int) -> dict:
        was_training = loaded.model.training
        loaded.model.eval()
        rates = {}
        with torch.no_grad():
            for name, rows in probes.items():
                answers = generate_answers(
                    loaded, [q for q, _ in rows], max_new_tokens=max_new_tokens
                )
                leaked = [judge(r, a).leaked for a, (_, r) in zip(answers, rows, strict=True)]
                rates[name] = fmean(leaked)
        loaded.model.train(was_training)
        passed = bool(rates) and all(rates[name] <= limits[name] for name in rates)
        return {"passed": passed, "leak_rate": rates}

    return check
