"""Did the fine-tune work? Held-out loss, generation metrics, forgetting, stopping (lesson 13).

``evaluate(model, tokenizer, rows)`` scores a model on held-out data of any format
``ftkit.data.load`` reads:

- conversations: *answer loss* and perplexity on the assistant tokens only (the tokens
  training learned), then each answer generated (:mod:`.generation`) and scored against
  the reference (:mod:`.metrics`), with whether it stopped and how repetitive it is;
- preference pairs (``prompt``/``chosen``/``rejected``): DPO's implicit reward
  ``beta * (log p_model - log p_reference)`` of each answer, reward accuracy (chosen above
  rejected) and mean margin; the reference is the adapter switched off;
- plain text: perplexity.

With ``compare_base=True`` a peft model is scored twice, adapter off (base) and on (tuned),
and :func:`forgetting` compares both on general held-out text and general questions.
"""

from __future__ import annotations

import contextlib
import math
from dataclasses import dataclass, field
from pathlib import Path

from .. import data
from ..data import pad_to_longest, tokenize_messages
from ..infer import perplexity
from ..paths import REPO_ROOT
from . import metrics
from .generation import Decoding, generate_answers

IGNORE_INDEX = -100
HELDOUT_TEXT = "data/heldout_text.jsonl"
# General questions with a word any right answer contains: what fine-tuning should not break.
GENERAL_QUESTIONS = [
    ("What is the capital of France?", "Paris"),
    ("How many days are there in a week?", "seven|7"),
    ("What gas do plants take in from the air?", "carbon dioxide|co2"),
    ("What is the largest planet in our solar system?", "Jupiter"),
    ("What color is the sky on a clear day?", "blue"),
    ("What is the freezing point of water in degrees Celsius?", "0|zero"),
]


@dataclass
class EvalReport:
    """``summary``: one dict of metrics per model ("tuned", and "base" when compared);
    ``rows``: one dict per prompt, base and tuned side by side; ``decoding``: how answers
    were generated."""

    summary: dict
    rows: list[dict] = field(default_factory=list)
    decoding: dict = field(default_factory=dict)
    forgetting: dict | None = None

    def to_dict(self) -> dict:
        return {"summary": self.summary, "rows": self.rows, "decoding": self.decoding,
                "forgetting": self.forgetting}

    def table(self) -> str:
        """The summary as a small text table: one line per metric, one column per model."""
        names = list(self.summary)
        keys = [k for k in self.summary[names[0]] if isinstance(self.summary[names[0]][k], (int, float))]
        lines = [f"{'metric':<22}" + "".join(f"{n:>12}" for n in names)]
        for key in keys:
            lines.append(f"{key:<22}" + "".join(f"{_fmt(self.summary[n].get(key)):>12}" for n in names))
        return "\n".join(lines)


def _fmt(value) -> str:
    return "-" if value is None else f"{value:.4g}"


def model_modes(model, compare_base: bool):
    """``[(name, context)]``: the model as it is, and with its adapter off when asked."""
    modes = [("tuned", contextlib.nullcontext)]
    if compare_base:
        if not hasattr(model, "disable_adapter"):
            raise TypeError("compare_base needs a peft model (the base is its adapter switched off)")
        modes.insert(0, ("base", model.disable_adapter))
    return modes


def data_file(name) -> str:
    """A data file as given, or else inside the repository (so notebooks/ finds data/...)."""
    path = Path(name)
    return str(REPO_ROOT / path) if not path.exists() and (REPO_ROOT / path).exists() else str(path)


# ---------------------------------------------------------------- loss on answers
def _answer_log_probs(model, tokenizer, conversations, template=None, max_seq_length=512,
                      batch_size=8) -> list[tuple[float, int]]:
    """``(sum of log p, number of tokens)`` of the assistant tokens of each conversation."""
    import torch
    collate = pad_to_longest(tokenizer)  # as training batches
    examples = [tokenize_messages(c, tokenizer, template, max_seq_length) for c in conversations]
    out = []
    model.eval()
    with torch.no_grad():
        for first in range(0, len(examples), batch_size):
            chunk = examples[first:first + batch_size]
            batch = collate([{k: e[k] for k in ("input_ids", "attention_mask", "labels")} for e in chunk])
            batch = {k: v.to(model.device) for k, v in batch.items()}
            logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
            targets = batch["labels"][:, 1:]
            logp = torch.log_softmax(logits[:, :-1].float(), dim=-1)
            mask = targets != IGNORE_INDEX
            picked = logp.gather(-1, targets.clamp(min=0).unsqueeze(-1)).squeeze(-1) * mask
            out += [(float(s), int(n)) for s, n in zip(picked.sum(1), mask.sum(1))]
    return out


