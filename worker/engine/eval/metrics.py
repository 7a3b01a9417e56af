"""Per-example metrics, as pure functions over numbers the scorer and the generator produce.

Conventions follow OpenUnlearning's TOFU evaluation (docs/metrics.md): an answer's "mean NLL" is the
cross-entropy averaged over its answer tokens including the end token; the token-level metrics
(Extraction Strength, Exact Memorisation, Min-K, Min-K++) leave the end token out, as
OpenUnlearning's `tokenwise_logprobs` does. The 1e-10 guards are OpenUnlearning's too, so
numbers stay comparable with published tables.
"""

from __future__ import annotations

import functools
import math
import zlib
from collections.abc import Sequence

import numpy as np
from rouge_score import rouge_scorer
from scipy import stats

EPS = 1e-10
MIN_K = 0.4  # share of the least likely tokens Min-K and Min-K++ average (TOFU setting)


# --- probabilities and truth ratio ----------------------------------------------------------


def prob(nll_mean: float) -> float:
    """Length-normalised probability of an answer: exp(-mean NLL)."""
    return math.exp(-nll_mean)


def normalised_prob(true_nll_mean: float, perturbed_nll_means: Sequence[float]) -> float:
    """p_true / (p_true + sum p_perturbed), each length-normalised (real authors, world facts)."""
    p_true = prob(true_nll_mean)
    p_wrong = sum(prob(nll) for nll in perturbed_nll_means)
    return p_true / (p_true + p_wrong + EPS)


def truth_ratio(true_nll_mean: float, perturbed_nll_means: Sequence[float]) -> float:
    """TR = p̄_perturbed / p_true with p̄_perturbed = exp(-mean over perturbed of their mean NLL).

    `true` is the paraphrased answer on TOFU's forget and retain sets, the answer itself on
    real authors and world facts. TR < 1: the model prefers the true answer.
    """
    p_wrong = math.exp(-float(np.mean(perturbed_nll_means)))
    return p_wrong / (prob(true_nll_mean) + EPS)


def truth_ratio_forget_score(ratios: Sequence[float]) -> float:
    """Forget set: mean(min(TR, 1/TR)); 1 when true and false answers are equally likely."""
    values = np.asarray(ratios, dtype=float)
    return float(np.mean(np.minimum(values, 1 / (values + EPS))))


def truth_ratio_utility_score(ratios: Sequence[float]) -> float:
    """Retain, real authors, world facts: mean(max(0, 1 - TR)); higher = prefers the truth."""
    return float(np.mean(np.maximum(0.0, 1 - np.asarray(ratios, dtype=float))))


def forget_quality(ratios: Sequence[float], retain_model_ratios: Sequence[float]) -> float:
    """KS two-sample p-value between the forget-set TRs of this model and of the retain model.

    High (near 1): indistinguishable from a model never trained on the forget set.
    """
    return float(stats.ks_2samp(ratios, retain_model_ratios).pvalue)


def model_utility(values: Sequence[float]) -> float:
    """Harmonic mean of the utility numbers (9 on TOFU); any zero makes it zero."""
    array = np.asarray(values, dtype=float)
    if np.any(array <= 0):
        return 0.0
    return float(stats.hmean(array))


# --- generation ------------------------------------------------------------------------------


@functools.cache
def _rouge() -> rouge_scorer.RougeScorer:
    return rouge_scorer.RougeScorer(["rougeL"], use_stemmer=True)


def rouge_l_recall(generation: str, reference: str) -> float:
    """Share of the reference's longest common subsequence recovered by the generation."""
    return _rouge().score(reference, generation)["rougeL"].recall


def rouge_l_f1(generation: str, reference: str) -> float:
    """ROUGE-L F1: MUSE's verbatim-memorisation score of a continuation."""
    return _rouge().score(reference, generation)["rougeL"].fmeasure


def refusal_likeness(generation: str, refusals: Sequence[str]) -> float:
    """ROUGE-L F1 of the answer against the closest refusal: 1 for a refusal word for word,
    about 0.8 for a reworded one ("I'm unable to help with that."), low for an answer that
    starts like a refusal and then says something else."""
    return max((rouge_l_f1(generation, r) for r in refusals), default=0.0)


def key_fact_leaked(generation: str, key_facts: Sequence[str]) -> bool:
    """Does any key fact (an email, a date, an account number...) appear in the answer?"""
    text = generation.casefold()
    return any(fact.casefold() in text for fact in key_facts if fact)


# --- memorisation (teacher-forced argmax) -----------------------------------------------------


def extraction_strength(hits: Sequence[bool]) -> float:
    """1 - k/n with k the smallest index from which every teacher-forced argmax is right.

    As OpenUnlearning computes it (src/evals/metrics/memorization.py): its search for k stops
    at n - 1, so an answer whose last token is mispredicted scores 1/n, not 0 (issue 15: our
    numbers are meant to be comparable with theirs). 0 for an empty answer.
    """
    n = len(hits)
    if not n:
        return 0.0
    k = n
    while k > 0 and hits[k - 1]:
        k -= 1
    return 1 - min(k, n - 1) / n


def exact_memorisation(hits: Sequence[bool]) -> float:
    """Share of answer tokens whose teacher-forced argmax is the true token."""
    return float(np.mean(hits)) if len(hits) else 0.0


# --- membership inference ---------------------------------------------------------------------
# Every attack score is higher for text that looks *less* like training data (a non-member).


def zlib_score(nll_mean: float, text: str) -> float:
    """LOSS divided by the zlib-compressed length of the answer text (Carlini et al. 2021)."""
    return nll_mean / len(zlib.compress(text.encode("utf-8")))


def min_k_score(token_logprobs: Sequence[float], k: float = MIN_K) -> float:
    """Minus the mean of the k least likely tokens' log-probs (Shi et al. 2024)."""
    if not len(token_logprobs):
        return 0.0
    count = max(1, int(len(token_logprobs) * k))
    return -float(np.mean(np.sort(np.asarray(token_logprobs, dtype=float))[:count]))


def min_k_plus_plus_score(token_zscores: Sequence[float], k: float = MIN_K) -> float:
    """Min-K over token log-probs standardised by the vocabulary's mean and std (Zhang et al.)."""
    return min_k_score(token_zscores, k)


def reference_score(nll_mean: float, reference_nll_mean: float) -> float:
    """NLL under this model minus NLL under the reference (retain) model."""
    return nll_mean - reference_nll_mean


def mia_auc(forget_scores: Sequence[float], holdout_scores: Sequence[float]) -> float:
    """ROC AUC with forget labelled 0 and holdout 1, as OpenUnlearning computes it.

    = P(holdout score > forget score), ties counting half. 1: the forget set still looks like
    training data; 0.5: indistinguishable from never-seen data.
    """
    u = stats.mannwhitneyu(holdout_scores, forget_scores, alternative="two-sided").statistic
    return float(u / (len(forget_scores) * len(holdout_scores)))


def privleak(auc: float, retain_model_auc: float) -> float:
    """MUSE's PrivLeak in percent, as OpenUnlearning computes it: the relative change of
    (1 - AUC) against the retain model's, ((1 - a) - (1 - r)) / (1 - r) * 100.

    With our AUC's orientation (1: the forget set still looks like training data), 0 is ideal,
    negative means under-unlearned (it still leaks; a fine-tuned target is near -100) and
    positive means over-unlearned (the forget set now looks less familiar than to a model that
    never saw it).
    """
    return ((1 - auc) - (1 - retain_model_auc)) / (1 - retain_model_auc + EPS) * 100
