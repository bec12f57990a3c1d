"""Scores of generated answers against reference answers: ROUGE-L, BLEU, exact match.

The metrics are the maintained reference implementations, not ours:

- ``rouge_l``: ROUGE-L F1 (Lin 2004, "ROUGE: A Package for Automatic Evaluation of
  Summaries", section 3: longest common subsequence of words) from Google's
  ``rouge-score`` with its Porter stemmer, averaged over examples, in [0, 1];
- ``bleu``: corpus BLEU-4 (Papineni et al. 2002) from ``sacrebleu`` with its default
  ``13a`` tokenizer and exponential smoothing, over all examples at once, divided by 100
  to lie in [0, 1] like the others;
- ``exact_match``: the share of answers equal to their reference after SQuAD's
  normalisation (lower case, punctuation, articles and extra whitespace removed;
  Rajpurkar et al. 2016, the official evaluation script), in [0, 1].

These are what Hugging Face ``evaluate``'s ``rouge``, ``sacrebleu`` and
``exact_match`` metrics compute; ``evaluate`` itself loads each metric's code from the
Hub at run time, which a cluster without Hub access cannot do.
"""

from __future__ import annotations

import re
import string
from collections.abc import Sequence

#: The metrics :func:`score` returns, in the order they are shown.
METRICS = ("rouge_l", "bleu", "exact_match")


def normalize(text: str) -> str:
    """SQuAD's answer normalisation: lower case, no punctuation, no articles (a, an,
    the), single spaces."""
    text = "".join(ch for ch in text.lower() if ch not in set(string.punctuation))
    text = re.sub(r"\b(a|an|the)\b", " ", text)
    return " ".join(text.split())


def rouge_l(predictions: Sequence[str], references: Sequence[str]) -> float:
    """Mean ROUGE-L F1 of each prediction against its reference, in [0, 1]."""
    from rouge_score import rouge_scorer

    _check(predictions, references)
    scorer = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=True)
    scores = [scorer.score(ref, pred)["rougeL"].fmeasure
              for pred, ref in zip(predictions, references, strict=True)]
    return sum(scores) / len(scores)


def bleu(predictions: Sequence[str], references: Sequence[str]) -> float:
    """Corpus BLEU-4 of the predictions against one reference each, in [0, 1]."""
    import sacrebleu

    _check(predictions, references)
    return sacrebleu.corpus_bleu(list(predictions), [list(references)]).score / 100.0


def exact_match(predictions: Sequence[str], references: Sequence[str]) -> float:
    """Share of predictions equal to their reference after :func:`normalize`."""
    _check(predictions, references)
    hits = sum(normalize(p) == normalize(r)
               for p, r in zip(predictions, references, strict=True))
    return hits / len(predictions)


def score(predictions: Sequence[str], references: Sequence[str]) -> dict[str, float]:
    """Every metric of :data:`METRICS` over the same answers, by name.

    Raises:
        ValueError: no predictions, or not one reference per prediction.
    """
    return {"rouge_l": rouge_l(predictions, references), "bleu": bleu(predictions, references),
            "exact_match": exact_match(predictions, references)}


def _check(predictions: Sequence[str], references: Sequence[str]) -> None:
    if not predictions or len(predictions) != len(references):
        raise ValueError(f"{len(predictions)} predictions for {len(references)} references: "
                         "need one reference per prediction, at least one")
