"""ftkit's figures show as pictures in a notebook, not as ``<Figure size ...>`` text."""

import pytest

IPython = pytest.importorskip("IPython")


@pytest.fixture
def shell():
    from IPython.core.interactiveshell import InteractiveShell

    yield InteractiveShell.instance()
    InteractiveShell.clear_instance()


def test_a_figure_made_outside_pyplot_displays_as_png(shell):
    from ftkit.plots.training import loss_curve

    figure = loss_curve([{"step": 1, "loss": 2.0}, {"step": 2, "loss": 1.5}])
    shown, _ = shell.display_formatter.format(figure)
    assert "image/png" in shown
    assert shown["image/png"]  # a real picture, base64 encoded


def test_without_a_notebook_nothing_is_registered():
    from ftkit.plots.training import new_figure

    assert new_figure().get_size_inches().tolist() == [6, 3.5]
