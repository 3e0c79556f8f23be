"""`[model] hub = "org/name"`: resolved from a real, offline Hugging Face cache (the layout
huggingface_hub writes: refs/, snapshots/<commit>/ of links into blobs/), by branch, tag and commit;
refused when not cached or not loadable without code; the commit recorded and keyed on."""

from __future__ import annotations

import hashlib
import json
import re
import shutil
from pathlib import Path

import pytest

from compress.core.artifact import Artifact
from compress.core.cache import Cache
from compress.core.errors import CompressError
from compress.core.progress import Reporter
from compress.core.records import ModelRecord
from compress.models.hub import hub_cache_dir, resolve_hub
from compress.models.loading import build_source_model
from compress.pipeline.assess import source_key
from compress.pipeline.execute import stage_key
from compress.pipeline.state import RunState, read_inputs
from compress.recipe.load import load_recipe
from compress.recipe.schema import ModelSpec, TinyModel
from compress.recipe.stages import BY_NAME
from tests.conftest import fast_recipe, link_data, load_manifest, run_cli, smoke_text

REPO_ID = "compress-test/tiny-bert"
SHA_A = "a" * 8 + hashlib.sha1(b"first").hexdigest()[8:]
SHA_B = "b" * 8 + hashlib.sha1(b"second").hexdigest()[8:]
TINY = next(line for line in smoke_text().splitlines() if line.startswith("tiny = "))  # the smoke [model]


@pytest.fixture(scope="session")
def checkpoint(tmp_path_factory) -> Path:
    """A tiny BertForSequenceClassification (the smoke recipe's config) with the MiniLM tokenizer."""
    folder = tmp_path_factory.mktemp("hub-src") / "ckpt"
    spec = ModelSpec(
        tiny=TinyModel(
            hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64, dropout=0
        )
    )
    build_source_model(spec, 2, folder)
    return folder


def add_snapshot(cache: Path, repo_id: str, commit: str, source: Path, refs: tuple[str, ...] = ()) -> Path:
    """Put `source`'s files into the cache as huggingface_hub does: content in blobs/, the snapshot
    folder made of relative links to them, and refs/<name> holding the commit (no newline)."""
    storage = cache / ("models--" + repo_id.replace("/", "--"))
    snapshot = storage / "snapshots" / commit
    snapshot.mkdir(parents=True)
    (storage / "blobs").mkdir(exist_ok=True)
    for f in sorted(source.iterdir()):
        blob = hashlib.sha256(f.read_bytes()).hexdigest()
        shutil.copyfile(f, storage / "blobs" / blob)
        (snapshot / f.name).symlink_to(Path("..", "..", "blobs", blob))
    for ref in refs:
        (storage / "refs" / ref).parent.mkdir(parents=True, exist_ok=True)
        (storage / "refs" / ref).write_text(commit)
    return snapshot


@pytest.fixture
def hub_cache(tmp_path, monkeypatch, checkpoint) -> Path:
    """An offline hub cache with REPO_ID at two commits: main -> A, tag v1 -> B."""
    cache = tmp_path / "hf-cache"
    add_snapshot(cache, REPO_ID, SHA_A, checkpoint, ("main",))
    add_snapshot(cache, REPO_ID, SHA_B, checkpoint, ("v1",))
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    return cache


def storage(cache: Path) -> Path:
    return cache / ("models--" + REPO_ID.replace("/", "--"))


def test_the_cache_folder_is_read_when_asked_not_at_import(monkeypatch, tmp_path):
    monkeypatch.delenv("HF_HUB_CACHE", raising=False)
    monkeypatch.delenv("HUGGINGFACE_HUB_CACHE", raising=False)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "home"))
    assert hub_cache_dir() == tmp_path / "home" / "hub"
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "elsewhere"))
    assert hub_cache_dir() == tmp_path / "elsewhere"


@pytest.mark.parametrize(
    ("revision", "commit"),
    [(None, SHA_A), ("main", SHA_A), ("v1", SHA_B), (SHA_B, SHA_B), (SHA_A[:10], SHA_A)],
    ids=["default", "branch", "tag", "full sha", "short sha"],
)
def test_a_revision_resolves_to_its_cached_snapshot(hub_cache, revision, commit):
    snapshot = resolve_hub(REPO_ID, revision)
    assert snapshot.commit == commit
    assert snapshot.folder == storage(hub_cache) / "snapshots" / commit
    assert (snapshot.folder / "model.safetensors").is_file()


def test_an_id_not_in_the_cache_names_the_id_the_revision_and_where_it_looked(hub_cache):
    with pytest.raises(CompressError) as caught:
        resolve_hub("nobody/nothing", "v2")
    message = str(caught.value)
    assert "'nobody/nothing'" in message and "'v2'" in message
    assert str(hub_cache / "models--nobody--nothing") in message and "offline" in message


def test_a_revision_not_in_the_cache_names_what_is_cached(hub_cache):
    with pytest.raises(CompressError) as caught:
        resolve_hub(REPO_ID, "v9")
    message = str(caught.value)
    assert f"'{REPO_ID}'" in message and "'v9'" in message and str(storage(hub_cache)) in message
    assert "main" in message and "v1" in message and "offline" in message


def test_a_snapshot_without_safetensors_is_refused(tmp_path, monkeypatch, checkpoint):
    pickled = tmp_path / "pickled"
    shutil.copytree(checkpoint, pickled)
    (pickled / "model.safetensors").unlink()
    (pickled / "pytorch_model.bin").write_bytes(b"not loaded")
    add_snapshot(tmp_path / "cache", REPO_ID, SHA_A, pickled, ("main",))
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "cache"))
    with pytest.raises(CompressError, match=r"no \*\.safetensors weights"):
        resolve_hub(REPO_ID)


