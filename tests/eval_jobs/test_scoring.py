"""The metrics on fixed answers, against values computed by hand from their definitions."""

from __future__ import annotations

import pytest

from eval_jobs.scoring import bleu, exact_match, normalize, rouge_l, score


def test_rouge_l_is_the_f1_of_the_longest_common_word_subsequence():
    # the cat sat on the mat / a cat sat on a mat: LCS "cat sat on mat", 4 of 6 words
    # each side: P = R = 4/6, F1 = 2/3; an identical answer 1, a disjoint one 0
    assert rouge_l(["the cat sat on the mat"], ["a cat sat on a mat"]) == pytest.approx(2 / 3)
    assert rouge_l(["The cats sat."], ["the cat sat"]) == pytest.approx(1.0)  # stemmed
    assert rouge_l(["x y", "the cat sat on the mat"], ["p q", "a cat sat on a mat"]) \
        == pytest.approx((0 + 2 / 3) / 2)  # the mean over examples


def test_bleu_is_corpus_bleu4_with_exponential_smoothing():
    # the cat sat on the mat / the cat is on the mat: n-gram precisions 5/6, 3/5, 1/4 and
    # 0/3, smoothed to 1/(2 x 3); same length, no brevity penalty:
    # (5/6 x 3/5 x 1/4 x 1/6) ** (1/4)
    expected = (5 / 6 * 3 / 5 * 1 / 4 * 1 / 6) ** 0.25
    assert bleu(["the cat sat on the mat"], ["the cat is on the mat"]) \
        == pytest.approx(expected, abs=1e-4)
    assert bleu(["the cat sat on the mat"], ["the cat sat on the mat"]) == pytest.approx(1.0)
    assert bleu(["dogs bark loudly tonight"], ["the cat sat on the mat"]) == pytest.approx(0.0)


def test_exact_match_after_squad_normalisation():
    assert normalize("  The Cat,  sat!") == "cat sat"
    assert exact_match(["The cat.", "a dog", "fish"], ["cat", "Dog!", "bird"]) \
        == pytest.approx(2 / 3)


def test_score_gives_every_metric_and_refuses_mismatched_lists():
    assert set(score(["a b"], ["a b"])) == {"rouge_l", "bleu", "exact_match"}
    with pytest.raises(ValueError, match="one reference per prediction"):
        score(["a", "b"], ["a"])
    with pytest.raises(ValueError, match="at least one"):
        score([], [])
