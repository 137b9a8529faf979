"""Training figures: loss curves (one run or several) and learning-rate schedules.

Taught in lessons 03 (schedules, warmup), 04-07 (loss curves of each method). Every
function takes an ``ax`` to draw into, or makes a small figure (6 x 3.5 in, dpi 80) so
notebooks stay light; each returns the matplotlib ``Figure``.
"""

from __future__ import annotations

FIGSIZE, DPI = (6, 3.5), 80


def new_figure(figsize=FIGSIZE, dpi=DPI):
    """A figure outside pyplot (a notebook shows it once, as the cell's result, not twice)."""
    from matplotlib.figure import Figure

    _png_in_notebooks(Figure)
    return Figure(figsize=figsize, dpi=dpi)


def _png_in_notebooks(figure_type) -> None:
    """Let IPython draw a bare ``Figure`` as a PNG. The inline backend registers this only once
    pyplot has made a figure, so without it a lesson's figure shows as ``<Figure size ...>``."""
    try:
        from IPython import get_ipython
    except ImportError:
        return
    shell = get_ipython()
    if shell is None:
        return
    png = shell.display_formatter.formatters["image/png"]
    try:
        png.lookup_by_type(figure_type)
    except KeyError:
        from IPython.core.pylabtools import print_figure

        png.for_type(figure_type, lambda fig: print_figure(fig, fmt="png", base64=True))


def _figure(ax=None):
    if ax is not None:
        return ax.figure, ax
    fig = new_figure()
    return fig, fig.add_subplot()


def _finish(fig, ax, legend: bool = True, **labels):
    """Axis labels and title, a light grid, the legend; the figure fitted to its contents."""
    ax.set(**labels)
    ax.grid(alpha=0.3)
    if legend:
        ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def history_of(run) -> list[dict]:
    """A Trainer ``log_history`` from a RunResult, a Trainer, a TrainerState or the list itself."""
    if isinstance(run, list):
        return run
    if hasattr(run, "log_history"):  # RunResult, TrainerState
        return run.log_history
    if hasattr(run, "state"):  # Trainer
        return run.state.log_history
    return list(run)


def series(log_history, key: str = "loss") -> tuple[list[int], list[float]]:
    """``(steps, values)`` of one logged quantity (loss, eval_loss, learning_rate, grad_norm)."""
    rows = [(r["step"], r[key]) for r in history_of(log_history) if key in r]
    return [s for s, _ in rows], [v for _, v in rows]


def loss_curve(run, ax=None, label: str | None = None, title: str = "training loss"):
    """Training loss against step, with the evaluation loss as points when there is one."""
    fig, ax = _figure(ax)
    steps, losses = series(run, "loss")
    line, = ax.plot(steps, losses, marker="." if len(steps) < 30 else None,
                    label=label or "train")
    eval_steps, eval_losses = series(run, "eval_loss")
    if eval_steps:
        ax.plot(eval_steps, eval_losses, "o--", color=line.get_color(),
                label=f"{label} eval" if label else "eval")
    return _finish(fig, ax, xlabel="step", ylabel="loss", title=title)


def compare_losses(runs: dict, ax=None, title: str = "training loss"):
    """One loss curve per labelled run: ``compare_losses({"lora": r1, "full": r2})``."""
    fig, ax = _figure(ax)
    for label, run in runs.items():
        loss_curve(run, ax=ax, label=label, title=title)
    return fig


def save_loss_plot(run, path) -> str:
    """Write the loss curve as a PNG (LLaMA-Factory's ``plot_loss``); return the path."""
    fig = loss_curve(run)
    fig.savefig(path, dpi=DPI)
    return str(path)


def lr_schedule(scheduler_type: str = "linear", steps: int = 100, warmup_steps: int = 0,
                learning_rate: float = 2e-4, **scheduler_kwargs) -> list[float]:
    """The learning rate at each optimizer step, from transformers' own scheduler."""
    import torch
    from transformers import get_scheduler

    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=learning_rate)
    scheduler = get_scheduler(scheduler_type, optimizer, num_warmup_steps=warmup_steps,
                              num_training_steps=steps, scheduler_specific_kwargs=scheduler_kwargs)
    rates = []
    for _ in range(steps):
        rates.append(scheduler.get_last_lr()[0])
        optimizer.step()
        scheduler.step()
    return rates


def lr_schedules(scheduler_types=("constant", "constant_with_warmup", "linear", "cosine"),
                 steps: int = 100, warmup_steps: int = 10, learning_rate: float = 2e-4, ax=None):
    """The named schedulers on one plot, all with the same warmup."""
    fig, ax = _figure(ax)
    for name in scheduler_types:
        warmup = 0 if name == "constant" else warmup_steps  # plain constant takes no warmup
        ax.plot(lr_schedule(name, steps, warmup, learning_rate), label=name)
    return _finish(fig, ax, xlabel="optimizer step", ylabel="learning rate",
                   title=f"schedules, warmup {warmup_steps} steps")
