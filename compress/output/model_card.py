"""A Hugging Face model card (README.md) for every target folder of a bundle: a target folder gets
copied onward (hub, registry, device) away from report.md, so the card carries the verdict, the gates
and how the model was made, rendered from the typed manifest records only. huggingface_hub is imported
inside functions, after compress.models.loading has set HF_HUB_OFFLINE (read at its first import).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from compress.core.records import Gate, Manifest, StageRecord, TargetRecord
from compress.output.report import headline
from compress.recipe.stages import BY_NAME

if TYPE_CHECKING:
    from huggingface_hub import EvalResult, ModelCard, ModelCardData

CARD = "README.md"
TASK = "text-classification"
LIBRARY = {"torch": "transformers", "onnxruntime": "onnx", "tensorrt": "tensorrt"}  # as the hub names them
RUNTIMES = {
    "torch": "PyTorch (transformers), CPU or GPU",
    "onnxruntime": "ONNX Runtime, CPU execution provider",
    "tensorrt": "NVIDIA TensorRT, on a CUDA GPU",
}
PACKAGED_HUB_IDS = {"all-MiniLM-L6-v2": "sentence-transformers/all-MiniLM-L6-v2"}  # what each package ships
METRIC_TYPES = {"accuracy": ("accuracy", "Accuracy"), "macro_f1": ("f1", "Macro F1")}
BANNERS = {
    "fail": "> **FAIL: this model did not meet its budgets.** See the gates below before using it.",
    "inconclusive": "> **INCONCLUSIVE: the test rows could not tell whether this model meets its "
    "budgets.** See the gates below before using it.",
    "proxy": "> **PROXY: no TensorRT engine was built or measured;** the figures are a CPU stand-in's.",
}


def _fmt(value: Any) -> str:
    """A value as a short cell: floats to 6 significant digits, lists joined."""
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float):
        return format(value, ".6g")
    if isinstance(value, list | tuple):
        return ", ".join(_fmt(v) for v in value) or "[]"
    return "—" if value is None else str(value)


def _flat(values: dict[str, Any], prefix: str = "", depth: int = 2) -> Iterator[tuple[str, Any]]:
    """(dotted key, value) for the scalars and scalar lists of a settings or metrics table, `depth`
    tables deep; lists of tables (histories, trials) are left to the manifest."""
    for key, value in values.items():
        if isinstance(value, dict) and depth > 1:
            yield from _flat(value, f"{prefix}{key}.", depth - 1)
        elif not isinstance(value, dict) and key != "notes":
            if not isinstance(value, list) or not any(isinstance(v, dict | list) for v in value):
                yield f"{prefix}{key}", value


def _pairs(values: dict[str, Any]) -> str:
    return ", ".join(f"{k} = {_fmt(v)}" for k, v in _flat(values))


def _resolved(manifest: Manifest, table: str) -> dict[str, Any]:
    value = manifest.recipe.resolved.get(table)
    return value if isinstance(value, dict) else {}


def starting_model(manifest: Manifest) -> tuple[str | None, str]:
    """`base_model` (a hub id, a local checkpoint's path; None for a tiny model) and a sentence on it."""
    model = _resolved(manifest, "model")
    if model.get("packaged"):
        hub = PACKAGED_HUB_IDS.get(model["packaged"])
        where = f" (`{hub}` on the Hugging Face hub)" if hub else ""
        return hub or model["packaged"], f"the packaged model `{model['packaged']}`{where}"
    if model.get("path"):
        return str(model["path"]), f"the local checkpoint `{model['path']}`"
    if model.get("hub"):  # the commit its revision named is the manifest's model record
        commit = manifest.model.hub_commit if manifest.model is not None else None
        return model["hub"], f"the hub model `{model['hub']}` at commit {commit or '(not recorded)'}"
    if isinstance(model.get("tiny"), dict):
        return None, (
            f"a tiny BERT built from its config with random weights ({_pairs(model['tiny'])}; "
            f"seed {model.get('seed', 0)}): no pretrained base model"
        )
    return None, "a starting model the manifest does not record"


def lineage(manifest: Manifest, target: TargetRecord) -> list[StageRecord]:
    """The stages this target was made through, in run order, ending with the one that made it:
    those before it that make the FP32 PyTorch model, and those it needs (the stage table's
    `needs`). Empty for the starting model itself."""
    names = [s.name for s in manifest.stages]
    if target.stage not in names or target.stage not in BY_NAME:
        return []
    at = names.index(target.stage)
    needs = BY_NAME[target.stage].needs
    return [
        s
        for s in manifest.stages[:at]
        if s.name in BY_NAME and (s.name in needs or ("torch", "fp32") in BY_NAME[s.name].makes)
    ] + [manifest.stages[at]]


def _build(stage: StageRecord, target: TargetRecord) -> dict[str, Any] | None:
    """The one of a stage's `builds` (quantize: per ISA, engine: per precision) that made the target."""
    builds = stage.metrics.get("builds")
    if not isinstance(builds, dict):
        return None
    for build in builds.values():
        if isinstance(build, dict) and target.name in build.get("targets", []):
            return build
    found = builds.get(target.precision)
    return found if isinstance(found, dict) else None


def tags(manifest: Manifest, target: TargetRecord) -> list[str]:
    """compress, the task, runtime, precision, and what applies: onnx, quantized, pruned, the ISA
    the INT8 kernels were chosen for, cpu-proxy."""
    chain = lineage(manifest, target)
    builds = [b for b in (_build(s, target) for s in chain) if b]
    out = ["compress", TASK, target.runtime, target.precision]
    out += ["onnx"] if target.runtime in ("onnxruntime", "tensorrt") else []
    out += ["quantized"] if target.precision == "int8" else []
    out += ["pruned"] if any(s.name == "prune" and s.status == "ok" for s in chain) else []
    out += [str(b["isa"]) for b in builds if b.get("isa")]
    out += ["cpu-proxy"] if target.proxy else []
    return list(dict.fromkeys(out))


def eval_results(manifest: Manifest, target: TargetRecord) -> list[EvalResult]:
    """The test metric, its drop against the reference, the latency at the budget's shape and the
    size, as model-index metrics on the test split. A CPU proxy's latency and size are not the
    engine's: left out."""
    from huggingface_hub import EvalResult

    test = _resolved(manifest, "data").get("test")
    dataset = Path(str(test)).parent.name if test else manifest.recipe_name
    kind, label = METRIC_TYPES.get(target.metric_name, (target.metric_name, target.metric_name))
    against = f" vs {target.baseline_from}" if target.baseline_from else ""
    rows: list[tuple[str, float | None, str, str | None]] = [
        (kind, target.metric, label + (" (CPU proxy)" if target.proxy else ""), None),
        (f"{target.metric_name}_drop", target.drop, f"{label} drop{against} (points)", None),
    ]
    if not target.proxy:
        if target.latency is not None:
            shape = target.latency.shape
            rows.append(("latency", target.latency.median_ms, f"Median latency at {shape} (ms)", shape))
        rows.append(("size", target.size_mb, "Size (MB)", None))
    return [
        EvalResult(
            task_type=TASK,
            task_name="Text Classification",
            dataset_type=dataset,
            dataset_name=f"{dataset}/{Path(str(test)).name}" if test else f"{dataset} test split",
            dataset_split="test",
            dataset_revision=manifest.data.files.get("test"),  # the test file's sha256
            metric_type=metric,
            metric_value=value,
            metric_name=name,
            metric_config=config,
            metric_args={"average": "macro"} if metric == "f1" else None,
        )
        for metric, value, name, config in rows
        if value is not None
    ]


def card_data(manifest: Manifest, target: TargetRecord) -> ModelCardData:
    """The front matter: base model, task, library, tags, model-index, and compress's own record
    of the run and the verdicts (under `compress`), for tools that read cards."""
    from huggingface_hub import ModelCardData

    results = eval_results(manifest, target)
    return ModelCardData(
        base_model=starting_model(manifest)[0],
        pipeline_tag=TASK,
        library_name=LIBRARY.get(target.runtime, target.runtime),
        tags=tags(manifest, target),
        model_name=f"{manifest.recipe_name}-{target.name}",
        eval_results=results or None,
        compress={
            "recipe": manifest.recipe_name,
            "run_id": manifest.run_id,
            "verdict": target.verdict,
            "run_verdict": manifest.verdict,
            "gates": [{"gate": g.gate, "outcome": g.result} for g in target.gates],
        },
    )


def verdict_lines(manifest: Manifest, target: TargetRecord) -> list[str]:
    """This target's verdict and why, then the run's (the report's own summary line)."""
    failing = ", ".join(g.gate for g in target.gates if g.result == "fail")
    unsure = ", ".join(g.gate for g in target.gates if g.result == "inconclusive")
    lets_pass = bool(target.gates) and all(g.passed for g in target.gates)
    effect = "lets the run pass (on_inconclusive = pass)" if lets_pass else "counts against the run"
    why = {
        "pass": "every gate passed.",
        "fail": f"failed gate(s): {failing or 'none recorded'}.",
        "inconclusive": f"the test rows cannot tell whether {unsure} is within budget; it {effect}.",
        "proxy": f"no engine was built where this ran ({target.proxy}); the gates judged a CPU "
        "stand-in in ONNX Runtime, not the engine.",
    }[target.verdict]
    optional = "" if target.required else " (an optional target: it cannot fail the run)"
    summary = headline(manifest)[1]
    return [
        f"- **This model: {target.verdict.upper()}**{optional}: {why}",
        f"- **The run: {manifest.verdict.upper()}** (`{manifest.recipe_name}` run {manifest.run_id}): "
        + summary,
    ]


def _outcome(gate: Gate) -> str:
    if gate.result == "inconclusive":
        return "inconclusive (lets the run pass)" if gate.passed else "**inconclusive**"
    return "pass" if gate.result == "pass" else "**fail**"


def gate_table(target: TargetRecord) -> list[str]:
    """One row per gate: outcome (and whether it lets the run pass), figure, limit, the sentence."""
    if not target.gates:
        return ["No gates were judged (the target was not built)."]
    return ["| gate | outcome | value | limit | detail |", "|---|---|---|---|---|"] + [
        f"| {g.gate} | {_outcome(g)} | {_fmt(g.value)} | {_fmt(g.limit)} | {g.message.replace('|', '/')} |"
        for g in target.gates
    ]


def result_lines(target: TargetRecord) -> list[str]:
    """The figures on the test split, as the manifest holds them."""
    lines, st = [], target.statistics
    if target.metric is not None:
        lines.append(
            f"- {target.metric_name}: {target.metric:.4f}" + (f", {st.rows} test rows" if st else "")
        )
    if target.drop is not None:
        interval = f", {st.confidence:.2%} CI [{st.low:+.2f}, {st.high:+.2f}]" if st else ""
        lines.append(
            f"- drop vs the reference ({target.baseline_from}, {_fmt(target.baseline)}): "
            f"{target.drop:+.2f} points{interval}; budget {target.budgets.max_accuracy_drop:.2f}"
        )
    if target.proxy:
        lines.append("- latency and size: not measured (no engine; the CPU proxy's are not the engine's)")
    elif target.latency is not None:
        lat = target.latency
        lines.append(f"- latency at {lat.shape}: median {lat.median_ms:.3f} ms, p90 {lat.p90_ms:.3f} ms")
    if target.size_mb is not None and not target.proxy:
        lines.append(f"- size: {target.size_mb:.3f} MB")
    return lines or ["No figures: the target was not measured."]


def stage_lines(manifest: Manifest, target: TargetRecord) -> list[str]:
    """Each stage this model came through: status, the recipe's settings, what it reported."""
    chain = lineage(manifest, target)
    lines = [f"Starting model: {starting_model(manifest)[1]}.", ""]
    if not chain:
        lines.append("No stage changed it: this is the starting model as built.")
    for stage in chain:
        made = " · made this model" if stage.name == target.stage else ""
        lines.append(f"- **{stage.name}**: {stage.status}{' (cached)' if stage.cached else ''}{made}")
        lines += [f"  - reason: {stage.reason}"] if stage.reason else []
        if stage.name in manifest.recipe.resolved:
            lines.append(f"  - settings: {_pairs(_resolved(manifest, stage.name)) or 'defaults'}")
        reported = _pairs({k: v for k, v in stage.metrics.items() if k != "builds"})
        lines += [f"  - reported: {reported}"] if reported else []
        build = _build(stage, target)
        lines += [f"  - this model's build: {_pairs(build)}"] if build else []
        notes = build["notes"] if build and build.get("notes") else stage.notes
        lines += [f"  - note: {note}" for note in notes]
    others = ", ".join(f"{s.name} ({s.status})" for s in manifest.stages if s not in chain)
    return lines + (["", f"Other stages of the run: {others}."] if others else [])


def hardware_lines(manifest: Manifest, target: TargetRecord) -> list[str]:
    """The runtime and precision it is for, the ISA or GPU profile, and the machine it was measured on."""
    lines = [f"- runtime: {RUNTIMES.get(target.runtime, target.runtime)}", f"- precision: {target.precision}"]
    for build in (b for b in (_build(s, target) for s in lineage(manifest, target)) if b):
        if build.get("isa"):
            lines.append(
                f"- ISA: INT8 kernels chosen for `{build['isa']}`; {build.get('mode')} quantization, "
                f"weights {build.get('weight_type')}, activations {build.get('activation_type')}"
            )
        engine = build.get("tensorrt")
        if isinstance(engine, dict):
            shapes = engine.get("profile") or {}
            built_for = ", ".join(f"{k} {v}" for k, v in (engine.get("built_for") or {}).items())
            lines += [
                f"- TensorRT shapes (batch x sequence): {shapes.get('min')} .. {shapes.get('max')}, "
                f"tuned for {shapes.get('opt')}",
                f"- engine built for {built_for}: it runs only there"
                if engine.get("built")
                else f"- engine not built where this ran: {engine.get('reason')}",
            ]
    env = manifest.environment
    cpu = env.cpu.model + (f" ({env.cpu.machine})" if env.cpu.machine else "")
    isa = f", ISA {', '.join(env.cpu.isa)}" if env.cpu.isa else ""
    tools = "".join(f", {k} {v}" for k, v in env.versions.items())
    return lines + [f"- measured on: {cpu}{isa}; Python {env.python}{tools}"]


TAIL = (
    "tokenizer = AutoTokenizer.from_pretrained(folder)\n"
    'classifier = pipeline("text-classification", model=model, tokenizer=tokenizer)\n'
    'print(classifier(["a fine film .", "dull"]))'
)
SNIPPETS = {  # runtime -> (what to say first, the code); FOLDER is the target folder
    "torch": (
        "A transformers checkpoint (safetensors):",
        "from transformers import AutoModelForSequenceClassification, AutoTokenizer, pipeline\n\n"
        'folder = "FOLDER"\nmodel = AutoModelForSequenceClassification.from_pretrained(folder)\n' + TAIL,
    ),
    "onnxruntime": (
        "An ONNX graph (model.onnx) for ONNX Runtime, through Optimum (`pip install optimum-onnx`):",
        "from optimum.onnxruntime import ORTModelForSequenceClassification\n"
        "from transformers import AutoTokenizer, pipeline\n\n"
        'folder = "FOLDER"\nmodel = ORTModelForSequenceClassification.from_pretrained(folder)\n' + TAIL,
    ),
    "tensorrt": (
        "A TensorRT engine runs only on the GPU and TensorRT version it was built with. Where model.engine "
        "is missing, build it on the device first from the bundled model.onnx (ENGINE.md and engine.json "
        "give the trtexec line; or `compress engine FOLDER`), then deserialize it with TensorRT:",
        'import tensorrt as trt\n\nfolder = "FOLDER"\nlogger = trt.Logger(trt.Logger.WARNING)\n'
        'with open(f"{folder}/model.engine", "rb") as f:\n'
        "    engine = trt.Runtime(logger).deserialize_cuda_engine(f.read())\n"
        "context = engine.create_execution_context()\n"
        "# inputs input_ids, attention_mask, token_type_ids (int64, batch x sequence in the engine's\n"
        "# profile): context.set_input_shape and set_tensor_address each, then execute_async_v3",
    ),
    "uneven": (  # torch, pruned to shapes plain transformers cannot rebuild
        "Its pruned shapes (per-layer FFN widths or kept heads, `compress_*` keys in config.json) are "
        "more than this family's transformers code can rebuild: load it with compress.",
        'import compress\nfrom transformers import AutoTokenizer\n\nfolder = "FOLDER"\n'
        "model = compress.load_pretrained(folder)\ntokenizer = AutoTokenizer.from_pretrained(folder)",
    ),
}


def usage_lines(manifest: Manifest, target: TargetRecord) -> list[str]:
    """How to load this folder in its runtime, as a snippet run from the bundle folder."""
    kind = target.runtime
    if kind == "torch" and any(
        s.metrics.get("uniform_ffn") is False or s.metrics.get("loads_with") == "compress.load_pretrained"
        for s in lineage(manifest, target)
    ):
        kind = "uneven"
    folder = target.artifact or f"targets/{target.name}"
    note, code = SNIPPETS.get(kind, (f"No loading example for runtime {target.runtime}.", ""))
    names = _resolved(manifest, "data").get("label_names")
    labels = (
        "Labels (config.json `id2label`): " + ", ".join(f"{i} = {n}" for i, n in enumerate(names)) + "."
        if names
        else "Labels: the recipe named none, so config.json calls them LABEL_0, LABEL_1, ..."
    )
    snippet = ["```python", *code.replace("FOLDER", folder).splitlines(), "```", ""] if code else []
    return [note.replace("FOLDER", folder), "", *snippet, f"Run it from the bundle folder. {labels}"]


def card_text(manifest: Manifest, target: TargetRecord) -> str:
    """The Markdown under the front matter."""
    created = f" ({manifest.created})" if manifest.created else ""
    banner = BANNERS.get(target.verdict)
    if banner is None and manifest.verdict == "fail":
        banner = "> This model passed its gates, but the run it belongs to **FAILED** (see the verdict)."
    lines = [f"# {target.name}", ""] + ([banner, ""] if banner else [])
    lines.append(
        f"Target `{target.name}` of the compress recipe `{manifest.recipe_name}`, run {manifest.run_id}"
        f"{created}: a text classifier for {RUNTIMES.get(target.runtime, target.runtime).split(',')[0]} "
        f"in {target.precision}, made from {starting_model(manifest)[1]}."
    )
    sections = {
        "Verdict": verdict_lines(manifest, target),
        "Gates": gate_table(target),
        "Results": result_lines(target),
        "How it was made": stage_lines(manifest, target),
        "Hardware": hardware_lines(manifest, target),
        "How to use": usage_lines(manifest, target),
    }
    for heading, body in sections.items():
        lines += ["", f"## {heading}", "", *body]
    lines += ["", "The bundle's report.md and manifest.json hold the full record of the run."]
    return "\n".join(lines) + "\n"


def model_card(manifest: Manifest, target: TargetRecord) -> ModelCard:
    """The target's card: front matter from `card_data`, body from `card_text`."""
    from huggingface_hub import ModelCard

    return ModelCard(f"---\n{card_data(manifest, target).to_yaml()}\n---\n\n{card_text(manifest, target)}")


def write_cards(bundle: Path, manifest: Manifest) -> list[Path]:
    """README.md into the folder of every target that has one in `bundle`; the paths written."""
    written = []
    for target in manifest.targets:
        if target.artifact is not None and (bundle / target.artifact).is_dir():
            model_card(manifest, target).save(bundle / target.artifact / CARD)
            written.append(bundle / target.artifact / CARD)
    return written
