"""The run doctor: what a training log says went wrong, in plain words (lesson 13).

``diagnose(log_history)`` reads Trainer's ``state.log_history`` (the rows ``{"loss",
"grad_norm", "learning_rate", "step"}`` and ``{"eval_loss", "step"}`` it logs, also saved
in ``trainer_state.json``) and returns :class:`~ftkit.eval.findings.Finding` objects for:
a loss that is NaN or infinite, loss spikes, a loss that does not fall (plateau) or
climbs (divergence), gradient norms out of range, and eval loss rising while train loss
falls (overfitting, with the step where early stopping would have stopped). A pure
function: no model, no files, so it runs on any finished or half-finished run.
"""

from __future__ import annotations

import math
from statistics import median

from .findings import Finding


def _series(history, key) -> list[tuple[int, float]]:
    return [(int(row.get("step", i)), float(row[key])) for i, row in enumerate(history)
            if key in row and row[key] is not None]


def _finite(points):
    return [(s, v) for s, v in points if math.isfinite(v)]


def check_nan(losses, grad_norms) -> list[Finding]:
    bad = [(s, v) for s, v in losses + grad_norms if not math.isfinite(v)]
    if not bad:
        return []
    step = min(s for s, _ in bad)
    return [Finding(
        "nan", "error",
        f"the loss or gradient norm became {bad[0][1]} at step {step}: from then on the "
        "weights are garbage and nothing more is learned",
        "lower the learning rate (10x); keep gradient clipping on (max_grad_norm: 1.0); "
        "use bf16 rather than fp16 (fp16 overflows above 65504); check the data for "
        "examples without any learned token")]


def check_spikes(losses, factor: float = 1.8, window: int = 5) -> list[Finding]:
    """A loss more than ``factor`` times the median of the ``window`` losses before it."""
    losses = _finite(losses)
    spikes = []
    for i in range(3, len(losses)):
        before = median(v for _, v in losses[max(0, i - window):i])
        if before > 0 and losses[i][1] > factor * before:
            spikes.append((losses[i][0], losses[i][1], before))
    if not spikes:
        return []
    step, value, before = spikes[0]
    return [Finding(
        "spike", "warning",
        f"{len(spikes)} loss spike(s); the first at step {step}: {value:.3g} after a typical "
        f"{before:.3g}. A step that large undoes part of what was learned",
        "lower the learning rate or add warmup (warmup_ratio: 0.1); raise the batch "
        "(gradient_accumulation_steps) so one odd batch weighs less; keep max_grad_norm at 1.0")]


def check_trend(losses, min_drop: float = 0.02, rise: float = 1.3) -> list[Finding]:
    """Compare the mean loss of the first third of the run with the last third."""
    losses = _finite(losses)
    if len(losses) < 6:
        return []
    third = len(losses) // 3
    first = sum(v for _, v in losses[:third]) / third
    last = sum(v for _, v in losses[-third:]) / third
    if last > rise * first:
        return [Finding(
            "diverging", "error",
            f"the training loss climbs: {first:.3g} early on, {last:.3g} at the end",
            "the learning rate is too high for this model and method: divide it by 10; "
            "add warmup; check max_grad_norm is set (1.0)")]
    if first - last < min_drop * abs(first):
        return [Finding(
            "plateau", "warning",
            f"the training loss does not fall: {first:.3g} early on, {last:.3g} at the end "
            f"(less than {min_drop:.0%} lower)",
            "raise the learning rate (LoRA usually wants 1e-4 to 1e-3); check that some "
            "parameters are trainable and that labels are not all -100; train longer")]
    return []


def check_grad_norms(grad_norms, high: float = 100.0, low: float = 1e-8) -> list[Finding]:
    norms = _finite(grad_norms)
    if not norms:
        return []
    findings = []
    big = [(s, v) for s, v in norms if v > high]
    if big:
        findings.append(Finding(
            "grad_norm_high", "warning",
            f"gradient norm above {high:g} at {len(big)} step(s) (largest {max(v for _, v in big):.3g} "
            f"at step {max(big, key=lambda p: p[1])[0]}): updates that large jump across the loss "
            "surface",
            "lower the learning rate; keep max_grad_norm: 1.0 (clipping); add warmup"))
    if all(v < low for _, v in norms):
        findings.append(Finding(
            "grad_norm_zero", "error",
            "the gradient norm is zero at every step: no parameter learns",
            "check that the method left parameters trainable and that the labels are not "
            "all -100 (an answer cut away by max_seq_length teaches nothing)"))
    return findings


def check_overfitting(losses, evals, tolerance: float = 0.02) -> list[Finding]:
    """Eval loss at the end above its best by more than ``tolerance`` while train loss fell."""
    evals = _finite(evals)
    if len(evals) < 3:
        return []
    best_step, best = min(evals, key=lambda p: p[1])
    last_step, last = evals[-1]
    if best_step == last_step or last <= best * (1 + tolerance):
        return []
    train = _finite(losses)
    at_best = [v for s, v in train if s <= best_step]
    after = [v for s, v in train if s > best_step]
    if at_best and after and min(after) >= at_best[-1]:
        return []  # train loss did not fall either: not overfitting
    return [Finding(
        "overfitting", "warning",
        f"eval loss was lowest at step {best_step} ({best:.3g}) and rose to {last:.3g} by step "
        f"{last_step} while the training loss kept falling: the model memorises the training "
        f"set. Early stopping would have stopped at step {best_step}",
        "train fewer epochs, or keep the best checkpoint (load_best_model_at_end with "
        "metric_for_best_model: eval_loss, early_stopping_patience); add data; raise "
        "lora_dropout or weight_decay; lower the learning rate")]


def diagnose(log_history: list[dict], grad_norm_high: float = 100.0) -> list[Finding]:
    """Every finding about a run, from its Trainer log history (a list of dicts)."""
    losses = _series(log_history, "loss")
    grad_norms = _series(log_history, "grad_norm")
    evals = _series(log_history, "eval_loss")
    findings = check_nan(losses, grad_norms)
    findings += check_spikes(losses)
    findings += check_trend(losses)
    findings += check_grad_norms(grad_norms, high=grad_norm_high)
    findings += check_overfitting(losses, evals)
    return findings


def best_eval_step(log_history: list[dict]) -> int | None:
    """The step with the lowest eval loss: where early stopping keeps its checkpoint."""
    evals = _finite(_series(log_history, "eval_loss"))
    return min(evals, key=lambda p: p[1])[0] if evals else None
