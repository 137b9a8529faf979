"""ftkit.train: packing equals padding, resume equals an uninterrupted run, merge equals the
adapter, the run summary and output files, and clear errors for fp16 on a CPU and OOM."""

import json

import pytest
import torch

from ftkit.errors import FtkitError

TINY = dict(train_file="data/identity.jsonl", max_seq_length=64, per_device_train_batch_size=2,
            logging_steps=1, learning_rate=2e-3, overwrite_output_dir=True, disable_tqdm=True,
            save_strategy="no", plot_loss=False)


def test_fp16_on_a_cpu_says_to_use_bf16(tmp_path):
    from ftkit.train import finetune

    if torch.cuda.is_available():
        pytest.skip("fp16 is valid on a GPU")
    with pytest.raises(FtkitError, match="bf16"):
        finetune(None, **TINY, fp16=True, output_dir=str(tmp_path))


def test_bf16_on_a_machine_without_a_gpu_trains_with_cpu_autocast():
    # Trainer refuses bf16 without a GPU unless use_cpu is set; ftkit sets it for the user.
    from transformers import TrainingArguments

    from ftkit.methods import as_config
    from ftkit.train.run import common_arguments

    if torch.cuda.is_available():
        pytest.skip("the CPU-only path")
    args = common_arguments(as_config(**TINY, bf16=True, output_dir="unused"))
    assert args["use_cpu"] and args["bf16"]
    assert TrainingArguments(**args).bf16
    assert not common_arguments(as_config(**TINY, output_dir="unused")).get("use_cpu")


def test_quiet_run_prints_no_log_dicts(tmp_path, capsys):
    from ftkit.train import finetune

    finetune(None, **TINY, max_steps=1, max_samples=2, output_dir=str(tmp_path), verbose=False)
    assert "{'loss'" not in capsys.readouterr().out


def test_out_of_memory_error_names_prediction_and_remedies():
    from ftkit.methods import as_config
    from ftkit.train.oom import is_out_of_memory, out_of_memory_error

    cfg = as_config(method="full", per_device_train_batch_size=8, max_seq_length=2048)
    assert is_out_of_memory(MemoryError()) and not is_out_of_memory(ValueError("x"))
    message = str(out_of_memory_error(cfg, MemoryError("host"), model=None))
    assert "calculator predicts" in message and "GiB" in message
    for remedy in ("per_device_train_batch_size=4 with gradient_accumulation_steps=2",
                   "gradient_checkpointing=true", "max_seq_length=1024", "method=qlora"):
        assert remedy in message


@pytest.mark.slow
def test_packed_batch_gives_the_padded_loss_and_logits(default_model):
    from ftkit import data
    from ftkit.train import collate

    model, tokenizer = default_model
    rows = data.tokenize_sft(data.load("data/identity.jsonl").select(range(3)), tokenizer, 64)
    features = [rows[i] for i in range(3)]
    padded = collate.padding_collator(tokenizer)(features)
    packed = collate.packing_collator()(features)
    assert "attention_mask" not in packed and packed["input_ids"].shape[0] == 1
    assert collate.real_tokens(padded) == collate.real_tokens(packed) == sum(len(f["input_ids"]) for f in features)
    with torch.no_grad():
        out_padded = model(**padded, use_cache=False)
        out_packed = model(**packed, use_cache=False)
    torch.testing.assert_close(out_packed.loss, out_padded.loss, rtol=1e-5, atol=1e-5)
    start = 0
    for i, f in enumerate(features):  # each example sees only itself inside the packed row
        n = len(f["input_ids"])
        torch.testing.assert_close(out_packed.logits[0, start:start + n], out_padded.logits[i, :n],
                                   rtol=1e-4, atol=1e-4)
        start += n


@pytest.mark.slow
def test_resumed_run_has_the_loss_curve_of_an_uninterrupted_one(tmp_path):
    from ftkit.train import StopAfterSteps, finetune

    common = dict(TINY, max_steps=6, max_samples=12, save_strategy="steps", save_steps=3,
                  lora_dropout=0.1, lr_scheduler_type="cosine", verbose=False)
    whole = finetune(None, **common, output_dir=str(tmp_path / "whole"))
    finetune(None, **common, output_dir=str(tmp_path / "cut"), callbacks=[StopAfterSteps(3)])
    resumed = finetune(None, **dict(common, output_dir=str(tmp_path / "cut"),
                                    resume_from_checkpoint=True, overwrite_output_dir=False))

    def curve(result):
        return {row["step"]: row["loss"] for row in result.log_history if "loss" in row}

    assert len(curve(whole)) == 6 and curve(resumed).keys() == curve(whole).keys()
    assert curve(resumed) == curve(whole)  # steps 1-3 from the checkpoint's state, 4-6 recomputed


@pytest.mark.slow
def test_lora_run_writes_its_outputs_and_merge_equals_the_adapter(tmp_path):
    from transformers import AutoModelForCausalLM

    from ftkit.config import load_config
    from ftkit.infer import load_adapter, merge_adapter, perplexity, side_by_side
    from ftkit.train import finetune, read_summary

    out = tmp_path / "run"
    result = finetune(None, **dict(TINY, plot_loss=True), max_steps=4, val_size=0.1,
                      report_to=["tensorboard"], output_dir=str(out))
    summary = read_summary(out)
    assert summary == json.loads(json.dumps(result.summary))
    for key in ("method", "steps", "first_loss", "last_loss", "eval_loss", "tokens_per_second",
                "train_seconds", "world_size"):
        assert summary[key] is not None, key
    assert summary["steps"] == 4 and summary["world_size"] == 1
    assert summary["memory"]["predicted_bytes"] > 0 and summary["memory"]["measured_bytes"] > 0
    for name in ("adapter_config.json", "adapter_model.safetensors", "tokenizer_config.json",
                 "run_config.yaml", "trainer_state.json", "training_loss.png"):
        assert (out / name).exists(), name
    assert list((out / "runs").rglob("events.out.tfevents.*")), "no TensorBoard log"
    assert load_config(out / "run_config.yaml").max_steps == 4

    adapter, tokenizer = load_adapter(out)
    adapter.eval()
    ids = tokenizer("Who are you? I am Ferret.", return_tensors="pt")["input_ids"]
    with torch.no_grad():
        tuned = adapter(input_ids=ids).logits
        with adapter.disable_adapter():
            base = adapter(input_ids=ids).logits
    assert (tuned - base).abs().max() > 1e-3  # the adapter does change the outputs
    merge_adapter(out, tmp_path / "merged")
    merged = AutoModelForCausalLM.from_pretrained(tmp_path / "merged").eval()
    with torch.no_grad():
        torch.testing.assert_close(merged(input_ids=ids).logits, tuned, rtol=1e-4, atol=1e-4)

    rows = side_by_side(adapter, tokenizer, ["Who are you?"], max_new_tokens=8, show=False)
    assert rows[0]["prompt"] == "Who are you?" and rows[0]["base"] and rows[0]["tuned"]
    assert 1 < perplexity(merged, tokenizer, ["The capital of France is Paris."]) < 1000