def answer_loss(model, tokenizer, conversations, template=None, max_seq_length=512) -> dict:
    """Mean loss per assistant token (what training minimises) and its perplexity."""
    scores = _answer_log_probs(model, tokenizer, conversations, template, max_seq_length)
    tokens = sum(n for _, n in scores)
    loss = -sum(s for s, _ in scores) / max(tokens, 1)
    return {"answer_loss": loss, "answer_perplexity": math.exp(loss), "answer_tokens": tokens}


# ---------------------------------------------------------------- preference pairs
def preference_rewards(model, tokenizer, rows, beta: float = 0.1, template=None,
                       max_seq_length=512) -> dict:
    """DPO's implicit rewards on held-out pairs: accuracy (chosen > rejected) and mean margin.

    A peft model is compared with itself adapter-off (the DPO reference); any other model
    is scored by its own log-probabilities (reward = beta * log p).
    """
    def conversations(key):
        return [list(r["prompt"]) + list(r[key]) for r in rows]

    def logps(convs):
        return [s for s, _ in _answer_log_probs(model, tokenizer, convs, template, max_seq_length)]

    chosen, rejected = logps(conversations("chosen")), logps(conversations("rejected"))
    if hasattr(model, "disable_adapter"):
        with model.disable_adapter():
            ref_c, ref_r = logps(conversations("chosen")), logps(conversations("rejected"))
    else:
        ref_c, ref_r = [0.0] * len(chosen), [0.0] * len(rejected)
    margins = [beta * ((c - rc) - (r - rr)) for c, rc, r, rr in zip(chosen, ref_c, rejected, ref_r)]
    return {"reward_accuracy": sum(m > 0 for m in margins) / len(margins),
            "reward_margin": sum(margins) / len(margins),
            "chosen_reward": beta * sum(c - rc for c, rc in zip(chosen, ref_c)) / len(chosen),
            "rejected_reward": beta * sum(r - rr for r, rr in zip(rejected, ref_r)) / len(rejected)}


# ---------------------------------------------------------------- generation
def repetition(token_ids, n: int = 3) -> float:
    """Share of an answer's n-grams (of tokens) that repeat an earlier one: 0 = none, →1 = a loop."""
    grams = [tuple(token_ids[i:i + n]) for i in range(len(token_ids) - n + 1)]
    return 1 - len(set(grams)) / len(grams) if grams else 0.0


def split_conversation(messages) -> tuple[list[dict], str]:
    """``(prompt messages, reference answer)``: everything before the last assistant turn."""
    last = max(i for i, m in enumerate(messages) if m["role"] == "assistant")
    return list(messages[:last]), messages[last]["content"]


def generation_scores(model, tokenizer, conversations, decoding: Decoding, template=None):
    """Per prompt: the answer, its metrics against the reference, stopped, repetition."""
    prompts, references = zip(*(split_conversation(c) for c in conversations))
    answers = generate_answers(model, tokenizer, list(prompts), decoding, template)
    rows = []
    for answer, reference in zip(answers, references):
        ids = answer.token_ids[:-1] if answer.stopped else answer.token_ids
        rows.append({"answer": answer.text, **metrics.score(answer.text, reference),
                     "stopped": answer.stopped, "repetition": repetition(ids),
                     "answer_tokens": answer.num_tokens})
    return list(references), rows


def summarize_generation(rows) -> dict:
    n = len(rows)
    return {**metrics.average(rows), "stop_rate": sum(r["stopped"] for r in rows) / n,
            "repetition": sum(r["repetition"] for r in rows) / n,
            "mean_answer_tokens": sum(r["answer_tokens"] for r in rows) / n}


