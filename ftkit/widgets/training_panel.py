"""The training panel: seed 003's parameter form as ipywidgets, live config, VRAM and training.

Taught in lesson 11. Every field of seed 003's form (Scheduler, Optimizer, FP16, LoRA_Alpha,
LoRA_R, LoRA_Dropout, Int4/8, LearningRate, Epochs, BlockSize, BatchSize, WarmupRatio,
WeightDecay, GradAccSteps, TrainerType) plus the method, model and dataset pickers. Each
change re-validates the whole config with :class:`~ftkit.config.RunConfig`; a bad value is
marked at its field (and Train is disabled), never raised. The panel loads and saves
parameter groups (:mod:`ftkit.groups`), and Train runs :func:`ftkit.train.finetune` with a
progress bar and a live loss plot; each run lands in the :class:`RunsView` below it.

Everything a person clicks can be driven from code, as the lesson and the tests do::

    panel = TrainingPanel()
    panel.fields["learning_rate"].value = 1e-3
    panel.train_button.click()
"""

from __future__ import annotations

import html
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, get_args

import ipywidgets as widgets
from pydantic import ValidationError

from .. import groups
from ..config import Method, Optimizer, RunConfig, Scheduler
from ..errors import FtkitError
from ..models import DEFAULT_MODEL
from ..paths import DATA_DIR, ftkit_home
from ..vram import estimate_for_config, preset_names
from .panel import Panel
from .runs_view import Run, RunsView, evaluation_table, recorder

ERROR_STYLE = "color:#b00020;font-size:90%"


@dataclass(frozen=True)
class Field:
    key: str                      # canonical RunConfig key ("" for TrainerType, kept only)
    label: str                    # the name seed 003's form gives it
    make: Callable[[], widgets.ValueWidget]
    help: str


def _dropdown(options):
    return lambda: widgets.Dropdown(options=list(options))


def _data_files() -> list[str]:
    return sorted(str(p) for p in DATA_DIR.glob("*.json*")) if DATA_DIR.is_dir() else []


def _model_names() -> list[str]:
    return list(dict.fromkeys([DEFAULT_MODEL, *preset_names()]))


FIELDS = [
    Field("stage", "Fine-tuning type", _dropdown(["sft", "dpo"]),
          "SFT (supervised, the seed's default) or DPO (preference pairs)"),
    Field("method", "Method", _dropdown(get_args(Method)),
          "what is trained: LoRA adapters, QLoRA on a 4/8-bit base, all weights, ..."),
    Field("model_name_or_path", "Model", lambda: widgets.Combobox(options=_model_names()),
          "a bundled name, a local folder or a hub name"),
    Field("train_file", "Dataset", lambda: widgets.Combobox(options=_data_files()),
          "a training file (JSONL/JSON/CSV) in any format ftkit.data reads"),
    Field("lr_scheduler_type", "Scheduler",  # seed 003's three first
          _dropdown(dict.fromkeys(["cosine", "linear", "constant", *get_args(Scheduler)])),
          "how the learning rate changes: cosine and linear decay to 0, constant keeps it"),
    Field("optim", "Optimizer", _dropdown(get_args(Optimizer)),
          "adamw_torch for most runs; sgd keeps no state; adafactor factors its state"),
    Field("fp16", "FP16", widgets.Checkbox, "16-bit floats: less memory on a GPU (not on a CPU)"),
    Field("lora_alpha", "LoRA_Alpha", lambda: widgets.IntSlider(min=1, max=256),
          "LoRA scale: the update is multiplied by alpha / r"),
    Field("lora_rank", "LoRA_R", lambda: widgets.IntSlider(min=1, max=256),
          "rank r of the LoRA matrices: more trainable parameters as it grows"),
    Field("lora_dropout", "LoRA_Dropout", lambda: widgets.FloatSlider(min=0, max=0.9, step=0.05),
          "probability of dropping LoRA inputs while training (regularization)"),
    Field("quantization_bit", "Int4/8", _dropdown([("none", None), ("Int4", 4), ("Int8", 8)]),
          "store the frozen base in 4 or 8 bits (needs method qlora)"),
    Field("learning_rate", "LearningRate",
          lambda: widgets.FloatLogSlider(min=-6, max=0, step=0.1, readout_format=".1e"),
          "step size of each update: too small learns nothing, too large diverges"),
    Field("num_train_epochs", "Epochs", widgets.FloatText, "passes over the training data"),
    Field("max_steps", "Max steps", widgets.IntText, "stop after this many steps (-1: run all epochs)"),
    Field("max_seq_length", "BlockSize", lambda: widgets.IntSlider(min=32, max=8192, step=32),
          "tokens per example: memory and compute grow with it"),
    Field("per_device_train_batch_size", "BatchSize", lambda: widgets.IntSlider(min=1, max=128),
          "examples per step on each device"),
    Field("warmup_ratio", "WarmupRatio", widgets.FloatText,
          "fraction of the steps over which the learning rate ramps up from 0"),
    Field("weight_decay", "WeightDecay", widgets.FloatText, "pull of the weights towards 0 (regularization)"),
    Field("gradient_accumulation_steps", "GradAccSteps", lambda: widgets.IntSlider(min=1, max=64),
          "steps whose gradients add up before one update: effective batch = BatchSize x this"),
    Field("", "TrainerType", _dropdown(["Standard"]), "the standard Trainer loop (the only type)"),
]
PANEL_KEYS = [f.key for f in FIELDS if f.key]


