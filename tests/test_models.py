"""The embedded default model: provisioned once into $FTKIT_HOME, loaded from there after."""

import json
import os
import subprocess
import sys

import pytest

from ftkit import models
from ftkit.errors import ModelNotFoundError


def test_unknown_hub_name_says_so_and_names_the_default():
    with pytest.raises(ModelNotFoundError, match="smollm2-135m-instruct"):
        models.load_tokenizer("no-such-org/no-such-model-xyz")


def test_folder_without_config_is_rejected(tmp_path):
    with pytest.raises(ModelNotFoundError, match="no config.json"):
        models.resolve(str(tmp_path))


def test_file_is_not_a_model(tmp_path):
    path = tmp_path / "config.json"
    path.write_text("{}")
    with pytest.raises(ModelNotFoundError, match="is a file"):
        models.resolve(str(path))


def test_short_name_resolves_to_cached_folder():
    folder = models.resolve("SmolLM2-135M-Instruct")
    assert os.path.isdir(folder) and folder == models.resolve(None)
    config = json.loads(open(os.path.join(folder, "config.json")).read())
    assert config["model_type"] == "llama" and "quantization_config" not in config


@pytest.mark.slow
def test_provisioning_in_a_fresh_home_is_once_and_atomic(tmp_path):
    env = dict(os.environ, FTKIT_HOME=str(tmp_path))
    code = "from ftkit import models; print(models.provision())"
    first = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert first.returncode == 0, first.stderr
    folder = tmp_path / "models" / "smollm2-135m-instruct"
    assert "converting" in first.stdout and first.stdout.strip().splitlines()[-1] == str(folder)
    assert {"config.json", "model.safetensors", "tokenizer.json"} <= set(os.listdir(folder))
    assert not [p for p in os.listdir(folder.parent) if p.startswith(".smollm2-135m-instruct-")]
    second = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert second.returncode == 0 and "converting" not in second.stdout + second.stderr
    assert second.stdout.strip() == str(folder)


@pytest.mark.slow
def test_default_model_facts(default_model):
    model, tokenizer = default_model
    assert sum(p.numel() for p in model.parameters()) == 134_515_008
    cfg = model.config
    assert (cfg.hidden_size, cfg.num_hidden_layers, cfg.num_attention_heads) == (576, 30, 9)
    assert (cfg.num_key_value_heads, cfg.intermediate_size, cfg.vocab_size) == (3, 1536, 49152)
    assert cfg.tie_word_embeddings
    text = tokenizer.apply_chat_template([{"role": "user", "content": "hi"}], tokenize=False)
    assert "<|im_start|>user\nhi<|im_end|>" in text


@pytest.mark.slow
def test_trust_remote_code_stays_off(monkeypatch):
    seen = {}
    import transformers

    def fake(_source, **kwargs):
        seen.update(kwargs)
        raise OSError("stop here")

    monkeypatch.setattr(transformers.AutoModelForCausalLM, "from_pretrained", fake)
    with pytest.raises(ModelNotFoundError):
        models.load_model("some/hub-model")
    assert seen["trust_remote_code"] is False


def test_an_empty_model_has_the_real_ones_parameters_and_no_weights():
    empty = models.empty_model()
    real = models.load_model()
    assert [(n, p.shape) for n, p in empty.named_parameters()] == [(n, p.shape) for n, p in real.named_parameters()]
    assert all(p.is_meta for p in empty.parameters())


def test_dropout_rate_reads_each_familys_fields():
    from transformers import GPT2Config, LlamaConfig

    assert models.dropout_rate(LlamaConfig()) == 0.0
    assert models.dropout_rate(LlamaConfig(attention_dropout=0.2)) == 0.2
    assert models.dropout_rate(GPT2Config()) == 0.1  # attn_pdrop, resid_pdrop, embd_pdrop
    assert models.dropout_rate(GPT2Config(attn_pdrop=0.0, resid_pdrop=0.3, embd_pdrop=0.0)) == 0.3
