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


def logits_graph(path, *, nan: bool = False, one_row: bool = False):
    """input_ids -> `logits`: [batch, 2] sums of the ids, NaN if asked, or a single row."""
    import numpy as np
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    ids = helper.make_tensor_value_info("input_ids", TensorProto.INT64, ["batch", "sequence"])
    logits = helper.make_tensor_value_info("logits", TensorProto.FLOAT, None)
    scale = numpy_helper.from_array(np.array(np.nan if nan else 1.0, dtype=np.float32), "scale")
    nodes = [
        helper.make_node("Cast", ["input_ids"], ["x"], to=TensorProto.FLOAT),
        helper.make_node("ReduceSum", ["x"], ["s"], keepdims=1, noop_with_empty_axes=0)
        if one_row
        else helper.make_node("ReduceSum", ["x", "axis"], ["s"], keepdims=1),
        helper.make_node("Concat", ["s", "s"], ["pair"], axis=1),
        helper.make_node("Mul", ["pair", "scale"], ["logits"]),
    ]
    inits = [scale, numpy_helper.from_array(np.array([1], dtype=np.int64), "axis")]
    graph = helper.make_graph(nodes, "g", [ids], [logits], inits)
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)]), path)


@pytest.mark.parametrize(
    "kind,needle",
    [("nan", "non-finite"), ("one_row", "answered logits of shape (1, 2)")],
    ids=["NaN", "wrong shape"],
)
def test_a_model_that_runs_but_answers_wrongly_is_named(tmp_path, tiny_checkpoint, kind, needle):
    folder = tmp_path / "model"
    folder.mkdir()
    for f in tiny_checkpoint.path.iterdir():
        if f.name.startswith(("tokenizer", "special_tokens", "vocab")):
            (folder / f.name).write_bytes(f.read_bytes())
    logits_graph(folder / "model.onnx", nan=kind == "nan", one_row=kind == "one_row")
    files = {f"targets/t/{p.name}": p.read_bytes() for p in folder.iterdir()}
    named, message = problem(make_bundle(tmp_path / "b", files))
    assert named == "targets/t/model.onnx" and needle in message


def test_the_same_graph_answering_right_passes(tmp_path, tiny_checkpoint):
    folder = tmp_path / "model"
    folder.mkdir()
    for f in tiny_checkpoint.path.iterdir():
        if f.name.startswith(("tokenizer", "special_tokens", "vocab")):
            (folder / f.name).write_bytes(f.read_bytes())
    logits_graph(folder / "model.onnx")
    files = {f"targets/t/{p.name}": p.read_bytes() for p in folder.iterdir()}
    assert verify_bundle(make_bundle(tmp_path / "b", files))["models_run"] == ["targets/t/model.onnx"]
