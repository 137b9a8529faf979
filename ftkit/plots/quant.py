"""Figures of lesson 10 (quantization): code books, error by method, size vs perplexity."""

from __future__ import annotations

import matplotlib.pyplot as plt

FIGSIZE, DPI = (6, 3.5), 80


def plot_codebooks(scaled_weights, codes: dict):
    """Histogram of block-scaled weights in [-1, 1] with each code book's levels marked."""
    fig, ax = plt.subplots(figsize=FIGSIZE, dpi=DPI)
    ax.hist(scaled_weights.flatten().numpy(), bins=120, color="0.75", density=True)
    colours = ["tab:blue", "tab:orange", "tab:green"]
    for (name, code), colour in zip(codes.items(), colours):
        for i, level in enumerate(sorted(set(code.tolist()))):
            ax.axvline(level, color=colour, lw=1, alpha=0.8, label=name if i == 0 else None)
    ax.set_xlabel("weight / block absmax")
    ax.set_ylabel("density")
    ax.set_title("Where the 16 levels sit: NF4 follows the weights")
    ax.legend(loc="upper right")
    fig.tight_layout()
    return fig


def plot_quant_errors(rows: list[dict]):
    """Bar chart of signal-to-noise ratio (dB) per quantizer; rows have 'method' and 'snr_db'."""
    fig, ax = plt.subplots(figsize=FIGSIZE, dpi=DPI)
    names = [row["method"] for row in rows]
    ax.barh(names, [row["snr_db"] for row in rows], color="tab:blue")
    ax.invert_yaxis()
    ax.set_xlabel("signal-to-noise ratio (dB, higher is better)")
    ax.set_title("Round-trip error on one weight matrix")
    fig.tight_layout()
    return fig


def plot_size_vs_perplexity(rows: list[dict]):
    """Each model variant as a point: memory (MB, scales included) against perplexity."""
    fig, ax = plt.subplots(figsize=FIGSIZE, dpi=DPI)
    for row in rows:
        size = row["bytes_counted"] / 1e6
        ax.scatter(size, row["perplexity"], color="tab:red")
        ax.annotate(row["variant"], (size, row["perplexity"]), textcoords="offset points",
                    xytext=(4, 4), fontsize=8)
    ax.set_xlabel("memory of the model (MB)")
    ax.set_ylabel("perplexity on held-out text")
    ax.set_title("Smaller models, slightly worse")
    fig.tight_layout()
    return fig


def plot_pruning(amounts, perplexities):
    """Perplexity against the fraction of MLP weights pruned."""
    fig, ax = plt.subplots(figsize=FIGSIZE, dpi=DPI)
    ax.plot([100 * a for a in amounts], perplexities, marker="o")
    ax.set_xlabel("MLP weights set to zero (%)")
    ax.set_ylabel("perplexity")
    ax.set_title("Magnitude pruning")
    fig.tight_layout()
    return fig
