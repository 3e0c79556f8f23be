"""Shared fixtures: recipes written into a temporary folder, and the CLI run as a user runs it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from compress.core.artifact import Artifact
from compress.core.hashing import tree_sha256
from compress.data.splits import Splits, load_splits
from compress.models.loading import build_source_model
from compress.recipe.schema import ModelSpec, Recipe, TinyModel

REPO = Path(__file__).resolve().parents[1]

if os.environ.get("PYTEST_XDIST_WORKER"):  # `make test` runs one worker per core: one thread each
    os.environ["OMP_NUM_THREADS"] = "1"  # read by torch and ONNX Runtime sessions, here and in subprocesses
    import torch

    torch.set_num_threads(1)
FUZZ_CASES: dict[str, int] = {}  # kind of malformed input -> cases tried (tests/test_fuzz.py)


def pytest_terminal_summary(terminalreporter):
    if FUZZ_CASES:
        terminalreporter.write_line(
            f"fuzz: {sum(FUZZ_CASES.values())} malformed inputs tried, every one exit 2 with one error line "
            "and no traceback (" + ", ".join(f"{k} {v}" for k, v in sorted(FUZZ_CASES.items())) + ")"
        )


SMOKE = REPO / "recipes" / "smoke.toml"
DATA = REPO / "recipes" / "data" / "sst2"


def link_data(folder: Path) -> None:
    """Recipes may only name paths inside their own folder: give `folder` the repository's data."""
    if not (folder / "data").exists():
        (folder / "data").symlink_to(DATA.parent, target_is_directory=True)


# the smoke recipe cut down to seconds, for promises about what runs, not about what it scores
FAST = {
    "train_rows = 2000": "train_rows = 300",
    "epochs = 3": "epochs = 1",
    "[evaluation]\n": "[evaluation.release_matrix]\nenabled = false\n\n[evaluation]\n",
    'mode = "dynamic"': 'mode = "dynamic"\ncheck_shapes = ["1x16", "8x64"]',
}


def fast_recipe(folder, name="fast", extra: dict | None = None):
    """The cut-down smoke recipe in `folder` (which holds, or links to, data/sst2)."""
    text = (REPO / "recipes" / "smoke.toml").read_text()
    for old, new in {**FAST, **(extra or {})}.items():
        assert old in text, old
        text = text.replace(old, new)
    path = folder / f"{name}.toml"
    path.write_text(text)
    return path


def smoke_text(**replace: str) -> str:
    """The smoke recipe (data paths relative: see `link_data`) with `old=new` substitutions applied."""
    text = SMOKE.read_text()
    for old, new in replace.items():
        assert old in text, f"{old!r} not in smoke recipe"
        text = text.replace(old, new)
    return text


@pytest.fixture
def write_recipe(tmp_path):
    link_data(tmp_path)

    def write(text: str, name: str = "recipe.toml") -> Path:
        path = tmp_path / name
        path.write_text(text)
        return path

    return write


def run_cli(*args: str, cwd: Path | None = None, timeout: float = 600) -> subprocess.CompletedProcess:
    """`python -m compress ARGS` in a child process: real exit codes, real stderr."""
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    return subprocess.run(
        [sys.executable, "-m", "compress", *args],
        cwd=cwd or REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def load_manifest(bundle: Path) -> dict:
    return json.loads((bundle / "manifest.json").read_text())


# One output folder (and so one stage cache) for every CLI test of the session: each smoke variant
# reuses the stages it shares with the first run.
@pytest.fixture(scope="session")
def out(tmp_path_factory):
    return tmp_path_factory.mktemp("artifacts")


@pytest.fixture(scope="session")
def recipes(tmp_path_factory):
    folder = tmp_path_factory.mktemp("recipes")
    link_data(folder)

    def write(name: str, **replace: str):
        path = folder / f"{name}.toml"
        path.write_text(smoke_text(**replace))
        return path

    return write


@pytest.fixture(scope="session")
def first_run(out, recipes):
    """`compress run` on the smoke recipe: (recipe path, completed process)."""
    recipe = recipes("smoke")
    result = run_cli("run", str(recipe), "--out", str(out))
    return recipe, result


def run_variant(recipes, out, name: str, **replace: str):
    """Run the smoke recipe with `old=new` substitutions; the CLI's result and the bundle's manifest."""
    result = run_cli("run", str(recipes(name, **replace)), "--out", str(out))
    return result, out / name / "latest", load_manifest(out / name / "latest")


def stage_of(manifest: dict, name: str) -> dict:
    return next(s for s in manifest["stages"] if s["name"] == name)


# A tiny random BERT (2 layers, 2 heads, hidden 32), a few hundred SST-2 rows: what stage and library
# tests run real models on, built once per session.
RECIPE = {
    "model": {
        "tiny": {"hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2, "intermediate_size": 64}
    },
    "data": {
        "train": str(DATA / "train.tsv"),
        "dev": str(DATA / "dev.tsv"),
        "test": str(DATA / "test.tsv"),
        "max_length": 32,
        "train_rows": 256,
        "dev_rows": 96,
        "test_rows": 96,
    },
    "targets": [{"name": "t", "runtime": "torch", "precision": "fp32", "max_accuracy_drop": 100.0}],
}


@pytest.fixture(scope="session")
def tiny_recipe() -> Recipe:
    return Recipe.model_validate(RECIPE)


@pytest.fixture(scope="session")
def tiny_splits(tiny_recipe) -> Splits:
    return load_splits(tiny_recipe.data)


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory) -> Artifact:
    folder = tmp_path_factory.mktemp("source") / "checkpoint"
    spec = ModelSpec(
        tiny=TinyModel(
            hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64, dropout=0.0
        )
    )
    build_source_model(spec, 2, folder)
    return Artifact("checkpoint", "torch", "fp32", folder, tree_sha256(folder))


@pytest.fixture(scope="session")
def tiny_onnx(tiny_checkpoint, tmp_path_factory) -> Artifact:
    """The tiny checkpoint exported to ONNX (FP32)."""
    from compress.models.onnx_export import export_onnx

    folder = tmp_path_factory.mktemp("onnx") / "onnx"
    export_onnx(tiny_checkpoint.path, folder, 18)
    return Artifact("onnx", "onnxruntime", "fp32", folder, tree_sha256(folder))
