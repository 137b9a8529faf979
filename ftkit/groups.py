"""Parameter groups: named run configs kept in namespaces, as seed 003's console keeps them.

Taught in lesson 11. A group is a :class:`~ftkit.config.RunConfig` saved as YAML under
``$FTKIT_HOME/groups/<namespace>/<name>.yaml`` (namespace ``default`` unless told). Groups
are validated with the same rules as any config (they are read back by
:func:`~ftkit.dialects.load_config`), written atomically (a temp file in the same folder, then
``os.replace``: a crash leaves the old file or the new one, never half of one), and named
with safe characters only, so a name can never point outside its folder.

The same store serves the command line (``ftkit groups ...``), ``ftkit train --group NAME``
and the training panel in :mod:`ftkit.widgets.training_panel`.
"""

from __future__ import annotations

import os
import re
import tempfile
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import yaml

from .config import RunConfig, parse_overrides, validate
from .dialects import load_config
from .errors import FtkitError
from .paths import ftkit_home

DEFAULT_NAMESPACE = "default"
# Letters, digits, '.', '_' and '-', starting with a letter or digit: no '/', no '..', no
# hidden files, nothing a shell or a file system treats specially.
SAFE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
SUFFIX = ".yaml"


class GroupError(FtkitError):
    """A bad group name, a missing group, or one that already exists."""


@dataclass(frozen=True)
class GroupInfo:
    """One stored group, as ``list_groups`` reports it."""

    namespace: str
    name: str
    path: Path

    @property
    def modified(self) -> str:
        stamp = datetime.fromtimestamp(self.path.stat().st_mtime, tz=timezone.utc)
        return stamp.isoformat(timespec="seconds")


def groups_root() -> Path:
    return ftkit_home() / "groups"


def check_name(name: str, what: str = "group name") -> str:
    """``name`` if it is safe as a file name, else a GroupError saying what is allowed."""
    if not isinstance(name, str) or not SAFE_NAME.fullmatch(name) or ".." in name:
        raise GroupError(
            f"{what} {name!r} is not allowed: use 1-64 letters, digits, '.', '_' or '-', "
            f"starting with a letter or digit (e.g. lora-lr1e-4)")
    return name


def group_path(name: str, namespace: str = DEFAULT_NAMESPACE) -> Path:
    return groups_root() / check_name(namespace, "namespace") / (check_name(name) + SUFFIX)


def exists(name: str, namespace: str = DEFAULT_NAMESPACE) -> bool:
    return group_path(name, namespace).is_file()


def _write_atomic(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` so that readers see the old file or the new one, whole."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as file:
            file.write(text)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temp, path)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise


def _as_config(config) -> RunConfig:
    if isinstance(config, RunConfig):
        return config
    return validate(dict(config or {}))


def save_group(name: str, config, namespace: str = DEFAULT_NAMESPACE,
               overwrite: bool = False) -> Path:
    """Store ``config`` (a RunConfig or a dict of canonical keys) as a group; its path."""
    path = group_path(name, namespace)
    if path.exists() and not overwrite:
        raise GroupError(f"group {namespace}/{name} already exists ({path}): "
                         f"change it with `ftkit groups edit {name}`, or delete it first")
    fields = _as_config(config).to_dict()
    fields.pop("dialect", None)  # once stored, a group is plain ftkit YAML
    header = (f"# ftkit parameter group {namespace}/{name}; change it with\n"
              f"#   ftkit groups edit {name} --namespace {namespace} --set key=value\n")
    _write_atomic(path, header + yaml.safe_dump(fields, sort_keys=False, allow_unicode=True))
    return path


def create_group(name: str, namespace: str = DEFAULT_NAMESPACE, from_config=None,
                 overrides=None) -> RunConfig:
    """A new group from a config file of any dialect (or the defaults) plus ``--set`` overrides."""
    path = group_path(name, namespace)
    if path.exists():
        raise GroupError(f"group {namespace}/{name} already exists ({path}): "
                         f"change it with `ftkit groups edit {name}`, or delete it first")
    if from_config is None:
        config = validate(parse_overrides(overrides), source="--set")
    elif isinstance(from_config, RunConfig):
        config = validate({**from_config.to_dict(), **parse_overrides(overrides)}, source="--set")
    else:
        config = load_config(from_config, overrides=overrides)
    save_group(name, config, namespace)
    return config


def load_group(name: str, namespace: str = DEFAULT_NAMESPACE, overrides=None) -> RunConfig:
    """The group's validated RunConfig (with optional ``--set`` overrides applied, not saved)."""
    path = group_path(name, namespace)
    if not path.is_file():
        known = [info.name for info in list_groups(namespace)]
        hint = f" Groups in {namespace!r}: {', '.join(known)}." if known else \
            f" Namespace {namespace!r} has no groups: create one with `ftkit groups create {name}`."
        raise GroupError(f"no group {namespace}/{name} ({path}).{hint}")
    return load_config(path, dialect="ftkit", overrides=overrides)


def edit_group(name: str, overrides, namespace: str = DEFAULT_NAMESPACE) -> RunConfig:
    """Apply ``key=value`` overrides to a stored group, validate, write back atomically."""
    if not parse_overrides(overrides):
        raise GroupError(f"nothing to change in {namespace}/{name}: pass --set key=value")
    config = load_group(name, namespace, overrides)
    save_group(name, config, namespace, overwrite=True)
    return config


def delete_group(name: str, namespace: str = DEFAULT_NAMESPACE, confirm: bool = False) -> Path:
    """Delete a group. Deleting cannot be undone, so ``confirm=True`` is required."""
    path = group_path(name, namespace)
    if not path.is_file():
        raise GroupError(f"no group {namespace}/{name} to delete ({path})")
    if not confirm:
        raise GroupError(f"deleting {namespace}/{name} cannot be undone: confirm it "
                         f"(--yes on the command line, confirm=True in Python)")
    path.unlink()
    try:
        path.parent.rmdir()  # drop a namespace folder left empty
    except OSError:
        pass
    return path


def list_namespaces() -> list[str]:
    root = groups_root()
    if not root.is_dir():
        return []
    return sorted(p.name for p in root.iterdir() if p.is_dir() and SAFE_NAME.fullmatch(p.name))


def list_groups(namespace: str | None = DEFAULT_NAMESPACE) -> list[GroupInfo]:
    """The groups of one namespace, or of all namespaces when ``namespace`` is None."""
    spaces = list_namespaces() if namespace is None else [check_name(namespace, "namespace")]
    found = []
    for space in spaces:
        folder = groups_root() / space
        if folder.is_dir():
            for path in sorted(folder.glob(f"*{SUFFIX}")):
                if SAFE_NAME.fullmatch(path.stem):
                    found.append(GroupInfo(space, path.stem, path))
    return found
