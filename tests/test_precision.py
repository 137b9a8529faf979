"""One rule picks the floating-point format from the hardware; tested here for every kind of
machine by passing the hardware in (this CPU has no GPU)."""

import pytest
import torch

from ftkit import models, precision
from ftkit.config import RunConfig
from ftkit.dialects import read_config
from ftkit.precision import Hardware

A100 = Hardware(cuda=True, bf16=True, name="A100")
T4 = Hardware(cuda=True, bf16=False, name="T4")
CPU = Hardware()


@pytest.mark.parametrize("hardware, weights, bf16, fp16", [
    (A100, "bfloat16", True, False),
    (T4, "float16", False, True),  # no bfloat16 before Ampere: float16 with loss scaling
    (CPU, "float32", False, False),
])
def test_the_precision_follows_the_hardware(hardware, weights, bf16, fp16):
    chosen = precision.choose(hardware)
    assert (chosen.weights, chosen.bf16, chosen.fp16) == (weights, bf16, fp16)
    assert chosen.why


def test_this_machine_loads_float32_when_asked_for_auto():
    assert not Hardware.detect().cuda  # the test machines have no GPU
    assert models._torch_dtype("auto") == torch.float32
    assert models._torch_dtype("bfloat16") == torch.bfloat16  # an explicit choice wins


def write(tmp_path, text):
    path = tmp_path / "run.yaml"
    path.write_text("model_name_or_path: smollm2-135m-instruct\ntrain_file: data/identity.jsonl\n" + text)
    return path


def test_a_config_silent_on_precision_gets_the_gpus(tmp_path):
    reading = read_config(write(tmp_path, ""))
    assert precision.for_training(reading.config, reading.sources, A100).bf16 is True
    on_t4 = precision.for_training(reading.config, reading.sources, T4)
    assert (on_t4.bf16, on_t4.fp16) == (False, True)
    assert precision.for_training(reading.config, reading.sources, CPU) == reading.config


def test_what_a_file_or_set_says_is_kept(tmp_path):
    reading = read_config(write(tmp_path, "bf16: false\n"))
    assert precision.for_training(reading.config, reading.sources, A100).bf16 is False
    reading = read_config(write(tmp_path, ""), overrides={"fp16": False})
    assert precision.for_training(reading.config, reading.sources, A100) == reading.config


def test_another_tools_default_is_what_that_tool_means():
    config = RunConfig(bf16=False)
    sources = {"bf16": "firefly default", "fp16": "ftkit default"}
    assert precision.for_training(config, sources, A100) is config


@pytest.mark.parametrize("hardware, fast", [
    (A100, True), (T4, False), (CPU, False), (Hardware(cpu_bf16=True), True)])
def test_bf16_is_fast_where_the_hardware_multiplies_it(hardware, fast):
    assert precision.fast_bf16(hardware) is fast


def test_cpu_flags_are_read_from_cpuinfo(tmp_path):
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text("processor\t: 0\nflags\t\t: fpu sse2 avx512f avx512_bf16\n\nprocessor\t: 1\n")
    assert {"avx512f", "avx512_bf16"} <= precision.cpu_flags(cpuinfo)
    assert precision.CPU_BF16_FLAGS & precision.cpu_flags(cpuinfo)
    assert precision.cpu_flags(tmp_path / "missing") == set()
