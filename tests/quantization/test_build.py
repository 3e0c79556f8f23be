"""The INT8 build on a real (tiny) graph: the fallback's candidates are the nodes the quantizer
sees after fusion, its exclusions really stay FP32, the sensitivity ranking really ranks, and the
search keeps the most harmful layers in FP32 first."""

import json

import numpy as np
import onnx
import pytest

from compress.core.progress import Reporter
from compress.quantization import build as build_module
from compress.quantization.build import build, preparing
from compress.quantization.onnxrt import quantizable_layers, quantize, scheme_for
from compress.recipe.schema import QuantizeSpec
from compress.runtimes import onnxruntime_predictor

SCHEME = scheme_for("avx512_vnni", mode="dynamic", per_channel=False, op_types=None)


@pytest.fixture
def prepared(tiny_onnx, tiny_splits, tmp_path):
    with preparing(
        tiny_onnx.path,
        fuse_graph=True,
        static=False,
        calibration_rows=64,
        dev=tiny_splits.dev,
        max_length=32,
        work=tmp_path / "work",
        progress=Reporter(quiet=True),
    ) as prepared:
        yield prepared


def folder_for_a_model(prepared, folder):
    """A folder with the FP32 model's config and tokenizer, for a graph a test writes there."""
    folder.mkdir()
    for f in prepared.source.iterdir():
        if f.suffix != ".onnx":
            (folder / f.name).write_bytes(f.read_bytes())
    return folder


def node_names(path) -> dict[str, str]:
    return {n.name: n.op_type for n in onnx.load(str(path)).graph.node}


def test_candidates_are_nodes_of_the_graph_the_quantizer_reads(prepared):
    layers = quantizable_layers(prepared.graph, SCHEME)
    fused = node_names(prepared.graph)
    assert layers and all(fused.get(name) == op for name, op in layers.items())
    assert {"Attention", "MatMul"} <= set(layers.values())  # fused attention is a candidate


def test_excluded_layers_stay_fp32_and_the_rest_are_quantized(prepared, tmp_path):
    layers = quantizable_layers(prepared.graph, SCHEME)
    excluded = tuple(name for name in layers if name.startswith("Attention") or "output/dense" in name)[:3]
    quantize(prepared.graph, tmp_path / "q.onnx", SCHEME, fp32_layers=excluded)
    nodes = node_names(tmp_path / "q.onnx")
    for name in layers:
        if name in excluded:
            assert nodes.get(name) == layers[name], f"{name} should have stayed FP32"
            assert f"{name}_quant" not in nodes
        else:
            assert name not in nodes or layers[name] == "EmbedLayerNormalization"
            assert f"{name}_quant" in nodes or layers[name] == "EmbedLayerNormalization"


def test_sensitivity_ranks_layers_by_their_measured_harm(prepared, tmp_path):
    layers = quantizable_layers(prepared.graph, SCHEME)

    def alone(only):
        folder = tmp_path / "alone"
        folder.mkdir(exist_ok=True)
        quantize(prepared.graph, folder / "model.onnx", SCHEME, only=only)
        predict = onnxruntime_predictor(folder)
        return np.concatenate([predict(b) for b in prepared.sample])

    ranked = build_module._sensitivity(Reporter(quiet=True), layers, alone, prepared.fp32_sample)
    assert [name for name, _ in ranked] != list(layers) or len(set(s for _, s in ranked)) == 1
    scores = [score for _, score in ranked]
    assert scores == sorted(scores, reverse=True) and scores[0] > scores[-1]
    worst = max(layers, key=lambda name: float(np.mean((alone((name,)) - prepared.fp32_sample) ** 2)))
    assert ranked[0][0] == worst


