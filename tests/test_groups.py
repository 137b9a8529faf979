"""The parameter-group store and `ftkit groups`: CRUD, namespaces, name rules, atomic writes."""

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from ftkit import groups
from ftkit.cli import main
from ftkit.config import RunConfig
from ftkit.dialects import load_config
from ftkit.errors import ConfigError, FtkitError
from ftkit.train.recipe import CONFIG_FILE


@pytest.fixture(autouse=True)
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("FTKIT_HOME", str(tmp_path / "home"))
    return tmp_path / "home"


def cli(capsys, *argv):
    try:
        status = main(list(argv))
    except SystemExit as exit:  # argparse's own usage errors
        status = exit.code
    out, err = capsys.readouterr()
    return status, out, err


def test_cli_round_trip(capsys, home):
    assert cli(capsys, "groups", "create", "lr-1e-3", "--set", "learning_rate=1e-3",
               "--set", "lora_rank=4")[0] == 0
    path = home / "groups" / "default" / "lr-1e-3.yaml"
    assert path.is_file()

    status, out, _ = cli(capsys, "groups", "show", "lr-1e-3", "--json")
    shown = json.loads(out)
    assert status == 0
    assert shown["learning_rate"] == 1e-3 and shown["lora_rank"] == 4
    assert shown["group"] == {"name": "lr-1e-3", "namespace": "default", "path": str(path)}
    # Every canonical key is there, with the value the loader gives.
    assert {k: v for k, v in shown.items() if k != "group"} == groups.load_group("lr-1e-3").to_dict()

    assert cli(capsys, "groups", "edit", "lr-1e-3", "--set", "lora_rank=16")[0] == 0
    assert groups.load_group("lr-1e-3").lora_rank == 16
    assert groups.load_group("lr-1e-3").learning_rate == 1e-3  # untouched keys stay

    status, out, _ = cli(capsys, "groups", "list", "--json")
    rows = json.loads(out)
    assert [(r["namespace"], r["name"], r["lora_rank"]) for r in rows] == [("default", "lr-1e-3", 16)]
    status, out, _ = cli(capsys, "groups", "list")
    assert "lr-1e-3" in out and "learning_rate" in out

    status, _, err = cli(capsys, "groups", "delete", "lr-1e-3")  # stdin is not a terminal
    assert status == 2 and "--yes" in err and path.is_file()
    assert cli(capsys, "groups", "delete", "lr-1e-3", "--yes")[0] == 0
    assert not path.exists()
    assert json.loads(cli(capsys, "groups", "list", "--json")[1]) == []


def test_namespaces_keep_groups_apart(capsys):
    groups.create_group("base", overrides=["lora_rank=4"])
    groups.create_group("base", namespace="team-b", overrides=["lora_rank=32"])
    assert groups.load_group("base").lora_rank == 4
    assert groups.load_group("base", "team-b").lora_rank == 32
    assert groups.list_namespaces() == ["default", "team-b"]
    everywhere = json.loads(cli(capsys, "groups", "list", "--json")[1])
    assert {(r["namespace"], r["lora_rank"]) for r in everywhere} == {("default", 4), ("team-b", 32)}
    only_b = json.loads(cli(capsys, "groups", "list", "--namespace", "team-b", "--json")[1])
    assert [r["namespace"] for r in only_b] == ["team-b"]
    groups.delete_group("base", "team-b", confirm=True)
    assert groups.list_namespaces() == ["default"]  # the empty namespace folder went too


@pytest.mark.parametrize("name", ["../evil", "a/b", "..", ".hidden", "", "x y", "a..b",
                                  "-rf", "a" * 65, "name\n", "c:\\x", "über"])
def test_unsafe_names_are_refused(capsys, home, name):
    status, _, err = cli(capsys, "groups", "create", "--", name)
    assert status == 2 and "not allowed" in err
    status, _, err = cli(capsys, "groups", "create", "ok", f"--namespace={name}")
    assert status == 2 and "namespace" in err
    with pytest.raises(groups.GroupError, match="not allowed"):
        groups.load_group("ok", name)
    assert not any(p.is_file() for p in home.rglob("*")) if home.exists() else True


def test_bad_values_exit_2_and_leave_the_group_as_it_was(capsys):
    groups.create_group("g", overrides=["learning_rate=1e-4"])
    before = groups.group_path("g").read_text()
    status, _, err = cli(capsys, "groups", "edit", "g", "--set", "learning_rate=7")
    assert status == 2 and "learning_rate" in err
    status, _, err = cli(capsys, "groups", "edit", "g", "--set", "lora_rnk=4")
    assert status == 2 and "did you mean lora_rank" in err
    status, _, err = cli(capsys, "groups", "edit", "g", "--set", "quantization_bit=4")
    assert status == 2 and "qlora" in err
    assert groups.group_path("g").read_text() == before
    status, _, err = cli(capsys, "groups", "create", "g")
    assert status == 2 and "already exists" in err
    status, _, err = cli(capsys, "groups", "show", "missing")
    assert status == 2 and "no group default/missing" in err and "g" in err


