"""Compare a run with an earlier one, target by target: what got worse, and what else changed.

Pure functions over manifest records, so `compress run` (the [regression] gate, through the judge)
and `compress compare A B` judge the same way, and the table tests need no model.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

from compress.core.records import (
    Comparison,
    ComparisonRow,
    DataRecord,
    Environment,
    Figures,
    Gate,
    Manifest,
    ModelRecord,
    RecipeRecord,
    RunRef,
    TargetRecord,
    Tolerances,
)
from compress.verdict.gates import DECIMALS, gate


def _regression_gate(
    figure: str, passed: bool, value: float | None, limit: float | None, message: str
) -> Gate:
    return gate("regression", passed, value, limit, f"{figure}: {message}")


def figures(target: TargetRecord) -> Figures:
    """What a regression row shows of one side."""
    latency = target.latency
    return Figures(
        metric_name=target.metric_name,
        metric=target.metric,
        latency_ms=latency.median_ms if latency else None,
        latency_shape=latency.shape if latency else None,
        size_mb=target.size_mb,
        verdict=target.verdict,
        artifact_sha256=target.artifact_sha256,
    )


def compare_target(old: TargetRecord | None, new: TargetRecord | None, tol: Tolerances) -> ComparisonRow:
    """One row: both sides' figures, the deltas, the regression gates and a status word
    (added, removed, regressed, changed, unchanged)."""
    known = new or old
    if known is None:
        raise ValueError("compare_target needs at least one side")
    if old is None or new is None:
        return ComparisonRow(
            name=known.name,
            old=figures(old) if old else None,
            new=figures(new) if new else None,
            status="added" if old is None else "removed",
        )
    o, n = figures(old), figures(new)
    gates, deltas = _gates(o, n, tol)
    known_sha = o.artifact_sha256 is not None and n.artifact_sha256 is not None
    same_artifact = o.artifact_sha256 == n.artifact_sha256 if known_sha else None
    status: Literal["regressed", "changed", "unchanged"]
    if not all(g.passed for g in gates):
        status = "regressed"
    elif same_artifact and o.metric == n.metric:
        status = "unchanged"
    else:
        status = "changed"
    return ComparisonRow(
        name=known.name,
        old=o,
        new=n,
        gates=tuple(gates),
        status=status,
        same_artifact=same_artifact,
        **deltas,
    )


def _gates(o: Figures, n: Figures, tol: Tolerances) -> tuple[list[Gate], dict[str, float]]:
    """The regression gates between two sides' figures, and the deltas the row shows."""
    gates: list[Gate] = []
    deltas: dict[str, float] = {}
    if o.metric is not None and n.metric is None:
        gates.append(_regression_gate("built", False, None, None, "built in the baseline, not built now"))
    if o.metric is not None and n.metric is not None:
        drop = round((o.metric - n.metric) * 100, DECIMALS)
        deltas["metric_drop"] = drop
        passed = drop <= round(tol.max_metric_drop, DECIMALS)
        gates.append(
            _regression_gate(
                n.metric_name,
                passed,
                drop,
                tol.max_metric_drop,
                f"{o.metric:.4f} -> {n.metric:.4f} ({-drop:+.2f} pt) "
                f"{'within' if passed else 'exceeds'} max_metric_drop {tol.max_metric_drop:.2f} pt",
            )
        )
    if o.latency_ms and n.latency_ms is not None:
        ratio = round(n.latency_ms / o.latency_ms, 6)
        deltas["latency_ratio"] = ratio
        if tol.max_latency_increase is not None and o.latency_shape == n.latency_shape:
            gates.append(
                _ratio_gate(
                    f"latency {n.latency_shape}",
                    ratio,
                    tol.max_latency_increase,
                    f"{o.latency_ms:.2f} -> {n.latency_ms:.2f} ms",
                    "max_latency_increase",
                )
            )
    if o.size_mb and n.size_mb is not None:
        ratio = round(n.size_mb / o.size_mb, 6)
        deltas["size_ratio"] = ratio
        if tol.max_size_increase is not None:
            gates.append(
                _ratio_gate(
                    "size",
                    ratio,
                    tol.max_size_increase,
                    f"{o.size_mb:.2f} -> {n.size_mb:.2f} MB",
                    "max_size_increase",
                )
            )
    return gates, deltas


