"""Training throughput of ftkit against the pipelines people copy, side by side in one process.

Run: ``python benchmarks/throughput.py [--quick] [--json] [--variants] [--set key=value ...]``.
The default model learns LoRA (ftkit's default adapter: rank 8, all linear layers) for one
epoch on the same conversations, three ways:

* ``naive``: seed 002's recipe: every example padded to ``max_seq_length``
  (``padding='max_length'``) and plain ``transformers.Trainer``;
* ``trl``: ``trl.SFTTrainer`` with its defaults (in trl 1.16: no packing, no padding-free,
  gradient checkpointing on, bf16 on, loss on every token of a conversation);
* ``ftkit``: ``ftkit.train.finetune`` with ftkit's defaults (``--set`` overrides them).

Shared by all three: the data, ``max_seq_length``, batch size, learning rate, seed, the LoRA
config. Speed counts real tokens only (a forward pre-hook adds up the attention mask, or the
packed row's length), timed from ``on_train_begin`` to ``on_train_end``; tokenization and
model loading are outside the clock. ``answer_loss`` is the same yardstick for every run:
the mean loss on the answer tokens of the first examples after training. The machine is
shared, so compare the ratios, never the absolute figures. ``--variants`` adds ftkit runs
with one setting changed each (bf16, packing, group_by_length...). The ceiling (matmul
GFLOP/s of this machine) comes from :mod:`benchmarks.matmul_ceiling`.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

import psutil
import torch
from transformers import TrainerCallback

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from ftkit import data, methods, models  # noqa: E402
from ftkit.paths import DATA_DIR  # noqa: E402

DATA_FILES = ("identity.jsonl", "instruction.json", "firefly.jsonl", "multitask.jsonl",
              "prompt_completion.jsonl", "conversations_sharegpt.jsonl")
COMMON = dict(max_seq_length=256, per_device_train_batch_size=4, learning_rate=2e-4,
              num_train_epochs=1.0, seed=42)
QUICK_EXAMPLES = 24
EVAL_EXAMPLES = 48  # answer_loss is measured on the first examples of the (shuffled) data
# One setting changed at a time, on top of ftkit's defaults.
VARIANTS = {
    "group_by_length": {"group_by_length": True},
    "bf16": {"bf16": True},
    "packing": {"packing": True},
    "packing+bf16": {"packing": True, "bf16": True},
    "group_by_length+bf16": {"group_by_length": True, "bf16": True},
    # FtkitTrainer measures activation memory on its first steps (saved-tensor hooks): its cost.
    "packing+bf16-no_meter": {"packing": True, "bf16": True, "_measure_steps": 0},
}


class Meter(TrainerCallback):
    """Real tokens, seconds and peak RSS of one training run, the same way for every trainer."""

    def __init__(self):
        self.tokens = 0
        self.seconds = 0.0
        self.rss_start = self.rss_peak = 0
        self._hook = None
        self._process = psutil.Process()

    def _sample(self):
        self.rss_peak = max(self.rss_peak, self._process.memory_info().rss)

    def _count(self, module, args, kwargs):
        mask = kwargs.get("attention_mask")
        ids = kwargs.get("input_ids", args[0] if args else None)
        # Packed rows (DataCollatorWithFlattening) carry no mask and no padding.
        self.tokens += int(mask.sum()) if mask is not None else int(ids.numel())
        self._sample()

    def on_train_begin(self, args, state, control, model=None, **kwargs):
        self.rss_start = self.rss_peak = self._process.memory_info().rss
        self._hook = model.register_forward_pre_hook(self._count, with_kwargs=True)
        self._start = time.perf_counter()

    def on_step_end(self, args, state, control, **kwargs):
        self._sample()  # after backward and the optimizer step: activations and grads alive
        if state.max_steps and state.global_step >= state.max_steps:
            control.should_log = True  # the last loss is the end of training

    def on_train_end(self, args, state, control, **kwargs):
        self.seconds = time.perf_counter() - self._start
        self._hook.remove()


def load_examples(n: int | None = None):
    """The canonical ``messages`` of the bundled conversation files, shuffled, first ``n``."""
    import datasets

    parts = [data.load(DATA_DIR / name, verbose=False).select_columns(["messages"])
             for name in DATA_FILES]
    examples = datasets.concatenate_datasets(parts).shuffle(seed=0)
    return examples.select(range(min(n, len(examples)))) if n else examples


def write_jsonl(examples, path: Path) -> Path:
    with open(path, "w", encoding="utf-8") as f:
        for row in examples:
            f.write(json.dumps({"messages": row["messages"]}, ensure_ascii=False) + "\n")
    return path


def lora_model(cfg, use_cache: bool = True):
    """The base model with ftkit's default LoRA adapter, fp32 (as the copied recipes load it)."""
    from peft import get_peft_model

    model = models.load_model(cfg.model_name_or_path)
    model.config.use_cache = use_cache
    return get_peft_model(model, methods.lora_config(cfg))


