"""Which CPU family's INT8 kernels a build is for."""

from __future__ import annotations

from compress.core.environment import cpu_info


def resolve_isa(isa: str) -> str:
    """The ISA family whose INT8 kernels ONNX Runtime will use on this (or the named) CPU."""
    if isa != "auto":
        return isa
    info = cpu_info()
    if info["machine"] in ("aarch64", "arm64"):
        return "arm64"
    flags = set(info["isa"])
    return "avx512_vnni" if flags & {"avx512_vnni", "avx_vnni"} else "avx2"
