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
from compress.errors import CompressError
from compress.hashing import file_sha256, json_sha256
from compress.plots import write_pareto
from compress.recipe import LoadedRecipe
from compress.report import to_markdown

MANIFEST_SCHEMA = 2
RECIPE_COPY = "recipe.toml"
PARETO = "pareto.png"


def manifest_text(manifest: dict) -> str:
    """The manifest as written: its own content hash inside, in one canonical layout, so that
    `compress verify` can tell any changed byte (a value, or even whitespace) from the original."""
    body = {k: v for k, v in manifest.items() if k != "integrity"}
    sealed = {**body, "integrity": {"sha256": json_sha256(body)}}
    return json.dumps(sealed, indent=2, default=str) + "\n"


def render_report(m: dict) -> str:
    return to_markdown(m)


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


def write(
    *,
    loaded: LoadedRecipe,
    out_root: Path,
    targets,
    stages,
    env,
    data_id,
    verdict,
    seconds,
    regression: dict | None = None,
    artifacts: list[dict] | None = None,
) -> Path:
    """Write the bundle; `artifacts` (every evaluated model, for pareto.png) and `regression` (the
    comparison with a baseline run) are optional."""
    parent = out_root / loaded.name
    parent.mkdir(parents=True, exist_ok=True)
    run_id = _run_id(parent)
    tmp = parent / f".tmp-{run_id}-{os.getpid()}"
    try:
        fields = dict(
            targets=targets, stages=stages, env=env, data_id=data_id, verdict=verdict, seconds=seconds
        )
        _write_into(tmp, run_id, loaded, {**fields, "regression": regression, "artifacts": artifacts})
        final = parent / run_id
        os.rename(tmp, final)
    except OSError as exc:  # disk full, permissions, a cache file gone: nothing is replaced
        previous = (parent / "latest").resolve() if (parent / "latest").exists() else None
        kept = f"the previous bundle {previous} is intact" if previous else "no earlier bundle existed"
        raise CompressError(
            f"could not write the bundle in {parent}: {exc.strerror or exc}"
            + (f" ({exc.filename})" if exc.filename else "")
            + f"; nothing was replaced, {kept}"
        ) from None
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


def _write_into(tmp: Path, run_id: str, loaded: LoadedRecipe, f: dict) -> None:
    """Every file of the bundle into the temporary folder `tmp`; `f` holds write()'s arguments."""
    targets, artifacts = f["targets"], f["artifacts"]
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
        "verdict": f["verdict"],
        "seconds": f["seconds"],
        "recipe": {
            "path": str(loaded.path),
            "copy": RECIPE_COPY,
            "sha256": loaded.sha256(),
            "resolved": loaded.resolved(),
        },
        "data": f["data_id"],
        "environment": {"python": python_version(), **f["env"]["versions"], "cpu": f["env"]["cpu"]},
        "stages": f["stages"],
        "targets": targets,
        "regression": f["regression"],
        "pareto": PARETO if artifacts else None,
    }
    (tmp / RECIPE_COPY).write_text(loaded.text)
    if artifacts:
        metric = loaded.recipe.evaluation.metric
        write_pareto(tmp / PARETO, artifacts, targets, metric, f"{loaded.name} run {run_id}")
    (tmp / "report.md").write_text(render_report(manifest))
    (tmp / "junit.xml").write_text(render_junit(manifest))
    manifest["files"] = [
        {"path": p.relative_to(tmp).as_posix(), "sha256": file_sha256(p), "bytes": p.stat().st_size}
        for p in sorted(tmp.rglob("*"))
        if p.is_file()
    ]
    (tmp / "manifest.json").write_text(manifest_text(manifest))


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
