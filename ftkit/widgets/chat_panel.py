"""The chat panel: the base model and a tuned adapter answer the same prompt side by side.

Taught in lesson 11. The base model is loaded once; each adapter picked is loaded onto it once
and then switched to (``PeftModel.load_adapter``, ``set_adapter``), and the base model's answer is
generated with the adapter switched off (``PeftModel.disable_adapter``), so one copy of the
weights serves every adapter and both columns (as a server with several LoRA adapters does). Answers are greedy: the same every time. Under each answer, two
flags from :mod:`ftkit.eval`: did it stop with the template's end-of-turn token within the
token budget, and how much of it repeats itself (the two symptoms of a tuned model that runs on).
"""

from __future__ import annotations

import hashlib
import html
from pathlib import Path

import ipywidgets as widgets

from .. import models
from ..errors import FtkitError, ModelNotFoundError
from ..eval.evaluate import repetition
from ..eval.generation import Answer, Decoding, generate_answers
from .panel import Panel

ERROR_STYLE = "color:#b00020"


def adapter_name(adapter: str | Path) -> str:
    """The name an adapter folder gets inside a PeftModel (a valid attribute name, one per folder)."""
    return "adapter_" + hashlib.sha1(str(Path(adapter).resolve()).encode()).hexdigest()[:12]


def _check_folder(adapter: str | Path) -> None:
    if not (Path(adapter) / "adapter_config.json").is_file():
        raise ModelNotFoundError(f"{adapter} holds no adapter_config.json: pick the output folder "
                                 "of a finished LoRA/QLoRA/prompt-method run")


def load_pair(model_name: str | None, adapter: str | Path):
    """(PeftModel with the adapter on ``model_name``, tokenizer)."""
    from peft import PeftModel

    _check_folder(adapter)
    model, tokenizer = models.load(model_name)
    return PeftModel.from_pretrained(model, str(adapter), adapter_name=adapter_name(adapter)).eval(), tokenizer


def switch_adapter(model, adapter: str | Path) -> bool:
    """Make ``adapter`` the active one on ``model`` (a PeftModel), loading it the first time;
    False when it cannot sit beside the adapters already there (another PEFT method)."""
    _check_folder(adapter)
    name = adapter_name(adapter)
    if name not in model.peft_config:
        try:
            model.load_adapter(str(adapter), adapter_name=name)
        except (ValueError, TypeError, KeyError):
            return False
    model.set_adapter(name)
    return True


def compare(model, tokenizer, prompt, max_new_tokens: int = 48) -> tuple[Answer, Answer]:
    """(base answer, tuned answer) of a PeftModel to one prompt, greedy."""
    decoding = Decoding(max_new_tokens=max_new_tokens)
    with model.disable_adapter():
        base, = generate_answers(model, tokenizer, [prompt], decoding)
    tuned, = generate_answers(model, tokenizer, [prompt], decoding)
    return base, tuned


def flags(answer: Answer, max_new_tokens: int) -> str:
    """'stopped' or 'did not stop within N tokens', and the share of repeated 3-grams."""
    stop = "stopped" if answer.stopped else f"did not stop within {max_new_tokens} tokens"
    return f"{stop}; repeated 3-grams {repetition(answer.token_ids):.0%}"


def answer_html(answer: Answer, max_new_tokens: int, css: str) -> str:
    style = "" if answer.stopped else f" style='{ERROR_STYLE}'"
    return (f"<p class='{css}'>{html.escape(answer.text)}</p>"
            f"<small class='ftkit-answer-flags'{style}>{html.escape(flags(answer, max_new_tokens))}</small>")


class ChatPanel(Panel):
    """Pick a model and an adapter folder, type a prompt, press Ask: two answers."""

    def __init__(self, model_name: str | None = None, adapter: str | Path | None = None,
                 adapters=(), prompt: str = "Who are you?"):
        self.model_name = widgets.Text(value=model_name or models.DEFAULT_MODEL, description="Model")
        self.adapter = widgets.Combobox(value=str(adapter or ""), options=[str(a) for a in adapters],
                                        description="Adapter", ensure_option=False,
                                        layout={"width": "60%"})
        self.prompt = widgets.Textarea(value=prompt, description="Prompt", layout={"width": "60%"})
        self.max_new_tokens = widgets.IntSlider(value=48, min=8, max=512, description="New tokens")
        self.ask_button = widgets.Button(description="Ask both", button_style="primary")
        self.base_answer = widgets.HTML()
        self.tuned_answer = widgets.HTML()
        self.status = widgets.HTML()
        self.ask_button.on_click(lambda _: self.ask())
        self._loaded = (None, None, None)  # (model name, PeftModel, tokenizer)
        self.answers: tuple[Answer, Answer] | None = None  # (base, tuned) of the last question
        columns = widgets.HBox([
            widgets.VBox([widgets.HTML("<b>base model</b>"), self.base_answer], layout={"width": "50%"}),
            widgets.VBox([widgets.HTML("<b>with the adapter</b>"), self.tuned_answer], layout={"width": "50%"}),
        ])
        self.widget = widgets.VBox([widgets.HTML("<h3>Chat: base vs tuned</h3>"), self.model_name,
                                    self.adapter, self.prompt, self.max_new_tokens,
                                    self.ask_button, self.status, columns])
        self.widget.add_class("ftkit-chat-panel")

    @property
    def model(self):
        """The PeftModel the panel answers with (None before the first question): one base model,
        every adapter picked so far loaded on it, the current one active."""
        return self._loaded[1]

    def ask(self, prompt: str | None = None) -> tuple[str, str] | None:
        """Both answers' texts to ``prompt`` (default: the prompt box); the answers with their
        stop and repetition flags are kept in ``answers``; errors go to the status line."""
        if prompt is not None:
            self.prompt.value = prompt
        self.status.value = "thinking ..."
        try:
            model_name, adapter = self.model_name.value, self.adapter.value
            if self._loaded[0] != model_name or not switch_adapter(self._loaded[1], adapter):
                self._loaded = (model_name, *load_pair(model_name, adapter))
            _, model, tokenizer = self._loaded
            budget = self.max_new_tokens.value
            base, tuned = compare(model, tokenizer, self.prompt.value, budget)
        except FtkitError as error:
            self.status.value = f"<span style='{ERROR_STYLE}'>{html.escape(str(error))}</span>"
            return None
        self.base_answer.value = answer_html(base, budget, "ftkit-base-answer")
        self.tuned_answer.value = answer_html(tuned, budget, "ftkit-tuned-answer")
        self.status.value = ""
        self.answers = (base, tuned)
        return base.text, tuned.text
