"""Shared fixtures: the default model is loaded once per test session."""

import pytest


@pytest.fixture(scope="session")
def default_model():
    """(model, tokenizer) of the embedded default model, fp32 on CPU. Do not modify it."""
    from ftkit import models

    model, tokenizer = models.load()
    model.eval()
    return model, tokenizer
