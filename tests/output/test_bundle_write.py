"""Writing a bundle never replaces a good one with a half-written one."""

import errno

import pytest

from compress.core.errors import CompressError
from compress.output import bundle, plots
from compress.output.plots import ArtifactPoint
from compress.recipe.load import load_recipe
from tests.conftest import smoke_text
from tests.factories import manifest, target_json

POINT = ArtifactPoint(label="a", accuracy=0.5, macro_f1=0.5, latency_ms={"1x128": 1.0}, size_mb=1.0)


def passing() -> object:
    return manifest(targets=[target_json("t", runtime="torch", metric=0.5, artifact_sha256="s")])


def test_failed_write_leaves_previous_bundle_and_latest(tmp_path, write_recipe):
    loaded = load_recipe(write_recipe(smoke_text()))
    model = tmp_path / "model"
    model.mkdir()
    (model / "w.safetensors").write_bytes(b"w")
    good = bundle.write(loaded, tmp_path / "out", passing(), target_folders={"t": model})
    assert (good / "targets" / "t" / "w.safetensors").is_file()
    with pytest.raises(CompressError, match="nothing was replaced, the previous bundle .* is intact"):
        bundle.write(loaded, tmp_path / "out", passing(), target_folders={"t": tmp_path / "vanished"})
    parent = tmp_path / "out" / "recipe"
    assert sorted(p.name for p in parent.iterdir()) == sorted([good.name, "latest"])
    assert (parent / "latest").resolve() == good.resolve()


def test_disk_full_while_writing_keeps_the_previous_bundle_and_says_so(tmp_path, write_recipe, monkeypatch):
    loaded = load_recipe(write_recipe(smoke_text()))
    good = bundle.write(loaded, tmp_path / "out", passing(), target_folders={}, points=[POINT])
    assert (good / "pareto.png").is_file()

    def full(path, *args):
        raise OSError(errno.ENOSPC, "No space left on device", str(path))

    monkeypatch.setattr(bundle, "write_pareto", full)
    with pytest.raises(CompressError) as info:
        bundle.write(loaded, tmp_path / "out", passing(), target_folders={}, points=[POINT])
    assert "No space left on device" in str(info.value)
    assert f"the previous bundle {good.resolve()} is intact" in str(info.value)
    parent = tmp_path / "out" / "recipe"
    assert sorted(p.name for p in parent.iterdir()) == sorted([good.name, "latest"])
    assert (parent / "latest").resolve() == good.resolve()
    assert plots.write_pareto is not full
