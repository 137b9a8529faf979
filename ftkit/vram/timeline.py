"""The live memory of one training step, phase by phase: the peak is the largest moment.

Taught in lesson 01. The components of an estimate are never all alive at once
(``zero_grad(set_to_none=True)`` leaves no gradient during forward; backward frees each
layer's saved tensors as it allocates that layer's gradients; the float32 logits live only
around the loss). With ``W`` weights, ``O`` optimizer states (alive from the first step on),
``A`` saved activations, ``L`` the loss's saved tensor, ``C`` autocast's 16-bit weight copies
and ``G`` gradients:

* ``forward``: W + O + A + L + C + the logits and their float32 copy at the loss;
* ``backward_start``: W + O + A + L + C + the float32 gradients of the logits (+ the head's
  gradient when it trains);
* ``backward_recompute`` (gradient checkpointing): W + O + the checkpoints + one recomputed
  layer + G (as gradients fill in);
* ``backward_end``: W + O + G: every activation is freed;
* ``optimizer``: W + O + G + the step's scratch (AdamW's ``foreach`` path: one temporary the
  size of all trainable parameters).

DDP's gradient buckets (a flat copy of G) are allocated once and count in every phase.
Gradient accumulation keeps G alive through later micro-batches' forward and backward;
``optimizer_in_backward`` frees each gradient as soon as its parameter has stepped.
"""

from __future__ import annotations


def timeline(parts: dict, buffers: dict, *, step_temp: int, largest_grad: int, settings,
             recompute: int = 0) -> dict:
    """``{phase: live bytes}`` of one step from the components of an estimate.

    ``recompute``: the part of the activations that only exists while backward recomputes a
    checkpointed layer (then the logits are gone and gradients are accumulating).
    """
    W, O, G = parts["weights"], parts["optimizer"], parts["gradients"]  # noqa: E741 (the names of the docstring)
    A, L, C = parts["activations"] - recompute, parts["logits"], parts["amp_weight_copies"]
    ddp = parts.get("ddp_buckets", 0)
    if settings.optimizer_in_backward:
        G = min(G, largest_grad)  # one parameter's gradient at a time
    carried = G if settings.gradient_accumulation_steps > 1 else 0
    head_grad = largest_grad if settings.method == "full" else 0
    W = W + ddp  # DDP's flat gradient buckets are allocated once and live through every phase
    phases = {
        "forward": W + O + A + L + C + buffers["forward"] + carried,
        "backward_start": W + O + A + L + C + buffers["backward"] + max(carried, head_grad),
        **({"backward_recompute": W + O + A + recompute + C + G} if recompute else {}),
        "backward_end": W + O + G,
        "optimizer": W + O + G + (0 if settings.optimizer_in_backward else step_temp),
    }
    return {k: int(v) for k, v in phases.items()}
