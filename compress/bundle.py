"""The run's output: `<out>/<recipe>/<run id>/` with models per target, manifest, report, junit.

Written into a hidden temporary folder and renamed into place only when complete, then `latest`
is re-pointed atomically: a reader never sees a half-written bundle, and a failure while writing
leaves the previous bundles untouched.
"""

from __future__ import annotations

import json
import os
import shutil
from datetime import UTC, datetime
from pathlib import Path
from xml.sax.saxutils import escape, quoteattr

from compress.environment import python_version
from compress.hashing import file_sha256
from compress.recipe import LoadedRecipe

MANIFEST_SCHEMA = 1


def _link_or_copy_tree(src: Path, dst: Path) -> None:
    """Hard links where the filesystem allows (cache files are never modified in place)."""

    def link(s: str, d: str) -> None:
        try:
            os.link(s, d)
        except OSError:
            shutil.copy2(s, d)

    shutil.copytree(src, dst, copy_function=link)


def _run_id(parent: Path) -> str:
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    run_id, n = stamp, 1
    while (parent / run_id).exists():
        n += 1
        run_id = f"{stamp}-{n}"
    return run_id


def write(*, loaded: LoadedRecipe, out_root: Path, targets, stages, env, data_id, verdict, seconds) -> Path:
    parent = out_root / loaded.name
    parent.mkdir(parents=True, exist_ok=True)
    run_id = _run_id(parent)
    tmp = parent / f".tmp-{run_id}-{os.getpid()}"
    try:
        tmp.mkdir()
        for target in targets:
            artifact = target.pop("source_artifact", None)
            if artifact is not None:
                rel = f"targets/{target['name']}"
                _link_or_copy_tree(artifact.path, tmp / rel)
                target["artifact"] = rel
        manifest = {
            "schema": MANIFEST_SCHEMA,
            "recipe_name": loaded.name,
            "run_id": run_id,
            "created": datetime.now(UTC).isoformat(timespec="seconds"),
            "verdict": verdict,
            "seconds": seconds,
            "recipe": {"path": str(loaded.path), "sha256": loaded.sha256(), "resolved": loaded.resolved()},
            "data": data_id,
            "environment": {"python": python_version(), **env["versions"], "cpu": env["cpu"]},
            "stages": stages,
            "targets": targets,
        }
        (tmp / "report.md").write_text(render_report(manifest))
        (tmp / "junit.xml").write_text(render_junit(manifest))
        manifest["files"] = [
            {"path": p.relative_to(tmp).as_posix(), "sha256": file_sha256(p), "bytes": p.stat().st_size}
            for p in sorted(tmp.rglob("*"))
            if p.is_file()
        ]
        (tmp / "manifest.json").write_text(json.dumps(manifest, indent=2, default=str) + "\n")
        final = parent / run_id
        os.rename(tmp, final)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    link = parent / "latest"
    staging = parent / f".latest-{os.getpid()}"
    if staging.is_symlink() or staging.exists():
        staging.unlink()
    staging.symlink_to(run_id)
    os.replace(staging, link)
    return final


def _fmt(value, spec: str = ".4f", none: str = "—") -> str:
    return none if value is None else format(value, spec)


