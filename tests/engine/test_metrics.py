"""Each metric against small cases whose expected numbers are worked out by hand here."""

import math

import pytest
from scipy import stats

from worker.engine.eval import metrics
from worker.engine.eval.fluency import fluency, repetition_rate


def nll(p: float) -> float:
    """The mean NLL whose length-normalised probability is p."""
    return -math.log(p)


def test_prob_is_exp_of_minus_mean_nll():
    assert metrics.prob(nll(0.5)) == pytest.approx(0.5)
    assert metrics.prob(0.0) == 1.0


def test_normalised_prob_divides_by_all_options():
    # 0.6 / (0.6 + 0.2 + 0.2) = 0.6
    assert metrics.normalised_prob(nll(0.6), [nll(0.2), nll(0.2)]) == pytest.approx(0.6)
    # 0.5 / (0.5 + 0.25 + 0.25) = 0.5
    assert metrics.normalised_prob(nll(0.5), [nll(0.25), nll(0.25)]) == pytest.approx(0.5)


def test_truth_ratio_averages_perturbed_nll_not_probabilities():
    # perturbed p = 0.25 and 0.0625: mean NLL = (ln 4 + ln 16) / 2 = ln 8, so p̄ = 1/8;
    # TR = 0.125 / 0.5 = 0.25 (averaging the probabilities would give 0.3125).
    ratio = metrics.truth_ratio(nll(0.5), [nll(0.25), nll(0.0625)])
    assert ratio == pytest.approx(0.25)


def test_truth_ratio_aggregations():
    ratios = [0.25, 4.0, 1.0]
    # forget: min(TR, 1/TR) = 0.25, 0.25, 1 -> mean 0.5
    assert metrics.truth_ratio_forget_score(ratios) == pytest.approx(0.5)
    # retain / real authors / world facts: max(0, 1 - TR) = 0.75, 0, 0 -> mean 0.25
    assert metrics.truth_ratio_utility_score(ratios) == pytest.approx(0.25)


def test_forget_quality_is_the_ks_p_value():
    ours, retain = [0.1, 0.4, 0.35, 0.8, 0.9, 0.2], [0.5, 0.6, 0.65, 0.7, 0.95]
    expected = stats.ks_2samp(ours, retain).pvalue
    assert metrics.forget_quality(ours, retain) == pytest.approx(expected)
    # Fully separated samples of 5 and 5: exact p = 2 / C(10, 5) = 2 / 252.
    assert metrics.forget_quality([1, 2, 3, 4, 5], [6, 7, 8, 9, 10]) == pytest.approx(2 / 252)
    assert metrics.forget_quality([1, 2, 3], [1, 2, 3]) == pytest.approx(1.0)


def test_model_utility_is_the_harmonic_mean():
    assert metrics.model_utility([0.5, 0.25]) == pytest.approx(1 / 3)  # 2 / (2 + 4)
    values = [0.9, 0.4, 0.7, 0.55, 0.3, 0.8, 0.62, 0.45, 0.5]
    assert metrics.model_utility(values) == pytest.approx(stats.hmean(values))
    assert metrics.model_utility([0.9, 0.0, 0.7]) == 0.0


def test_rouge_l_recall_uses_stemming():
    # LCS "the cat on mat" covers 4 of the reference's 6 tokens.
    assert metrics.rouge_l_recall("the cat on mat", "the cat sat on the mat") == pytest.approx(
        4 / 6
    )
    # cats -> cat, running/runs -> run: LCS (cat, run) = 2 of 4 reference tokens.
    assert metrics.rouge_l_recall("a cat runs", "The cats were running") == pytest.approx(0.5)
    assert metrics.rouge_l_recall("", "anything") == 0.0


@pytest.mark.parametrize(
    ("hits", "expected"),
    [
        ([True, True, True, True], 1.0),  # full match: k = 0
        ([False, False, False, False], 0.25),  # no suffix matches: 1/n, as OpenUnlearning
        ([True, True, True, False], 0.25),  # even the last token is wrong
        ([False, True, True, True], 0.75),  # k = 1 of 4
        ([True, False, True, True], 0.5),  # k = 2 of 4: an early hit does not count
        ([], 0.0),
    ],
)
def test_extraction_strength(hits, expected):
    assert metrics.extraction_strength(hits) == pytest.approx(expected)


def test_exact_memorisation_is_token_accuracy():
    assert metrics.exact_memorisation([True, False, True, True]) == pytest.approx(0.75)
    assert metrics.exact_memorisation([]) == 0.0


def test_key_fact_leak_is_case_insensitive():
    assert metrics.key_fact_leaked("Write to ADA@Example.com", ["ada@example.com"])
    assert not metrics.key_fact_leaked("I do not know.", ["ada@example.com"])


def test_min_k_averages_the_least_likely_share():
    # k = 0.4 of 5 tokens = 2 tokens: -5 and -4 -> score 4.5
    assert metrics.min_k_score([-1.0, -2.0, -3.0, -4.0, -5.0]) == pytest.approx(4.5)
    # 0.4 of 2 tokens rounds down to 0: at least one token counts
    assert metrics.min_k_score([-1.0, -3.0]) == pytest.approx(3.0)
    assert metrics.min_k_plus_plus_score([0.5, -1.5, 2.0], k=0.34) == pytest.approx(1.5)


def test_zlib_divides_loss_by_compressed_length():
    # zlib.compress(b"aaaa") is 12 bytes
    assert metrics.zlib_score(2.4, "aaaa") == pytest.approx(0.2)


def test_reference_score_and_privleak():
    assert metrics.reference_score(1.5, 2.0) == pytest.approx(-0.5)
    # OpenUnlearning's formula on our orientation (AUC 1: still looks like training data)
    assert metrics.privleak(0.8, 0.5) == pytest.approx(-60.0)  # still leaks
    assert metrics.privleak(0.4, 0.5) == pytest.approx(20.0)  # over-unlearned
    assert metrics.privleak(1.0, 0.5) == pytest.approx(-100.0)  # a target that remembers all


def test_fluency_catches_loops_and_empty_answers():
    # "the cat the cat the cat": trigrams (the cat the), (cat the cat) twice each -> 2 of 4 new
    assert repetition_rate("the cat the cat the cat") == pytest.approx(0.5)
    assert fluency("the cat the cat the cat") == pytest.approx(0.5)
    assert fluency("Paris.") == 1.0  # too short to repeat anything
    assert fluency("The author was born in Karachi in 1975.") == 1.0
    assert fluency(" ... ") == 0.0  # no word at all
