"""Per-process bytes under ZeRO-1/2/3 and FSDP2 on 2 CPU processes, measured vs estimated.

Run: ``python benchmarks/sharding.py [--write]``. It starts ``torchrun --nproc_per_node 2`` on
itself (``--worker``): for each strategy, full fine-tuning of a random 2-layer Llama (the tests'
tiny model, 3.2 M parameters) takes 3 optimizer steps, and each process reads what it holds
from the real tensors (:func:`ftkit.train.deepspeed.local_bytes`,
:func:`ftkit.train.fsdp.local_bytes`). Those bytes are compared, component by component, with
``ftkit.vram.estimate(..., gpus=2, zero=S)``: DeepSpeed in its bf16 regime (16-bit weights and
gradients, float32 master weights and Adam moments), FSDP2 in float32 (it shards like ZeRO-3).
The losses of each strategy are compared with one process taking the same 3 steps with
gradient accumulation 2 (DeepSpeed ZeRO-0 bf16 for the ZeRO runs, plain torch for FSDP).
``--write`` replaces the ``## Sharding`` section of ``benchmarks/RESULTS.md``. Lesson 09 shows
the same table; ``tests/test_zero.py`` and ``tests/test_fsdp.py`` check it.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from ftkit.tiny import TINY_LLAMA  # the tests' tiny model (without the tokenizer it does not need)

ROOT = Path(__file__).resolve().parents[1]
STRATEGIES = ("zero1", "zero2", "zero3", "fsdp2")
STEPS, SEQ_LEN, LR = 3, 16, 1e-3
TARGET = 0.05  # per component
LOSS_TOLERANCE = 1e-3  # relative


def tiny_model(model_dir: Path | None = None):
    import torch
    from transformers import AutoModelForCausalLM, LlamaConfig, LlamaForCausalLM

    if model_dir is not None:
        return AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
    with torch.random.fork_rng():
        torch.manual_seed(0)
        return LlamaForCausalLM(LlamaConfig(**TINY_LLAMA))


def batches():
    """STEPS x 2 rows of random tokens: row 2s+r is process r's micro-batch of step s."""
    import torch

    generator = torch.Generator().manual_seed(1)
    return torch.randint(3, TINY_LLAMA["vocab_size"], (STEPS * 2, 1, SEQ_LEN), generator=generator)


def deepspeed_config(stage: int, accumulation: int) -> dict:
    return {"train_micro_batch_size_per_gpu": 1, "gradient_accumulation_steps": accumulation,
            "zero_optimization": {"stage": stage, "reduce_bucket_size": 100_000,
                                  "allgather_bucket_size": 100_000},
            "optimizer": {"type": "AdamW", "params": {"lr": LR, "weight_decay": 0.0, "torch_adam": True}},
            "bf16": {"enabled": True}, "gradient_clipping": 0.0, "steps_per_print": 10**9}


def run_zero(stage: int, rows, rank: int, world: int) -> tuple[list[float], dict]:
    import deepspeed
    import torch
    import torch.distributed as dist

    from ftkit.train.deepspeed import local_bytes, watch_full_gradients

    accumulation = 2 // world
    model = tiny_model()
    engine, *_ = deepspeed.initialize(model=model, model_parameters=model.parameters(),
                                      config=deepspeed_config(stage, accumulation))
    watch_full_gradients(engine)
    losses, held = [], {}
    for step in range(STEPS):
        total = torch.zeros(1)
        for micro in range(accumulation):
            ids = rows[step * 2 + rank * accumulation + micro]
            loss = engine(input_ids=ids, labels=ids).loss
            engine.backward(loss)
            if step == 0 and micro == accumulation - 1:
                held = local_bytes(engine)  # gradients are reduced, not yet consumed
            engine.step()
            total += loss.detach().float()
        dist.all_reduce(total)
        losses.append(total.item() / 2)
    after = local_bytes(engine)
    held.update(optimizer=after["optimizer"], master_weights=after["master_weights"],
                moments=after["moments"])
    return losses, held


def run_fsdp(rows, rank: int, world: int) -> tuple[list[float], dict]:
    import torch
    import torch.distributed as dist

    from ftkit.train.fsdp import local_bytes, shard

    model = tiny_model()
    if world > 1:
        shard(model)
    optimizer = torch.optim.AdamW(model.parameters(), lr=LR, weight_decay=0.0)
    accumulation = 2 // world
    losses, held = [], {}
    for step in range(STEPS):
        total = torch.zeros(1)
        for micro in range(accumulation):
            ids = rows[step * 2 + rank * accumulation + micro]
            loss = model(input_ids=ids, labels=ids).loss
            (loss / accumulation).backward()
            total += loss.detach()
        if step == 0:
            held = local_bytes(model)
        optimizer.step()
        optimizer.zero_grad()
        if world > 1:
            dist.all_reduce(total)
        losses.append(total.item() / 2)
    held["optimizer"] = local_bytes(model, optimizer)["optimizer"]
    return losses, held


def worker(out: Path, strategies) -> None:
    import torch
    import torch.distributed as dist

    torch.manual_seed(0)
    dist.init_process_group("gloo")
    if any(name.startswith("zero") for name in strategies):  # FSDP2 needs no DeepSpeed
        import deepspeed

        deepspeed.init_distributed(dist_backend="gloo")
    rank, world = dist.get_rank(), dist.get_world_size()
    rows = batches()
    results = {}
    for name in strategies:
        start = time.perf_counter()
        if name == "fsdp2":
            losses, held = run_fsdp(rows, rank, world)
        else:
            losses, held = run_zero(int(name[-1]), rows, rank, world)
        every = [None] * world
        dist.all_gather_object(every, held)
        results[name] = {"losses": losses, "per_rank": every, "seconds": time.perf_counter() - start}
    if rank == 0:
        out.write_text(json.dumps(results, indent=1))
    dist.barrier()
    dist.destroy_process_group()


