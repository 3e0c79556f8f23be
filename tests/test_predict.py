"""`compress predict`: labels and probabilities from every kind of target folder, the same as the
model's own outputs, and one `error:` line (exit 2) for anything that is not a runnable target."""

from __future__ import annotations

import json
import shutil
import subprocess

import numpy as np
import onnx
import pytest
from click.testing import CliRunner
from onnx import TensorProto, helper

from compress.cli import main
from compress.models.loading import build_source_model, load_classifier, load_tokenizer, save_classifier
from compress.recipe.schema import ModelSpec, TinyModel
from tests.conftest import run_cli

LABELS = ["negative", "positive"]
TEXTS = ["a gorgeous, witty film", "a dull mess", "it is neither good nor bad , just long"]
PAIR = "the critics disagreed"
BUNDLE_MAX_LENGTH = 6  # the fake bundle's data.max_length: shorter than TEXTS[2], so truncation shows


@pytest.fixture(scope="module")
def bundle(tmp_path_factory):
    """A bundle-shaped folder (manifest.json with data.max_length, targets/<name>/) holding a tiny
    BERT with named labels as torch, ONNX FP32 and ONNX INT8 (dynamic) targets. The classifier's
    weights are scaled up so that the random model's answers are confident and texts differ."""
    import torch

    from compress.models.onnx_export import export_onnx
    from compress.quantization.onnxrt import quantize, scheme_for

    root = tmp_path_factory.mktemp("bundle")
    targets = root / "targets"
    source = root / "source"
    spec = ModelSpec(
        tiny=TinyModel(
            hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64, dropout=0.0
        )
    )
    build_source_model(spec, 2, source, LABELS)
    model, tokenizer = load_classifier(source), load_tokenizer(source)
    model.classifier.weight.data *= 1000
    with torch.inference_mode():  # centred on TEXTS, so that they do not all get one label
        inputs = tokenizer(
            TEXTS, truncation=True, max_length=BUNDLE_MAX_LENGTH, padding=True, return_tensors="pt"
        )
        model.classifier.bias.data -= model(**inputs).logits.mean(0)
    save_classifier(model, tokenizer, targets / "torch")
    export_onnx(targets / "torch", targets / "onnx", 18)
    shutil.copytree(targets / "onnx", targets / "int8", ignore=shutil.ignore_patterns("*.onnx"))
    scheme = scheme_for("avx2", mode="dynamic", per_channel=False, op_types=None)
    quantize(targets / "onnx" / "model.onnx", targets / "int8" / "model.onnx", scheme)
    (root / "manifest.json").write_text(json.dumps({"data": {"spec": {"max_length": BUNDLE_MAX_LENGTH}}}))
    return root


def predict_json(folder, *args: str) -> list[dict]:
    result = CliRunner().invoke(main, ["predict", str(folder), *args, "--json"])
    assert result.exit_code == 0, result.output
    return json.loads(result.output)


def direct(folder, texts, *, max_length: int, pair: str | None = None, zero_types: bool = False):
    """Softmax of the checkpoint's logits through plain transformers, one text at a time."""
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(folder)
    model = AutoModelForSequenceClassification.from_pretrained(folder).eval()
    out = []
    for text in texts:
        inputs = tokenizer(text, pair, truncation=True, max_length=max_length, return_tensors="pt")
        if zero_types:
            inputs["token_type_ids"] = torch.zeros_like(inputs["token_type_ids"])
        with torch.inference_mode():
            out.append(torch.softmax(model(**inputs).logits.double(), -1)[0].numpy())
    return np.array(out)


def check_shape(rows: list[dict], texts=TEXTS) -> np.ndarray:
    """Every row well formed: the text, an id2label name, its probability, all labels' summing to 1."""
    assert [r["text"] for r in rows] == list(texts)
    for r in rows:
        assert set(r) == {"text", "label", "score", "scores"}
        assert list(r["scores"]) == LABELS and r["label"] in LABELS
        assert 0.0 <= r["score"] <= 1.0
        assert r["score"] == r["scores"][r["label"]] == max(r["scores"].values())
        assert sum(r["scores"].values()) == pytest.approx(1.0)
    return np.array([[r["scores"][name] for name in LABELS] for r in rows])


