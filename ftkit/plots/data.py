"""Data figures for lesson 02: the loss mask token by token, and token-length histograms."""

from __future__ import annotations

import html

IGNORE_INDEX = -100
LEARNED, MASKED = "#b7e4b0", "#e6e6e6"  # green: the loss learns it; grey: label -100


def _pieces(tokenizer, example: dict) -> list[tuple[str, bool]]:
    ids, labels = example["input_ids"], example["labels"]
    return [(tokenizer.decode([i]), label != IGNORE_INDEX) for i, label in zip(ids, labels)]


def mask_text(tokenizer, example: dict) -> str:
    """The example as text with learned runs in ``[[...]]`` (for terminals and asserts)."""
    out, inside = [], False
    for piece, learned in _pieces(tokenizer, example):
        if learned != inside:
            out.append("[[" if learned else "]]")
            inside = learned
        out.append(piece)
    if inside:
        out.append("]]")
    return "".join(out)


def mask_html(tokenizer, example: dict) -> str:
    """One coloured box per token: green tokens are learned, grey ones masked (-100)."""
    boxes = []
    for piece, learned in _pieces(tokenizer, example):
        text = html.escape(piece).replace("\n", "↵<br>") or "&nbsp;"
        boxes.append(f'<span style="background:{LEARNED if learned else MASKED};'
                     f'border:1px solid #fff;padding:1px 2px;font-family:monospace">{text}</span>')
    legend = (f'<div style="margin-bottom:4px"><span style="background:{LEARNED}">learned</span> '
              f'<span style="background:{MASKED}">masked (-100)</span></div>')
    return legend + '<div style="line-height:1.9">' + "".join(boxes) + "</div>"


def length_histogram(lengths: list[int], max_seq_length: int | None = None, title: str = ""):
    """A histogram of token lengths with the chosen ``max_seq_length`` as a red line."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.5), dpi=80)
    ax.hist(lengths, bins=min(30, max(5, len(set(lengths)))), color="#4c72b0")
    if max_seq_length:
        cut = sum(n > max_seq_length for n in lengths)
        ax.axvline(max_seq_length, color="red", linestyle="--",
                   label=f"max_seq_length={max_seq_length} ({cut} truncated)")
        ax.legend(loc="upper right")
    ax.set_xlabel("tokens per example")
    ax.set_ylabel("examples")
    ax.set_title(title or f"{len(lengths)} examples")
    fig.tight_layout()
    return fig