def answer_loss(model, tokenized, n: int = EVAL_EXAMPLES, batch_size: int = 8) -> float:
    """Mean cross-entropy on the answer tokens of the first ``n`` tokenized examples."""
    from ftkit.train.collate import padding_collator

    collate = padding_collator(tokenized.tokenizer)
    rows = [tokenized.dataset[i] for i in range(min(n, len(tokenized.dataset)))]
    was_training, total, count = model.training, 0.0, 0
    model.eval()
    with torch.no_grad():
        for i in range(0, len(rows), batch_size):
            batch = collate(rows[i:i + batch_size])
            learned = int((batch["labels"][:, 1:] != -100).sum())
            total += float(model(**batch).loss) * learned
            count += learned
    model.train(was_training)
    return total / count


class Tokenized:
    """The examples tokenized once with ftkit's assistant-only labels (pipelines a, and eval)."""

    def __init__(self, examples, tokenizer, max_seq_length):
        self.tokenizer = tokenizer
        self.dataset = data.tokenize_sft(examples, tokenizer, max_seq_length, verbose=False)


def _shared_args(cfg, workdir: Path, name: str) -> dict:
    """The TrainingArguments every pipeline shares (use_cpu: TRL's bf16 default needs it)."""
    return dict(output_dir=str(workdir / name), per_device_train_batch_size=cfg.per_device_train_batch_size,
                learning_rate=cfg.learning_rate, num_train_epochs=cfg.num_train_epochs, seed=cfg.seed,
                logging_steps=5, save_strategy="no", report_to=[], disable_tqdm=True,
                use_cpu=not torch.cuda.is_available())


def run_naive(cfg, tokenized, workdir: Path, meter: Meter):
    """(a) seed 002: pad every example to max_seq_length, plain Trainer, fp32."""
    from transformers import Trainer, TrainingArguments, default_data_collator

    def pad_to_max(example):
        pad = cfg.max_seq_length - len(example["input_ids"])
        return {"input_ids": example["input_ids"] + [tokenized.tokenizer.pad_token_id] * pad,
                "attention_mask": example["attention_mask"] + [0] * pad,
                "labels": example["labels"] + [-100] * pad}

    padded = tokenized.dataset.map(pad_to_max)
    model = lora_model(cfg)
    trainer = Trainer(model=model, args=TrainingArguments(**_shared_args(cfg, workdir, "naive")),
                      train_dataset=padded,
                      data_collator=default_data_collator, callbacks=[meter])
    trainer.train()
    return trainer, model


def run_trl(cfg, examples, workdir: Path, meter: Meter):
    """(b) TRL SFTTrainer, its own defaults except the settings every pipeline shares."""
    from trl import SFTConfig, SFTTrainer

    args = SFTConfig(**_shared_args(cfg, workdir, "trl"), max_length=cfg.max_seq_length)
    model = models.load_model(cfg.model_name_or_path)
    tokenizer = models.load_tokenizer(cfg.model_name_or_path)
    trainer = SFTTrainer(model=model, args=args, train_dataset=examples, processing_class=tokenizer,
                         peft_config=methods.lora_config(cfg), callbacks=[meter])
    trainer.train()
    return trainer, trainer.model


def run_ftkit(cfg, train_file: Path, workdir: Path, meter: Meter, name: str = "ftkit", **overrides):
    """(c) ftkit.train.finetune with ftkit's defaults, plus ``overrides``."""
    from ftkit.train import finetune

    shared = {key: getattr(cfg, key) for key in COMMON}
    config = dict(train_file=str(train_file), output_dir=str(workdir / name), save_strategy="no",
                  plot_loss=False, disable_tqdm=True, logging_steps=5, **shared)
    config.update(overrides)
    measure_steps = config.pop("_measure_steps", None)
    model = None
    if config.get("packing"):  # packed rows need the KV cache off, or examples attend to each other
        model = methods.load_base_model(config)
        data.prepare_model_for_packing(model)
    from ftkit.train.recipe import FtkitTrainer

    default_steps = FtkitTrainer.measure_steps
    if measure_steps is not None:
        FtkitTrainer.measure_steps = measure_steps
    try:
        result = finetune(config, model=model, callbacks=[meter], verbose=False)
    finally:
        FtkitTrainer.measure_steps = default_steps
    return result.trainer, result.model


