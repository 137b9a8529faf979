"""Shared fixtures: the default model (loaded once per session) and a tiny random model.

The hub is switched off before anything imports huggingface_hub: it reads ``HF_HUB_OFFLINE``
once, at import, and a test that asks the hub for an unknown name would otherwise wait ~47 s
for a timeout on a machine without network. Tests read only files inside the repository.
"""

import os

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"

import shutil  # noqa: E402  (the variables above must be set first)

import pytest  # noqa: E402

from ftkit.paths import DATA_DIR  # noqa: E402

# The default model's tokenizer files, copied next to the tiny model so it chats the same way.
TOKENIZER_FILES = ["tokenizer.json", "tokenizer_config.json", "chat_template.jinja",
                   "generation_config.json"]
# The default model's layout shrunk to 2 layers, hidden size 64 (~3.2 M parameters).
from ftkit.tiny import TINY_LLAMA  # noqa: E402


@pytest.fixture(scope="session")
def default_model():
    """(model, tokenizer) of the embedded default model, fp32 on CPU. Do not modify it."""
    from ftkit import models

    model, tokenizer = models.load()
    model.eval()
    return model, tokenizer


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory):
    """A model folder: a random-initialised 2-layer LlamaForCausalLM (seed 0, fp32) next to the
    default model's tokenizer and chat template. Built once per session (~1 s).

    For plumbing tests (files written, resume, exit codes, wiring): it learns nothing useful,
    so claims about learning keep the real default model.
    """
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    from ftkit import models

    source = models.provision()  # the default model's folder; converted once, then instant
    target = tmp_path_factory.mktemp("tiny-llama")
    for name in TOKENIZER_FILES:
        if (source / name).exists():
            shutil.copy(source / name, target / name)
    with torch.random.fork_rng():  # seeded without touching the session's random state
        torch.manual_seed(0)
        model = LlamaForCausalLM(LlamaConfig(**TINY_LLAMA))
    model.save_pretrained(target)
    return target


@pytest.fixture
def tiny_run(tiny_model_dir, tmp_path):
    """Fields of a quiet 3-step LoRA run on the tiny model, writing to ``tmp_path / "run"``.

    A plain dict of RunConfig fields: ``RunConfig(**tiny_run)``, ``finetune(None, **tiny_run)``,
    or ``--set key=value`` for the command line. Copy it and change what a test needs.
    """
    return dict(model_name_or_path=str(tiny_model_dir), method="lora",
                train_file=str(DATA_DIR / "identity.jsonl"), max_samples=8, max_seq_length=64,
                lora_rank=4, lora_dropout=0.0, per_device_train_batch_size=2, max_steps=3,
                learning_rate=1e-3, logging_steps=1, save_strategy="no", disable_tqdm=True,
                plot_loss=False, overwrite_output_dir=True, output_dir=str(tmp_path / "run"))
