"""The torch_int8 stage: Neural Compressor autotune on the tiny checkpoint, the .pt2 it saves reloaded
with plain PyTorch in a fresh process, and a fast smoke run with a torch/int8 target end to end."""

import json
import subprocess
import sys

import numpy as np
import pytest

from compress.recipe.schema import TorchInt8Spec
from compress.runtimes import RUNTIMES
from compress.stages import torch_int8
from tests.conftest import fast_recipe, link_data, load_manifest, run_cli, stage_of

# a fresh interpreter that imports torch and the tokenizer only: no compress, no Neural Compressor
RELOAD = """
import hashlib, json, sys
import numpy as np, torch
import torch.ao.quantization.fx._decomposed  # registers the quantized_decomposed ops (part of torch)
from transformers import AutoTokenizer
folder, rows = sys.argv[1], json.loads(sys.argv[2])
names = json.loads(open(folder + "/program.json").read())["inputs"]
program = torch.export.load(folder + "/model.pt2").module()
if sys.argv[4] == "aoti":
    program = torch._inductor.aoti_load_package(folder + "/model.aoti.pt2")
tok = AutoTokenizer.from_pretrained(folder)
labels = []
for i in range(0, len(rows), 32):
    batch = tok(rows[i : i + 32], truncation=True, max_length=int(sys.argv[3]), padding=True,
                return_tensors="pt", return_token_type_ids=True)
    with torch.no_grad():
        labels.append(program(*(batch[n] for n in names)).argmax(-1).numpy())
print(hashlib.sha256(np.concatenate(labels).astype(np.int64).tobytes()).hexdigest())
assert "neural_compressor" not in sys.modules and "compress" not in sys.modules
"""


