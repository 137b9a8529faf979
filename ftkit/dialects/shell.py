"""Shell scripts: find the training command, expand the script's own variables, read the flags.

A ``.sh`` file is not a dialect of its own: the command in it names one. ``llamafactory-cli
train`` is LLaMA-Factory (a YAML file, flags or ``key=value``), ``fine-tune.py`` is Baichuan2,
``finetune_hf.py`` (and the older ``finetune.py``) is ChatGLM3, ``train.py --train_args_file``
is Firefly; any other Python script's flags are read as TrainingArguments-style keys.
Only what a reader can follow without running the script is expanded: ``NAME=value`` lines
(``export`` too), ``$NAME`` / ``${NAME}`` / ``${NAME:-default}``, and line continuations.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from ..errors import ConfigError

ASSIGNMENT = re.compile(r"^(?:export\s+)?([A-Za-z_][A-Za-z0-9_]*)=(.*)$")
VARIABLE = re.compile(r"\$(?:\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}|([A-Za-z_][A-Za-z0-9_]*|[0-9@*#]))")
KEY_VALUE = re.compile(r"^[A-Za-z_][\w.]*=")


@dataclass
class Command:
    """The training command of a script: where it is, what runs it, and its arguments."""

    line: int  # 1-based line where the command starts
    program: str  # "llamafactory-cli train" or the script's file name
    launcher: list[str] = field(default_factory=list)  # what came before the program
    args: list[str] = field(default_factory=list)


def logical_lines(text: str) -> list[tuple[int, str]]:
    """``(first line number, text)`` with backslash continuations joined."""
    out, buffer, start = [], [], None
    for number, line in enumerate(text.splitlines(), 1):
        start = start or number
        if line.rstrip().endswith("\\"):
            buffer.append(line.rstrip()[:-1])
            continue
        buffer.append(line)
        out.append((start, " ".join(buffer)))
        buffer, start = [], None
    if buffer:
        out.append((start, " ".join(buffer)))
    return out


def expand(text: str, variables: dict[str, str], where: str) -> str:
    def value(match):
        name = match.group(1) or match.group(3)
        if name in variables:
            return variables[name]
        if match.group(2) is not None:
            return match.group(2)
        raise ConfigError(f"{where}: ${name} is not set in the script (ftkit expands only the "
                          "script's own NAME=value lines): write its value there, or in the command")
    return VARIABLE.sub(value, text)


def find_command(path, text: str) -> Command:
    """The training command of a script, its variables expanded, or a ConfigError."""
    variables: dict[str, str] = {}
    for number, line in logical_lines(text):
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        where = f"{path}:{number}"
        assignment = ASSIGNMENT.match(stripped)
        if assignment and " " not in assignment.group(2).strip().strip("\"'"):
            name, raw = assignment.groups()
            try:
                parts = shlex.split(expand(raw, variables, where), comments=True)
            except ValueError as error:
                raise ConfigError(f"{where}: cannot parse {stripped!r}: {error}") from None
            variables[name] = parts[0] if parts else ""
            continue
        try:
            tokens = shlex.split(expand(stripped, variables, where), comments=True)
        except ValueError as error:  # unbalanced quotes
            raise ConfigError(f"{where}: cannot parse the command line: {error}") from None
        command = _command(tokens, number)
        if command is not None:
            return command
    raise ConfigError(f"{path}: no training command found: expected llamafactory-cli train, or "
                      "python / torchrun / deepspeed running fine-tune.py, finetune_hf.py, train.py ...")


def _until_operator(tokens: list[str]) -> list[str]:
    """The tokens of the first command: cut at a pipe, a list operator or a redirection."""
    for i, token in enumerate(tokens):
        if token in ("|", "||", "&&", ";", "&") or re.match(r"^[0-9]?>", token):
            return tokens[:i]
    return tokens


def _command(tokens: list[str], line: int) -> Command | None:
    tokens = _until_operator(tokens)
    while tokens and ASSIGNMENT.match(tokens[0]):  # CUDA_VISIBLE_DEVICES=0 python ...
        tokens = tokens[1:]
    for i, token in enumerate(tokens):
        if Path(token).name == "llamafactory-cli" or token == "lmf":
            if i + 1 < len(tokens) and tokens[i + 1] == "train":
                return Command(line, "llamafactory-cli train", tokens[:i], tokens[i + 2:])
            return None  # export, chat, webui: not training
        if token.endswith(".py"):
            return Command(line, Path(token).name, tokens[:i], tokens[i + 1:])
    return None


def parse_flags(args: list[str], where: str) -> tuple[dict, list[str]]:
    """``--flag value`` / ``--flag=value`` / bare ``--switch`` pairs, and the positionals."""
    flags, positionals, i = {}, [], 0
    while i < len(args):
        token = args[i]
        if not token.startswith("--"):
            if KEY_VALUE.match(token):  # llamafactory-cli train x.yaml key=value
                key, _, value = token.partition("=")
                flags[key.replace("-", "_")] = _value(value)
            else:
                positionals.append(token)
            i += 1
            continue
        name, eq, value = token[2:].partition("=")
        if not name:
            raise ConfigError(f"{where}: a bare '--' in the command line")
        if not eq:
            if i + 1 < len(args) and not args[i + 1].startswith("--"):
                value, i = args[i + 1], i + 1
            else:
                value = "true"  # a bare switch
        flags[name.replace("-", "_")] = _value(value)
        i += 1
    return flags, positionals


def _value(text: str):
    if text == "":
        return ""
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError:
        return text
