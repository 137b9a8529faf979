"""The data explorer (lesson 02): pick a data file, page through its records, and see each
one as stored, as the model reads it (chat template) and as the loss sees it (mask)."""

from __future__ import annotations

import html
import json
from pathlib import Path

import ipywidgets as w

from ..data import load
from ..data.templates import render
from ..data.tokenize import tokenize_messages
from ..paths import DATA_DIR
from ..plots.data import mask_html
from .panel import Panel

DATA_SUFFIXES = (".jsonl", ".json", ".csv", ".parquet", ".txt")


def data_files(folder=DATA_DIR) -> list[Path]:
    return sorted(p for p in Path(folder).glob("*") if p.suffix in DATA_SUFFIXES and p.is_file())


class DataExplorer(Panel):
    """``DataExplorer(tokenizer)`` is the panel; ``show(file, index)`` drives it from code
    (the lesson and the tests use that), the dropdown and slider drive it by hand."""

    def __init__(self, tokenizer, files=None, template: str | None = None, max_seq_length: int = 512):
        self.tokenizer, self.template, self.max_seq_length = tokenizer, template, max_seq_length
        self.files = [Path(f) for f in (files or data_files())]
        self.file_picker = w.Dropdown(options=[(f.name, str(f)) for f in self.files],
                                      description="file")
        self.index = w.IntSlider(min=0, max=0, description="record", continuous_update=False)
        self.info = w.HTML()
        self.stored, self.rendered, self.mask = w.HTML(), w.HTML(), w.HTML()
        tabs = w.Tab(children=[self.stored, self.rendered, self.mask])
        for i, title in enumerate(["as stored", "as the model reads it", "loss mask"]):
            tabs.set_title(i, title)
        self.widget = w.VBox([w.HBox([self.file_picker, self.index]), self.info, tabs])
        self._dataset = None
        self.file_picker.observe(lambda change: self._open(change["new"]), names="value")
        self.index.observe(lambda _change: self._update(), names="value")
        if self.files:
            self._open(str(self.files[0]))

    def _open(self, path: str) -> None:
        self._dataset = load(path, verbose=False)
        self.index.max = len(self._dataset) - 1
        self.index.value = 0
        self._update()

    def _update(self) -> None:
        row = self._dataset[self.index.value]
        self.info.value = (f"<b>{Path(self.file_picker.value).name}</b>: {len(self._dataset)} records, "
                           f"columns {', '.join(self._dataset.column_names)}")
        self.stored.value = f"<pre>{html.escape(json.dumps(row, ensure_ascii=False, indent=1))}</pre>"
        if "messages" in row:
            text = render(row["messages"], self.tokenizer, self.template)
            example = tokenize_messages(row["messages"], self.tokenizer, self.template, self.max_seq_length)
            self.rendered.value = f"<pre>{html.escape(text)}</pre>"
            self.mask.value = mask_html(self.tokenizer, example)
        else:
            note = "<i>preference / text data: no chat template or mask to show here</i>"
            self.rendered.value = self.mask.value = note

    def show(self, file=None, index: int = 0):
        """Select a file (path or name) and a record, as if clicked; returns the widget."""
        if file is not None:
            match = [str(f) for f in self.files if f.name == Path(file).name or str(f) == str(file)]
            self.file_picker.value = match[0] if match else str(file)
        self.index.value = index
        return self.widget
