"""Membership-inference attacks: forget set (members) against the holdout set (non-members).

Each attack gives every answer a score that is higher the less it looks like training data, and
the AUC follows OpenUnlearning's orientation (`metrics.mia_auc`): 1 = the forget set still looks
trained on, 0.5 = indistinguishable from never-seen data (what a retain model shows).
The Reference attack needs the retain model's per-example NLL, read from its eval.json.
"""

from __future__ import annotations

from domain.records import QARecord
from worker.engine.eval import metrics
from worker.engine.eval.scoring import AnswerScore
from worker.engine.eval.suites import Suite

ATTACKS = ("loss", "zlib", "min_k", "min_k_plus_plus", "reference")


def attack_scores(record: QARecord, score: AnswerScore) -> dict[str, float]:
    """The reference-free attacks' scores of one answer."""
    return {
        "loss": score.nll_mean,
        "zlib": metrics.zlib_score(score.nll_mean, record.answer),
        "min_k": metrics.min_k_score(score.content_logprobs),
        "min_k_plus_plus": metrics.min_k_plus_plus_score(score.content_zscores),
    }


def _side(suite: Suite, scores: dict[str, list[list[AnswerScore]]], name: str) -> dict:
    """attack -> per-example scores on one set (its first answer is the record's answer)."""
    rows = [
        attack_scores(record, answers[0])
        for record, answers in zip(suite.sets[name].records, scores[name], strict=True)
    ]
    return {attack: [row[attack] for row in rows] for attack in ATTACKS[:-1]}


def mia_block(
    suite: Suite, scores: dict[str, list[list[AnswerScore]]], reference: dict | None
) -> dict:
    """{attack: {auc, forget: [...], holdout: [...]}}; Reference is None without a reference."""
    forget, holdout = _side(suite, scores, "forget"), _side(suite, scores, "holdout")
    block = {
        attack: {
            "auc": metrics.mia_auc(forget[attack], holdout[attack]),
            "forget": forget[attack],
            "holdout": holdout[attack],
        }
        for attack in ATTACKS[:-1]
    }
    block["reference"] = {"auc": None, "forget": None, "holdout": None}
    if reference is not None:
        sides = {}
        for side, own in (("forget", forget), ("holdout", holdout)):
            ref_nll = reference["sets"][side]["per_example"]["nll"]
            sides[side] = list(map(metrics.reference_score, own["loss"], ref_nll))
        block["reference"] = {"auc": metrics.mia_auc(sides["forget"], sides["holdout"]), **sides}
    return block