def test_a_search_that_needs_the_fallback_keeps_the_most_harmful_layers_fp32(prepared, tiny_splits, tmp_path):
    spec = QuantizeSpec(
        max_accuracy_drop=-100.0, max_trials=3, min_label_agreement=0.0, check_shapes=["1x16"]
    )
    metrics, failures = build(
        prepared,
        SCHEME,
        spec,
        table="quantize",
        dev=tiny_splits.dev,
        test=tiny_splits.test,
        out=tmp_path / "out",
        progress=Reporter(quiet=True),
    )
    trials = metrics["fallback"]["trials"]
    assert [len(t["fp32_layers"]) for t in trials] == [0, 1, 2] and failures
    ranking = metrics["sensitivity"]
    fused = node_names(prepared.graph)  # exclusions must name nodes of the graph that is quantized
    assert all(fused.get(r["layer"]) == r["op"] for r in ranking)
    harms = [r["logit_mse_alone"] for r in ranking]
    assert len(ranking) == metrics["quantizable_layers"] and harms == sorted(harms, reverse=True)
    # lookups cost no time in FP32, so they go back first; then the most harmful layers
    expected = [r["layer"] for r in ranking if r["lookup"]] + [r["layer"] for r in ranking if not r["lookup"]]
    assert trials[1]["fp32_layers"] == expected[:1] and trials[2]["fp32_layers"] == expected[:2]
    written = json.loads((tmp_path / "out" / "quantization.json").read_text())
    assert written["fallback"]["trials"] == trials


def test_a_second_build_reuses_the_ranking_the_first_one_measured(prepared, tiny_splits, tmp_path):
    spec = QuantizeSpec(
        max_accuracy_drop=-100.0, max_trials=2, min_label_agreement=0.0, check_shapes=["1x16"]
    )
    reporter = Reporter(quiet=True)
    records = []
    for isa in ("avx512_vnni", "avx2"):
        scheme = scheme_for(isa, mode="dynamic", per_channel=False, op_types=None)
        common = {"table": "quantize", "dev": tiny_splits.dev, "test": tiny_splits.test}
        records.append(build(prepared, scheme, spec, **common, out=tmp_path / isa, progress=reporter)[0])
    ranked = [name for name, _ in reporter.timings if name == "fallback: layer sensitivity"]
    assert len(ranked) == 1  # measured once, for the first build
    assert [r["sensitivity_measured_for"] for r in records] == ["avx512_vnni", "avx512_vnni"]
    assert records[0]["sensitivity"] == records[1]["sensitivity"]
    assert (
        records[1]["fallback"]["trials"][1]["fp32_layers"]
        == records[0]["fallback"]["trials"][1]["fp32_layers"]
    )


def test_the_fallback_aims_at_accuracy_unless_agreement_is_asked_for(
    prepared, tiny_splits, tmp_path, monkeypatch
):
    """The search gets no agreement limit by default (only the accuracy budget), and fallback_agreement
    when a recipe sets it; only then does a trial pay for answering dev rows at every check shape."""
    asked, shapes_answered = [], []
    real_search, real_matrix = build_module.fallback.search, build_module.shape_matrix
    monkeypatch.setattr(
        build_module.fallback, "search", lambda **kw: asked.append(kw["min_agreement"]) or real_search(**kw)
    )
    monkeypatch.setattr(
        build_module, "shape_matrix", lambda *a, **kw: shapes_answered.append(a[4]) or real_matrix(*a, **kw)
    )
    common = {
        "table": "quantize",
        "dev": tiny_splits.dev,
        "test": tiny_splits.test,
        "progress": Reporter(quiet=True),
    }
    loose = QuantizeSpec(max_accuracy_drop=100.0, min_label_agreement=0.0, check_shapes=["1x16", "2x8"])
    metrics, failures = build(prepared, SCHEME, loose, **common, out=tmp_path / "loose")
    assert asked == [None] and len(shapes_answered) == 1  # the test-row shape check only
    assert [len(t["fp32_layers"]) for t in metrics["fallback"]["trials"]] == [0] and not failures
    strict = loose.model_copy(update={"fallback_agreement": 0.97})
    build(prepared, SCHEME, strict, **common, out=tmp_path / "strict")
    assert asked[1] == 0.97 and len(shapes_answered) == 3  # the trial on dev at both shapes, then test


def test_weight_only_layers_become_8bit_matmulnbits_and_still_answer(prepared, tmp_path):
    layers = quantizable_layers(prepared.graph, SCHEME)
    matmuls = tuple(name for name, op in layers.items() if op == "MatMul")[:2]
    out = folder_for_a_model(prepared, tmp_path / "wo")
    quantize(prepared.graph, out / "model.onnx", SCHEME, weight_only_layers=matmuls)
    graph = onnx.load(str(out / "model.onnx")).graph
    nodes = {n.name: n for n in graph.node}
    for name in matmuls:
        node = nodes[f"{name}_Q8"]
        assert node.op_type == "MatMulNBits" and name not in nodes
        attributes = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
        assert attributes["bits"] == 8 and attributes["accuracy_level"] == 4
    others = [n for n in layers if n not in matmuls and layers[n] == "MatMul"]
    assert others and all(f"{n}_quant" in nodes for n in others)  # the rest stay INT8
    predict = onnxruntime_predictor(out)
    logits = np.concatenate([predict(b) for b in prepared.sample])
    assert logits.shape == prepared.fp32_sample.shape and np.isfinite(logits).all()


