"""``ftkit vram`` on the command line: the JSON contract, the table, and exit 2 on bad input."""

import json

import pytest

from ftkit.cli import main


def run(capsys, *argv):
    status = main(["vram", *argv])
    out, err = capsys.readouterr()
    return status, out, err


def test_json_has_the_contracted_keys(capsys):
    status, out, _ = run(capsys, "--model", "llama-2-7b", "--method", "lora", "--json")
    assert status == 0
    data = json.loads(out)
    assert data["params_total"] == 6_738_415_616
    assert data["params_trainable"] == 19_988_480  # r=8 on all 7 linear layers of 32 blocks
    for key in ("weights", "gradients", "optimizer", "activations", "logits", "overhead"):
        assert isinstance(data["bytes"][key], int)
    assert data["total_bytes"] == sum(data["bytes"].values())
    assert data["peak_bytes"] == max(data["phases"].values()) < data["total_bytes"]
    assert data["peak_phase"] in data["phases"]


def test_every_flag_reaches_the_estimate(capsys):
    _, out, _ = run(capsys, "--model", "qwen2.5-7b", "--method", "qlora", "--bits", "8",
                    "--batch-size", "3", "--seq-len", "1024", "--gradient-checkpointing",
                    "--optim", "paged_adamw_8bit", "--lora-rank", "16", "--lora-targets",
                    "q_proj,v_proj", "--dtype", "float16", "--attn", "eager", "--json")
    s = json.loads(out)["settings"]
    assert (s["bits"], s["batch_size"], s["seq_len"], s["gradient_checkpointing"], s["optim"],
            s["lora_rank"], s["lora_targets"], s["dtype"], s["attn"]) == (
        8, 3, 1024, True, "paged_adamw_8bit", 16, "q_proj,v_proj", "float16", "eager")
    _, out, _ = run(capsys, "--model", "llama-2-7b", "--method", "full", "--gpus", "8", "--zero",
                    "3", "--offload", "--pure-bf16", "--json")
    data = json.loads(out)
    assert data["settings"]["zero"] == 3 and data["bytes"]["optimizer"] == 0 and data["cpu_bytes"] > 0


def test_table_shows_gib_and_the_cards_it_fits(capsys):
    status, out, _ = run(capsys, "--model", "llama-2-7b", "--method", "qlora", "--bits", "4")
    assert status == 0 and "GiB" in out and "sum of components" in out and "peak" in out
    assert "fits on: 16 GB, 24 GB" in out  # not on 8 or 12 GB cards (12.1 GiB with the CUDA context)
    _, out, _ = run(capsys, "--model", "llama-2-13b", "--method", "full")
    assert "fits on: none" in out


def test_config_json_file_and_seed_models(capsys, tmp_path):
    from ftkit.vram import load_model_config

    path = tmp_path / "config.json"
    path.write_text(json.dumps(load_model_config("chatglm3-6b")))
    _, out, _ = run(capsys, "--model", str(path), "--method", "prefix", "--json")
    assert json.loads(out)["params_total"] == 6_243_584_000


@pytest.mark.parametrize("argv, message", [
    (["--model", "no-such-preset"], "Presets:"),
    (["--method", "full", "--zero", "3", "--gpus", "1"], "gpus >= 2"),
    (["--method", "qlora", "--bits", "3"], "4 or 8"),
    (["--method", "qlora"], "4 or 8"),
    (["--batch-size", "-2"], "positive"),
    (["--method", "lora", "--bits", "4"], "only applies"),
    (["--dtype", "int3"], "dtype"),
    (["--method", "prompt", "--packing"], "packing"),
    (["--activation-offload"], "gradient_checkpointing"),
    (["--method", "full", "--offload"], "zero=2 or zero=3"),
])
def test_bad_input_exits_2_with_what_is_allowed(capsys, argv, message):
    status, out, err = run(capsys, *argv)
    assert status == 2 and message in err and "Traceback" not in err


@pytest.mark.parametrize("argv", [["--loss", "cut_cross_entropy"], ["--optim", "lion"], ["--attn", "xformers"]])
def test_unknown_kernel_or_optimizer_exits_2_listing_the_allowed(capsys, argv):
    with pytest.raises(SystemExit) as exit_info:
        main(["vram", *argv])
    assert exit_info.value.code == 2 and "choose from" in capsys.readouterr().err


def test_malformed_config_exits_2(capsys, tmp_path):
    bad = tmp_path / "config.json"
    bad.write_text("{not json")
    status, _, err = run(capsys, "--model", str(bad))
    assert status == 2 and "not valid JSON" in err and str(bad) in err
    bad.write_text(json.dumps({"model_type": "llama", "hidden_size": 64}))
    status, _, err = run(capsys, "--model", str(bad))
    assert status == 2 and "num_hidden_layers" in err


def test_kernel_flags_and_multi_gpu_table(capsys):
    _, out, _ = run(capsys, "--model", "llama-3.2-3b", "--method", "full", "--pure-bf16", "--batch-size",
                    "2", "--seq-len", "4096", "--packing", "--compile", "--loss", "chunked",
                    "--gradient-checkpointing", "--optimizer-in-backward", "--activation-offload",
                    "--optim", "adamw_8bit", "--json")
    s = json.loads(out)["settings"]
    assert (s["compile"], s["loss"], s["optimizer_in_backward"], s["activation_offload"], s["packing"]) == (
        True, "chunked", True, True, True)
    _, out, _ = run(capsys, "--model", "llama-2-7b", "--method", "full", "--gpus", "4", "--zero", "3")
    assert "every figure is per GPU" in out and "all GPUs together" in out


def test_remote_code_and_moe_configs(capsys):
    _, out, _ = run(capsys, "--model", "qwen-7b", "--method", "lora", "--json")
    assert json.loads(out)["params_total"] == 7_721_324_544
    _, out, _ = run(capsys, "--model", "mixtral-8x7b", "--method", "qlora", "--bits", "4")
    assert "active per token" in out
