"""Figures of lesson 01 (the VRAM calculator): stacked memory bars, estimate vs measurement."""

from __future__ import annotations

import matplotlib.pyplot as plt

from ..units import GIB

FIGSIZE, DPI = (6, 3.5), 80
COLOURS = {"weights": "tab:blue", "gradients": "tab:orange", "optimizer": "tab:green",
           "activations": "tab:red", "logits": "tab:purple", "amp_weight_copies": "tab:brown",
           "transient": "tab:pink", "overhead": "tab:gray", "kv_cache": "tab:olive",
           "ddp_buckets": "tab:cyan", "optimizer_scratch": "gold"}


def stacked_bars(estimates: dict, ax=None, cards_gb=(), title: str = "Memory per GPU"):
    """One stacked bar per labelled :class:`~ftkit.vram.Estimate`, components in GiB.

    ``cards_gb`` draws a dashed line at each card size (decimal GB, as sold).
    """
    if ax is None:
        fig, ax = plt.subplots(figsize=FIGSIZE, dpi=DPI)
    else:
        fig = ax.figure
    labels = list(estimates)
    components = [c for c in COLOURS if any(e.bytes.get(c, 0) for e in estimates.values())]
    bottoms = [0.0] * len(labels)
    for component in components:
        values = [estimates[k].bytes.get(component, 0) / GIB for k in labels]
        ax.bar(labels, values, bottom=bottoms, color=COLOURS[component], label=component)
        bottoms = [b + v for b, v in zip(bottoms, values)]
    for gb in cards_gb:
        ax.axhline(gb * 1e9 / GIB, color="black", ls="--", lw=0.8)
        ax.text(len(labels) - 0.5, gb * 1e9 / GIB, f"{gb} GB = {gb * 1e9 / GIB:.1f} GiB", va="bottom", ha="right", fontsize=8)
    ax.set_ylabel("GiB")
    ax.set_title(title)
    # The legend sits outside the axes, so it never covers a bar.
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    ax.tick_params(axis="x", labelsize=8, rotation=20)
    fig.tight_layout()
    return fig


def estimate_vs_measure(xs, estimated, measured, xlabel: str, title: str, ax=None, label: str = ""):
    """Estimated (line) and measured (dots) bytes against one setting, in MiB.

    Call it again on the same ``ax`` with another ``label`` to add a series in the next colour.
    """
    if ax is None:
        fig, ax = plt.subplots(figsize=FIGSIZE, dpi=DPI)
    else:
        fig = ax.figure
    colour = f"C{len(ax.lines) // 2}"
    prefix = f"{label}: " if label else ""
    ax.plot(xs, [v / 2**20 for v in estimated], "-", color=colour, label=f"{prefix}estimate")
    ax.plot(xs, [v / 2**20 for v in measured], "o", color=colour, label=f"{prefix}measured")
    ax.set_xlabel(xlabel)
    ax.set_ylabel("MiB")
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=7, loc="upper left")
    fig.tight_layout()
    return fig


METHOD_COLOURS = {"full": "tab:red", "freeze": "tab:orange", "lora": "tab:blue", "qlora": "tab:green",
                  "prefix": "tab:purple", "ptuning": "tab:brown", "prompt": "tab:pink",
                  "inference": "tab:gray"}


def predicted_vs_published(points, ax=None, title: str = "Predicted vs published peak memory"):
    """Scatter of ``(method, published_bytes, predicted_bytes)``: the diagonal, ±20% bands, by method."""
    if ax is None:
        fig, ax = plt.subplots(figsize=(5.5, 4.5), dpi=DPI)
    else:
        fig = ax.figure
    top = max(max(p[1], p[2]) for p in points) / GIB * 1.1
    line = [0, top]
    ax.plot(line, line, color="black", lw=0.8)
    ax.fill_between(line, [0, top * 0.8], [0, top * 1.2], color="grey", alpha=0.15, label="±20%")
    for method in sorted({p[0] for p in points}):
        sel = [p for p in points if p[0] == method]
        ax.scatter([p[1] / GIB for p in sel], [p[2] / GIB for p in sel], s=18,
                   color=METHOD_COLOURS.get(method, "black"), label=method)
    ax.set_xlim(0, top)
    ax.set_ylim(0, top)
    ax.set_xlabel("published (GiB)")
    ax.set_ylabel("predicted (GiB)")
    ax.set_title(title)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    fig.tight_layout()
    return fig
