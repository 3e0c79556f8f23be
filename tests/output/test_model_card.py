"""Every target folder of a bundle carries a Hugging Face model card (README.md): the hub's loader
reads it back with the manifest's figures, it names the verdicts and gates, its loading snippet runs,
`compress verify` covers it, and a failing or inconclusive target's card says so."""

import json
import re
import shutil

import pytest
import yaml
from huggingface_hub import ModelCard

from compress.core.records import Manifest, load_manifest
from compress.output.model_card import model_card
from compress.output.verify import BundleInvalid, verify_bundle
from tests.conftest import DATA, run_cli, smoke_text
from tests.factories import manifest_json
from tests.output.test_old_bundle import OLD
from tests.output.test_report import judged_manifest

LABELS = ["negative", "positive"]


@pytest.fixture(scope="module")
def bundle(tmp_path_factory):
    """The smoke recipe, run with label names (its data's 0/1 labels written as names)."""
    folder = tmp_path_factory.mktemp("cards")
    data = folder / "data" / "sst2"
    data.mkdir(parents=True)
    for split in ("train", "dev", "test"):
        header, *rows = (DATA / f"{split}.tsv").read_text().splitlines()
        named = [f"{text}\t{LABELS[int(y)]}" for text, y in (r.rsplit("\t", 1) for r in rows)]
        (data / f"{split}.tsv").write_text("\n".join([header, *named]) + "\n")
    recipe = folder / "named.toml"
    recipe.write_text(
        smoke_text(**{"max_length = 64": f"max_length = 64\nlabel_names = {json.dumps(LABELS)}"})
    )
    result = run_cli("run", str(recipe), "--out", str(folder / "out"))
    assert result.returncode == 0, result.stderr
    return (folder / "out" / "named" / "latest").resolve()


def cards(bundle) -> list[tuple]:
    manifest = load_manifest(bundle)
    built = [t for t in manifest.targets if t.artifact is not None]
    assert [t.name for t in built] == ["torch-fp32", "x86-onnxruntime-fp32", "x86-onnxruntime-int8"]
    return [(manifest, t, ModelCard.load(bundle / t.artifact / "README.md")) for t in built]


def front_matter(card: ModelCard) -> dict:
    return yaml.safe_load(card.content.split("---\n")[1])


def test_every_target_card_loads_with_the_manifest_figures(bundle):
    for manifest, t, card in cards(bundle):
        data = card.data
        assert data.pipeline_tag == "text-classification"
        assert data.library_name == {"torch": "transformers", "onnxruntime": "onnx"}[t.runtime]
        assert {"compress", t.runtime, t.precision, "pruned"} <= set(data.tags)
        assert ("onnx" in data.tags) == (t.runtime == "onnxruntime")
        assert ("quantized" in data.tags) == (t.precision == "int8")
        # the smoke model is built with random weights: no base model to name, and the card says so
        assert data.base_model is None and "random weights" in card.text
        metrics = {r.metric_type: r for r in data.eval_results}
        assert metrics["accuracy"].metric_value == t.metric == t.accuracy
        assert metrics["accuracy_drop"].metric_value == t.drop
        assert t.latency is not None and metrics["latency"].metric_config == t.latency.shape == "1x128"
        assert metrics["latency"].metric_value == t.latency.median_ms
        assert metrics["size"].metric_value == t.size_mb
        assert {r.dataset_split for r in data.eval_results} == {"test"}
        assert {r.dataset_revision for r in data.eval_results} == {manifest.data.files["test"]}
        # the YAML itself is in the hub's model-index layout, whatever huggingface_hub makes of it
        (index,) = front_matter(card)["model-index"]
        assert index["name"] == f"named-{t.name}"
        (result,) = index["results"]
        assert result["task"]["type"] == "text-classification"
        assert {"type": "accuracy", "value": t.metric, "name": "Accuracy"} in result["metrics"]
        assert data.compress["verdict"] == t.verdict and data.compress["run_verdict"] == manifest.verdict


def test_every_card_names_the_verdicts_each_gate_and_its_runtime(bundle):
    for manifest, t, card in cards(bundle):
        text = card.text
        assert f"**This model: {t.verdict.upper()}**" in text
        assert f"**The run: {manifest.verdict.upper()}** (`named` run {manifest.run_id})" in text
        assert t.gates and all(f"| {g.gate} | {g.result} | " in text for g in t.gates)
        assert [g["gate"] for g in card.data.compress["gates"]] == [g.gate for g in t.gates]
        made = text.split("## How it was made")[1].split("## ")[0]
        assert f"- **{t.stage}**: ok" in made and "· made this model" in made
        assert "- **finetune**: ok" in made and "epochs = 3" in made and "heads_fraction = 0.5" in made
        assert ("- **quantize**" in made) == (t.stage == "quantize")  # not in the others' lineage
        hardware = text.split("## Hardware")[1].split("## ")[0]
        assert f"- precision: {t.precision}" in hardware
        assert ("INT8 kernels chosen for" in hardware) == (t.precision == "int8")
        assert "0 = negative, 1 = positive" in text
        if t.runtime == "torch":
            assert "AutoModelForSequenceClassification.from_pretrained(folder)" in text
            assert "ORTModel" not in text
        else:
            assert "ORTModelForSequenceClassification.from_pretrained(folder)" in text
            assert 'pipeline("text-classification"' in text
            assert "AutoModelForSequenceClassification" not in text


def test_every_target_config_names_the_recipe_labels(bundle):
    for _, t, _ in cards(bundle):
        config = json.loads((bundle / t.artifact / "config.json").read_text())
        assert config["id2label"] == {"0": "negative", "1": "positive"}
        assert config["label2id"] == {"negative": 0, "positive": 1}


