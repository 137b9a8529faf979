"""What every panel shares: it builds ``self.widget`` (an ipywidgets box) and shows itself
when it is the last value of a notebook cell, so ``panel = VramPanel(); panel`` displays it
and the panel's own attributes stay at hand for code and tests."""

from __future__ import annotations

import ipywidgets as widgets


class Panel:
    widget: widgets.Widget

    def _repr_mimebundle_(self, **kwargs):
        return self.widget._repr_mimebundle_(**kwargs)
