"""Evaluation: did the fine-tune work? Taught in lesson 13 (``notebooks/13_evaluation.ipynb``).

Modules: ``metrics`` (exact match, token F1, ROUGE-L, BLEU-4 as ChatGLM3 computes them),
``generation`` (batched answers with left padding and a KV cache, stop detection),
``evaluate`` (answer loss, preference rewards, base vs tuned, forgetting, stopping,
repetition), ``run_doctor`` (what a training log says went wrong), ``findings``.

>>> from ftkit.eval import evaluate, Decoding
>>> report = evaluate(model, tokenizer, "data/heldout.jsonl", compare_base=True)
>>> print(report.table())
"""

from .evaluate import (
    GENERAL_QUESTIONS,
    EvalReport,
    answer_loss,
    evaluate,
    forgetting,
    general_answers,
    preference_rewards,
    repetition,
)
from .findings import Finding, format_findings
from .generation import Answer, Decoding, end_of_turn, generate_answers, stop_ids
from .metrics import bleu_4, exact_match, rouge_l, score, token_f1
from .run_doctor import best_eval_step, diagnose

__all__ = [
    "evaluate", "EvalReport", "answer_loss", "preference_rewards", "forgetting",
    "general_answers", "repetition", "GENERAL_QUESTIONS", "Decoding", "Answer",
    "generate_answers", "end_of_turn", "stop_ids", "exact_match", "token_f1", "rouge_l",
    "bleu_4", "score", "diagnose", "best_eval_step", "Finding", "format_findings",
]