def test_each_loading_snippet_runs_from_the_bundle_and_answers_with_the_label_names(
    bundle, monkeypatch, capsys
):
    monkeypatch.chdir(bundle)
    for _, t, card in cards(bundle):
        (code,) = re.findall(r"```python\n(.*?)```", card.text, re.S)
        exec(code, {})
        printed = capsys.readouterr().out
        answers = re.findall(r"'label': '(\w+)'", printed)
        assert len(answers) == 2 and set(answers) <= set(LABELS), (t.name, printed)


def test_verify_covers_the_cards(bundle, tmp_path):
    assert verify_bundle(bundle)["files"] > 0
    listed = {f.path for f in load_manifest(bundle).files}
    assert {f"targets/{name}/README.md" for name in ("torch-fp32", "x86-onnxruntime-int8")} <= listed
    copy = tmp_path / "bundle"
    shutil.copytree(bundle, copy)
    card = copy / "targets" / "x86-onnxruntime-int8" / "README.md"
    card.write_text(card.read_text().replace("verdict: pass", "verdict: fail", 1))
    with pytest.raises(BundleInvalid) as info:
        verify_bundle(copy)
    assert info.value.file == "targets/x86-onnxruntime-int8/README.md"


def test_base_model_is_the_packaged_models_hub_id_or_the_local_path(bundle):
    manifest = load_manifest(bundle)
    target = manifest.targets[0]

    def with_model(**model) -> Manifest:
        resolved = {
            **manifest.recipe.resolved,
            "model": {"packaged": None, "path": None, "tiny": None, **model},
        }
        return manifest.model_copy(
            update={"recipe": manifest.recipe.model_copy(update={"resolved": resolved})}
        )

    packaged = model_card(with_model(packaged="all-MiniLM-L6-v2"), target)
    assert packaged.data.base_model == "sentence-transformers/all-MiniLM-L6-v2"
    assert "random weights" not in packaged.text
    local = model_card(with_model(path="/models/ckpt"), target)
    assert local.data.base_model == "/models/ckpt" and "the local checkpoint `/models/ckpt`" in local.text


def reloaded(manifest: Manifest, tmp_path) -> ModelCard:
    model_card(manifest, manifest.targets[0]).save(tmp_path / "README.md")
    return ModelCard.load(tmp_path / "README.md")


def judged(outcome: str) -> Manifest:
    """One target the real judge decided: failed (2.5 points worse on the pool), inconclusive (no
    pool answers) failing or passing the run, or passed in a run that failed."""
    from tests.pipeline.test_judge import judge_with, pool_case

    if outcome == "fail":
        record = judge_with(*pool_case(250))
        return Manifest.from_json(manifest_json(targets=[record.to_json()], verdict="fail"))
    if outcome == "inconclusive, passes":
        return judged_manifest(pool_answers=False, on_inconclusive="pass")
    if outcome == "pass, run fails":
        return judged_manifest()
    return judged_manifest(pool_answers=False)


@pytest.mark.parametrize(
    "outcome,verdict,says",
    [
        ("fail", "fail", ["**FAIL: this model did not meet its budgets.**", "| accuracy | **fail** |"]),
        (
            "inconclusive",
            "inconclusive",
            [
                "**INCONCLUSIVE: the test rows could not tell",
                "| accuracy | **inconclusive** |",
                "it counts against the run.",
            ],
        ),
        (
            "inconclusive, passes",
            "inconclusive",
            [
                "| accuracy | inconclusive (lets the run pass) |",
                "it lets the run pass (on_inconclusive = pass)",
            ],
        ),
        ("pass, run fails", "pass", ["passed its gates, but the run it belongs to **FAILED**"]),
    ],
)
def test_a_target_that_did_not_pass_cleanly_says_so(tmp_path, outcome, verdict, says):
    manifest = judged(outcome)
    (target,) = manifest.targets
    assert target.verdict == verdict
    card = reloaded(manifest, tmp_path)
    assert card.data.compress["verdict"] == verdict and card.data.compress["run_verdict"] == "fail"
    assert f"**This model: {verdict.upper()}**" in card.text and "**The run: FAIL**" in card.text
    for text in says:
        assert text in card.text
    if verdict != "fail":
        assert "did not meet its budgets" not in card.text
    metrics = {r.metric_type: r.metric_value for r in card.data.eval_results}
    assert metrics["accuracy"] == target.metric and metrics["accuracy_drop"] == target.drop


def test_an_old_bundles_engine_target_gets_a_tensorrt_card_without_proxy_figures(tmp_path):
    manifest = load_manifest(OLD)
    engine = manifest.target("gpu-fp16")
    assert engine is not None and engine.proxy and engine.latency is not None
    card = model_card(manifest, engine)
    card.save(tmp_path / "README.md")
    card = ModelCard.load(tmp_path / "README.md")
    assert card.data.library_name == "tensorrt" and "cpu-proxy" in card.data.tags
    assert {r.metric_type for r in card.data.eval_results} == {"accuracy", "accuracy_drop"}
    assert "**PROXY: no TensorRT engine was built" in card.text
    assert "trt.Runtime(logger).deserialize_cuda_engine(f.read())" in card.text
    assert "compress engine targets/gpu-fp16" in card.text and "AutoModel" not in card.text
    assert "- TensorRT shapes (batch x sequence): 1x16 .. 32x256, tuned for 1x128" in card.text
    assert "Other stages of the run: quantize (ok)." in card.text
    assert not list((OLD / "targets").glob("*/README.md"))  # the old bundle itself has no cards