def _loss_of(trainer) -> float | None:
    losses = [row["loss"] for row in trainer.state.log_history if "loss" in row]
    return losses[-1] if losses else None


def measure(name: str, run, tokenized) -> dict:
    meter = Meter()
    load_before = os.getloadavg()[0]
    trainer, model = run(meter)
    return {
        "name": name,
        "real_tokens": meter.tokens,
        "steps": trainer.state.global_step,
        "seconds": round(meter.seconds, 2),
        "tokens_per_second": round(meter.tokens / meter.seconds, 2) if meter.seconds else None,
        "peak_rss_mb": round(meter.rss_peak / 2**20, 1),
        "rss_growth_mb": round((meter.rss_peak - meter.rss_start) / 2**20, 1),
        "last_loss": _loss_of(trainer),
        "answer_loss": round(answer_loss(model, tokenized), 4),
        "trainable_params": sum(p.numel() for p in model.parameters() if p.requires_grad),
        "checkpointing": bool(getattr(trainer.args, "gradient_checkpointing", False)
                              or getattr(trainer.args, "activation_checkpointing", False)),
        "bf16": bool(trainer.args.bf16),
        "load_average": round(load_before, 2),
    }


def benchmark(n_examples: int | None = None, ftkit_overrides: dict | None = None,
              variants: dict | None = None, order=("naive", "trl", "ftkit"), log=print,
              **shared) -> dict:
    """Train every pipeline once on the same examples; the figures and their ratios.

    ``shared`` overrides the settings all pipelines share (``COMMON``), e.g. max_seq_length.
    """
    examples = load_examples(n_examples)
    cfg = methods.as_config(**{**COMMON, **shared})
    tokenizer = models.load_tokenizer(cfg.model_name_or_path)
    tokenized = Tokenized(examples, tokenizer, cfg.max_seq_length)
    runs = {}
    with tempfile.TemporaryDirectory(prefix="ftkit-bench-") as tmp:
        workdir = Path(tmp)
        train_file = write_jsonl(examples, workdir / "train.jsonl")
        pipelines = {
            "naive": lambda m: run_naive(cfg, tokenized, workdir, m),
            "trl": lambda m: run_trl(cfg, examples, workdir, m),
            "ftkit": lambda m: run_ftkit(cfg, train_file, workdir, m, **(ftkit_overrides or {})),
        }
        for name, overrides in (variants or {}).items():
            pipelines[f"ftkit+{name}"] = (lambda o, n: lambda m: run_ftkit(
                cfg, train_file, workdir, m, name=n, **{**(ftkit_overrides or {}), **o}))(overrides, name)
        for name in list(order) + [k for k in pipelines if k not in order]:
            log(f"[throughput] {name} ...")
            runs[name] = measure(name, pipelines[name], tokenized)
            log(f"[throughput] {name}: {runs[name]}")
    speed = {name: run["tokens_per_second"] for name, run in runs.items()}
    return {
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
                   f"torch {torch.__version__}, {torch.get_num_threads()} threads",
        "date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "examples": len(examples),
        "settings": {**{key: getattr(cfg, key) for key in COMMON}, "lora_rank": cfg.lora_rank, "lora_target": cfg.lora_target,
                     "ftkit_overrides": ftkit_overrides or {}},
        "pipelines": runs,
        "ratio_vs_naive": round(speed["ftkit"] / speed["naive"], 3),
        "ratio_vs_trl": round(speed["ftkit"] / speed["trl"], 3),
        "ratios_of_variants": {name: {"vs_naive": round(s / speed["naive"], 3),
                                      "vs_trl": round(s / speed["trl"], 3)}
                               for name, s in speed.items() if name.startswith("ftkit+")},
    }


