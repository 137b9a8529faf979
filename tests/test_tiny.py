"""The tiny models of other families (ftkit.tiny) are what make test-portable claims they are,
and the memory calculator measures right on them."""

import pytest
import torch

from ftkit import models, tiny, vram
from ftkit.data.tokenize import tokenize_messages

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module", params=sorted(tiny.FAMILIES))
def family_dir(request, tmp_path_factory):
    return request.param, tiny.build(request.param, tmp_path_factory.mktemp(request.param))


def test_each_family_has_its_own_layout(family_dir):
    family, path = family_dir
    model = models.load_model(path)
    names = {name.rsplit(".", 1)[-1] for name, _ in model.named_modules()}
    if family == "qwen2":  # biased q/k/v, an output head of its own
        assert model.model.layers[0].self_attn.q_proj.bias is not None
        assert model.lm_head.weight.data_ptr() != model.model.embed_tokens.weight.data_ptr()
    else:  # GPT-2: fused q/k/v in a Conv1D, learned positions
        assert type(model.transformer.h[0].attn.c_attn).__name__ == "Conv1D"
        assert "wpe" in names and "q_proj" not in names
    assert sum(p.numel() for p in model.parameters()) == vram.count_model_parameters(path) < 10_000_000


def test_llama3_template_and_end_of_turn(family_dir):
    _, path = family_dir
    tokenizer = models.load_tokenizer(path)
    assert tokenizer.eos_token == "<|eot_id|>" and "<|im_start|>" not in tokenizer.chat_template
    example = tokenize_messages([{"role": "user", "content": "Who are you?"},
                                 {"role": "assistant", "content": "I am Ferret."}], tokenizer)
    learned = [t for t, label in zip(example["input_ids"], example["labels"]) if label != -100]
    assert tokenizer.decode(learned) == "I am Ferret.<|eot_id|>"  # the answer and its end of turn


def test_activations_of_each_family_match_the_calculator(family_dir):
    """GPT-2 trains with dropout: on a CPU its attention takes SDPA's math path, which keeps the
    probabilities and their mask (seq x seq per head); the calculator counts them."""
    _, path = family_dir
    model = models.load_model(path)
    ids = torch.randint(0, 1000, (2, 64))
    measured = vram.measure(model, {"input_ids": ids}, torch.optim.AdamW(model.parameters(), lr=1e-5))
    estimated = vram.estimate(str(path), "full", batch_size=2, seq_len=64, dtype="float32",
                              device="cpu", optim="adamw_torch_fused")
    for part in ("weights", "gradients", "optimizer", "logits"):
        assert measured.bytes[part] == estimated.bytes[part], part
    assert abs(measured.bytes["activations"] / estimated.bytes["activations"] - 1) < 0.01