def launch(processes: int, strategies, out: Path, timeout: int = 600) -> dict:
    """Run the worker under torchrun on ``processes`` CPU processes; its results."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", str(processes),
               "--master_port", str(port), __file__, "--worker", "--out", str(out),
               "--strategies", ",".join(strategies)]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1", "HF_HUB_OFFLINE": "1"}
    failures = []
    for _ in range(2):  # a second try only for a process that died: wrong bytes still fail
        out.unlink(missing_ok=True)
        done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)
        if done.returncode == 0:
            return json.loads(out.read_text())
        failures.append(done.stdout[-3000:] + done.stderr[-5000:])
        print(f"torchrun exited with {done.returncode}; trying once more", file=sys.stderr)
    raise RuntimeError("\n\n--- second try ---\n".join(failures))


def estimates(strategy: str) -> dict:
    """What ftkit.vram.estimate predicts per process for this benchmark's setting."""
    from ftkit import vram

    model = tiny_model()
    if strategy == "fsdp2":  # float32 weights, gradients and Adam state, all sharded like ZeRO-3
        estimate = vram.estimate(model.config, "full", gpus=2, zero=3, dtype="float32", device="cpu",
                                 batch_size=1, seq_len=SEQ_LEN)
    else:
        estimate = vram.estimate(model.config, "full", gpus=2, zero=int(strategy[-1]), dtype="bfloat16",
                                 device="cpu", batch_size=1, seq_len=SEQ_LEN)
    return {"params": estimate.bytes["weights"], "gradients": estimate.bytes["gradients"],
            "optimizer": estimate.bytes["optimizer"]}


def compare(results: dict, reference: dict) -> list[dict]:
    """One row per strategy and component: measured (rank 0 and 1), estimated, relative error;
    and the loss trajectory against one process."""
    rows = []
    for name, result in results.items():
        expected = estimates(name)
        base = reference["fsdp2" if name == "fsdp2" else "zero0"]["losses"]
        loss_error = max(abs(a - b) / abs(b) for a, b in zip(result["losses"], base))
        for component, estimated in expected.items():
            measured = [rank[component] for rank in result["per_rank"]]
            error = max(abs(m - estimated) for m in measured) / estimated
            rows.append(dict(strategy=name, component=component, measured=measured,
                             estimated=estimated, error=error, loss_error=loss_error,
                             losses=result["losses"], reference_losses=base))
    return rows


def measure(strategies=STRATEGIES, workdir: Path | None = None) -> list[dict]:
    workdir = Path(workdir or tempfile.mkdtemp())
    workdir.mkdir(parents=True, exist_ok=True)
    results = launch(2, strategies, workdir / "two.json")
    needed = sorted({"fsdp2" if s == "fsdp2" else "zero0" for s in strategies})
    reference = launch(1, needed, workdir / "one.json")
    return compare(results, reference)


def table(rows: list[dict]) -> str:
    lines = ["| strategy | component | rank 0 bytes | rank 1 bytes | estimated | error | losses (2 processes) | losses (1 process, accumulation 2) |",
             "|---|---|---:|---:|---:|---:|---|---|"]
    for row in rows:
        lines.append(f"| {row['strategy']} | {row['component']} | {row['measured'][0]:,} | "
                     f"{row['measured'][1]:,} | {row['estimated']:,} | {row['error']:+.1%} | "
                     f"{', '.join(f'{x:.5f}' for x in row['losses'])} | "
                     f"{', '.join(f'{x:.5f}' for x in row['reference_losses'])} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path)
    parser.add_argument("--strategies", default=",".join(STRATEGIES))
    parser.add_argument("--write", action="store_true", help="rewrite ## Sharding in RESULTS.md")
    args = parser.parse_args()
    strategies = args.strategies.split(",")
    if args.worker:
        worker(args.out, strategies)
        # Results are written and every process passed the barrier. Leave without the
        # interpreter's teardown: there gloo's worker threads can still hold DeepSpeed's
        # asynchronous work, and freeing it aborts the process ("terminate called without an
        # active exception", seen once in a full test run on these CPUs).
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(0)
    start = time.perf_counter()
    rows = measure(strategies)
    text = table(rows)
    worst = max(row["error"] for row in rows)
    worst_loss = max(row["loss_error"] for row in rows)
    import deepspeed
    import torch

    note = (f"torch {torch.__version__}, deepspeed {deepspeed.__version__}, 2 CPU processes (gloo), "
            f"random 2-layer Llama ({sum(p.numel() for p in tiny_model().parameters()):,} parameters), "
            f"full fine-tuning, {STEPS} AdamW steps; measured {time.perf_counter() - start:.0f} s. "
            f"Largest byte error {worst:.2%} (target {TARGET:.0%} per component); largest relative "
            f"loss difference from one process with accumulation 2: {worst_loss:.1e} (target "
            f"{LOSS_TOLERANCE:.0e}). ZeRO optimizer = float32 master partition + Adam moments; "
            "ZeRO-1's gradients are the full gradients each process holds until the end of backward, "
            "then partitions. DeepSpeed's reduce buckets (reduce_bucket_size elements, here 100,000) "
            "are outside these columns.")
    print(text + "\n\n" + note)
    if args.write:
        sys.path.insert(0, str(Path(__file__).parent))
        from results import write_section

        write_section(text + "\n\n" + note, "## Sharding")


if __name__ == "__main__":
    main()
