"""`compress verify` on hand-made bundles: each kind of damage is found and the file is named."""

import json

import pytest

from compress.core.hashing import file_sha256
from compress.output.bundle import manifest_text
from compress.output.verify import BundleInvalid, verify_bundle
from tests.factories import manifest_json


def make_bundle(folder, files: dict[str, bytes]):
    folder.mkdir()
    for rel, data in files.items():
        (folder / rel).parent.mkdir(parents=True, exist_ok=True)
        (folder / rel).write_bytes(data)
    manifest = manifest_json(
        run_id="r",
        files=[
            {"path": rel, "sha256": file_sha256(folder / rel), "bytes": len(data)}
            for rel, data in sorted(files.items())
        ],
    )
    (folder / "manifest.json").write_text(manifest_text(manifest))
    return folder


def problem(bundle) -> tuple[str, str]:
    with pytest.raises(BundleInvalid) as info:
        verify_bundle(bundle)
    return info.value.file, str(info.value)


def test_intact_bundle_passes(tmp_path):
    bundle = make_bundle(tmp_path / "b", {"report.md": b"# ok\n", "targets/t/config.json": b"{}"})
    assert verify_bundle(bundle) == {"files": 2, "models_run": [], "run_id": "r"}


@pytest.mark.parametrize(
    "damage,file,why",
    [
        (lambda b: (b / "report.md").write_bytes(b"# oK\n"), "report.md", "sha256 differs"),
        (lambda b: (b / "report.md").write_bytes(b"# ok\n\n"), "report.md", "bytes, the manifest says"),
        (lambda b: (b / "report.md").unlink(), "report.md", "missing"),
        (lambda b: (b / "extra.txt").write_text("x"), "extra.txt", "not listed"),
        (
            lambda b: (b / "manifest.json").write_text(
                (b / "manifest.json").read_text().replace('"r"', '"s"')
            ),
            "manifest.json",
            "does not match its recorded sha256",
        ),
        (
            lambda b: (b / "manifest.json").write_text(
                (b / "manifest.json").read_text().replace("\n  ", "\n ", 1)
            ),
            "manifest.json",
            "layout",
        ),
        (lambda b: (b / "manifest.json").write_text("{"), "manifest.json", "not valid JSON"),
        (
            lambda b: (b / "manifest.json").write_text(json.dumps({"files": []})),
            "manifest.json",
            "no integrity record",
        ),
    ],
    ids=[
        "changed byte",
        "grown file",
        "missing file",
        "extra file",
        "edited value",
        "edited whitespace",
        "broken json",
        "old manifest",
    ],
)
def test_damage_is_named(tmp_path, damage, file, why):
    bundle = make_bundle(tmp_path / "b", {"report.md": b"# ok\n", "targets/t/config.json": b"{}"})
    damage(bundle)
    named, message = problem(bundle)
    assert named == file and why in message


def test_an_onnx_file_that_does_not_run_is_named(tmp_path):
    bundle = make_bundle(tmp_path / "b", {"targets/t/model.onnx": b"not a graph"})
    named, message = problem(bundle)
    assert named == "targets/t/model.onnx" and "does not load and run" in message
