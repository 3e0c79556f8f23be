"""The run's output: `<out>/<recipe>/<run id>/` with models per target, manifest, report, junit.

Written into a hidden temporary folder and renamed into place only when complete, then `latest`
is re-pointed atomically: a reader never sees a half-written bundle, and a failure while writing
leaves the previous bundles untouched.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
from datetime import UTC, datetime
from pathlib import Path

from compress.core.errors import CompressError
from compress.core.hashing import file_sha256, json_sha256
from compress.core.records import FileRecord, Manifest
from compress.output.junit import render_junit
from compress.output.model_card import write_cards
from compress.output.plots import ArtifactPoint, write_pareto
from compress.output.report import to_markdown
from compress.recipe.load import LoadedRecipe

RECIPE_COPY = "recipe.toml"
PARETO = "pareto.png"


def manifest_text(manifest: dict) -> str:
    """The manifest as written: its own content hash inside, in one canonical layout, so that
    `compress verify` can tell any changed byte (a value, or even whitespace) from the original."""
    body = {k: v for k, v in manifest.items() if k != "integrity"}
    sealed = {**body, "integrity": {"sha256": json_sha256(body)}}
    return json.dumps(sealed, indent=2, default=str) + "\n"


FICLONE = 0x40049409  # Linux ioctl: share the source's blocks copy-on-write (btrfs, XFS, bcachefs)


def _copy_file(src: str, dst: str) -> None:
    """A copy that shares no inode with `src`: a reflink where the filesystem has them (instant, no
    space until either side changes), else a plain copy."""
    try:
        import fcntl

        with open(src, "rb") as s, open(dst, "wb") as d:
            fcntl.ioctl(d.fileno(), FICLONE, s.fileno())
        shutil.copystat(src, dst)
        return
    except (ImportError, OSError):
        pass
    shutil.copy2(src, dst)


def _copy_tree(src: Path, dst: Path) -> None:
    """A target's model folder, copied: editing a bundle never changes the cache or another bundle."""
    shutil.copytree(src, dst, copy_function=_copy_file)


def new_run_id() -> str:
    """The time to the second, plus 24 random bits: two runs started in the same second into the
    same folder never share an id (which also names the bundle folder)."""
    return f"{datetime.now(UTC).strftime('%Y%m%dT%H%M%SZ')}-{secrets.token_hex(3)}"


def write(
    loaded: LoadedRecipe,
    out_root: Path,
    manifest: Manifest,
    *,
    target_folders: dict[str, Path],
    points: list[ArtifactPoint] | None = None,
    run_id: str | None = None,
) -> Path:
    """Write the bundle of `manifest` (its run id, creation time and file list are filled in here):
    each target's model folder from `target_folders` with its model card (README.md), the recipe
    copy, pareto.png (from `points`, every evaluated model), report.md, junit.xml and manifest.json.
    Returns the bundle folder."""
    parent = out_root / loaded.name
    run_id = run_id or new_run_id()
    tmp = parent / f".tmp-{run_id}-{os.getpid()}"
    try:
        parent.mkdir(parents=True, exist_ok=True)
        _write_into(tmp, loaded, manifest, run_id, target_folders, points or [])
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


def _write_into(
    tmp: Path,
    loaded: LoadedRecipe,
    manifest: Manifest,
    run_id: str,
    target_folders: dict[str, Path],
    points: list[ArtifactPoint],
) -> None:
    """Every file of the bundle into the temporary folder `tmp`."""
    tmp.mkdir()
    targets = []
    for target in manifest.targets:
        if target.name in target_folders:
            rel = f"targets/{target.name}"
            _copy_tree(target_folders[target.name], tmp / rel)
            target = target.model_copy(update={"artifact": rel})
        targets.append(target)
    manifest = manifest.model_copy(
        update={
            "run_id": run_id,
            "created": datetime.now(UTC).isoformat(timespec="seconds"),
            "recipe": manifest.recipe.model_copy(update={"copy_name": RECIPE_COPY}),
            "targets": tuple(targets),
            "pareto": PARETO if points else None,
        }
    )
    (tmp / RECIPE_COPY).write_text(loaded.text)
    if points:
        metric = loaded.recipe.evaluation.metric
        write_pareto(tmp / PARETO, points, manifest.targets, metric, f"{loaded.name} run {run_id}")
    (tmp / "report.md").write_text(to_markdown(manifest))
    (tmp / "junit.xml").write_text(render_junit(manifest))
    write_cards(tmp, manifest)  # before the file list: `compress verify` covers the cards
    files = tuple(
        FileRecord(path=p.relative_to(tmp).as_posix(), sha256=file_sha256(p), bytes=p.stat().st_size)
        for p in sorted(tmp.rglob("*"))
        if p.is_file()
    )
    manifest = manifest.model_copy(update={"files": files})
    (tmp / "manifest.json").write_text(manifest_text(manifest.to_json()))
