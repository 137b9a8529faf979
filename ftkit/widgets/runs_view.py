"""The runs view: loss curves of every run so far, overlaid, with the settings that differ.

Runs with held-out data (``val_file`` or ``val_size``) log an evaluation loss too; it is drawn
dashed in each run's colour, and the best run is chosen by it (a training loss rewards
memorising). Without evaluation the best run is the one with the lowest final training loss.

Taught in lesson 11. A :class:`Run` is filled during training by the Trainer callback from
:func:`recorder` (the training panel adds one to every run), or read back afterwards from a
run's ``trainer_state.json`` with :meth:`Run.from_output_dir`.
"""

from __future__ import annotations

import html
import io
import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import ipywidgets as widgets

from ..config import RunConfig
from .panel import Panel

# Settings worth a column even when every run shares them.
ALWAYS_SHOWN = ("method", "learning_rate", "lora_rank")


@dataclass
class Run:
    """One training run: its name, config, logged training losses and evaluation losses."""

    name: str
    config: RunConfig
    steps: list[int] = field(default_factory=list)
    losses: list[float] = field(default_factory=list)
    learning_rates: list[float] = field(default_factory=list)  # logged with each loss
    eval_steps: list[int] = field(default_factory=list)
    eval_losses: list[float] = field(default_factory=list)  # on the held-out rows
    summary: dict = field(default_factory=dict)  # run_summary.json of a finished run
    seconds: float | None = None
    status: str = "running"  # running | done | failed

    @property
    def final_loss(self) -> float | None:
        """Mean of the last three logged losses: one noisy step does not pick the winner."""
        tail = self.losses[-3:]
        return sum(tail) / len(tail) if tail else None

    @property
    def eval_loss(self) -> float | None:
        """The final model's held-out loss (the summary's final evaluation), else the last logged."""
        final = self.summary.get("eval_loss")
        if final is not None:
            return float(final)
        return self.eval_losses[-1] if self.eval_losses else None

    @property
    def output_dir(self) -> Path:
        return Path(self.config.output_dir)

    @classmethod
    def from_output_dir(cls, folder, name: str | None = None, config: RunConfig | None = None) -> "Run":
        """A finished run read back from the ``trainer_state.json`` a Trainer saved."""
        folder = Path(folder)
        states = sorted(folder.glob("**/trainer_state.json"), key=lambda p: p.stat().st_mtime)
        if not states:
            from ..errors import FtkitError

            raise FtkitError(f"{folder} holds no trainer_state.json: not a finished training run")
        log = json.loads(states[-1].read_text())["log_history"]
        rows = [entry for entry in log if "loss" in entry]
        evals = [entry for entry in log if "eval_loss" in entry]
        return cls(name or folder.name, config or RunConfig(output_dir=str(folder)),
                   [r["step"] for r in rows], [r["loss"] for r in rows],
                   [r["learning_rate"] for r in rows if "learning_rate" in r],
                   eval_steps=[r["step"] for r in evals], eval_losses=[r["eval_loss"] for r in evals],
                   status="done")


def recorder(run: Run, on_update=None, progress: widgets.IntProgress | None = None):
    """A ``transformers.TrainerCallback`` that logs losses into ``run`` and moves ``progress``.

    ``on_update(run)`` is called after every logged loss (the panel redraws its plot there).
    Built lazily: importing this module must not import transformers.
    """
    from transformers import TrainerCallback

    class RunRecorder(TrainerCallback):
        def on_train_begin(self, args, state, control, **kwargs):
            if progress is not None:
                progress.max, progress.value = max(state.max_steps, 1), 0

        def on_step_end(self, args, state, control, **kwargs):
            if progress is not None:
                progress.value = state.global_step

        def on_log(self, args, state, control, logs=None, **kwargs):
            logs = logs or {}
            if "eval_loss" in logs:
                run.eval_steps.append(state.global_step)
                run.eval_losses.append(float(logs["eval_loss"]))
            if "loss" in logs:
                run.steps.append(state.global_step)
                run.losses.append(float(logs["loss"]))
                if "learning_rate" in logs:
                    run.learning_rates.append(float(logs["learning_rate"]))
            if on_update is not None and logs.keys() & {"loss", "eval_loss"}:
                on_update(run)

    return RunRecorder()