# ---------------------------------------------------------------- forgetting
def general_answers(model, tokenizer, decoding: Decoding, template=None,
                    questions=GENERAL_QUESTIONS) -> list[dict]:
    """Answers to general questions, each checked for a word a right answer contains."""
    import re

    answers = generate_answers(model, tokenizer, [q for q, _ in questions], decoding, template)
    return [{"question": q, "answer": a.text, "stopped": a.stopped,
             "correct": bool(re.search(rf"\b({key})\b", a.text, re.I))}
            for (q, key), a in zip(questions, answers)]


def forgetting(model, tokenizer, compare_base: bool = True, decoding: Decoding | None = None,
               heldout_text=HELDOUT_TEXT, template=None) -> dict:
    """Perplexity on general held-out text (a JSONL file of ``text`` records, or the texts
    themselves) and general-question accuracy, base vs tuned."""
    decoding = decoding or Decoding(max_new_tokens=32)
    if isinstance(heldout_text, (str, Path)):
        texts = [r["text"] for r in data.load(data_file(heldout_text), verbose=False)]
    else:
        texts = list(heldout_text)
    result = {"perplexity": {}, "general_accuracy": {}, "general": []}
    by_model = {}
    for name, switch in model_modes(model, compare_base):
        with switch():
            result["perplexity"][name] = perplexity(model, tokenizer, texts)
            by_model[name] = general_answers(model, tokenizer, decoding, template)
        result["general_accuracy"][name] = sum(r["correct"] for r in by_model[name]) / len(by_model[name])
    for i, (question, _) in enumerate(GENERAL_QUESTIONS):
        result["general"].append({"question": question,
                                  **{name: rows[i]["answer"] for name, rows in by_model.items()}})
    return result


# ---------------------------------------------------------------- everything
def evaluate(model, tokenizer, rows, compare_base: bool = False, decoding: Decoding | None = None,
             generate: bool = True, with_forgetting: bool = False, template=None,
             max_seq_length: int = 512, heldout_text=HELDOUT_TEXT) -> EvalReport:
    """Score ``rows`` (a path, a datasets.Dataset or a list of canonical records); with
    ``with_forgetting`` also the general text ``heldout_text`` (see :func:`forgetting`)."""
    if isinstance(rows, (str, Path)):
        rows = data.load(data_file(rows), verbose=False)
    rows = list(rows)
    if not rows:
        raise ValueError("no held-out rows to evaluate")
    decoding = decoding or Decoding()
    kind = "preference" if "chosen" in rows[0] else "messages" if "messages" in rows[0] else "text"
    summary, per_prompt = {}, [{} for _ in rows]
    for name, switch in model_modes(model, compare_base):
        with switch():
            summary[name] = _score(kind, model, tokenizer, rows, decoding, generate, template,
                                   max_seq_length, per_prompt, name)
    report = EvalReport(summary, per_prompt, decoding.to_dict() if generate else {})
    if with_forgetting:
        report.forgetting = forgetting(model, tokenizer, compare_base, template=template,
                                       heldout_text=heldout_text)
    return report


def _score(kind, model, tokenizer, rows, decoding, generate, template, max_seq_length,
           per_prompt, name) -> dict:

    if kind == "preference":
        return preference_rewards(model, tokenizer, rows, template=template,
                                  max_seq_length=max_seq_length)
    if kind == "text":
        return {"perplexity": perplexity(model, tokenizer, [r["text"] for r in rows], max_seq_length)}
    conversations = [r["messages"] for r in rows]
    result = answer_loss(model, tokenizer, conversations, template, max_seq_length)
    if generate:
        references, scored = generation_scores(model, tokenizer, conversations, decoding, template)
        result.update(summarize_generation(scored))
        for row, conv, reference, score in zip(per_prompt, conversations, references, scored):
            row.setdefault("prompt", split_conversation(conv)[0][-1]["content"])
            row.setdefault("reference", reference)
            row[name] = score["answer"]
            row[f"{name}_scores"] = {k: v for k, v in score.items() if k != "answer"}
    return result
