"""ftkit.quant: round-trip error bounds, hand-made == bitsandbytes, model footprints."""

import math

import numpy as np
import pytest
import torch

from ftkit.errors import FtkitError
from ftkit.quant import (
    absmax_dequantize,
    absmax_quantize,
    bits_per_param,
    blockwise_dequantize,
    blockwise_quantize,
    bnb,
    codebook_quantize,
    double_quantize,
    error_report,
    footprint,
    fp4_code,
    fp4_roundtrip,
    ggufinfo,
    mixed,
    nf4_code,
    nf4_roundtrip,
    prune,
    qat,
    snr_db,
    zeropoint_dequantize,
    zeropoint_quantize,
)


@pytest.fixture
def weight():
    torch.manual_seed(0)
    w = torch.randn(48, 200) * 0.05
    w[3, 7] = 1.5  # one outlier, as real weight matrices have
    return w


# --- round-trip error bounds: rounding to a grid errs by at most half a step ---

def test_absmax_per_tensor_error_is_at_most_half_a_step(weight):
    codes, absmax = absmax_quantize(weight)
    assert codes.dtype == torch.int8 and codes.abs().max() == 127
    error = (absmax_dequantize(codes, absmax) - weight).abs().max()
    assert error <= absmax / 254 * 1.0001


def test_absmax_per_channel_bounds_each_row_by_its_own_absmax(weight):
    codes, absmax = absmax_quantize(weight, per_channel=True)
    assert absmax.shape == (48,)
    error = (absmax_dequantize(codes, absmax) - weight).abs().amax(dim=1)
    assert torch.all(error <= absmax / 254 * 1.0001)
    per_tensor = absmax_dequantize(*absmax_quantize(weight))
    assert snr_db(weight, absmax_dequantize(codes, absmax)) > snr_db(weight, per_tensor) + 10


def test_zeropoint_uses_the_whole_range_of_a_positive_tensor():
    x = torch.rand(1000) * 3 + 1  # all in [1, 4]: absmax would use only half its levels
    codes, scale, zero_point = zeropoint_quantize(x)
    assert codes.min() == 0 and codes.max() == 255
    assert (zeropoint_dequantize(codes, scale, zero_point) - x).abs().max() <= scale * 0.5001 + 1e-6
    sym = absmax_dequantize(*absmax_quantize(x))
    assert snr_db(x, zeropoint_dequantize(codes, scale, zero_point)) > snr_db(x, sym)


@pytest.mark.parametrize("bits", [8, 4])
def test_blockwise_error_bound_and_outlier_isolation(weight, bits):
    codes, absmax = blockwise_quantize(weight, 64, bits)
    restored = blockwise_dequantize(codes, absmax, weight.shape, 64, bits)
    levels = 2 ** (bits - 1) - 1
    blocks_error = (restored - weight).reshape(-1)
    blocks_error = torch.nn.functional.pad(blocks_error, (0, (-blocks_error.numel()) % 64)).view(-1, 64)
    assert torch.all(blocks_error.abs().amax(dim=1) <= absmax / (2 * levels) * 1.0001)
    per_tensor = absmax_dequantize(*absmax_quantize(weight, bits), bits=bits)
    assert snr_db(weight, restored) > snr_db(weight, per_tensor)


def test_nf4_error_is_bounded_by_half_its_widest_gap(weight):
    restored = nf4_roundtrip(weight)
    widest_gap = torch.diff(nf4_code()).max()
    _, absmax = codebook_quantize(weight, nf4_code(), 64)
    flat_error = torch.nn.functional.pad((restored - weight).reshape(-1), (0, (-weight.numel()) % 64))
    assert torch.all(flat_error.view(-1, 64).abs().amax(dim=1) <= absmax * widest_gap / 2 + 1e-7)


def test_metrics_on_a_known_error():
    x = torch.ones(100)
    report = error_report(x, x + 0.1)
    assert report["mse"] == pytest.approx(0.01) and report["max_error"] == pytest.approx(0.1)
    assert report["snr_db"] == pytest.approx(20.0)
    assert snr_db(x, x) == math.inf


# --- hand-made == bitsandbytes ---

