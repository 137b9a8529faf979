"""Answer-vs-reference metrics: exact match, token F1, ROUGE-L and BLEU-4 (lesson 13).

ROUGE and BLEU are computed as ChatGLM3's ``finetune_demo/finetune_hf.py``
(``compute_metrics``) computes them, so numbers compare with that recipe (seed 001):
both texts are segmented into *words* with jieba (``jieba.cut``: Chinese into words,
English into words, spaces and punctuation as tokens of their own), ROUGE-L is the F score
of ``rouge_chinese.Rouge`` on the space-joined words, times 100, and BLEU-4 is nltk's
``sentence_bleu`` with ``SmoothingFunction().method3``, on a 0-1 scale.

Exact match and token F1 follow SQuAD's definitions (lower case, punctuation and spaces
removed), over the same jieba words, so they work for Chinese too.
"""

from __future__ import annotations

import string
import unicodedata
from statistics import mean

METRICS = ("exact_match", "token_f1", "rouge_l", "bleu_4")


def words(text: str) -> list[str]:
    """jieba's segmentation of ``text`` (what ChatGLM3's metrics compare)."""
    import logging

    import jieba

    jieba.setLogLevel(logging.WARNING)  # "Building prefix dict..." is noise in a lesson
    return list(jieba.cut(text))


def _is_punctuation(token: str) -> bool:
    return all(ch in string.punctuation or unicodedata.category(ch).startswith("P") for ch in token)


def normalized_words(text: str) -> list[str]:
    """Lower-cased words without spaces and punctuation (SQuAD-style normalisation)."""
    return [w.lower() for w in words(text) if w.strip() and not _is_punctuation(w.strip())]


def exact_match(prediction: str, reference: str) -> float:
    """1.0 when the normalised words are the same, else 0.0."""
    return float(normalized_words(prediction) == normalized_words(reference))


def token_f1(prediction: str, reference: str) -> float:
    """Harmonic mean of word precision and recall (words counted with multiplicity)."""
    from collections import Counter

    pred, ref = normalized_words(prediction), normalized_words(reference)
    if not pred or not ref:
        return float(pred == ref)
    common = sum((Counter(pred) & Counter(ref)).values())
    if common == 0:
        return 0.0
    precision, recall = common / len(pred), common / len(ref)
    return 2 * precision * recall / (precision + recall)


def rouge_l(prediction: str, reference: str) -> float:
    """ROUGE-L F score × 100, as ChatGLM3 computes it (rouge_chinese on jieba words)."""
    from rouge_chinese import Rouge

    pred, ref = " ".join(words(prediction.strip())), " ".join(words(reference.strip()))
    if not pred.strip() or not ref.strip():
        return 0.0  # rouge_chinese refuses empty texts; an empty answer matches nothing
    return round(Rouge().get_scores(pred, ref)[0]["rouge-l"]["f"] * 100, 4)


def bleu_4(prediction: str, reference: str) -> float:
    """Sentence BLEU-4 with smoothing method 3, as ChatGLM3 computes it (0-1)."""
    from nltk.translate.bleu_score import SmoothingFunction, sentence_bleu

    pred, ref = words(prediction.strip()), words(reference.strip())
    if not pred or not ref:
        return 0.0
    return float(sentence_bleu([ref], pred, smoothing_function=SmoothingFunction().method3))


def score(prediction: str, reference: str) -> dict[str, float]:
    """All four metrics of one answer against its reference."""
    return {"exact_match": exact_match(prediction, reference),
            "token_f1": token_f1(prediction, reference),
            "rouge_l": rouge_l(prediction, reference),
            "bleu_4": bleu_4(prediction, reference)}


def average(rows: list[dict[str, float]]) -> dict[str, float]:
    """Mean of each metric over rows (what ChatGLM3 reports: ``np.mean`` per metric)."""
    return {name: mean(row[name] for row in rows) for name in METRICS} if rows else {}