def _widen(control, value) -> None:
    """Stretch a slider's range to hold ``value``: a loaded group is never silently clamped."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return
    if isinstance(control, widgets.FloatLogSlider):
        import math

        exponent = math.log10(value) if value > 0 else control.min
        control.min, control.max = min(control.min, math.floor(exponent)), max(control.max, math.ceil(exponent))
    elif isinstance(control, (widgets.IntSlider, widgets.FloatSlider)):
        control.min, control.max = min(control.min, value), max(control.max, value)


def _gib(n: float) -> str:
    return f"{n / 2**30:.2f} GiB"


FIELD_WIDTH = "380px"  # label 120px + control; the field's error message goes to its right


class TrainingPanel(Panel):
    """Seed 003's form, live YAML and VRAM estimate, group store and a Train button."""

    def __init__(self, config: RunConfig | None = None, namespace: str = groups.DEFAULT_NAMESPACE,
                 output_root: str | Path | None = None, runs: RunsView | None = None):
        self.base = config or RunConfig()
        self.output_root = Path(output_root or ftkit_home() / "runs")
        self.runs = runs or RunsView()
        self.config: RunConfig | None = None
        self.problems: dict[str, str] = {}
        self.fields: dict[str, widgets.ValueWidget] = {}
        self.errors: dict[str, widgets.HTML] = {}
        rows = []
        for spec in FIELDS:
            key = spec.key or spec.label
            control = spec.make()
            control.description, control.tooltip = spec.label, spec.help
            control.style = {"description_width": "120px"}
            control.layout.width = FIELD_WIDTH  # else the flex row squeezes sliders to a stub
            control.add_class(f"ftkit-field-{key.replace('/', '')}")
            self.fields[key], self.errors[key] = control, widgets.HTML()
            rows.append(widgets.HBox([control, self.errors[key]]))
        self.run_name = widgets.Text(value="run", description="Run name", layout={"width": FIELD_WIDTH},
                                     style={"description_width": "120px"})

        self.yaml_view = widgets.HTML()
        self.vram_view = widgets.HTML()
        self.status = widgets.HTML()
        self.evaluation = widgets.HTML()  # the last run's evaluation table
        self.train_button = widgets.Button(description="Train", button_style="success", icon="play")
        self.progress = widgets.IntProgress(value=0, min=0, max=1, description="steps")
        self.loss_plot = widgets.Output()
        self.train_button.on_click(lambda _: self.train())
        self.train_button.add_class("ftkit-train-button")

        self.namespace = widgets.Combobox(value=namespace, description="Namespace",
                                          options=groups.list_namespaces() or [namespace])
        self.group_name = widgets.Combobox(description="Group", ensure_option=False)
        self.group_name.add_class("ftkit-group-name")
        self.namespace.observe(lambda _: self._list_groups(), names="value")
        self._list_groups()
        self.load_button = widgets.Button(description="Load")
        self.save_button = widgets.Button(description="Save group", icon="save")
        self.save_button.add_class("ftkit-save-group")
        self.delete_button = widgets.Button(description="Delete", button_style="warning")
        self.confirm_button = widgets.Button(description="Yes, delete", button_style="danger",
                                             layout={"display": "none"})
        self.load_button.on_click(lambda _: self._guard(lambda: self.load_group(self.group_name.value)))
        self.save_button.on_click(lambda _: self._guard(lambda: self.save_group(self.group_name.value)))
        self.delete_button.on_click(lambda _: self._ask_delete())
        self.confirm_button.on_click(lambda _: self._guard(lambda: self.delete_group(self.group_name.value)))

        self.set_config(self.base)
        for control in self.fields.values():
            control.observe(lambda _: self.update(), names="value")
        self.run_name.observe(lambda _: self.update(), names="value")

        group_bar = widgets.HBox([self.namespace, self.group_name, self.load_button,
                                  self.save_button, self.delete_button, self.confirm_button])
        form = widgets.VBox([*rows, self.run_name], layout={"flex": "0 0 auto"})
        live = widgets.VBox([widgets.HTML("<b>VRAM estimate</b>"), self.vram_view,
                             widgets.HTML("<b>Config</b>"), self.yaml_view],
                            layout={"flex": "1 1 auto", "min_width": "280px", "margin": "0 0 0 16px"})
        self.widget = widgets.VBox([
            widgets.HTML("<h3>Training panel</h3>"), group_bar, widgets.HBox([form, live]),
            widgets.HBox([self.train_button, self.progress]), self.status, self.evaluation, self.loss_plot,
            self.runs.widget,
        ])
        self.widget.add_class("ftkit-training-panel")

    # --- values <-> config ------------------------------------------------------------------

    def values(self) -> dict:
        """The config as the panel holds it: the base config with every field's value on top."""
        raw = {**self.base.to_dict(), "dialect": "ftkit"}
        raw.update({key: self.fields[key].value for key in PANEL_KEYS})
        if raw["fp16"]:  # the form's one 16-bit switch: checked, it replaces a bf16 base
            raw["bf16"] = False
        raw["train_file"] = raw["train_file"] or None
        raw["output_dir"] = str(self.output_root / (self.run_name.value or "run"))
        raw["kept"] = {**raw["kept"], "TrainerType": self.fields["TrainerType"].value}
        return raw

    def set_config(self, config: RunConfig) -> None:
        """Show ``config`` in the fields (its other keys are kept as the panel's base)."""
        self.base = config
        hold, self._updating = getattr(self, "_updating", False), True
        try:
            for key in PANEL_KEYS:
                value = getattr(config, key)
                _widen(self.fields[key], value)
                self.fields[key].value = "" if value is None and key == "train_file" else value
        finally:
            self._updating = hold
        self.update()

    def update(self) -> RunConfig | None:
        """Validate the current values; mark problems at their fields; refresh YAML and VRAM."""
        if getattr(self, "_updating", False):
            return None
        self.problems = self._check(self.values())
        for key, label in self.errors.items():
            message = self.problems.get(key)
            label.value = f"<span style='{ERROR_STYLE}'>⚠ {html.escape(message)}</span>" if message else ""
            (self.fields[key].add_class if message else self.fields[key].remove_class)("ftkit-invalid")
        self.train_button.disabled = bool(self.problems)
        if self.problems:
            self.config = None
            where = ", ".join(self.fields[k].description for k in self.problems if k in self.fields)
            self.yaml_view.value = f"<span style='{ERROR_STYLE}'>invalid: fix {html.escape(where)}</span>"
            self.vram_view.value = "-"
            general = self.problems.get("")
            self.status.value = f"<span style='{ERROR_STYLE}'>{html.escape(general)}</span>" if general else ""
            return None
        self.yaml_view.value = f"<pre class='ftkit-config-yaml' style='max-height:24em;overflow:auto'>{html.escape(self.config.to_yaml())}</pre>"
        self.vram_view.value = self._vram_text(self.config)
        return self.config

    def _check(self, raw: dict) -> dict[str, str]:
        """{field key: message} for every problem; sets ``self.config`` when there is none."""
        problems = {}
        try:
            self.config = RunConfig.model_validate(raw)
        except ValidationError as error:
            for item in error.errors():
                message = item["msg"].removeprefix("Value error, ")
                if item["loc"]:
                    problems.setdefault(str(item["loc"][0]), message)
                    continue
                # A rule across fields: mark every panel field its message names.
                named = [k for k in PANEL_KEYS if re.search(rf"\b{k}\b", message)]
                for key in named or [""]:
                    problems.setdefault(key, message)
        train_file = raw.get("train_file")
        if train_file and not Path(train_file).exists():
            problems["train_file"] = f"no such file: {train_file}"
        return problems

    def _vram_text(self, config: RunConfig) -> str:
        try:
            estimate = estimate_for_config(config)
        except FtkitError as error:
            return f"<span style='{ERROR_STYLE}'>{html.escape(str(error))}</span>"
        parts = sorted(estimate.bytes.items(), key=lambda kv: -kv[1])
        rows = "".join(f"<tr><td>{html.escape(k)}</td><td>{_gib(v)}</td></tr>" for k, v in parts if v)
        return (f"<b class='ftkit-vram-total'>{_gib(estimate.total_bytes)}</b> in all"
                f"<table>{rows}</table>")

    # --- groups -----------------------------------------------------------------------------

    def _guard(self, action) -> None:
        """Run a button's action; an input error becomes the status line, not a traceback."""
        try:
            message = action()
        except FtkitError as error:
            self.status.value = f"<span style='{ERROR_STYLE}'>{html.escape(str(error))}</span>"
        else:
            self.status.value = html.escape(message or "")

    def load_group(self, name: str) -> str:
        config = groups.load_group(name, self.namespace.value)
        self.group_name.value, self.run_name.value = name, name
        self.set_config(config)
        return f"loaded {self.namespace.value}/{name}"

    def save_group(self, name: str) -> str:
        if self.update() is None:
            raise FtkitError("the config is invalid: fix the marked fields before saving")
        groups.save_group(name, self.config, self.namespace.value, overwrite=True)
        self.namespace.options = groups.list_namespaces()
        self._list_groups()
        return f"saved {self.namespace.value}/{name} ({groups.group_path(name, self.namespace.value)})"

    def _list_groups(self) -> None:
        try:
            self.group_name.options = [g.name for g in groups.list_groups(self.namespace.value)]
        except FtkitError:  # a namespace being typed, not yet a safe name
            self.group_name.options = []

    def _ask_delete(self) -> None:
        self.confirm_button.layout.display = None
        self.status.value = (f"delete {html.escape(self.namespace.value)}/{html.escape(self.group_name.value)}? "
                             "This cannot be undone: press 'Yes, delete'.")

    def delete_group(self, name: str) -> str:
        self.confirm_button.layout.display = "none"
        groups.delete_group(name, self.namespace.value, confirm=True)
        self._list_groups()
        return f"deleted {self.namespace.value}/{name}"

    # --- training ---------------------------------------------------------------------------

    def train(self) -> Run | None:
        """Run :func:`ftkit.train.finetune` on the current config; the run joins the runs view."""
        config = self.update()
        if config is None:
            self.status.value = f"<span style='{ERROR_STYLE}'>fix the marked fields before training</span>"
            return None
        from ..train import finetune

        run = self.runs.add(Run(self.run_name.value, config))
        self.train_button.disabled = True
        self.status.value = f"training {html.escape(run.name)} ..."
        start = time.perf_counter()
        self.loss_plot.clear_output()
        self.evaluation.value = ""
        try:
            # Inside a kernel, finetune's live loss plot and its messages land in this Output.
            with self.loss_plot:
                result = finetune(config, callbacks=[recorder(run, progress=self.progress)])
            run.summary = result.summary  # the trained model itself is not kept: memory
            self.evaluation.value = evaluation_table(run.summary)
        except FtkitError as error:
            run.status = "failed"
            self.status.value = f"<span style='{ERROR_STYLE}'>{html.escape(str(error))}</span>"
        else:
            run.status = "done"
            evaluated = f", eval loss {run.eval_loss:.3f}" if run.eval_loss is not None else ""
            self.status.value = f"{html.escape(run.name)}: done, final loss {run.final_loss:.3f}{evaluated}"
        finally:
            run.seconds = time.perf_counter() - start
            self.train_button.disabled = False
            self.runs.refresh()
            self._next_run_name()
        return run

    def _next_run_name(self) -> None:
        """run -> run_2 -> run_3 ...: each run keeps its own output folder."""
        stem = re.sub(r"_\d+$", "", self.run_name.value) or "run"
        taken, number = {r.name for r in self.runs.runs}, 2
        while f"{stem}_{number}" in taken:
            number += 1
        self.run_name.value = f"{stem}_{number}"