def test_nf4_code_book_from_normal_quantiles_is_bitsandbytes_table():
    code = nf4_code()
    assert torch.equal(code, bnb.code_table("nf4"))
    assert code[7] == 0 and code.min() == -1 and code.max() == 1 and (code > 0).sum() == 8


def test_fp4_code_book_is_bitsandbytes_table():
    assert torch.equal(fp4_code(), bnb.code_table("fp4"))


@pytest.mark.parametrize("quant_type", ["nf4", "fp4"])
@pytest.mark.parametrize("shape", [
    (48, 200),
    (7, 66),  # 7·66 is no multiple of 64: the last block is short
    # An odd last dimension sends bitsandbytes' CPU dequantizer to a torch.compile'd fallback
    # (backends/cpu/ops.py, "Odd shape is not supported"), which compiles for ~30 s.
    pytest.param((7, 65), marks=pytest.mark.slow),
])
def test_hand_4bit_equals_bitsandbytes_exactly(weight, quant_type, shape):
    w = weight.reshape(-1)[: shape[0] * shape[1]].reshape(shape)
    hand = nf4_roundtrip(w) if quant_type == "nf4" else fp4_roundtrip(w)
    assert torch.equal(hand, bnb.roundtrip_4bit(w, quant_type, blocksize=64))


def test_hand_rowwise_int8_equals_llm_int8_codes_and_values(weight):
    codes, absmax = absmax_quantize(weight, per_channel=True)
    lib_codes, lib_absmax, outliers = bnb.quantize_int8(weight)
    assert torch.equal(codes, lib_codes) and torch.equal(absmax, lib_absmax) and outliers is None
    assert torch.equal(absmax_dequantize(codes, absmax), bnb.roundtrip_int8(weight))


def test_llm_int8_threshold_marks_outlier_columns(weight):
    weight_before = weight.clone()
    _, _, outliers = bnb.quantize_int8(weight, threshold=1.0)
    assert outliers.tolist() == [7] and torch.equal(weight, weight_before)


@pytest.mark.parametrize("double_quant, expected", [(False, 4.5), (True, 4 + 8 / 64 + 32 / 16384)])
def test_bits_per_param_matches_bitsandbytes_storage(double_quant, expected):
    w = torch.randn(256, 1024)
    packed, state = bnb.quantize_4bit(w, double_quant=double_quant)
    measured = 8 * (packed.numel() + bnb.quant_state_bytes(state)) / w.numel()
    assert bits_per_param(double_quant=double_quant) == pytest.approx(expected)
    assert measured == pytest.approx(expected, abs=0.002)  # + the 4-byte mean of the scales


def test_double_quantized_scales_stay_close():
    absmax = torch.rand(1024) * 0.1 + 0.05
    restored, codes, absmax2, offset = double_quantize(absmax)
    assert codes.dtype == torch.int8 and absmax2.numel() == 4
    assert (restored - absmax).abs().max() <= absmax2.max() / 254 * 1.0001


# --- QAT, pruning, simulated quantization ---

def test_hand_straight_through_estimator_equals_torch_fake_quant(weight):
    w = weight.clone().requires_grad_()
    hand, lib = qat.fake_quantize_ste(w, 3), qat.fake_quantize(w, 3)
    assert torch.equal(hand, lib)
    assert len(torch.unique(hand[0].detach())) <= 7  # 3 bits: levels -3..3
    grad_hand = torch.autograd.grad((hand * torch.arange(200.0)).sum(), w)[0]
    grad_lib = torch.autograd.grad((lib * torch.arange(200.0)).sum(), w)[0]
    assert torch.equal(grad_hand, grad_lib) and torch.equal(grad_hand[0], torch.arange(200.0))


def test_qat_linear_computes_with_quantized_weights():
    torch.manual_seed(0)
    layer = qat.QATLinear(16, 4, bits=2)
    out = layer(torch.eye(16))  # row i = column i of W_q, plus bias
    levels = torch.unique((out - layer.bias).detach().round(decimals=6))
    assert len(levels) <= 3 * 4  # 2 bits: each row has at most the levels -1, 0, 1 (times its scale)


