"""The loss mask, token by token, as ``ftkit data inspect`` shows it (lesson 02).

Each token is learned (its label is its id), masked because it is context (the template,
system and user turns: label -100), or masked because its answer was marked not to be
learned (``weight: 0``, ChatGLM3's ``loss: false``). Text shows the first as ``[[...]]``
and the last as ``{{...}}``; a terminal shows them green and red.
"""

from __future__ import annotations

from .tokenize import IGNORE_INDEX

LEARNED, WEIGHT0, MASKED = "learned", "weight 0", "masked"
MARKS = {LEARNED: ("[[", "]]"), WEIGHT0: ("{{", "}}")}
COLOURS = {LEARNED: ("\x1b[30;42m", "\x1b[0m"), WEIGHT0: ("\x1b[30;41m", "\x1b[0m")}


def token_states(example: dict, unweighted: dict | None = None) -> list[str]:
    """One state per token. ``unweighted`` is the same conversation tokenized with its
    weights removed: a token it learns that ``example`` masks belongs to a weight-0 answer."""
    learned = [label != IGNORE_INDEX for label in example["labels"]]
    would = ([label != IGNORE_INDEX for label in unweighted["labels"]]
             if unweighted is not None and unweighted["input_ids"] == example["input_ids"]
             else learned)
    return [LEARNED if on else WEIGHT0 if could else MASKED for on, could in zip(learned, would)]


def legend(colour: bool = False) -> str:
    marks = COLOURS if colour else MARKS
    return (f"{marks[LEARNED][0]}learned{marks[LEARNED][1]}  "
            f"{marks[WEIGHT0][0]}weight 0: context, not learned{marks[WEIGHT0][1]}  "
            "the rest masked (-100)")


def show_mask(tokenizer, example: dict, unweighted: dict | None = None, colour: bool = False) -> str:
    """The example as text with its learned and weight-0 runs marked (or coloured)."""
    marks = COLOURS if colour else MARKS
    out, current = [], MASKED
    for token, state in zip(example["input_ids"], token_states(example, unweighted)):
        if state != current:
            if current in marks:
                out.append(marks[current][1])
            if state in marks:
                out.append(marks[state][0])
            current = state
        out.append(tokenizer.decode([token]))
    if current in marks:
        out.append(marks[current][1])
    return "".join(out)
