"""TensorRT: the only module that imports `tensorrt` (an optional extra, imported lazily).

TensorRT 11 builds strongly typed networks only: precision lives in the ONNX graph (FP16 tensors,
explicit Q/DQ nodes), not in builder flags, so this module has no FP16/INT8 switches. The code
follows the TensorRT Python API (Builder, OnnxParser, optimization profiles, execute_async_v3)
and runs wherever a CUDA device and the package exist; elsewhere `unavailable()` says why.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from compress.recipe.schema import Shape


def unavailable() -> str | None:
    """Why an engine cannot be built on this machine, or None when it can."""
    import torch

    reasons = []
    if not torch.cuda.is_available():
        reasons.append("no CUDA device")
    try:
        import tensorrt  # noqa: F401
    except ImportError:
        reasons.append(
            "the tensorrt package is not installed (pip install 'compress[tensorrt]' where NVIDIA's "
            "package index is reachable)"
        )
    return "; ".join(reasons) or None


def device() -> dict:
    """What an engine is tied to: TensorRT version, GPU name, compute capability."""
    import tensorrt as trt
    import torch

    major, minor = torch.cuda.get_device_capability()
    return {
        "tensorrt": trt.__version__,
        "gpu": torch.cuda.get_device_name(),
        "compute_capability": f"{major}.{minor}",
    }


def build_target() -> dict:
    """What decides what the engine stage makes on this machine, for its cache key: the TensorRT
    version, GPU and compute capability an engine is built for, or why none can be (then the stage
    makes the CPU proxy). A proxy cached here is never reused where an engine can be built, nor an
    engine built for one GPU on another."""
    reason = unavailable()
    if reason is not None:
        return {"engine": False, "reason": reason}
    return {"engine": True, **device()}


def trtexec_command(onnx_name: str, engine_name: str, profile: dict, inputs: list[str]) -> str:
    """The equivalent trtexec line, for building the engine by hand on the device."""

    def shapes(key: str) -> str:
        return ",".join(f"{name}:{profile[key]}" for name in inputs)

    return (
        f"trtexec --onnx={onnx_name} --saveEngine={engine_name} --stronglyTyped "
        f"--minShapes={shapes('min')} --optShapes={shapes('opt')} --maxShapes={shapes('max')}"
    )


def build_engine(onnx_path: Path, engine_path: Path, profile: dict, workspace_mb: int) -> dict:
    """Parse the precision-carrying ONNX, build a serialized engine for `profile` (min/opt/max
    "BxS"), write it to `engine_path`. Raises RuntimeError with the parser's or builder's errors."""
    import tensorrt as trt

    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    # TensorRT 10 needs the flag; TensorRT 11 is always strongly typed and ignores it
    network = builder.create_network(1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED))
    parser = trt.OnnxParser(network, logger)
    if not parser.parse_from_file(str(onnx_path)):
        errors = [str(parser.get_error(i)) for i in range(parser.num_errors)]
        raise RuntimeError("TensorRT could not parse the ONNX graph: " + "; ".join(errors))
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, workspace_mb << 20)
    optimization = builder.create_optimization_profile()
    names = [network.get_input(i).name for i in range(network.num_inputs)]
    for name in names:
        optimization.set_shape(
            name, Shape.parse(profile["min"]), Shape.parse(profile["opt"]), Shape.parse(profile["max"])
        )
    config.add_optimization_profile(optimization)
    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        raise RuntimeError("TensorRT failed to build the engine (see the log above)")
    engine_path.write_bytes(bytes(serialized))
    return {"inputs": names, "bytes": engine_path.stat().st_size, **device()}


def engine_predictor(folder: Path):
    """`predict(batch) -> logits` through the serialized engine in `folder`, on the GPU."""
    import tensorrt as trt
    import torch

    logger = trt.Logger(trt.Logger.WARNING)
    engine = trt.Runtime(logger).deserialize_cuda_engine((folder / "model.engine").read_bytes())
    context = engine.create_execution_context()
    stream = torch.cuda.Stream()
    names = [engine.get_tensor_name(i) for i in range(engine.num_io_tensors)]
    inputs = [n for n in names if engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT]
    (output,) = [n for n in names if engine.get_tensor_mode(n) == trt.TensorIOMode.OUTPUT]

    def predict(batch: dict) -> np.ndarray:
        keep = []
        for name in inputs:
            tensor = torch.from_numpy(np.ascontiguousarray(batch[name])).cuda()
            keep.append(tensor)
            context.set_input_shape(name, tuple(tensor.shape))
            context.set_tensor_address(name, tensor.data_ptr())
        shape = tuple(context.get_tensor_shape(output))
        logits = torch.empty(shape, dtype=torch.float32, device="cuda")
        context.set_tensor_address(output, logits.data_ptr())
        if not context.execute_async_v3(stream.cuda_stream):
            raise RuntimeError("TensorRT execution failed")
        stream.synchronize()
        return logits.cpu().numpy()

    return predict


def build_and_check(folder: Path, engine_path: Path, profile: dict, workspace_mb: int = 2048) -> dict:
    """`compress engine`: build from the bundled graph, then run the engine and the same graph in
    ONNX Runtime on random token batches at the profile's min, opt and max shapes."""
    import shutil
    import tempfile

    from compress.runtimes.onnx_session import predictor as onnxruntime_predictor

    built = build_engine(folder / "model.onnx", engine_path, profile, workspace_mb)
    with tempfile.TemporaryDirectory() as tmp:
        shutil.copy2(engine_path, Path(tmp) / "model.engine")
        on_gpu = engine_predictor(Path(tmp))
    on_cpu = onnxruntime_predictor(folder)
    rng = np.random.default_rng(0)
    checks = {}
    for key in ("min", "opt", "max"):
        batch, seq = Shape.parse(profile[key])
        ids = rng.integers(1000, 20000, size=(batch, seq), dtype=np.int64)
        inputs = {"input_ids": ids, "attention_mask": np.ones_like(ids), "token_type_ids": np.zeros_like(ids)}
        gpu, cpu = on_gpu(inputs), on_cpu(inputs)
        checks[profile[key]] = {
            "label_agreement": float(np.mean(gpu.argmax(-1) == cpu.argmax(-1))),
            "max_abs_logit_diff": float(np.abs(gpu - cpu).max()),
        }
    passed = all(c["label_agreement"] >= 0.9 for c in checks.values())
    return {"engine": str(engine_path), **built, "checks": checks, "passed": passed}