def markdown(result: dict) -> str:
    """The ``## Throughput`` section of RESULTS.md for one result."""
    lines = [f"`{result['command']}` on {result['machine']}, {result['date']}; "
             f"{result['examples']} conversations, one epoch, shared settings "
             f"`{json.dumps(result['settings'])}`; load average at each start in the table, "
             f"{result['load_average_end'][0]} at the end (a shared machine: read the ratios).", "",
             "| pipeline | real tokens | tokens/s | x naive | x TRL | steps | last loss | answer loss | peak RSS MB |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    naive, trl = result["pipelines"]["naive"], result["pipelines"]["trl"]
    for name, run in result["pipelines"].items():
        speed = run["tokens_per_second"]
        lines.append(f"| {name} | {run['real_tokens']} | {speed:.1f} | "
                     f"{speed / naive['tokens_per_second']:.2f} | {speed / trl['tokens_per_second']:.2f} | "
                     f"{run['steps']} | {run['last_loss']:.3f} | {run['answer_loss']:.3f} | "
                     f"{run['peak_rss_mb']:.0f} |")
    lines += ["", f"**ratio_vs_naive = {result['ratio_vs_naive']}** (target >= 2.0), "
              f"**ratio_vs_trl = {result['ratio_vs_trl']}** (target >= 1.0)."]
    if "ceiling" in result:
        c = result["ceiling"]
        lines += ["", f"Ceiling (model-shaped torch.matmul, median / best of 21): fp32 {c['fp32_gflops']} / "
                  f"{c['fp32_peak_gflops']} GFLOP/s, bf16 {c['bf16_gflops']} / {c['bf16_peak_gflops']} "
                  "GFLOP/s. Training FLOP/s (LoRA: 4N + 6N_A per real token, +2N with checkpointing) "
                  "over the median ceiling of its dtype: " + ", ".join(
                      f"{name} {f['gflops']} GFLOP/s = {100 * f['of_ceiling']:.0f}% of {f['ceiling']}"
                      for name, f in result["flops_fraction"].items()) + "."]
    return "\n".join(lines)


def main(argv=None) -> int:
    from ftkit.config import parse_overrides

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help=f"{QUICK_EXAMPLES} examples instead of all")
    parser.add_argument("--json", action="store_true", help="print one JSON object at the end")
    parser.add_argument("--variants", action="store_true", help="also ftkit with one setting changed each")
    parser.add_argument("--only-variants", nargs="*", default=None, metavar="NAME",
                        help=f"run these variants only (of {', '.join(VARIANTS)})")
    parser.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE",
                        help="override ftkit's defaults in pipeline (c), e.g. --set bf16=true packing=true")
    parser.add_argument("--examples", type=int, default=None, help="use the first N examples")
    parser.add_argument("--max-seq-length", type=int, default=COMMON["max_seq_length"],
                        help="max_seq_length of every pipeline (the naive one pads to it)")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    parser.add_argument("--ceiling", action="store_true", help="also measure the matmul ceiling")
    parser.add_argument("--write", action="store_true", help="replace '## Throughput' in RESULTS.md")
    parser.add_argument("--from-json", metavar="PATH", help="write RESULTS.md from a saved --json output")
    args = parser.parse_args(argv)
    if args.from_json:
        from results import write_section

        write_section(markdown(json.loads(Path(args.from_json).read_text())), "## Throughput")
        return 0
    if args.threads:
        torch.set_num_threads(args.threads)
    variants = None
    if args.variants or args.only_variants:
        names = args.only_variants or list(VARIANTS)
        variants = {name: VARIANTS[name] for name in names}
    log = (lambda *a: print(*a, file=sys.stderr)) if args.json else print
    n_examples = args.examples or (QUICK_EXAMPLES if args.quick else None)
    # Trainer prints its log lines to stdout; with --json, stdout carries the JSON alone.
    with contextlib.redirect_stdout(sys.stderr) if args.json else contextlib.nullcontext():
        result = benchmark(n_examples, parse_overrides(args.set), variants, log=log,
                           max_seq_length=args.max_seq_length)
    result["command"] = "python benchmarks/throughput.py " + " ".join(argv if argv is not None else sys.argv[1:])
    result["load_average_end"] = [round(x, 2) for x in os.getloadavg()]
    if args.ceiling:
        from matmul_ceiling import ceiling, training_flops_fraction

        result["ceiling"] = ceiling()
        result["flops_fraction"] = training_flops_fraction(result, result["ceiling"])
    if args.write:
        from results import write_section

        write_section(markdown(result), "## Throughput")
    if args.json:
        print(json.dumps(result, indent=1))
    else:
        for name, run in result["pipelines"].items():
            print(f"{name:24s} {run['tokens_per_second']:8.1f} tok/s  {run['real_tokens']:6d} tokens  "
                  f"answer_loss {run['answer_loss']:.4f}  rss {run['peak_rss_mb']:.0f} MB")
        print(f"ratio_vs_naive {result['ratio_vs_naive']}  ratio_vs_trl {result['ratio_vs_trl']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
