"""The VRAM panel: move a slider, see the memory of a fine-tuning run redrawn.

Taught in lesson 01. Model preset, method, bits, batch size, sequence length, gradient
checkpointing, optimizer, GPUs and ZeRO stage drive :func:`ftkit.vram.estimate`; a stacked
bar of the components and a "fits on" verdict follow each change. An impossible
combination (ZeRO-3 on one GPU) shows its message instead of a chart. Driven from code::

    panel = VramPanel()
    panel.controls["batch_size"].value = 8   # redraws; panel.estimate is the new estimate
"""

from __future__ import annotations

import html

import ipywidgets as widgets
import matplotlib.pyplot as plt
from IPython.display import display

from ..errors import FtkitError
from ..plots.vram import stacked_bars
from ..units import GIB
from ..vram import METHODS, OPTIMIZERS, estimate, preset_names
from .panel import Panel


class VramPanel(Panel):
    """ipywidgets form + live chart over :func:`ftkit.vram.estimate`."""

    def __init__(self, model: str = "llama-2-7b", method: str = "qlora", **values):
        c = {
            "model": widgets.Dropdown(options=preset_names(), value=model, description="model"),
            "method": widgets.Dropdown(options=METHODS, value=method, description="method"),
            "bits": widgets.Dropdown(options=[("4", 4), ("8", 8)], value=4, description="bits"),
            "batch_size": widgets.IntSlider(value=1, min=1, max=32, description="batch"),
            "seq_len": widgets.IntSlider(value=512, min=128, max=8192, step=128, description="seq len"),
            "gradient_checkpointing": widgets.Checkbox(value=False, description="checkpointing"),
            "optim": widgets.Dropdown(options=OPTIMIZERS, value="adamw_torch", description="optimizer"),
            "gpus": widgets.IntSlider(value=1, min=1, max=8, description="GPUs"),
            "zero": widgets.Dropdown(options=[0, 1, 2, 3], value=0, description="ZeRO"),
        }
        for key, value in values.items():
            c[key].value = value
        self.controls = c
        self.verdict = widgets.HTML()
        self.output = widgets.Output()
        self.estimate = None
        for control in c.values():
            control.observe(lambda _change: self.redraw(), names="value")
        self.widget = widgets.HBox([widgets.VBox(list(c.values()) + [self.verdict]), self.output])
        self.redraw()

    def settings(self) -> dict:
        values = {key: control.value for key, control in self.controls.items()}
        if values["method"] not in ("qlora",):
            values["bits"] = None
        return values

    def redraw(self) -> None:
        values = self.settings()
        model = values.pop("model")
        try:
            self.estimate = estimate(model, **values)
        except FtkitError as error:
            self.estimate = None
            self.verdict.value = f"<span style='color:#b00020'>{html.escape(str(error))}</span>"
            self.output.clear_output()
            return
        e = self.estimate
        fits = [f"{gb} GB" for gb in e.fitting_cards()]
        self.verdict.value = (f"peak <b>{e.predict('device') / GIB:.2f} GiB</b> per GPU "
                              f"({e.peak_phase}; sum of components {e.total_bytes / GIB:.2f} GiB); fits on: "
                              + (", ".join(fits) if fits else "<b>none</b> of the cards up to 141 GB"))
        with self.output:
            self.output.clear_output(wait=True)
            fig = stacked_bars({f"{values['method']}": e}, cards_gb=[gb for gb in (24, 80)],
                               title=f"{model}, batch {values['batch_size']} x {values['seq_len']}")
            fig.set_size_inches(4, 3.5)
            display(fig)
            plt.close(fig)