def test_a_snapshot_that_needs_custom_code_is_refused(tmp_path, monkeypatch, checkpoint):
    custom = tmp_path / "custom"
    shutil.copytree(checkpoint, custom)
    config = json.loads((custom / "config.json").read_text())
    config["auto_map"] = {"AutoModelForSequenceClassification": "modeling.Custom"}
    (custom / "config.json").write_text(json.dumps(config))
    add_snapshot(tmp_path / "cache", REPO_ID, SHA_A, custom, ("main",))
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "cache"))
    with pytest.raises(CompressError, match="custom code"):
        resolve_hub(REPO_ID)


@pytest.mark.parametrize(
    ("model", "expected"),
    [
        ({"hub": REPO_ID, "tiny": {}}, "exactly one of packaged, path, tiny, hub (got tiny, hub)"),
        ({"tiny": {}, "revision": "v1"}, "revision applies only to a hub model"),
        ({"hub": "no-org"}, "String should match pattern"),
        ({"hub": "org/a--b"}, "'--'"),
        ({"hub": REPO_ID, "revision": "v1/../../etc"}, "'..'"),
    ],
)
def test_the_schema_refuses_a_hub_model_given_wrongly(model, expected):
    with pytest.raises(ValueError, match=re.escape(expected)):
        ModelSpec.model_validate(model)


def hub_text(revision: str | None = None) -> str:
    table = f'hub = "{REPO_ID}"' + (f'\nrevision = "{revision}"' if revision else "")
    return smoke_text(**{TINY: table})


def test_a_hub_recipe_validates_and_its_shape_is_read_from_the_snapshot(hub_cache, write_recipe):
    loaded = load_recipe(write_recipe(hub_text("v1")))  # the smoke recipe prunes: the plan is checked
    assert loaded.recipe.model.source == "hub"
    too_many = hub_text("v1").replace("heads_fraction = 0.5", "heads_fraction = 0.5\nmin_heads_per_layer = 3")
    with pytest.raises(CompressError, match="the model has only 2 heads per layer"):
        load_recipe(write_recipe(too_many))


def test_an_unknown_revision_is_reported_at_the_revision_key(hub_cache, write_recipe):
    with pytest.raises(CompressError) as caught:
        load_recipe(write_recipe(hub_text("v9")))
    assert "model.revision (line" in str(caught.value) and "'v9'" in str(caught.value)


def test_a_moved_ref_changes_the_source_key_and_every_stage_key_after_it(hub_cache, write_recipe, tmp_path):
    loaded = load_recipe(write_recipe(hub_text()))
    store = Cache(tmp_path / "cache", "keys", loaded.name)

    def keys() -> tuple[str | None, str, str]:
        inputs = read_inputs(loaded, store, Reporter(quiet=True))
        source = source_key(inputs)
        checkpoint = Artifact("checkpoint", "torch", "fp32", Path("/x"), "same content", key=source)
        state = RunState(artifacts={"checkpoint": checkpoint})
        return inputs.hub_commit, source, stage_key(BY_NAME["finetune"], inputs, state)

    before = keys()
    assert before == keys() and before[0] == SHA_A
    (storage(hub_cache) / "refs" / "main").write_text(SHA_B)  # same weights, another commit
    after = keys()
    assert after[0] == SHA_B and after[1] != before[1] and after[2] != before[2]


def test_validate_refuses_an_uncached_hub_model_in_one_line(hub_cache, tmp_path):
    link_data(tmp_path)
    recipe = tmp_path / "missing.toml"
    recipe.write_text(smoke_text(**{TINY: 'hub = "nobody/nothing"'}))
    result = run_cli("validate", str(recipe))
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "model.hub" in lines[0] and "nobody/nothing" in lines[0], result.stderr
    assert "Traceback" not in result.stderr


def test_a_run_from_the_hub_records_the_commit_and_explains_its_key(hub_cache, tmp_path):
    link_data(tmp_path)
    recipe = fast_recipe(tmp_path, "hubrun", {TINY: f'hub = "{REPO_ID}"\nrevision = "v1"'})
    out = tmp_path / "out"
    result = run_cli("run", str(recipe), "--out", str(out), "-q")
    assert result.returncode == 0, result.stderr + result.stdout
    manifest = load_manifest(out / "hubrun" / "latest")
    model = ModelRecord.from_json(manifest["model"])
    assert (model.source, model.hub, model.revision, model.hub_commit) == ("hub", REPO_ID, "v1", SHA_B)
    assert manifest["recipe"]["resolved"]["model"]["revision"] == "v1"
    shown = run_cli("cache", "explain", str(recipe), "finetune", "--out", str(out))
    assert shown.returncode == 0, shown.stderr
    explained = json.loads(shown.stdout)
    assert explained["source"]["key"] == model.cache_key
    assert explained["source"]["parts"]["model"]["hub_commit"] == SHA_B
    assert explained["parts"]["inputs"]["checkpoint"][1] == model.cache_key

    (storage(hub_cache) / "refs" / "v1").write_text(SHA_A)  # the tag moves to another commit
    again = run_cli("run", "--reproduce", str(out / "hubrun" / "latest"), "--out", str(tmp_path / "again"))
    assert again.returncode == 0, again.stderr
    assert "pinned to the commit the bundle was made from" in " ".join(again.stderr.split())
    rerun = ModelRecord.from_json(load_manifest(tmp_path / "again" / "hubrun" / "latest")["model"])
    assert rerun.hub_commit == SHA_B, "--reproduce reruns the recorded commit, not where the tag is now"
