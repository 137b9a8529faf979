"""Names that lessons and scripts imported from ``ftkit.train.run`` before the recipe was split
into :mod:`.recipe` (what every run does) and :mod:`.sft` (supervised data). Import from
those; this module only keeps the old paths working.
"""

from .recipe import CONFIG_FILE, FtkitTrainer, RunResult, resolve_config
from .sft import prepare_datasets

__all__ = ["CONFIG_FILE", "FtkitTrainer", "RunResult", "prepare_datasets", "resolve_config"]