def test_pruning_zeroes_the_smallest_weights():
    torch.manual_seed(0)
    model = torch.nn.Sequential()
    model.add_module("mlp", torch.nn.Linear(100, 50))
    model.add_module("attn", torch.nn.Linear(100, 50))
    smallest = model.mlp.weight.abs().flatten().sort().values[:1500]
    assert prune.prune_linear_layers(model, 0.3, "mlp") == 1
    assert prune.sparsity(model.mlp) == pytest.approx(0.3) and prune.sparsity(model.attn) == 0
    assert model.mlp.weight.abs().flatten().sort().values[1500] >= smallest.max()
    assert not hasattr(model.mlp, "weight_orig")  # made permanent


def test_simulated_quantization_changes_only_the_chosen_weights():
    model = torch.nn.Sequential(torch.nn.Linear(64, 64), torch.nn.Linear(64, 64))
    before = [p.clone() for p in model.parameters()]
    assert mixed.simulate_weight_quantization(model, nf4_roundtrip, lambda n: n.startswith("1.")) == 1
    assert torch.equal(model[0].weight, before[0]) and torch.equal(model[1].weight, nf4_roundtrip(before[2]))


# --- GGUF: the default model's file ---

@pytest.mark.slow  # reads and dequantizes a 576×1536 tensor of the GGUF file (~6-20 s)
def test_gguf_q4_1_is_five_bits_and_hand_dequantization_matches_gguf():
    from gguf.quants import dequantize

    types = {row["type"]: row for row in ggufinfo.tensor_types()}
    assert types["Q4_1"]["bits_per_weight"] == 5.0 and types["Q8_0"]["bits_per_weight"] == 8.5
    raw, tensor_type, shape = ggufinfo.read_tensor("blk.0.ffn_down.weight")
    assert tensor_type.name == "Q4_1" and shape == (576, 1536)
    assert np.array_equal(ggufinfo.dequantize_q4_1(raw), dequantize(raw, tensor_type).reshape(-1))


# --- errors speak to the learner ---

def test_unknown_variant_and_missing_text_file_explain_themselves(tmp_path):
    with pytest.raises(FtkitError, match="choose one of fp32, bf16"):
        footprint.quantization_config("int3")
    with pytest.raises(FtkitError, match="does not exist"):
        footprint.load_texts(tmp_path / "none.jsonl")
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"text": "ok"}\n{"prompt": "no text"}\n')
    with pytest.raises(FtkitError, match="line 2"):
        footprint.load_texts(bad)


def test_heldout_set_is_small_and_bilingual():
    texts = footprint.load_texts()
    assert 30 <= len(texts) <= 60
    assert any("\u4e00" <= ch <= "\u9fff" for ch in "".join(texts))


# --- whole model (slow: loads it several times) ---

@pytest.mark.slow
def test_real_weights_hand_nf4_equals_bitsandbytes(default_model):
    model, _ = default_model
    for name in ["model.layers.0.self_attn.q_proj.weight", "model.layers.29.mlp.down_proj.weight"]:
        w = model.get_parameter(name).detach()
        assert torch.equal(nf4_roundtrip(w), bnb.roundtrip_4bit(w, "nf4", 64))


@pytest.mark.slow
def test_footprint_ordering_and_own_count():
    sizes = {}
    for name in ["fp32", "bf16", "int8", "nf4", "nf4-dq"]:
        model = footprint.load_variant(name)
        counted = footprint.count_bytes(model)
        assert counted["tensors"] == model.get_memory_footprint()
        assert (counted["scales"] > 0) == (name not in ("fp32", "bf16"))
        sizes[name] = counted["total"]
        del model
    assert sizes["fp32"] > sizes["bf16"] > sizes["int8"] > sizes["nf4"] > sizes["nf4-dq"]
    assert sizes["fp32"] == 4 * 134_515_008 + 256  # every parameter once, + rotary buffers


@pytest.mark.slow
def test_perplexity_ignores_padding_and_batching(default_model):
    model, tokenizer = default_model
    texts = footprint.load_texts(limit=4)
    one_by_one = footprint.perplexity(model, tokenizer, texts, batch_size=1)
    assert footprint.perplexity(model, tokenizer, texts, batch_size=4) == pytest.approx(one_by_one, rel=1e-4)
    assert 1 < one_by_one < 200
