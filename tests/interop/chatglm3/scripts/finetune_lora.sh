#!/usr/bin/env bash
# run from finetune_demo/, as ChatGLM3's README does
DATA_DIR=data
BASE_MODEL=THUDM/chatglm3-6b
python finetune_hf.py $DATA_DIR ${BASE_MODEL} configs/lora.yaml
