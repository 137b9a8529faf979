"""Figures of lesson 01 (the VRAM calculator): stacked memory bars, estimate vs measurement."""

from __future__ import annotations

import matplotlib.pyplot as plt

FIGSIZE, DPI = (6, 3.5), 80
GIB = 1024**3
COLOURS = {"weights": "tab:blue", "gradients": "tab:orange", "optimizer": "tab:green",
           "activations": "tab:red", "logits": "tab:purple", "amp_weight_copies": "tab:brown",
           "transient": "tab:pink", "overhead": "tab:gray", "kv_cache": "tab:olive",
           "ddp_buckets": "tab:cyan"}


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
        ax.text(len(labels) - 0.5, gb * 1e9 / GIB, f"{gb} GB", va="bottom", ha="right", fontsize=8)
    ax.set_ylabel("GiB")
    ax.set_title(title)
    ax.legend(fontsize=7, loc="upper left")
    ax.tick_params(axis="x", labelsize=8, rotation=20)
    fig.tight_layout()
    return fig


def estimate_vs_measure(xs, estimated, measured, xlabel: str, title: str, ax=None):
    """Estimated (line) and measured (dots) bytes against one setting, in MiB."""
    if ax is None:
        fig, ax = plt.subplots(figsize=FIGSIZE, dpi=DPI)
    else:
        fig = ax.figure
    ax.plot(xs, [v / 2**20 for v in estimated], "-", color="tab:blue", label="estimate")
    ax.plot(xs, [v / 2**20 for v in measured], "o", color="tab:red", label="measured")
    ax.set_xlabel(xlabel)
    ax.set_ylabel("MiB")
    ax.set_title(title)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig
