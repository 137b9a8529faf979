"""Measure the memory of one real training step, component by component.

Taught in lesson 01. Weights, gradients and optimizer states are read from the real tensors
(each storage counted once). Activations are the tensors autograd saves for backward,
caught with ``torch.autograd.graph.saved_tensors_hooks``: this works on a CPU, where no
allocator statistics exist. Each component's own peak is kept, so every number here has a
twin in :func:`ftkit.vram.estimate`. On a GPU, ``torch.cuda.max_memory_allocated`` is
recorded as well.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field

from ..errors import FtkitError


def _storage(tensor):
    """(key, bytes) of the storage behind a tensor: views and shared weights count once."""
    storage = tensor.untyped_storage()
    return (tensor.device.type, storage.data_ptr()), storage.nbytes()


def _unique_bytes(tensors) -> int:
    seen = {}
    for tensor in tensors:
        if tensor is None or tensor.is_meta:
            continue
        key, nbytes = _storage(tensor)
        seen[key] = nbytes
    return sum(seen.values())


def _quant_state_tensors(param):
    """Extra tensors of a bitsandbytes weight: 4-bit absmax/code (nested too), 8-bit row scales."""
    import torch

    state = getattr(param, "quant_state", None)
    while state is not None:
        for name in ("absmax", "code", "offset"):
            value = getattr(state, name, None)
            if isinstance(value, torch.Tensor):
                yield value
        state = getattr(state, "state2", None)
    scb = getattr(param, "SCB", None)
    if isinstance(scb, torch.Tensor):
        yield scb


def param_bytes(model) -> int:
    """Bytes of all parameters as stored (bitsandbytes quantization states included)."""
    tensors = []
    for param in model.parameters():
        tensors.append(param.data)
        tensors.extend(_quant_state_tensors(param))
    return _unique_bytes(tensors)


def grad_bytes(model) -> int:
    """Bytes of the ``.grad`` tensors currently held by the model's parameters."""
    return _unique_bytes(p.grad for p in model.parameters() if p.grad is not None)


def optimizer_bytes(optimizer) -> int:
    """Bytes of an optimizer's state tensors (Adam moments, step counters, 8-bit absmax, ...)."""
    import torch

    tensors = []
    for state in optimizer.state.values():
        for value in state.values():
            if isinstance(value, torch.Tensor):
                tensors.append(value)
    return _unique_bytes(tensors)


def _is_weight_copy(tensor) -> bool:
    """A 16-bit copy autocast made of a parameter: ``ToCopy`` of a leaf (maybe transposed)."""
    fn = tensor.grad_fn
    while fn is not None and fn.name() in ("TBackward0", "TransposeBackward0", "PermuteBackward0"):
        fn = fn.next_functions[0][0] if fn.next_functions else None
    if fn is None or fn.name() != "ToCopyBackward0" or not fn.next_functions:
        return False
    source = fn.next_functions[0][0]
    return source is not None and source.name() == "torch::autograd::AccumulateGrad"


def _logical_numel(param) -> int:
    """Parameter count of a tensor; a packed 4-bit weight counts its unpacked shape."""
    state = getattr(param, "quant_state", None)
    shape = getattr(state, "shape", None)
    if shape is not None:
        n = 1
        for d in shape:
            n *= d
        return n
    return param.numel()


class _Saved:
    """What autograd keeps instead of a saved tensor; tells the meter when it is freed."""

    __slots__ = ("meter", "key", "tensor")

    def __init__(self, meter, key, tensor):
        self.meter, self.key, self.tensor = meter, key, tensor

    def __del__(self):
        self.meter._release(self.key)


class ActivationMeter:
    """Context manager that counts the bytes autograd saves for backward.

    ``bytes`` is the peak of live saved tensors (deduplicated by storage), parameters and
    buffers of ``model`` excluded, since they are weights. ``by_phase`` splits it: tensors
    first saved while ``phase`` was ``"logits"`` (set by the caller, e.g. from the LM head
    on) are counted apart, and so are the 16-bit weight copies autocast makes
    (``"amp_weight_copies"``), each phase with its own peak. Run the backward pass inside the
    context too, so the recomputation of gradient checkpointing (``use_reentrant=True``)
    is seen; non-reentrant checkpointing keeps its tensors out of sight of these hooks.
    """

    def __init__(self, model=None):
        self.model = model
        self.phase = "activations"
        self._excluded = set()
        self._live = {}  # storage key -> [bytes, references, phase]
        self._now = {}
        self.peaks = {}
        self.bytes = 0
        self._total_now = 0

    @property
    def live_bytes(self) -> int:
        """Bytes of saved tensors alive right now."""
        return self._total_now

    @property
    def by_phase(self) -> dict:
        return dict(self.peaks)

    def __enter__(self):
        import torch

        if self.model is not None:
            for tensor in list(self.model.parameters()) + list(self.model.buffers()):
                self._excluded.add(_storage(tensor)[0])
        self._hooks = torch.autograd.graph.saved_tensors_hooks(self._pack, self._unpack)
        self._hooks.__enter__()
        return self

    def __exit__(self, *exc):
        self._hooks.__exit__(*exc)
        return False

    def _pack(self, tensor):
        key, nbytes = _storage(tensor)
        if key in self._excluded:
            return tensor
        entry = self._live.get(key)
        if entry is None:
            phase = "amp_weight_copies" if _is_weight_copy(tensor) else self.phase
            self._live[key] = entry = [nbytes, 0, phase]
            self._now[phase] = self._now.get(phase, 0) + nbytes
            self.peaks[phase] = max(self.peaks.get(phase, 0), self._now[phase])
            self._total_now += nbytes
            self.bytes = max(self.bytes, self._total_now)
        entry[1] += 1
        return _Saved(self, key, tensor)

    @staticmethod
    def _unpack(saved):
        return saved.tensor if isinstance(saved, _Saved) else saved

    def _release(self, key):
        entry = self._live.get(key)
        if entry is None:
            return
        entry[1] -= 1
        if entry[1] == 0:
            del self._live[key]
            self._now[entry[2]] -= entry[0]
            self._total_now -= entry[0]


@dataclass
class Measurement:
    """Measured bytes per component of one training step (twin of :class:`Estimate`)."""

    params_total: int
    params_trainable: int
    bytes: dict = field(default_factory=dict)
    cuda_max_allocated: int | None = None
    phases: dict = field(default_factory=dict)  # live bytes at each phase boundary of the step

    @property
    def total_bytes(self) -> int:
        return sum(self.bytes.values())

    def to_dict(self) -> dict:
        return dict(params_total=self.params_total, params_trainable=self.params_trainable,
                    bytes=dict(self.bytes), total_bytes=self.total_bytes,
                    cuda_max_allocated=self.cuda_max_allocated, phases=dict(self.phases))


def _warm_up(optimizer, trainable) -> None:
    """Create the optimizer's states with one step on zero gradients, as after a first real step."""
    for param in trainable:
        param.grad = param.detach().new_zeros(param.shape)
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)


def measure(model, batch, optimizer=None, *, autocast_dtype=None, step=True,
            phases=False) -> Measurement:
    """Run one real forward, backward and optimizer step; return what each part took.

    ``batch`` is a dict of tensors (``input_ids`` and optionally ``attention_mask``,
    ``labels``; labels default to the input ids). ``optimizer=None`` uses
    ``torch.optim.AdamW`` over the trainable parameters, as HF's ``adamw_torch``; the model's
    weights change by one small step. ``autocast_dtype`` (e.g. ``torch.bfloat16``) runs the
    forward under ``torch.autocast``, as Trainer does with ``bf16=True``.

    ``phases=True`` first creates the optimizer states (a step on zero gradients, so the
    measured step is a steady one) and records the live bytes at each boundary of the step:
    ``forward`` (weights + states + the tensors saved for backward, at the loss),
    ``backward_end`` (weights + states + gradients + what is still saved) and ``optimizer``
    (after the update), the twins of :attr:`ftkit.vram.Estimate.phases` on a CPU.
    """
    import torch

    trainable = [p for p in model.parameters() if p.requires_grad]
    if not trainable:
        raise FtkitError("the model has no trainable parameters: nothing to measure a step of")
    if optimizer is None:
        optimizer = torch.optim.AdamW(trainable, lr=1e-5)
    checkpointing = getattr(model, "is_activation_checkpointing", None)
    if checkpointing is None:
        checkpointing = getattr(model, "is_gradient_checkpointing", False)
    if checkpointing:
        # Reentrant checkpointing saves layer inputs through autograd, where the meter sees them.
        if hasattr(model, "activation_checkpointing_enable"):
            model.activation_checkpointing_enable(activation_checkpointing_kwargs={"use_reentrant": True})
        else:
            model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": True})
        if hasattr(model, "enable_input_require_grads"):
            model.enable_input_require_grads()
    device = next(model.parameters()).device
    batch = {k: v.to(device) for k, v in batch.items()}
    batch.setdefault("labels", batch["input_ids"])
    model.train()
    if phases:
        _warm_up(optimizer, trainable)
    optimizer.zero_grad(set_to_none=True)
    live = {}
    on_cuda = device.type == "cuda"
    if on_cuda:
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()

    meter = ActivationMeter(model)
    head = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
    handle = None
    if head is not None:
        handle = head.register_forward_pre_hook(lambda *_: setattr(meter, "phase", "logits"))
    autocast = (torch.autocast(device.type, dtype=autocast_dtype) if autocast_dtype is not None
                else contextlib.nullcontext())
    try:
        with meter:
            with autocast:
                loss = model(**batch).loss
            if phases:
                live["forward"] = param_bytes(model) + optimizer_bytes(optimizer) + meter.live_bytes
            meter.phase = "activations"  # what backward recomputes belongs to the layers
            loss.backward()
            if phases:
                live["backward_end"] = (param_bytes(model) + optimizer_bytes(optimizer)
                                        + grad_bytes(model) + meter.live_bytes)
    finally:
        if handle is not None:
            handle.remove()
    del loss
    gradients = grad_bytes(model)
    if step:
        optimizer.step()
        if phases:
            live["optimizer"] = param_bytes(model) + optimizer_bytes(optimizer) + grad_bytes(model)
    result = dict(
        weights=param_bytes(model),
        gradients=gradients,
        optimizer=optimizer_bytes(optimizer) if step else 0,
        activations=meter.peaks.get("activations", 0),
        logits=meter.peaks.get("logits", 0),
        amp_weight_copies=meter.peaks.get("amp_weight_copies", 0),
    )
    optimizer.zero_grad(set_to_none=True)
    peak = None
    if on_cuda:
        torch.cuda.synchronize()
        peak = torch.cuda.max_memory_allocated()
    return Measurement(
        params_total=sum(_logical_numel(p) for p in model.parameters()),
        params_trainable=sum(p.numel() for p in trainable),
        bytes=result,
        cuda_max_allocated=peak,
        phases=live,
    )
