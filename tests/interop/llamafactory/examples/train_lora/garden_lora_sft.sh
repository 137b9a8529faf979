#!/bin/bash
set -x

MODEL_PATH=Qwen/Qwen2.5-0.5B-Instruct
RANK=16
OUT=saves/garden/lora/sft

llamafactory-cli train \
    --model_name_or_path ${MODEL_PATH} \
    --trust_remote_code \
    --stage sft \
    --do_train \
    --finetuning_type lora \
    --lora_rank $RANK \
    --lora_target all \
    --dataset garden_alpaca,garden_chat \
    --template qwen \
    --cutoff_len 1024 \
    --output_dir ${OUT} \
    --plot_loss \
    --save_only_model false \
    --per_device_train_batch_size 2 \
    --learning_rate 2e-4 \
    --bf16
