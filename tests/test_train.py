"""ftkit.train: packing equals padding, merge equals the adapter, the run summary and output
files, and clear errors for fp16 on a CPU and OOM. Plumbing on the tiny random model; the
stage-by-stage checks (resume, out of memory, evaluation, early stopping) are in
test_stages.py."""

import json
import math

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
    from ftkit.train.recipe import common_arguments

    if torch.cuda.is_available():
        pytest.skip("the CPU-only path")
    args = common_arguments(as_config(**TINY, bf16=True, output_dir="unused"))
    assert args["use_cpu"] and args["bf16"]
    assert TrainingArguments(**args).bf16
    assert not common_arguments(as_config(**TINY, output_dir="unused")).get("use_cpu")


def test_quiet_run_prints_no_log_dicts(tiny_run, capsys):
    from ftkit.train import finetune

    finetune(None, **dict(tiny_run, max_steps=1, max_samples=2), verbose=False)
    out = capsys.readouterr().out
    assert "{'loss'" not in out and "ftkit:" not in out


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


def test_packed_batch_gives_the_padded_loss_and_logits(tiny_model_dir):
    from transformers import AutoModelForCausalLM

    from ftkit import data, models
    from ftkit.train import collate

    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir).eval()
    tokenizer = models.load_tokenizer(str(tiny_model_dir))
    rows = data.tokenize_sft(data.load("data/identity.jsonl").select(range(3)), tokenizer, 64)
    features = [rows[i] for i in range(3)]
    padded = collate.make_collator(tokenizer, packing=False)(features)
    packed = collate.make_collator(tokenizer, packing=True)(features)
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


def test_lora_run_writes_its_outputs_and_merge_equals_the_adapter(tiny_run, tmp_path):
    from transformers import AutoModelForCausalLM

    from ftkit.dialects import load_config
    from ftkit.infer import chat, load_adapter, merge_adapter, perplexity, side_by_side
    from ftkit.train import finetune, read_summary

    out = tmp_path / "run"
    result = finetune(None, **dict(tiny_run, plot_loss=True, max_steps=4, val_size=0.25,
                                   lora_dropout=0.05, learning_rate=2e-2,
                                   report_to=["tensorboard"], output_dir=str(out)))
    summary = read_summary(out)
    assert summary == json.loads(json.dumps(result.summary))
    for key in ("method", "steps", "first_loss", "last_loss", "eval_loss", "tokens_per_second",
                "train_seconds", "world_size", "final_eval", "curves"):
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
    with adapter.disable_adapter():  # "base" is the same weights with the adapter off
        base_answer = chat(adapter, tokenizer, "Who are you?", max_new_tokens=8)
    assert rows == [{"prompt": "Who are you?", "base": base_answer,
                     "tuned": chat(adapter, tokenizer, "Who are you?", max_new_tokens=8)}]
    # Perplexity is exp(the model's own mean token loss), the same for the merged model and
    # the adapter, and does not depend on how the texts are batched.
    text = "Who are you? I am Ferret."
    with torch.no_grad():
        by_hand = math.exp(float(merged(input_ids=ids, labels=ids).loss))
    assert perplexity(merged, tokenizer, [text]) == pytest.approx(by_hand, rel=1e-4)
    assert perplexity(adapter, tokenizer, [text]) == pytest.approx(by_hand, rel=1e-4)
    texts = [text, "The capital of France is Paris.", "Ferrets are small."]
    assert perplexity(merged, tokenizer, texts, batch_size=1) == pytest.approx(
        perplexity(merged, tokenizer, texts, batch_size=3), rel=1e-4)