def _ratio_gate(figure: str, ratio: float, increase: float, change: str, key: str) -> Gate:
    limit = 1 + increase
    passed = round(ratio, DECIMALS) <= round(limit, DECIMALS)
    how = "within" if passed else "exceeds"
    return _regression_gate(
        figure, passed, ratio, limit, f"{change} ({ratio:.2f}x) {how} {key} {increase:.0%}"
    )


_WHERE_KEYS = {"data.train", "data.dev", "data.test", "model.path"}  # locations; content compared apart


def recipe_diff(old: object, new: object, prefix: str = "") -> list[str]:
    """Dotted keys whose values differ between two resolved recipes (file locations left out)."""
    if isinstance(old, dict) and isinstance(new, dict):
        keys = sorted(set(old) | set(new))
        return [d for k in keys for d in recipe_diff(old.get(k), new.get(k), f"{prefix}{k}.")]
    if isinstance(old, list) and isinstance(new, list) and len(old) == len(new):
        return [
            d
            for i, (a, b) in enumerate(zip(old, new, strict=True))
            for d in recipe_diff(a, b, f"{prefix}{i}.")
        ]
    key = prefix.rstrip(".")
    return [] if old == new or key in _WHERE_KEYS else [key]


def what_changed(
    old: Manifest,
    recipe: RecipeRecord,
    data: DataRecord,
    environment: Environment,
    model: ModelRecord | None = None,
) -> list[str]:
    """Inputs that differ between the runs: the recipe, the hub commit the model came from (a tag
    that moved leaves the recipe unchanged), the data files, the toolchain, the CPU."""
    changes = []
    if old.recipe.sha256 != recipe.sha256:
        keys = recipe_diff(old.recipe.resolved, recipe.resolved)
        shown = ", ".join(keys[:6]) + (f" and {len(keys) - 6} more" if len(keys) > 6 else "")
        changes.append(f"recipe changed: {shown or 'its hash differs'}")
    was, now = (m.hub_commit if m else None for m in (old.model, model))
    if was and now and was != now:
        changes.append(f"model.hub_commit {was[:12]} -> {now[:12]}")
    for key in sorted(set(old.data.files) | set(data.files)):
        if old.data.files.get(key) != data.files.get(key):
            changes.append(f"data file '{key}' changed")
    old_env = {"python": old.environment.python, **old.environment.versions}
    new_env = {"python": environment.python, **environment.versions}
    for key in sorted(set(old_env) | set(new_env)):
        if old_env.get(key) != new_env.get(key):
            changes.append(f"{key} {old_env.get(key, '—')} -> {new_env.get(key, '—')}")
    old_cpu, new_cpu = old.environment.cpu.model, environment.cpu.model
    if old_cpu != new_cpu:
        changes.append(f"CPU {old_cpu or '—'} -> {new_cpu or '—'} (latency not comparable)")
    return changes


def compare_targets(
    old: Sequence[TargetRecord], new: Sequence[TargetRecord], tol: Tolerances
) -> list[ComparisonRow]:
    """Every target of either run, matched by name: the new run's order, then those it dropped."""
    old_by_name = {t.name: t for t in old}
    new_by_name = {t.name: t for t in new}
    names = [t.name for t in new] + [n for n in old_by_name if n not in new_by_name]
    return [compare_target(old_by_name.get(n), new_by_name.get(n), tol) for n in names]


def comparison(
    old: Manifest,
    candidate: RunRef,
    rows: Sequence[ComparisonRow],
    changed: Sequence[str],
    tol: Tolerances,
    source: str | None = None,
) -> Comparison:
    """The comparison record; `breached` when any row regressed. `source` says how the baseline
    run was found ("latest", a path)."""
    return Comparison(
        baseline=RunRef(recipe_name=old.recipe_name, run_id=old.run_id, source=source),
        candidate=candidate,
        tolerances=tol,
        changed=tuple(changed),
        targets=tuple(rows),
        breached=any(r.status == "regressed" for r in rows),
    )


def compare(old: Manifest, new: Manifest, tol: Tolerances) -> Comparison:
    """Two finished runs (`compress compare`)."""
    rows = compare_targets(old.targets, new.targets, tol)
    changed = what_changed(old, new.recipe, new.data, new.environment, new.model)
    return comparison(old, RunRef(recipe_name=new.recipe_name, run_id=new.run_id), rows, changed, tol)
