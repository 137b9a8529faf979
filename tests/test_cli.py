"""The `ftkit` command: --help everywhere, exit status 2 with a message on bad input."""

import json
import subprocess
import sys

import pytest

from ftkit.cli import SUBCOMMANDS, build_parser, main
from ftkit.paths import CONFIGS_DIR


def test_console_script_help_lists_subcommands():
    out = subprocess.run([sys.executable, "-m", "ftkit", "--help"], capture_output=True, text=True)
    assert out.returncode == 0
    assert "config" in out.stdout and "chat" in out.stdout


def test_every_subcommand_has_help(capsys):
    parser = build_parser()
    registered = parser._subparsers._group_actions[0].choices
    # one subcommand per module, named as the module, in the order of SUBCOMMANDS
    assert list(registered) == [module.__name__.rsplit(".", 1)[-1] for module in SUBCOMMANDS]
    assert {"config", "chat"} <= set(registered)
    for name in registered:
        with pytest.raises(SystemExit) as exit_info:
            main([name, "--help"])
        assert exit_info.value.code == 0
        assert "usage: ftkit " + name in capsys.readouterr().out


def test_config_json_has_the_canonical_config_and_where_each_value_came_from(capsys):
    assert main(["config", str(CONFIGS_DIR / "seeds" / "baichuan2_finetune.sh"), "--json"]) == 0
    reading = json.loads(capsys.readouterr().out)
    resolved, sources = reading["config"], reading["sources"]
    assert resolved["method"] == "lora" and resolved["learning_rate"] == 2e-5
    assert resolved["max_seq_length"] == 512 and reading["dialect"] == "baichuan2"
    assert sources["method"] == "file (use_lora)" and sources["learning_rate"] == "file (learning_rate)"


def test_config_set_overrides(capsys):
    path = CONFIGS_DIR / "seeds" / "chatglm3_lora.yaml"
    assert main(["config", str(path), "--set", "lora_rank=32", "--json"]) == 0
    reading = json.loads(capsys.readouterr().out)
    assert reading["config"]["lora_rank"] == 32 and reading["sources"]["lora_rank"] == "--set"


@pytest.mark.parametrize("argv, message", [
    (["config", "missing.yaml"], "no such config file"),
    (["config", "{bad}", "--set", "oops"], "no such config file"),
])
def test_bad_input_exits_2_with_message(capsys, argv, message):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"ftkit {argv[0]}: error:") and message in err
    assert "Traceback" not in err


def test_bad_config_exits_2_from_the_shell(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("learning_rat: 0.1\n")
    out = subprocess.run([sys.executable, "-m", "ftkit", "config", str(bad)],
                         capture_output=True, text=True)
    assert out.returncode == 2
    assert "did you mean learning_rate?" in out.stderr and "Traceback" not in out.stderr


def test_unknown_flag_and_dialect_exit_2(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["config", "x.yaml", "--dialect", "nope"])
    assert exit_info.value.code == 2 and "invalid choice: 'nope'" in capsys.readouterr().err


def test_chat_with_missing_model_exits_2(capsys):
    assert main(["chat", "--model", "/nonexistent/model-folder-xyz", "--prompt", "hi"]) == 2
    err = capsys.readouterr().err
    assert "smollm2-135m-instruct" in err and "Traceback" not in err


def test_chat_with_non_adapter_folder_exits_2(tmp_path, capsys):
    assert main(["chat", "--adapter", str(tmp_path), "--prompt", "hi"]) == 2
    assert "adapter_config.json" in capsys.readouterr().err


@pytest.mark.slow
def test_chat_answers_paris():
    out = subprocess.run(
        [sys.executable, "-m", "ftkit", "chat", "--prompt", "What is the capital of France?"],
        capture_output=True, text=True, timeout=300,
    )
    assert out.returncode == 0, out.stderr
    assert "Paris" in out.stdout


def test_chat_loads_the_model_in_the_dtype_asked(tiny_model_dir):
    import torch

    assert main(["chat", "--model", str(tiny_model_dir), "--dtype", "bfloat16", "--prompt", "hi",
                 "--max-new-tokens", "2"]) == 0
    from ftkit.cli.chat import load_for_chat

    model, _ = load_for_chat(str(tiny_model_dir), None, "bfloat16")
    assert model.dtype == torch.bfloat16
    assert load_for_chat(str(tiny_model_dir), None)[0].dtype == torch.float32  # auto, on a CPU


def test_chat_refuses_an_unknown_dtype(capsys):
    with pytest.raises(SystemExit) as stop:
        main(["chat", "--dtype", "int3", "--prompt", "hi"])
    assert stop.value.code == 2 and "invalid choice: 'int3'" in capsys.readouterr().err