def test_torch_target_answers_what_the_checkpoint_computes(bundle):
    folder = bundle / "targets" / "torch"
    got = check_shape(predict_json(folder, *TEXTS))
    want = direct(folder, TEXTS, max_length=BUNDLE_MAX_LENGTH)
    np.testing.assert_allclose(got, want, atol=1e-6)
    assert {LABELS[i] for i in want.argmax(-1)} == set(LABELS)  # the texts do get different answers


def test_onnx_target_agrees_with_the_torch_model(bundle):
    want = direct(bundle / "targets" / "torch", TEXTS, max_length=BUNDLE_MAX_LENGTH)
    rows = predict_json(bundle / "targets" / "onnx", *TEXTS)
    np.testing.assert_allclose(check_shape(rows), want, atol=1e-4)
    assert [r["label"] for r in rows] == [LABELS[i] for i in want.argmax(-1)]


@pytest.mark.parametrize("name", ["onnx", "int8"])
def test_onnx_targets_answer_what_their_graph_computes(bundle, name):
    """The random model's classes are too close for INT8 noise to keep torch's labels: the promise
    is that predict reports what the graph itself answers."""
    import onnxruntime as ort
    from transformers import AutoTokenizer

    folder = bundle / "targets" / name
    session = ort.InferenceSession(str(folder / "model.onnx"), providers=["CPUExecutionProvider"])
    tokenizer = AutoTokenizer.from_pretrained(folder)
    want = []
    for text in TEXTS:
        inputs = tokenizer(text, truncation=True, max_length=BUNDLE_MAX_LENGTH, return_tensors="np")
        (logits,) = session.run(["logits"], {k: v.astype(np.int64) for k, v in inputs.items()})
        want.append(np.exp(logits[0]) / np.exp(logits[0]).sum())
    rows = predict_json(folder, *TEXTS)
    np.testing.assert_allclose(check_shape(rows), want, atol=1e-5)
    assert [r["label"] for r in rows] == [LABELS[int(np.argmax(w))] for w in want]
    # each text alone: its answer does not depend on the texts given with it
    assert [predict_json(folder, text)[0] for text in TEXTS] == rows


def test_max_length_is_the_bundles_unless_given(bundle):
    folder = bundle / "targets" / "onnx"
    long = TEXTS[2]
    short, full = (direct(bundle / "targets" / "torch", [long], max_length=n)[0] for n in (6, 64))
    assert np.abs(short - full).max() > 1e-3  # truncation changes this text's answer
    (default,) = predict_json(folder, long)
    (given,) = predict_json(folder, long, "--max-length", "64")
    np.testing.assert_allclose([default["scores"][n] for n in LABELS], short, atol=1e-4)
    np.testing.assert_allclose([given["scores"][n] for n in LABELS], full, atol=1e-4)
    # a loose folder (not under a bundle's targets/) uses the model's own limit
    loose = bundle / "loose"
    shutil.copytree(folder, loose)
    (alone,) = predict_json(loose, long)
    np.testing.assert_allclose([alone["scores"][n] for n in LABELS], full, atol=1e-4)


@pytest.mark.parametrize("name, atol", [("torch", 1e-6), ("onnx", 1e-4)])
def test_pair_is_the_second_segment_of_every_text(bundle, name, atol):
    torch_folder = bundle / "targets" / "torch"
    rows = predict_json(bundle / "targets" / name, *TEXTS[:2], "--pair", PAIR, "--max-length", "64")
    got = check_shape(rows, TEXTS[:2])
    want = direct(torch_folder, TEXTS[:2], max_length=64, pair=PAIR)
    np.testing.assert_allclose(got, want, atol=atol)
    single = direct(torch_folder, TEXTS[:2], max_length=64)
    untyped = direct(torch_folder, TEXTS[:2], max_length=64, pair=PAIR, zero_types=True)
    assert np.abs(got - single).max() > 1e-3  # the pair reached the model ...
    assert np.abs(got - untyped).max() > 1e-3  # ... marked as the second segment


def test_plain_output_is_one_line_per_text(bundle):
    texts = [*TEXTS[:2], "two\nlines"]
    result = CliRunner().invoke(main, ["predict", str(bundle / "targets" / "torch"), *texts])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    rows = predict_json(bundle / "targets" / "torch", *texts)
    assert lines == [
        f"{r['label']}\t{r['score']:.4f}\t{t}" for r, t in zip(rows, [*TEXTS[:2], "two\\nlines"], strict=True)
    ]


