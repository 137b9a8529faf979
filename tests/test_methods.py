"""ftkit.methods: trainable parameters of each method, counted by hand; LoRA by hand; QLoRA gradients."""

import pytest
import torch

from ftkit import methods
from ftkit.errors import ConfigError

# SmolLM2-135M: hidden 576, 30 layers, KV width 3 heads x 64 = 192, FFN 1536, vocab 49,152.
H, LAYERS, KV, FFN = 576, 30, 192, 1536
LINEARS = {"q_proj": (H, H), "k_proj": (H, KV), "v_proj": (H, KV), "o_proj": (H, H),
           "gate_proj": (H, FFN), "up_proj": (H, FFN), "down_proj": (FFN, H)}
LAYER_PARAMS = sum(i * o for i, o in LINEARS.values()) + 2 * H  # + two RMSNorm weights
TOTAL = 134_515_008


def lora_params(rank, targets=LINEARS):
    return LAYERS * sum(rank * (i + o) for name, (i, o) in LINEARS.items() if name in targets)


def fresh():
    from ftkit import models

    return models.load_model()


def test_unknown_method_is_rejected_by_the_config():
    with pytest.raises(ConfigError, match="method"):
        methods.as_config(method="adapter")


def test_qlora_preparation_needs_a_quantized_base(tiny_model_dir):
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    cfg = methods.as_config(method="qlora", quantization_bit=4)
    with pytest.raises(ConfigError, match="needs a quantized base model"):
        methods.prepare_kbit(model, cfg)
    with pytest.raises(ConfigError, match="needs a quantized base model"):
        methods.apply_method(model, cfg, verbose=False)  # apply_method prepares through it


@pytest.mark.slow
@pytest.mark.parametrize("fields, trainable, extra", [
    ({"method": "full"}, TOTAL, 0),
    ({"method": "freeze", "freeze_trainable_layers": 2}, 2 * LAYER_PARAMS, 0),
    ({"method": "freeze", "freeze_trainable_modules": ["model.norm"]}, H, 0),
    ({"method": "lora", "lora_rank": 8}, lora_params(8), lora_params(8)),
    ({"method": "lora", "lora_rank": 4, "lora_target": ["q_proj", "v_proj"]},
     lora_params(4, ["q_proj", "v_proj"]), lora_params(4, ["q_proj", "v_proj"])),
    ({"method": "prompt", "num_virtual_tokens": 16}, 16 * H, 16 * H),
    # P-Tuning v2 learns a key and a value prefix per layer, each of the KV width (GQA).
    ({"method": "prefix", "num_virtual_tokens": 20}, 20 * LAYERS * 2 * KV, 20 * LAYERS * 2 * KV),
])
def test_trainable_counts_match_the_arithmetic(fields, trainable, extra, capsys):
    model, count = methods.apply_method(fresh(), **fields)
    assert (count.trainable, count.total) == (trainable, TOTAL + extra)
    assert f"{trainable:,}" in capsys.readouterr().out  # printed as well as returned


@pytest.mark.slow
def test_ptuning_encoder_is_counted_and_lstm_is_bigger():
    _, mlp = methods.apply_method(fresh(), method="ptuning", num_virtual_tokens=8,
                                  encoder_hidden_size=64, verbose=False)
    _, lstm = methods.apply_method(fresh(), method="ptuning", num_virtual_tokens=8,
                                   encoder_hidden_size=64, prompt_encoder_type="LSTM", verbose=False)
    # MLP encoder: embedding 8x576, Linear 576->64, 64->64, 64->576 (with biases).
    assert mlp.trainable == 8 * H + (H * 64 + 64) + (64 * 64 + 64) + (64 * H + H)
    assert lstm.trainable > mlp.trainable


@pytest.mark.slow
def test_freeze_rejects_more_layers_than_the_model_has():
    with pytest.raises(ConfigError, match="only 30 layers"):
        methods.apply_method(fresh(), method="freeze", freeze_trainable_layers=31)
    with pytest.raises(ConfigError, match="matches no parameter"):
        methods.apply_method(fresh(), method="freeze", freeze_trainable_modules=["nonexistent"])


@pytest.mark.slow
def test_lora_layer_is_w_plus_scaled_ba():
    torch.manual_seed(0)
    model, _ = methods.apply_method(fresh(), method="lora", lora_rank=4, lora_alpha=8,
                                    lora_dropout=0.0, lora_target=["q_proj"], verbose=False)
    layer = model.base_model.model.model.layers[0].self_attn.q_proj
    torch.nn.init.normal_(layer.lora_B["default"].weight)  # B starts at zero; make it count
    x = torch.randn(2, 5, H)
    W, A, B = layer.base_layer.weight, layer.lora_A["default"].weight, layer.lora_B["default"].weight
    by_hand = x @ (W + (8 / 4) * B @ A).T
    torch.testing.assert_close(layer(x), by_hand, rtol=1e-4, atol=1e-4)


@pytest.mark.slow
def test_qlora_gradients_equal_those_on_the_dequantized_model():
    import bitsandbytes.functional as bnbf
    from bitsandbytes.nn import Linear4bit

    cfg = methods.as_config(method="qlora", quantization_bit=4, compute_dtype="float32",
                            lora_dropout=0.0, lora_rank=4)
    quantized = methods.load_base_model(cfg)
    dequantized = fresh()
    float_modules = dict(dequantized.named_modules())
    n_quantized = 0
    for name, module in quantized.named_modules():
        if isinstance(module, Linear4bit):
            weight = bnbf.dequantize_4bit(module.weight.data, module.weight.quant_state)
            float_modules[name].weight.data.copy_(weight)
            n_quantized += 1
    assert n_quantized == 7 * LAYERS

    grads = []
    for base, method in ((quantized, "qlora"), (dequantized, "lora")):
        torch.manual_seed(0)
        model, _ = methods.apply_method(base, cfg, method=method, quantization_bit=(4 if method == "qlora" else None),
                                        verbose=False)
        for name, param in model.named_parameters():
            if "lora_B" in name:  # B starts at zero; give both the same non-zero B
                param.data = torch.randn(param.shape, generator=torch.Generator().manual_seed(len(name)))
        model.train()  # as Trainer does (in eval mode bitsandbytes may switch to a bf16 CPU kernel)
        ids = torch.tensor([[1, 504, 3458, 282, 4649, 314, 253, 1345, 30, 2]])
        model(input_ids=ids, labels=ids).loss.backward()
        grads.append({n: p.grad.clone() for n, p in model.named_parameters() if p.requires_grad})
    assert grads[0].keys() == grads[1].keys() and len(grads[0]) == 2 * 7 * LAYERS
    for name in grads[0]:
        assert torch.equal(grads[0][name], grads[1][name]), name  # to the last bit
