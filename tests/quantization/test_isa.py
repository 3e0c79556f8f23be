import pytest

from compress.quantization import isa as isa_module
from compress.quantization.isa import resolve_isa


@pytest.mark.parametrize(
    "machine,isa,expected",
    [
        ("x86_64", ["avx2", "avx512f", "avx512_vnni"], "avx512_vnni"),
        ("x86_64", ["avx2", "avx_vnni"], "avx512_vnni"),
        ("x86_64", ["avx2", "fma"], "avx2"),
        ("aarch64", ["asimd"], "arm64"),
    ],
)
def test_auto_isa(monkeypatch, machine, isa, expected):
    monkeypatch.setattr(isa_module, "cpu_info", lambda: {"machine": machine, "isa": isa, "model": "x"})
    assert resolve_isa("auto") == expected
    assert resolve_isa("avx2") == "avx2"
