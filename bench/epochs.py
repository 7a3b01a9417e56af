"""A TOFU-mini cell's per-epoch evaluation and its selection rule (issue 19).

OpenUnlearning reports NPO at 10 epochs; GRUN's scripts keep checkpoints and pick one. A cell
here trains up to its epoch budget, measures the model after every epoch, and ends on the
epoch the rule picks. The rule reads only the forget set and the retain set, never the
utility sets Model Utility also averages (real authors, world facts), so the reported Model
Utility is not what the choice optimised:

  among the epochs whose retain utility (harmonic mean of the retain answers' probability and
  their truth-ratio score, on the first RETAIN_SAMPLE retain questions) is at least
  MIN_RETAIN_KEPT of the target's, the one with the highest Forget Quality; when no epoch keeps
  that much, the one that keeps the most.

Forget Quality is TOFU's forget-set metric: the KS test of the forget set's truth ratios against
the retain model's (on the same 200 questions, from its evaluation). The checks run inside the
training loop (`train.train`'s `check`), which keeps the best-scored weights.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from statistics import fmean

from domain.records import QARecord
from worker.engine.eval import metrics
from worker.engine.eval.scoring import ScoreRequest, score_requests
from worker.engine.models import LoadedModel
from worker.engine.stopping import evaluated

MIN_RETAIN_KEPT = 0.95  # the utility aim (Model Utility >= 0.95x the target's)
RETAIN_SAMPLE = 100  # retain questions scored per epoch (of TOFU-mini's 400)
SELECTION_RULE = (
    f"the epoch with the highest Forget Quality among those keeping ≥ {MIN_RETAIN_KEPT} of the "
    f"target's retain utility on {RETAIN_SAMPLE} retain questions, else the one keeping the most"
)


def truth_ratios(loaded: LoadedModel, records: Sequence[QARecord]) -> tuple[list, list]:
    """Each record's truth ratio (paraphrased answer against the perturbed ones) and the
    probability of its answer, teacher-forced."""
    requests = [
        ScoreRequest(r.question, (r.answer, r.paraphrased_answer or r.answer, *r.perturbed_answer))
        for r in records
    ]
    scores = score_requests(loaded, requests)
    ratios = [metrics.truth_ratio(s[1].nll_mean, [p.nll_mean for p in s[2:]]) for s in scores]
    return ratios, [metrics.prob(s[0].nll_mean) for s in scores]


def retain_utility(ratios: Sequence[float], probs: Sequence[float]) -> float:
    """Harmonic mean of mean answer probability and the truth-ratio utility score."""
    return metrics.model_utility([fmean(probs), metrics.truth_ratio_utility_score(ratios)])


def selection_score(forget_quality: float, retain_kept: float) -> float:
    """The rule as one number for the loop's best state: an epoch that keeps enough retain
    utility scores 2 + its Forget Quality (in [0, 1]); any other scores its share kept (< 2)."""
    if retain_kept >= MIN_RETAIN_KEPT:
        return 2.0 + forget_quality
    return min(retain_kept, 1.0)


def epoch_check(
    forget: Sequence[QARecord],
    retain: Sequence[QARecord],
    retain_model_ratios: Sequence[float],
) -> Callable[[LoadedModel], Callable[[int], dict]]:
    """`make_check(loaded)` for the unlearning run: measures the starting model, then returns
    `check(step)` which never passes (the budget is always spent) and scores by the rule."""
    retain = list(retain[:RETAIN_SAMPLE])

    def make_check(loaded: LoadedModel) -> Callable[[int], dict]:
        before = retain_utility(*evaluated(loaded, lambda: truth_ratios(loaded, retain)))

        def measure() -> dict:
            started = time.perf_counter()
            ratios, probs = truth_ratios(loaded, forget)
            quality = metrics.forget_quality(ratios, retain_model_ratios)
            kept = retain_utility(*truth_ratios(loaded, retain)) / before if before else 0.0
            return {
                "passed": False,
                "score": selection_score(quality, kept),
                "forget_quality": quality,
                "forget_truth_ratio": metrics.truth_ratio_forget_score(ratios),
                "forget_prob": fmean(probs),
                "retain_kept": kept,
                "seconds": time.perf_counter() - started,
            }

        return lambda step: evaluated(loaded, measure)

    return make_check