def test_create_from_a_seed_003_group_file(tmp_path):
    form = tmp_path / "form.yaml"
    form.write_text(textwrap.dedent("""\
        Scheduler: cosine
        Optimizer: adamw_torch
        FP16: false
        LoRA_Alpha: 32
        LoRA_R: 4
        LoRA_Dropout: 0.1
        Int4/8: Int4
        LearningRate: 0.001
        Epochs: 10
        BlockSize: 512
        BatchSize: 32
        WarmupRatio: 0.1
        WeightDecay: 0.0001
        GradAccSteps: 1
        TrainerType: Standard
        """))
    config = groups.create_group("seed003", from_config=form, overrides=["max_steps=5"])
    loaded = groups.load_group("seed003")
    assert loaded.to_dict() == {**config.to_dict(), "dialect": "ftkit"}
    assert (loaded.lr_scheduler_type, loaded.lora_rank, loaded.lora_alpha) == ("cosine", 4, 32)
    assert (loaded.method, loaded.quantization_bit) == ("qlora", 4)
    assert (loaded.learning_rate, loaded.per_device_train_batch_size) == (0.001, 32)
    assert loaded.max_steps == 5 and loaded.kept["TrainerType"] == "Standard"


def test_a_hand_broken_group_names_file_and_line():
    path = groups.save_group("g", RunConfig(lora_rank=8))
    path.write_text(path.read_text().replace("lora_rank: 8", "lora_rank: -3"))
    with pytest.raises(ConfigError, match=r"g\.yaml:\d+: field 'lora_rank'"):
        groups.load_group("g")


def test_delete_needs_confirmation():
    groups.save_group("g", {})
    with pytest.raises(FtkitError, match="cannot be undone"):
        groups.delete_group("g")
    assert groups.exists("g")
    groups.delete_group("g", confirm=True)
    assert not groups.exists("g")


def test_a_failed_write_keeps_the_old_file_whole(monkeypatch):
    path = groups.save_group("g", {"lora_rank": 8})
    before = path.read_text()

    def fail(*args):
        raise OSError("disk full")

    monkeypatch.setattr(os, "fsync", fail)
    with pytest.raises(OSError):
        groups.edit_group("g", ["lora_rank=16"])
    assert path.read_text() == before
    assert sorted(p.name for p in path.parent.iterdir()) == ["g.yaml"]  # no temp file left


def test_a_crash_before_the_rename_keeps_the_old_file_whole(home):
    """A process killed mid-save (os._exit, no cleanup) leaves the old group readable."""
    path = groups.save_group("g", {"lora_rank": 8})
    before = path.read_text()
    crash = ("import os, ftkit.groups as g\n"
             "os.replace = lambda *a: os._exit(3)\n"
             "g.edit_group('g', ['lora_rank=16'])\n")
    result = subprocess.run([sys.executable, "-c", crash], env={**os.environ, "FTKIT_HOME": str(home)})
    assert result.returncode == 3
    assert path.read_text() == before
    assert groups.load_group("g").lora_rank == 8
    assert [info.name for info in groups.list_groups()] == ["g"]  # the stray temp file is not a group


def test_load_group_applies_overrides_without_saving():
    groups.save_group("g", {"learning_rate": 1e-4})
    assert groups.load_group("g", overrides=["learning_rate=5e-4"]).learning_rate == 5e-4
    assert groups.load_group("g").learning_rate == 1e-4


def test_train_runs_a_stored_group(capsys, tiny_run):
    fields = {**tiny_run, "lora_rank": 2, "max_steps": 2}
    out = Path(fields.pop("output_dir"))
    sets = [arg for key, value in fields.items() for arg in ("--set", f"{key}={value}")]
    assert cli(capsys, "groups", "create", "tiny", "--namespace", "sweep", *sets)[0] == 0
    status, stdout, err = cli(capsys, "train", "--group", "tiny", "--namespace", "sweep",
                              "--set", f"output_dir={out}", "--set", "lora_rank=4")
    assert status == 0 and "run_summary.json" in stdout, err
    assert json.loads((out / "run_summary.json").read_text())["steps"] == 2
    assert load_config(out / CONFIG_FILE).lora_rank == 4   # the --set applies to this run...
    assert groups.load_group("tiny", "sweep").lora_rank == 2  # ...and does not change the group


@pytest.mark.parametrize("argv, message", [
    (["train"], "CONFIG file or --group"),
    (["train", "configs/lora.yaml", "--group", "tiny"], "not both"),
    (["train", "configs/lora.yaml", "--namespace", "sweep"], "--namespace goes with --group"),
    (["train", "--group", "missing"], "no group default/missing"),
    (["train", "--group", "../etc"], "group name"),
])
def test_train_group_errors_exit_2(capsys, argv, message):
    status, _, err = cli(capsys, *argv)
    assert status == 2 and message in err


@pytest.mark.parametrize("written, stage", [("SFT", "sft"), ("DPO", "dpo"), ("PT", "pt")])
def test_the_fine_tuning_type_is_the_stage(written, stage):
    """Seed 003: the form's fine-tuning type (微调类型, default SFT) picks the training stage."""
    from ftkit.dialects import group

    draft = group.read({"type": written, "LoRA_R": 4})
    assert draft.values["stage"] == stage and draft.origin["stage"] == "type"
    with pytest.raises(ConfigError, match="fine-tuning type"):
        group.read({"type": "RLHF"})
