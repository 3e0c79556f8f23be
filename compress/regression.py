"""Compare a run with an earlier one, target by target: what got worse, and what else changed.

Pure functions over manifests (plain dicts), so `compress run` (the [regression] gate) and
`compress compare A B` judge the same way, and the table tests need no model.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from compress.errors import CompressError
from compress.gates import GateResult

_DECIMALS = 9


@dataclass(frozen=True)
class Tolerances:
    max_metric_drop: float = 0.5  # points
    max_latency_increase: float | None = None  # fraction of the old latency; None = not judged
    max_size_increase: float | None = 0.05  # fraction of the old size; None = not judged


def load_manifest(where: Path) -> dict:
    """A bundle folder or its manifest.json, read and checked enough to compare against."""
    path = where / "manifest.json" if where.is_dir() else where
    try:
        manifest = json.loads(path.read_text())
    except FileNotFoundError:
        raise CompressError(f"{path}: no such manifest (give a bundle folder or its manifest.json)") from None
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise CompressError(f"{path}: not a readable manifest: {exc}") from None
    if not isinstance(manifest, dict) or not isinstance(manifest.get("targets"), list):
        raise CompressError(f"{path}: not a compress manifest (no targets list)")
    return manifest


def _latency(target: dict) -> float | None:
    return (target.get("latency") or {}).get("median_ms")


def _gate(figure: str, passed: bool, value, limit, message: str) -> GateResult:
    return GateResult("regression", passed, value, limit, f"{figure}: {message}")


def compare_target(old: dict | None, new: dict | None, tol: Tolerances) -> dict:
    """One row: both sides' figures, the deltas, the regression gates and a status word
    (added, removed, not built, regressed, changed, unchanged)."""
    name = (new or old)["name"]
    row = {"name": name, "old": _figures(old), "new": _figures(new), "gates": [], "status": ""}
    if old is None:
        row["status"] = "added"
        return row
    if new is None:
        row["status"] = "removed"
        return row
    o, n = row["old"], row["new"]
    gates: list[GateResult] = []
    if o["metric"] is not None and n["metric"] is None:
        gates.append(_gate("built", False, None, None, "built in the baseline, not built now"))
    if o["metric"] is not None and n["metric"] is not None:
        drop = round((o["metric"] - n["metric"]) * 100, _DECIMALS)
        row["metric_drop"] = drop
        passed = drop <= round(tol.max_metric_drop, _DECIMALS)
        gates.append(
            _gate(
                n["metric_name"],
                passed,
                drop,
                tol.max_metric_drop,
                f"{o['metric']:.4f} -> {n['metric']:.4f} ({-drop:+.2f} pt) "
                f"{'within' if passed else 'exceeds'} max_metric_drop {tol.max_metric_drop:.2f} pt",
            )
        )
    if o["latency_ms"] and n["latency_ms"] is not None:
        ratio = round(n["latency_ms"] / o["latency_ms"], 6)
        row["latency_ratio"] = ratio
        if tol.max_latency_increase is not None and o["latency_shape"] == n["latency_shape"]:
            limit = 1 + tol.max_latency_increase
            passed = round(ratio, _DECIMALS) <= round(limit, _DECIMALS)
            gates.append(
                _gate(
                    f"latency {n['latency_shape']}",
                    passed,
                    ratio,
                    limit,
                    f"{o['latency_ms']:.2f} -> {n['latency_ms']:.2f} ms ({ratio:.2f}x) "
                    f"{'within' if passed else 'exceeds'} max_latency_increase "
                    f"{tol.max_latency_increase:.0%}",
                )
            )
    if o["size_mb"] and n["size_mb"] is not None:
        ratio = round(n["size_mb"] / o["size_mb"], 6)
        row["size_ratio"] = ratio
        if tol.max_size_increase is not None:
            limit = 1 + tol.max_size_increase
            passed = round(ratio, _DECIMALS) <= round(limit, _DECIMALS)
            gates.append(
                _gate(
                    "size",
                    passed,
                    ratio,
                    limit,
                    f"{o['size_mb']:.2f} -> {n['size_mb']:.2f} MB ({ratio:.2f}x) "
                    f"{'within' if passed else 'exceeds'} max_size_increase {tol.max_size_increase:.0%}",
                )
            )
    row["gates"] = [g.to_dict() for g in gates]
    known = o["artifact_sha256"] is not None and n["artifact_sha256"] is not None
    same_artifact = o["artifact_sha256"] == n["artifact_sha256"] if known else None
    row["same_artifact"] = same_artifact
    if not all(g.passed for g in gates):
        row["status"] = "regressed"
    elif same_artifact and o["metric"] == n["metric"]:
        row["status"] = "unchanged"
    else:
        row["status"] = "changed"
    return row


def _figures(target: dict | None) -> dict:
    if target is None:
        return {}
    latency = target.get("latency") or {}
    return {
        "metric_name": target.get("metric_name", "metric"),
        "metric": target.get("metric"),
        "latency_ms": _latency(target),
        "latency_shape": f"{latency['batch']}x{latency['sequence']}" if latency else None,
        "size_mb": target.get("size_mb"),
        "verdict": target.get("verdict"),
        "artifact_sha256": target.get("artifact_sha256"),
    }


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


def what_changed(old: dict, new: dict) -> list[str]:
    """Inputs that differ between the runs: the recipe, the data files, the toolchain, the CPU."""
    changes = []
    if (old.get("recipe") or {}).get("sha256") != (new.get("recipe") or {}).get("sha256"):
        keys = recipe_diff(
            (old.get("recipe") or {}).get("resolved"), (new.get("recipe") or {}).get("resolved")
        )
        shown = ", ".join(keys[:6]) + (f" and {len(keys) - 6} more" if len(keys) > 6 else "")
        changes.append(f"recipe changed: {shown or 'its hash differs'}")
    old_files = (old.get("data") or {}).get("files", {})
    new_files = (new.get("data") or {}).get("files", {})
    for key in sorted(set(old_files) | set(new_files)):
        if old_files.get(key) != new_files.get(key):
            changes.append(f"data file '{key}' changed")
    old_env, new_env = old.get("environment") or {}, new.get("environment") or {}
    for key in sorted((set(old_env) | set(new_env)) - {"cpu"}):
        if old_env.get(key) != new_env.get(key):
            changes.append(f"{key} {old_env.get(key, '—')} -> {new_env.get(key, '—')}")
    old_cpu = (old_env.get("cpu") or {}).get("model")
    new_cpu = (new_env.get("cpu") or {}).get("model")
    if old_cpu != new_cpu:
        changes.append(f"CPU {old_cpu or '—'} -> {new_cpu or '—'} (latency not comparable)")
    return changes


def compare(old: dict, new: dict, tol: Tolerances) -> dict:
    """Every target of either manifest, matched by name; `breached` when any regression gate failed."""
    old_targets = {t["name"]: t for t in old["targets"]}
    new_targets = {t["name"]: t for t in new["targets"]}
    names = [t["name"] for t in new["targets"]] + [n for n in old_targets if n not in new_targets]
    rows = [compare_target(old_targets.get(n), new_targets.get(n), tol) for n in names]
    return {
        "baseline": {"recipe_name": old.get("recipe_name"), "run_id": old.get("run_id")},
        "candidate": {"recipe_name": new.get("recipe_name"), "run_id": new.get("run_id")},
        "tolerances": tol.__dict__,
        "changed": what_changed(old, new),
        "targets": rows,
        "breached": any(r["status"] == "regressed" for r in rows),
    }
