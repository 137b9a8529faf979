"""Where ftkit keeps things: the cache home (``$FTKIT_HOME``) and the repository's folders."""

import os
from pathlib import Path

# The repository root when ftkit runs from a checkout (editable install), used to find the
# bundled data/, configs/ and data/model_configs/ folders.
REPO_ROOT = Path(__file__).resolve().parent.parent
DATA_DIR = REPO_ROOT / "data"
CONFIGS_DIR = REPO_ROOT / "configs"


def ftkit_home() -> Path:
    """The cache folder: ``$FTKIT_HOME`` if set, else ``~/.cache/ftkit``."""
    return Path(os.environ.get("FTKIT_HOME") or Path.home() / ".cache" / "ftkit")