def test_static_qdq_graphs_take_8bit_weight_only_layers_too(tiny_onnx, tiny_splits, tmp_path):
    static = scheme_for(
        "avx512_vnni", mode="static", per_channel=True, op_types=None, weight_only_fallback=True
    )
    with preparing(
        tiny_onnx.path,
        fuse_graph=False,
        static=True,
        calibration_rows=32,
        dev=tiny_splits.dev,
        max_length=32,
        work=tmp_path / "work",
        progress=Reporter(quiet=True),
    ) as prepared:
        matmul = next(n for n, op in quantizable_layers(prepared.graph, static).items() if op == "MatMul")
        out = folder_for_a_model(prepared, tmp_path / "out")
        quantize(
            prepared.graph,
            out / "model.onnx",
            static,
            calibration=prepared.calibration,
            weight_only_layers=(matmul,),
        )
        nodes = node_names(out / "model.onnx")
        assert nodes[f"{matmul}_Q8"] == "MatMulNBits" and "DequantizeLinear" in nodes.values()
        predict = onnxruntime_predictor(out)
        assert np.isfinite(np.concatenate([predict(b) for b in prepared.sample])).all()


def test_only_matmuls_can_take_8bit_weights_only(prepared, tmp_path):
    layers = quantizable_layers(prepared.graph, SCHEME)
    attention = next(name for name, op in layers.items() if op == "Attention")
    with pytest.raises(ValueError, match="cannot take 8-bit weights only"):
        quantize(prepared.graph, tmp_path / "q.onnx", SCHEME, weight_only_layers=(attention,))


def test_the_fallback_tries_8bit_weights_before_fp32_for_the_layers_it_takes_out(
    prepared, tiny_splits, tmp_path, monkeypatch
):
    """A budget only met once a MatMul leaves INT8 (the real trials, with every lookup-only trial made
    to miss): the search finds those layers in FP32, tries them with 8-bit weights, and the stage's
    model is the form the search chose."""
    scheme = scheme_for(
        "avx512_vnni", mode="dynamic", per_channel=False, op_types=None, weight_only_fallback=True
    )
    layers = quantizable_layers(prepared.graph, scheme)
    real_search = build_module.fallback.search

    def search(**kw):
        def evaluate(out_of_int8, form):
            accuracy, agreement = kw["evaluate"](out_of_int8, form)
            if any(layers[n] == "MatMul" for n in out_of_int8):
                return accuracy, agreement
            return 0.0, 0.0

        return real_search(**{**kw, "evaluate": evaluate})

    monkeypatch.setattr(build_module.fallback, "search", search)
    # a real trial of the tiny model moves dev accuracy a few points at most; the 0.0 ones miss by ~50
    spec = QuantizeSpec(max_accuracy_drop=20.0, min_label_agreement=0.0, check_shapes=["1x16"])
    metrics, _ = build(
        prepared,
        scheme,
        spec,
        table="quantize",
        dev=tiny_splits.dev,
        test=tiny_splits.test,
        out=tmp_path / "out",
        progress=Reporter(quiet=True),
    )
    trials = metrics["fallback"]["trials"]
    assert metrics["fallback"]["cheaper_forms"] == ["weight_only"]
    assert trials[-1]["form"] == "weight_only" and trials[-1]["passed"]
    assert trials[-1]["layers"] == trials[-2]["layers"] and trials[-2]["form"] == "fp32"
    chosen = [e["layer"] for e in metrics["weight_only_layers"]]
    assert chosen == trials[-1]["weight_only_layers"] and chosen
    assert all(layers[n] == "MatMul" for n in chosen)
    assert [e["layer"] for e in metrics["fp32_layers"]] == trials[-1]["fp32_layers"]  # lookups stay FP32
    nodes = node_names(tmp_path / "out" / "model.onnx")
    assert all(nodes.get(f"{n}_Q8") == "MatMulNBits" for n in chosen)
    assert any("8-bit weights only: " + chosen[0] in note for note in metrics["notes"])