def loss_figure(runs, title: str = "training loss", ax=None):
    """A matplotlib figure with one loss curve per run, labelled with its name; each run's
    evaluation loss dashed, in the same colour."""
    import matplotlib.pyplot as plt

    if ax is None:
        fig, ax = plt.subplots(figsize=(6, 3.5), dpi=80)
    else:
        fig = ax.figure
    for run in runs:
        if run.losses:
            line, = ax.plot(run.steps, run.losses, marker=".", label=run.name)
            if run.eval_losses:
                ax.plot(run.eval_steps, run.eval_losses, "o--", color=line.get_color(),
                        label=f"{run.name} eval")
    ax.set_xlabel("step")
    ax.set_ylabel("loss")
    ax.set_title(title)
    if any(run.losses for run in runs):
        ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def differing_keys(runs) -> list[str]:
    """The config keys whose values are not the same in every run (output_dir aside)."""
    dicts = [run.config.to_dict() for run in runs]
    keys = [k for k in dicts[0] if k not in ("output_dir", "dialect", "kept")] if dicts else []
    varying = [k for k in keys if len({json.dumps(d[k], sort_keys=True) for d in dicts}) > 1]
    return list(dict.fromkeys([*ALWAYS_SHOWN, *varying]))


def best_run(runs) -> tuple[Run | None, str]:
    """The best finished run and the measure that chose it: the held-out loss when every
    finished run has one, else the final training loss."""
    done = [r for r in runs if r.status == "done" and r.final_loss is not None]
    if done and all(r.eval_loss is not None for r in done):
        return min(done, key=lambda r: r.eval_loss), "eval loss"
    return min(done, key=lambda r: r.final_loss, default=None), "final training loss"


def _number(value: float | None) -> str:
    return f"{value:.3f}" if value is not None else "-"


def settings_table(runs) -> str:
    """An HTML table: run, status, final and eval loss, and the settings that tell the runs
    apart; the best run starred."""
    if not runs:
        return "<i>no runs yet: press Train</i>"
    keys = differing_keys(runs)
    best, _ = best_run(runs)
    head = "".join(f"<th>{html.escape(k)}</th>" for k in ["run", "status", "final loss", "eval loss", *keys])
    rows = []
    for run in runs:
        cells = [run.name + (" ★" if run is best else ""), run.status, _number(run.final_loss),
                 _number(run.eval_loss)]
        cells += [getattr(run.config, k) for k in keys]
        rows.append("<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in cells) + "</tr>")
    return (f"<table class='ftkit-runs-table'><thead><tr>{head}</tr></thead>"
            f"<tbody>{''.join(rows)}</tbody></table>")


def evaluation_table(summary: dict) -> str:
    """An HTML table of a finished run's evaluation (its ``run_summary.json``): the final
    held-out loss and perplexity, the best evaluation and whether training stopped early,
    then what the run doctor found. Empty when the run evaluated nothing."""
    final = summary.get("eval_loss")
    findings = summary.get("doctor") or []
    if final is None and not findings:
        return ""
    rows = []
    if final is not None:
        rows += [("eval loss (final model)", f"{final:.4f}"),
                 ("perplexity on the held-out rows", f"{math.exp(min(final, 50)):.2f}")]
        if summary.get("best_step") is not None:
            rows.append(("best eval", f"{summary['best_metric']:.4f} at step {summary['best_step']}"))
        rows.append(("stopped early", "yes" if summary.get("stopped_early") else "no"))
    rows += [(f"doctor: {f['code']} ({f['severity']})", f"{f['message']} What to try: {f['advice']}")
             for f in findings]
    if not findings:
        rows.append(("doctor", "no problem found"))
    body = "".join(f"<tr><th>{html.escape(k)}</th><td>{html.escape(v)}</td></tr>" for k, v in rows)
    return f"<table class='ftkit-evaluation-table'><tbody>{body}</tbody></table>"


class RunsView(Panel):
    """A widget overlaying the loss curves of ``runs``; call :meth:`refresh` after a change."""

    def __init__(self, runs=None):
        self.runs: list[Run] = list(runs or [])
        self.plot = widgets.Image(format="png")
        self.table = widgets.HTML()
        self.widget = widgets.VBox([widgets.HTML("<b>Runs</b>"), self.plot, self.table])
        self.widget.add_class("ftkit-runs-view")
        self.refresh()

    def add(self, run: Run) -> Run:
        self.runs.append(run)
        self.refresh()
        return run

    def best(self) -> Run | None:
        """The finished run with the lowest eval loss (or final training loss: :func:`best_run`)."""
        return best_run(self.runs)[0]

    def figure(self, title: str = "training loss of every run"):
        return loss_figure(self.runs, title)

    def refresh(self) -> None:
        import matplotlib.pyplot as plt

        self.table.value = settings_table(self.runs)
        if any(run.losses for run in self.runs):
            # A PNG in an Image widget: shows the same in a browser, in nbval and in a test.
            fig, buffer = self.figure(), io.BytesIO()
            fig.savefig(buffer, format="png")
            plt.close(fig)
            self.plot.value = buffer.getvalue()
            self.plot.layout.display = None
        else:
            self.plot.layout.display = "none"