def not_targets(bundle, tmp_path) -> dict:
    """Folders that are not runnable targets, and what their error line must name."""
    (tmp_path / "empty").mkdir()
    config_only = tmp_path / "config-only"
    config_only.mkdir()
    shutil.copy2(bundle / "targets" / "torch" / "config.json", config_only)
    corrupt_onnx = tmp_path / "corrupt-onnx"
    shutil.copytree(bundle / "targets" / "onnx", corrupt_onnx)
    (corrupt_onnx / "model.onnx").write_bytes(b"\x08\x07not a protobuf\n" * 20)
    corrupt_torch = tmp_path / "corrupt-torch"
    shutil.copytree(bundle / "targets" / "torch", corrupt_torch)
    (corrupt_torch / "model.safetensors").write_bytes(b"\x00" * 100)
    no_tokenizer = tmp_path / "no-tokenizer"
    no_tokenizer.mkdir()
    for name in ("config.json", "model.onnx"):
        shutil.copy2(bundle / "targets" / "onnx" / name, no_tokenizer)
    foreign = tmp_path / "foreign-onnx"  # a valid graph, but not a classifier (no logits output)
    shutil.copytree(bundle / "targets" / "onnx", foreign)
    graph = helper.make_graph(
        [helper.make_node("Identity", ["input_ids"], ["y"])],
        "g",
        [helper.make_tensor_value_info("input_ids", TensorProto.INT64, ["b", "s"])],
        [helper.make_tensor_value_info("y", TensorProto.INT64, ["b", "s"])],
    )
    onnx.save(helper.make_model(graph), str(foreign / "model.onnx"))
    bad_config = tmp_path / "bad-config"
    shutil.copytree(bundle / "targets" / "onnx", bad_config)
    (bad_config / "config.json").write_text("{not json")
    return {
        "missing": (tmp_path / "missing", "no such folder"),
        "a file": (bundle / "manifest.json", "not a folder"),
        "empty": (tmp_path / "empty", "no config.json"),
        "config only": (config_only, "no model file"),
        "corrupt onnx": (corrupt_onnx, "model.onnx"),
        "corrupt safetensors": (corrupt_torch, "cannot load"),
        "no tokenizer": (no_tokenizer, "no tokenizer"),
        "foreign onnx": (foreign, "failed to run"),
        "bad config": (bad_config, "config.json: not readable JSON"),
    }


def check_one_error_line(result, folder, expect: str) -> None:
    assert result.returncode == 2, (result.stdout, result.stderr)
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ") and str(folder) in lines[0] and expect in lines[0], lines[0]
    assert "Traceback" not in result.stderr


def predict_here(*args: str) -> subprocess.CompletedProcess:
    """`compress predict` in this process (click's runner): the same exit code and output streams
    as a child process, without a second interpreter start per case."""
    result = CliRunner().invoke(main, ["predict", *args])
    return subprocess.CompletedProcess(args, result.exit_code, result.stdout, result.stderr)


def test_not_a_target_is_one_error_line_exit_2(bundle, tmp_path):
    cases = list(not_targets(bundle, tmp_path).values())
    folder, expect = cases[0]  # once as a user runs it: a real process, a real exit code
    check_one_error_line(run_cli("predict", str(folder), "some text"), folder, expect)
    for folder, expect in cases[1:]:
        check_one_error_line(predict_here(str(folder), "some text"), folder, expect)


def test_tensorrt_target_without_tensorrt_says_what_is_missing(bundle, tmp_path):
    from compress.runtimes.tensorrt_engine import unavailable

    reason = unavailable()
    if reason is None:
        pytest.skip("TensorRT and a GPU are here: an engine target would run")
    folder = tmp_path / "tensorrt-fp16"
    shutil.copytree(bundle / "targets" / "onnx", folder)  # what the engine stage writes without a GPU
    (folder / "engine.json").write_text(
        json.dumps({"profile": {"min": "1x16", "opt": "1x128", "max": "8x128"}})
    )
    result = run_cli("predict", str(folder), "some text")
    check_one_error_line(result, folder, reason)
    assert "TensorRT" in result.stderr
