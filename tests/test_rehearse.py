"""Rehearsal: a practitioner's config runs end to end, small, on a model the CPU can train.

Plumbing claims (the config reads, its data loads, targets are mapped, the method applies,
two steps run, the GPU estimate is printed), so the tiny random model of conftest stands in
for the default model; tests/test_interop_corpus.py rehearses the real files on the default one.
"""

import pytest

from ftkit.cli import main
from ftkit.paths import CONFIGS_DIR, REPO_ROOT
from ftkit.rehearse import rehearse

INTEROP = REPO_ROOT / "tests" / "interop"
SEEDS = sorted(p for p in (CONFIGS_DIR / "seeds").iterdir() if p.is_file())
OWN = [INTEROP / "llamafactory" / "examples" / "train_lora" / name for name in
       ("garden_lora_sft.yaml", "garden_lora_dpo.yaml", "garden_lora_pretrain.yaml", "garden_lora_sft.sh")] + [
       INTEROP / "llamafactory" / "examples" / "train_qlora" / "garden_lora_sft_otfq.yaml",
       INTEROP / "firefly" / "train_args" / "sft" / "qlora" / "garden-sft-qlora.json",
       INTEROP / "firefly" / "train_args" / "dpo" / "garden-dpo-lora.json",
       INTEROP / "firefly" / "train_args" / "pretrain" / "garden-pretrain-full.json",
       INTEROP / "chatglm3" / "configs" / "lora.yaml",
       INTEROP / "chatglm3" / "scripts" / "finetune_lora.sh",
       INTEROP / "chatglm3" / "scripts" / "finetune_pt.sh",
       INTEROP / "baichuan2" / "fine-tune-lora.sh"]


def _rehearse(path, tiny_model_dir, tmp_path):
    return rehearse(path, steps=2, samples=4, seq_len=64, workdir=tmp_path, model=str(tiny_model_dir),
                    verbose=False)


def test_llamafactory_mix_rehearses(tiny_model_dir, tmp_path):
    r = _rehearse(OWN[0], tiny_model_dir, tmp_path)
    assert r.result.summary["steps"] == 2
    assert r.records == {"garden_alpaca": 3, "garden_chat": 2}  # both sets, mixed into one
    assert r.config.model_name_or_path == str(tiny_model_dir) and r.config.max_seq_length == 64
    assert r.estimate is not None  # Qwen2.5-0.5B is a bundled preset
    assert r.estimate.fitting_cards() and r.reading.config.model_name_or_path == "Qwen/Qwen2.5-0.5B-Instruct"


@pytest.mark.slow
@pytest.mark.parametrize("path", SEEDS + OWN[1:], ids=lambda p: p.name)
def test_config_rehearses(path, tiny_model_dir, tmp_path):
    r = _rehearse(path, tiny_model_dir, tmp_path)
    assert r.result.summary["steps"] == 2
    assert r.config.stage == r.reading.config.stage and r.config.method == r.reading.config.method
    assert r.config.quantization_bit == r.reading.config.quantization_bit  # kept on the CPU


def test_fused_targets_and_gpu_settings_are_mapped_and_said(tiny_model_dir, tmp_path):
    from ftkit.dialects import read_config
    from ftkit.rehearse import rehearsal_config

    baichuan = rehearsal_config(read_config(INTEROP / "baichuan2" / "fine-tune-lora.sh"), workdir=tmp_path,
                                model=str(tiny_model_dir))
    assert baichuan.config.lora_target == ["q_proj", "k_proj", "v_proj"]
    assert any("W_pack (fused q/k/v)" in c for c in baichuan.changes)
    assert baichuan.config.deepspeed is None and baichuan.records == {
        str(INTEROP / "baichuan2" / "data" / "garden_chat.json"): 2}
    firefly = rehearsal_config(read_config(INTEROP / "firefly" / "train_args" / "sft" / "qlora" / "garden-sft-qlora.json"),
                               workdir=tmp_path, model=str(tiny_model_dir))
    assert firefly.config.bf16 and not firefly.config.fp16 and firefly.config.optim == "adamw_torch"
    assert firefly.config.method == "qlora" and firefly.config.quantization_bit == 4


def test_missing_data_is_said_and_replaced(tiny_model_dir, tmp_path):
    from ftkit.dialects import read_config
    from ftkit.rehearse import rehearsal_config

    r = rehearsal_config(read_config(CONFIGS_DIR / "seeds" / "chatglm3_lora.yaml"), workdir=tmp_path,
                         model=str(tiny_model_dir))
    assert any("train.json not found here" in c for c in r.changes)


def test_cli_rehearse_prints_the_gpu_needs(tiny_model_dir, capsys):
    code = main(["train", str(OWN[0]), "--rehearse", "--steps", "1", "--model", str(tiny_model_dir),
                 "--set", "max_samples=4"])
    out = capsys.readouterr().out
    assert code == 0
    assert "rehearsal passed: 1 step(s)" in out and "Qwen/Qwen2.5-0.5B-Instruct" in out and "GB per GPU" in out


def test_cli_rehearse_refusals_exit_2(capsys):
    kto = INTEROP / "llamafactory" / "examples" / "train_lora" / "garden_lora_kto.yaml"
    assert main(["train", str(kto), "--rehearse"]) == 2
    assert "garden_lora_kto.yaml:5: 'stage' asks for KTO" in capsys.readouterr().err
    assert main(["train", str(OWN[0]), "--steps", "3"]) == 2