def test_stage_tunes_saves_and_the_program_reloads_elsewhere(stage_context, tiny_checkpoint, tiny_recipe):
    spec = TorchInt8Spec(calibration_rows=32, act_sym=[False, True], act_algo=["minmax"], max_trials=2)
    ctx = stage_context(spec, {"checkpoint": tiny_checkpoint})
    result = torch_int8.run(ctx)
    assert [(a.kind, a.runtime, a.precision) for a in result.artifacts] == [("torch-int8", "torch", "int8")]
    m = result.metrics
    assert 1 <= len(m["trials"]) <= 2
    first = m["trials"][0]
    assert first["config"] == {
        "mode": "static",
        "act_sym": False,
        "act_algo": "minmax",
        "w_granularity": "per_channel",
    }
    assert set(first) >= {"dev_metric", "drop_points", "passed"}
    assert m["chosen_trial"] in {t["trial"] for t in m["trials"]}
    assert m["reload_label_agreement"] == 1.0 and set(m["seconds"]) >= {"export", "autotune", "save"}
    assert result.failure is None  # a miss on dev is for the budget on the test rows to judge
    assert m["met_on_dev"] == any(t["passed"] for t in m["trials"])
    folder = ctx.out_dir / result.artifacts[0].folder
    files = {p.name for p in folder.iterdir()}
    assert {"model.pt2", "program.json", "config.json", "tokenizer.json"} <= files

    # the runtime the evaluator uses answers any batch x sequence (the axes stayed dynamic)
    predict = RUNTIMES["torch"](folder)
    for batch, seq in ((1, 7), (5, 32)):
        ids = np.random.default_rng(0).integers(5, 1000, (batch, seq))
        logits = predict({"input_ids": ids, "attention_mask": np.ones_like(ids), "token_type_ids": 0 * ids})
        assert logits.shape == (batch, 2)

    # same labels, in a fresh process that never imports compress or Neural Compressor: the portable
    # program, and AOTInductor's package where one was built (it needs a C++ compiler)
    rows = json.dumps(ctx.splits.dev.texts[: m["dev_rows"]])
    expected = {"program": m["dev_labels_sha256"]}
    assert m["aot_inductor"] is not None
    if m["aot_inductor"]["built"]:
        assert m["served"] == "model.aoti.pt2" and "model.aoti.pt2" in files
        # compiled with the Q/DQ pattern lowered to int8 kernels, not simulated in FP32 (a package built
        # with grad on has none)
        assert sum(m["aot_inductor"]["int8_gemm_kernels"].values()) > 0
        expected["aoti"] = m["aot_inductor"]["dev_labels_sha256"]
    else:
        assert m["served"] == "model.pt2" and m["aot_inductor"]["reason"]
    for which, digest in expected.items():
        reloaded = subprocess.run(
            [sys.executable, "-c", RELOAD, str(folder), rows, str(ctx.recipe.data.max_length), which],
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert reloaded.returncode == 0, reloaded.stderr[-2000:]
        assert reloaded.stdout.split()[-1] == digest, which


def test_without_a_compiler_the_portable_program_is_served(stage_context, tiny_checkpoint, monkeypatch):
    import torch

    def no_compiler(*args, **kwargs):
        raise RuntimeError("no C++ compiler")

    monkeypatch.setattr(torch._inductor, "aoti_compile_and_package", no_compiler)
    spec = TorchInt8Spec(calibration_rows=16, eval_rows=32, act_sym=[False], act_algo=["minmax"])
    ctx = stage_context(spec, {"checkpoint": tiny_checkpoint})
    result = torch_int8.run(ctx)
    m = result.metrics
    assert m["aot_inductor"] == {"built": False, "reason": "RuntimeError: no C++ compiler"}
    assert m["served"] == "model.pt2" and len(m["trials"]) == 1
    folder = ctx.out_dir / result.artifacts[0].folder
    assert not (folder / "model.aoti.pt2").exists()
    ids = np.full((2, 9), 7)
    batch = {"input_ids": ids, "attention_mask": 1 + 0 * ids, "token_type_ids": 0 * ids}
    assert RUNTIMES["torch"](folder)(batch).shape == (2, 2)


def test_the_packages_race_and_a_disagreeing_one_is_never_served(stage_context, tiny_checkpoint, monkeypatch):
    """Both packages asked for are compiled and timed; one whose dev labels leave the program's (an
    Inductor miscompile) is dropped, and where every one does, plain lowering and then the program."""
    from compress.quantization import inductor

    real_load = inductor.load_package
    wrong: set[bool] = set()  # the autotune values whose packages answer wrongly

    def load(path):
        package = real_load(path)
        autotune = "candidate0" in path.name  # settings_to_try puts the autotuned package first
        if autotune in wrong or ("candidate" in path.name and len(wrong) == 2):
            return lambda *tensors: -package(*tensors)  # every label flipped (two classes)
        return package

    monkeypatch.setattr(inductor, "load_package", load)
    spec = TorchInt8Spec(calibration_rows=16, eval_rows=32, act_sym=[False], act_algo=["minmax"])
    ctx = stage_context(spec, {"checkpoint": tiny_checkpoint})
    result = torch_int8.run(ctx)
    shapes = {str(shape) for shape in torch_int8.timing_shapes(ctx.recipe)}
    candidates = result.metrics["aot_inductor"]["candidates"]
    assert [(c["autotune"], c["fuse_post_ops"]) for c in candidates] == [(True, False), (False, True)]
    assert all(
        c["label_agreement_with_program"] == 1.0 and set(c["latency_ms"]) == shapes for c in candidates
    )
    assert sum(c["served"] for c in candidates) == 1 and result.metrics["served"] == "model.aoti.pt2"

    wrong.add(True)
    result = torch_int8.run(stage_context(spec, {"checkpoint": tiny_checkpoint}))
    aoti = result.metrics["aot_inductor"]
    assert aoti["built"] and aoti["fuse_post_ops"] and not aoti["autotune"]
    assert (
        aoti["candidates"][0]["label_agreement_with_program"] == 0.0
        and "latency_ms" not in aoti["candidates"][0]
    )

    wrong.add(False)
    ctx = stage_context(spec, {"checkpoint": tiny_checkpoint})
    result = torch_int8.run(ctx)
    aoti = result.metrics["aot_inductor"]
    assert not aoti["built"] and "disagreed" in aoti["reason"]
    assert [(c["autotune"], c["fuse_post_ops"]) for c in aoti["candidates"]] == [
        (True, False),
        (False, True),
        (False, False),
    ]
    assert result.metrics["served"] == "model.pt2"
    assert [p.name for p in (ctx.out_dir / result.artifacts[0].folder).glob("*.pt2")] == ["model.pt2"]


def test_dynamic_configs_follow_the_static_ones_and_run(tiny_checkpoint):
    """modes = static then dynamic: NC tries them in that order (a tolerable loss no trial can meet makes
    it try both), the table names each, and the dynamic program answers any batch x sequence."""
    import torch

    from compress.models.loading import forward_inputs, load_classifier
    from compress.quantization import neural_compressor as nc

    model = load_classifier(tiny_checkpoint.path).float().eval()
    names = nc.input_names(forward_inputs(model))
    rng = np.random.default_rng(0)

    def batch(b: int, s: int) -> tuple:
        ids = torch.from_numpy(rng.integers(5, 1000, (b, s)))
        feeds = {"input_ids": ids, "attention_mask": torch.ones_like(ids), "token_type_ids": 0 * ids}
        return tuple(feeds[n] for n in names)

    rows = [batch(8, 12) for _ in range(2)]
    labels = np.concatenate(
        [model(**dict(zip(names, b, strict=True))).logits.argmax(-1).numpy() for b in rows]
    )

    def evaluate(fn) -> float:
        return float((np.concatenate([fn(*b).argmax(-1).numpy() for b in rows]) == labels).mean())

    def calibrate(fn) -> None:
        for b in rows:
            fn(*b)

    options = {"act_sym": [False], "act_algo": ["minmax"], "w_granularity": ["per_channel"]}
    tuned = nc.tune(
        model,
        names,
        batch(2, 10),
        options=options,
        modes=("static", "dynamic"),
        evaluate=evaluate,
        calibrate=calibrate,
        max_drop=-1.0,  # nothing meets it: autotune tries every config
        max_trials=4,
    )
    assert [t["config"]["mode"] for t in tuned.trials] == ["static", "dynamic"]
    assert tuned.trials[1]["config"] == {"mode": "dynamic", "w_granularity": "per_channel"}
    assert not any(t["passed"] for t in tuned.trials)
    with torch.no_grad():
        assert tuned.program.module()(*batch(3, 17)).shape == (3, 2)


def test_option_lists_must_not_be_empty():
    with pytest.raises(ValueError, match="act_algo needs at least one value"):
        TorchInt8Spec(act_algo=[])
    with pytest.raises(ValueError, match="modes needs at least one value"):
        TorchInt8Spec(modes=[])


TABLE = """
[torch_int8]
aot_inductor = false  # compiling is the stage test's; this one is about the run and its gates
calibration_rows = 64
act_sym = [false, true]
act_algo = ["minmax"]
max_accuracy_drop = 10.0
max_trials = 2

[[targets]]
name = "torch-int8"
runtime = "torch"
precision = "int8"
max_accuracy_drop = 10.0
"""


def test_a_run_with_a_torch_int8_target_gates_it_like_any_target(tmp_path):
    link_data(tmp_path)
    recipe = fast_recipe(tmp_path)
    recipe.write_text(recipe.read_text() + TABLE)
    result = run_cli("run", str(recipe), "--out", str(tmp_path / "out"))
    assert result.returncode in (0, 1), result.stderr[-3000:]
    assert "Traceback" not in result.stderr
    manifest = load_manifest(tmp_path / "out" / "fast" / "latest")
    stage = stage_of(manifest, "torch_int8")
    assert stage["status"] == "ok", stage["reason"]
    assert stage["metrics"]["trials"] and stage["metrics"]["neural_compressor"]
    targets = {t["name"]: t for t in manifest["targets"]}
    int8 = targets["torch-int8"]
    assert int8["stage"] == "torch_int8" and int8["artifact"] == "targets/torch-int8"
    assert int8["accuracy"] is not None and int8["latency"]["median_ms"] > 0
    served = stage["metrics"]["served"]
    assert (tmp_path / "out" / "fast" / "latest" / "targets" / "torch-int8" / served).is_file()
    assert abs(int8["accuracy"] - targets["torch-fp32"]["accuracy"]) <= 0.10
    assert {g["gate"] for g in int8["gates"]} >= {"accuracy"}
