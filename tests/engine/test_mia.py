"""Membership inference: AUC orientation, attack scores and the Min-K++ z-score."""

import math

import numpy as np
import pytest
import torch

from domain.records import QARecord
from worker.engine.eval import metrics
from worker.engine.eval.mia import mia_block
from worker.engine.eval.scoring import AnswerScore, token_stats
from worker.engine.eval.suites import EvalSet, Suite


def test_auc_is_one_when_forget_scores_are_all_lower():
    # Attack scores are higher for non-members; a remembered forget set scores lower.
    assert metrics.mia_auc([0.1, 0.2, 0.3], [0.5, 0.6]) == 1.0
    assert metrics.mia_auc([0.5, 0.6], [0.1, 0.2, 0.3]) == 0.0


def test_auc_counts_pairs_and_ties():
    # holdout > forget in 3 of the 4 pairs (2>1, 4>1, 4>3; not 2>3)
    assert metrics.mia_auc([1.0, 3.0], [2.0, 4.0]) == pytest.approx(0.75)
    assert metrics.mia_auc([1.0, 1.0], [1.0, 1.0]) == pytest.approx(0.5)


def test_auc_of_identical_distributions_is_near_one_half():
    rng = np.random.default_rng(0)
    auc = metrics.mia_auc(rng.normal(size=2000), rng.normal(size=2000))
    assert abs(auc - 0.5) < 0.03


def test_min_k_plus_plus_z_score_by_hand():
    # Two-token vocabulary, p = (0.25, 0.75): mean log p = -0.562335, variance 0.226303.
    # Token 0: (ln 0.25 + 0.562335) / sqrt(0.226303) = -sqrt(3); token 1: 1 / sqrt(3).
    logits = torch.tensor([[[0.0, math.log(3)], [0.0, math.log(3)]]])  # (1, 2, 2)
    targets = torch.tensor([[0, 1]])
    logprobs, hits, zscores = token_stats(logits, targets, torch.tensor([True]))
    assert logprobs[0].tolist() == pytest.approx([math.log(0.25), math.log(0.75)])
    assert hits[0].tolist() == [False, True]
    assert zscores[0].tolist() == pytest.approx([-math.sqrt(3), 1 / math.sqrt(3)], rel=1e-4)


def _score(nll_per_token: float, n: int = 4) -> AnswerScore:
    logprobs = [-nll_per_token] * n
    return AnswerScore(logprobs, [True] * n, [-nll_per_token] * n, has_end=True)


def _suite(n_forget: int, n_holdout: int) -> Suite:
    record = QARecord(question="q?", answer="an answer")
    sets = {
        "forget": EvalSet("forget", [record] * n_forget, "test"),
        "holdout": EvalSet("holdout", [record] * n_holdout, "test", "answer", generate=False),
    }
    return Suite("test", "forget", sets)


def test_mia_block_orientation_and_reference():
    suite = _suite(3, 3)
    scores = {
        "forget": [[_score(0.1)], [_score(0.2)], [_score(0.3)]],  # low loss: remembered
        "holdout": [[_score(2.0)], [_score(2.5)], [_score(3.0)]],
    }
    block = mia_block(suite, scores, reference=None)
    for attack in ("loss", "zlib", "min_k", "min_k_plus_plus"):
        assert block[attack]["auc"] == 1.0, attack
        assert len(block[attack]["forget"]) == 3
    assert block["reference"]["auc"] is None
    # A retain model with the same losses: NLL_θ − NLL_ref = 0 everywhere, nothing to tell apart.
    reference = {
        "sets": {
            "forget": {"per_example": {"nll": block["loss"]["forget"]}},
            "holdout": {"per_example": {"nll": block["loss"]["holdout"]}},
        }
    }
    with_ref = mia_block(suite, scores, reference)
    assert with_ref["reference"]["auc"] == pytest.approx(0.5)
    assert with_ref["reference"]["forget"] == pytest.approx([0.0, 0.0, 0.0])