def render_report(m: dict) -> str:
    """The markdown a reviewer reads in a PR: verdict first, one table, then the why."""
    failed = [t for t in m["targets"] if t["verdict"] != "pass"]
    icon = "✅ PASS" if m["verdict"] == "pass" else "❌ FAIL"
    lines = [
        f"# {icon} — `{m['recipe_name']}` run {m['run_id']}",
        "",
        f"{len(m['targets']) - len(failed)}/{len(m['targets'])} targets pass"
        + (
            f"; failing: {', '.join(t['name'] + ('' if t['required'] else ' (optional)') for t in failed)}"
            if failed
            else ""
        )
        + "".join(f"; stage {s['name']} failed" for s in m["stages"] if s["status"] == "failed")
        + f". Baseline: {_fmt(m['targets'][0]['baseline'])} {m['targets'][0]['metric_name']}"
        + f" from {m['targets'][0]['baseline_from']}.",
        "",
        "| target | runtime | precision | metric | drop (pt) ± CI / budget | changed labels "
        "| latency ms (shape) / budget | size MB / budget | verdict |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for t in m["targets"]:
        b = t["budgets"]
        lat = t["latency"]["median_ms"] if t["latency"] else None
        st = t.get("statistics")
        drop = _fmt(t["drop"], "+.2f")
        changed = "—"
        if st:
            half = (st["high"] - st["low"]) / 2
            drop += f" ± {half:.2f}" + ("" if b.get("decision", "point") == "point" else " (upper)")
            if st["paired"]:
                changed = f"{st['disagreements']}/{st['rows']}"
                if b.get("max_disagreement") is not None:
                    changed += f" / {b['max_disagreement']:.1%}"
        lines.append(
            f"| {t['name']}{'' if t['required'] else ' (optional)'} | {t['runtime']} | {t['precision']} "
            f"| {_fmt(t['metric'])} | {drop} / {b['max_accuracy_drop']:.2f} | {changed} "
            f"| {_fmt(lat, '.1f')} ({b['latency_shape']}) / {_fmt(b['max_latency_ms'], '.1f')} "
            f"| {_fmt(t['size_mb'], '.1f')} / {_fmt(b['max_size_mb'], '.1f')} "
            f"| {'pass' if t['verdict'] == 'pass' else '**FAIL**'} |"
        )
    notes = _how_sure(m["targets"])
    if notes:
        lines += ["", "## How sure", ""] + notes
    breaches = [(t["name"], g) for t in m["targets"] for g in t["gates"] if not g["passed"]]
    if breaches:
        lines += ["", "## Gate failures", ""]
        lines += [f"- **{name}** · {g['gate']}: {g['message']}" for name, g in breaches]
    lines += ["", "## Stages", "", "| stage | status | seconds | cache |", "|---|---|---|---|"]
    for s in m["stages"]:
        cached = "hit" if s.get("cached") else ("—" if s["status"] == "not run" else "miss")
        lines.append(f"| {s['name']} | {s['status']} | {_fmt(s.get('seconds'), '.1f')} | {cached} |")
        if s.get("reason"):
            lines.append(f"| | ↳ {s['reason']} | | |")
        lines += [f"| | ↳ {note} | | |" for note in (s.get("metrics") or {}).get("notes", [])]
    env = m["environment"]
    lines += [
        "",
        f"Environment: Python {env['python']}, torch {env['torch']}, transformers {env['transformers']}, "
        f"onnx {env['onnx']}, onnxruntime {env['onnxruntime']}; CPU {env['cpu']['model']} "
        f"({', '.join(env['cpu']['isa'])}).",
        "",
    ]
    return "\n".join(lines)


def _how_sure(targets: list[dict]) -> list[str]:
    """Per target: the interval, the discordant rows, and any verdict that is within the noise."""
    notes = []
    for t in targets:
        st = t.get("statistics")
        if not st:
            continue
        if st["paired"]:
            how = (
                f"paired over {st['rows']} rows: only the FP32 reference was right on "
                f"{st['reference_right_candidate_wrong']}, only the candidate on "
                f"{st['reference_wrong_candidate_right']}"
            )
            if st["mcnemar_p"] is not None:
                how += f" (McNemar exact p = {st['mcnemar_p']:.3g})"
        else:
            how = f"baseline pinned in the recipe; interval from the candidate's own {st['rows']} rows"
        notes.append(
            f"- **{t['name']}**: drop {st['drop']:+.2f} pt, {st['confidence']:.0%} CI "
            f"[{st['low']:+.2f}, {st['high']:+.2f}]; {how}."
        )
        notes += [f"  - ⚠ {g['message']}" for g in t["gates"] if g.get("within_noise")]
    return notes


def render_junit(m: dict) -> str:
    """One testcase per target x gate (and per failed stage); a breach is a <failure>."""
    cases = []
    for s in m["stages"]:
        if s["status"] == "failed":
            cases.append((f"stage.{s['name']}", "ran", s.get("reason", "failed")))
    for t in m["targets"]:
        for g in t["gates"]:
            cases.append((f"target.{t['name']}", g["gate"], None if g["passed"] else g["message"]))
    failures = sum(1 for *_, msg in cases if msg is not None)
    out = [
        '<?xml version="1.0" encoding="UTF-8"?>',
        f'<testsuites name="compress" tests="{len(cases)}" failures="{failures}">',
        f'  <testsuite name={quoteattr("compress." + m["recipe_name"])} tests="{len(cases)}" '
        f'failures="{failures}" time="{m["seconds"]}">',
    ]
    for classname, name, message in cases:
        head = f"    <testcase classname={quoteattr(classname)} name={quoteattr(name)}"
        if message is None:
            out.append(head + "/>")
        else:
            out += [
                head + ">",
                f"      <failure message={quoteattr(message)}>{escape(message)}</failure>",
                "    </testcase>",
            ]
    out += ["  </testsuite>", "</testsuites>", ""]
    return "\n".join(out)
