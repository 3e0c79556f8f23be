"""The stage table is the one registry: each stage in it has a module with `run`, a test module, and
a shipped recipe that runs it; and nothing outside the table names a stage module."""

import importlib
import tomllib

import pytest

from compress.recipe.stages import STAGES
from tests.conftest import REPO


@pytest.mark.parametrize("stage", STAGES, ids=[s.name for s in STAGES])
def test_stage_has_module_test_and_recipe(stage):
    module = importlib.import_module(stage.module)
    assert callable(module.run)
    assert (REPO / "tests" / "stages" / f"test_{stage.name}.py").is_file(), (
        f"no tests/stages/test_{stage.name}.py"
    )
    users = [p.name for p in (REPO / "recipes").glob("*.toml") if stage.name in tomllib.loads(p.read_text())]
    assert users, f"no recipe in recipes/ has a [{stage.name}] table"


def test_every_stage_module_is_in_the_table():
    modules = {p.stem for p in (REPO / "compress" / "stages").glob("*.py") if p.stem != "__init__"}
    assert modules == {s.module.rsplit(".", 1)[1] for s in STAGES}


def test_the_runner_and_cli_name_no_stage():
    names = {s.name for s in STAGES}
    paths = ["compress/pipeline/runner.py", "compress/pipeline/execute.py"]
    # `compress cache prune` is a command, not the stage: the cache commands are left out
    paths += [
        p.relative_to(REPO).as_posix() for p in (REPO / "compress" / "cli").glob("*.py") if p.stem != "cache"
    ]
    for rel in paths:
        text = (REPO / rel).read_text()
        quoted = [n for n in names if f'"{n}"' in text or f"'{n}'" in text]
        assert not quoted, f"{rel} names stages {quoted}: read them from the stage table"
