"""What one INT8 build records: quantization.json's fallback section (every trial, which layers left
INT8, in which form and why) and the lines the report shows under the stage."""

from __future__ import annotations

from compress.quantization import fallback
from compress.quantization.onnxrt import LOOKUPS, WEIGHT_ONLY, QuantScheme, split_by_form
from compress.recipe.schema import Int8SearchSpec


def described(forms: dict[str, tuple[str, ...]]) -> str:
    """'1 layer in FP32, 6 with 8-bit weights only' (or 'every layer INT8')."""
    fp32, weight_only = len(forms[fallback.FP32]), len(forms[WEIGHT_ONLY])
    parts = [f"{fp32} layer{'s' * (fp32 != 1)} in FP32"] * bool(fp32)
    parts += [f"{weight_only} with 8-bit weights only"] * bool(weight_only)
    return ", ".join(parts) or "every layer INT8"


def record(
    scheme: QuantScheme,
    search: Int8SearchSpec,
    table: str,
    layers: dict[str, str],
    sensitivity: list[tuple[str, float]],
    outcome: fallback.SearchResult,
    *,
    fp32_accuracy: float,
    dev_rows: int,
    fusions: dict,
    sensitivity_measured_for: str | None,
) -> dict:
    """quantization.json's settings and fallback: every trial, and each layer out of INT8 with why."""
    scores = dict(sensitivity)
    ranks = {name: i + 1 for i, (name, _) in enumerate(sensitivity)}

    def trial(t: fallback.Trial) -> dict:
        forms = split_by_form(t.layers, t.form, layers)
        return {
            **t.to_dict(),
            "fp32_layers": list(forms[fallback.FP32]),
            "weight_only_layers": list(forms[WEIGHT_ONLY]),
        }

    def why(name: str) -> dict:
        return {
            "layer": name,
            "why": f"rank {ranks[name]} of {len(layers)} by logit error when quantized alone"
            + ("; a lookup, tried first: in FP32 it costs size, not time" * (layers[name] in LOOKUPS)),
            "logit_mse_alone": scores[name],
        }

    chosen = split_by_form(outcome.chosen.layers, outcome.chosen.form, layers)
    return {
        "mode": scheme.mode,
        "isa": scheme.isa,
        "activation_type": scheme.activation if scheme.mode == "static" else "QUInt8 (dynamic)",
        "weight_type": scheme.weight,
        "reduce_range": scheme.reduce_range,
        "fusions": fusions,
        "quantizable_layers": len(layers),
        "fallback": {
            "budget": search.max_accuracy_drop,
            "fallback_agreement": search.fallback_agreement,
            "limits": limits(search, table),
            "judged_on": f"{dev_rows} dev rows against the FP32 ONNX model",
            "fp32_dev_accuracy": fp32_accuracy,
            "met": outcome.met,
            "cheaper_forms": list(scheme.fallback_forms),
            "trials": [trial(t) for t in outcome.trials],
        },
        "sensitivity_measured_for": sensitivity_measured_for,
        # every candidate quantized alone, most harmful first (only when the fallback had to rank)
        "sensitivity": [
            {"layer": name, "op": layers[name], "logit_mse_alone": score, "lookup": layers[name] in LOOKUPS}
            for name, score in sensitivity
        ],
        "fp32_layers": [why(name) for name in chosen[fallback.FP32]],
        # MatMuls out of INT8 that kept 8-bit weights (MatMulNBits): a quarter of FP32's size
        "weight_only_layers": [why(name) for name in chosen[WEIGHT_ONLY]],
    }


def notes(metrics: dict, outcome: fallback.SearchResult, candidates: int) -> list[str]:
    """The lines the report shows under the stage."""
    chosen = outcome.chosen
    out = {
        form: [e["layer"] for e in metrics[key]]
        for form, key in (("FP32", "fp32_layers"), ("8-bit weights only", "weight_only_layers"))
    }
    searched = (
        f"{'met' if outcome.met else 'MISSED'} {metrics['fallback']['limits']} on dev after "
        f"{len(outcome.trials)} trial(s): drop {chosen.drop:+.2f} pt, {chosen.agreement:.2%} labels "
        f"as FP32, with {len(chosen.layers)} of {candidates} layers out of INT8"
        + "".join(f"; {form}: {', '.join(names)}" for form, names in out.items() if names)
    )
    shapes = ", ".join(
        f"{shape} ERROR"
        if r["error"] is not None
        else f"{shape} {r['label_agreement']:.1%}"
        if r["label_agreement"] is not None
        else f"{shape} no rows"
        for shape, r in metrics["shape_matrix"].items()
    )
    return [
        f"{metrics['mode']} INT8 for {metrics['isa']}; {searched}",
        f"label agreement with FP32 ONNX by batch x sequence: {shapes}",
    ]


def limits(search: Int8SearchSpec, table: str) -> str:
    """The limits the fallback aimed at, named by their recipe keys."""
    limits = []
    if search.max_accuracy_drop is not None:
        limits.append(f"{table}.max_accuracy_drop {search.max_accuracy_drop:.2f} pt")
    if search.fallback_agreement is not None:
        limits.append(f"{table}.fallback_agreement {search.fallback_agreement:.2%} at every check shape")
    return " and ".join(limits) or "no limit (the fully INT8 model is kept)"
