"""Preference-alignment figures: DPO's implicit rewards, their margin and accuracy.

Taught in lesson 08 (``notebooks/08_dpo.ipynb``). TRL logs, every ``logging_steps``,
``rewards/chosen`` and ``rewards/rejected`` (beta times the policy-vs-reference
log-probability ratio of each answer), their difference ``rewards/margins`` and
``rewards/accuracies`` (the share of pairs whose chosen answer out-scores the rejected one).
Also the per-task losses of a multi-task run (lesson 09).
"""

from __future__ import annotations

from .training import _figure, _finish, history_of, new_figure, series


def rewards_curves(run, title: str = "DPO rewards"):
    """Two panels: chosen / rejected rewards and their margin; reward accuracy on the right."""
    fig = new_figure(figsize=(8, 3.5))
    left, right = fig.subplots(1, 2)
    for key, label in (("rewards/chosen", "chosen"), ("rewards/rejected", "rejected"),
                       ("rewards/margins", "margin")):
        steps, values = series(run, key)
        left.plot(steps, values, marker=".", label=label, linestyle="--" if label == "margin" else "-")
    left.axhline(0, color="grey", linewidth=0.8)
    left.set(xlabel="step", ylabel="beta * log(pi / ref)", title=title)
    left.legend(fontsize=8)
    left.grid(alpha=0.3)
    steps, values = series(run, "rewards/accuracies")
    right.plot(steps, values, marker=".", color="tab:green")
    right.set(xlabel="step", ylabel="share of pairs", title="reward accuracy", ylim=(-0.05, 1.05))
    right.grid(alpha=0.3)
    fig.tight_layout()
    return fig


def save_rewards_plot(run, path) -> str:
    rows = history_of(run)
    if not any("rewards/margins" in row for row in rows):
        return ""
    rewards_curves(rows).savefig(path)
    return str(path)


def margins_before_after(before: list[float], after: list[float], ax=None,
                         title: str = "log pi(chosen) - log pi(rejected), per pair"):
    """Each pair's log-probability margin before and after training, sorted by 'before'."""
    fig, ax = _figure(ax)
    order = sorted(range(len(before)), key=lambda i: before[i])
    ax.plot([before[i] for i in order], "o", label="before", alpha=0.7)
    ax.plot([after[i] for i in order], "o", label="after", alpha=0.7)
    ax.axhline(0, color="grey", linewidth=0.8)
    return _finish(fig, ax, xlabel="pair (sorted by margin before)", ylabel="nats", title=title)


def task_losses(runs: dict, ax=None, title: str = "loss per task"):
    """Grouped bars: ``{run label: {task: loss}}``, one group per task."""
    fig, ax = _figure(ax)
    labels = list(runs)
    tasks = sorted({t for losses in runs.values() for t in losses})
    width = 0.8 / max(len(labels), 1)
    for i, label in enumerate(labels):
        xs = [j + i * width for j in range(len(tasks))]
        ax.bar(xs, [runs[label].get(t, float("nan")) for t in tasks], width, label=label)
    ax.set_xticks([j + width * (len(labels) - 1) / 2 for j in range(len(tasks))], tasks)
    ax.set(ylabel="mean token loss", title=title)
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3, axis="y")
    fig.tight_layout()
    return fig
