"""ipywidgets panels, one module each: ``vram_panel`` (lesson 01), ``data_explorer`` (02),
``training_panel`` and ``chat_panel`` (11). Import the panel you need from its module.
Each panel is a :class:`~ftkit.widgets.panel.Panel`: it shows itself as a cell's last value."""
