"""compress.quantization.inductor: which packages are raced, the race itself (with compiling stubbed), and
the graph pass that lets Inductor fuse an INT8 linear's post-ops."""

import pytest
import torch

from compress.quantization import inductor


@pytest.mark.parametrize(
    "autotune,fuse,expected",
    [
        (
            True,
            True,
            [{"autotune": True, "fuse_post_ops": False}, {"autotune": False, "fuse_post_ops": True}],
        ),
        (True, False, [{"autotune": True, "fuse_post_ops": False}]),
        (False, True, [{"autotune": False, "fuse_post_ops": True}]),
        (False, False, [{"autotune": False, "fuse_post_ops": False}]),
    ],
)
def test_a_package_is_autotuned_or_fused_never_both(autotune, fuse, expected):
    assert inductor.settings_to_try(autotune=autotune, fuse_post_ops=fuse) == expected


def test_configs_carry_the_pass_only_where_fusing():
    assert "joint_custom_pre_pass" not in inductor.configs(autotune=True, fuse_post_ops=False)
    fused = inductor.configs(autotune=False, fuse_post_ops=True)
    assert (
        isinstance(fused["joint_custom_pre_pass"], inductor.SizesFromInputs) and "max_autotune" not in fused
    )


@pytest.fixture
def stub_compiler(monkeypatch):
    """compile_package writes a file named after the setting; load_package returns that name."""
    built: list[str] = []

    def compile_package(program, path, configs):
        name = f"autotune={configs.get('max_autotune', False)} fuse={'joint_custom_pre_pass' in configs}"
        path.write_text(name)
        built.append(name)

    monkeypatch.setattr(inductor, "compile_package", compile_package)
    monkeypatch.setattr(inductor, "load_package", lambda path: path.read_text())
    return built


def test_the_fastest_agreeing_package_is_served_and_the_rest_removed(tmp_path, stub_compiler):
    speed = {
        "autotune=True fuse=False": {"1x128": 4.0, "32x64": 42.0},
        "autotune=False fuse=True": {"1x128": 5.0, "32x64": 30.0},
    }
    timed: list[list[str]] = []

    def latencies(packages):
        timed.append(packages)
        return [speed[p] for p in packages]

    rows, chosen = inductor.build_fastest(
        None,
        tmp_path / "model.aoti.pt2",
        inductor.settings_to_try(autotune=True, fuse_post_ops=True),
        agreement=lambda package: 1.0,
        latencies=latencies,
        min_agreement=0.99,
    )
    # geometric mean over the shapes: sqrt(5 * 30) < sqrt(4 * 42)
    assert chosen is not None and chosen["fuse_post_ops"] and not chosen["autotune"]
    assert (tmp_path / "model.aoti.pt2").read_text() == "autotune=False fuse=True"
    assert [p.name for p in tmp_path.iterdir()] == ["model.aoti.pt2"]
    assert timed == [["autotune=True fuse=False", "autotune=False fuse=True"]]  # timed together, once
    assert [r["served"] for r in rows] == [False, True] and all("compile_s" in r for r in rows)


def test_a_disagreeing_package_is_not_timed_and_plain_lowering_is_the_last_resort(tmp_path, stub_compiler):
    agree = {"autotune=True fuse=False": 0.5, "autotune=False fuse=False": 1.0}
    rows, chosen = inductor.build_fastest(
        None,
        tmp_path / "model.aoti.pt2",
        inductor.settings_to_try(autotune=True, fuse_post_ops=False),
        agreement=lambda package: agree[package],
        latencies=lambda packages: [{"1x128": 1.0} for _ in packages],
        min_agreement=0.99,
    )
    assert stub_compiler == ["autotune=True fuse=False", "autotune=False fuse=False"]
    assert chosen == {
        **inductor.PLAIN,
        "compile_s": rows[1]["compile_s"],
        "label_agreement_with_program": 1.0,
        "latency_ms": {"1x128": 1.0},
        "served": True,
    }
    assert "latency_ms" not in rows[0] and rows[0]["label_agreement_with_program"] == 0.5
    assert [p.name for p in tmp_path.iterdir()] == ["model.aoti.pt2"]


def test_when_nothing_agrees_nothing_is_left(tmp_path, stub_compiler):
    rows, chosen = inductor.build_fastest(
        None,
        tmp_path / "model.aoti.pt2",
        inductor.settings_to_try(autotune=False, fuse_post_ops=False),
        agreement=lambda package: 0.0,
        latencies=lambda packages: pytest.fail("nothing agreed, nothing to time"),
        min_agreement=0.99,
    )
    assert chosen is None and len(rows) == 1 and list(tmp_path.iterdir()) == []


def test_sizes_are_read_from_the_inputs_not_from_intermediates():
    """A program from torch.export reads the sequence length off an intermediate tensor (an extra user
    that blocks Inductor's post-op fusion); after the pass it reads it off the input with that size."""

    class Reshaping(torch.nn.Module):
        def forward(self, x):
            y = torch.nn.functional.gelu(x * 2)
            return y.reshape(y.shape[0] * y.shape[1], -1)

    batch = torch.export.Dim("batch", min=1, max=64)
    program = torch.export.export(
        Reshaping(),
        (torch.ones(2, 3, 4),),
        dynamic_shapes=({0: batch, 1: torch.export.Dim("seq", min=1, max=64)},),
    )
    graph = program.graph_module.graph
    sizes = graph.find_nodes(op="call_function", target=torch.ops.aten.sym_size.int)
    assert sizes  # the reshape reads the batch and sequence sizes
    intermediate = next(
        n for n in graph.nodes if n.op == "call_function" and n.target is torch.ops.aten.mul.Tensor
    )
    for node in sizes:  # point them at an intermediate, as a traced model does
        node.args = (intermediate, node.args[1])
    inductor.SizesFromInputs()(graph)
    x = next(n for n in graph.nodes if n.op == "placeholder")
    assert all(node.args[0] is x for node in sizes)
    assert len(intermediate.users) == 1  # only the GELU reads the product now
