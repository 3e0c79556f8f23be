"""The report a reviewer reads: built once as headline + sections from a manifest, rendered as
markdown (report.md, PR comments) or as rich tables in a terminal (`compress report`).

Order: verdict line, the target table, gate failures, stage timings and cache hits, what changed
since the baseline, the release matrix, how sure the accuracy verdicts are, the environment.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from compress.core.records import Comparison, Figures, Manifest, ReleaseMatrix, TargetRecord
from compress.recipe.schema import Shape
from compress.verdict.gates import percent


@dataclass
class Table:
    """Rows of cells under headers, with an optional caption: rendered as markdown or rich."""

    headers: list[str]
    rows: list[list[str]] = field(default_factory=list)
    caption: str | None = None


Block = str | Table  # a paragraph / bullet line, or a table
Section = tuple[str, list[Block]]


def _fmt(value, spec: str = ".4f", none: str = "—") -> str:
    return none if value is None else format(value, spec)


def headline(m: Manifest) -> tuple[str, str]:
    """The title line and the one-sentence summary under it."""
    failed = [t for t in m.targets if not _lets_pass(t)]
    proxies = [t.name for t in m.targets if t.verdict == "proxy"]
    unsure = [t.name for t in m.targets if t.verdict == "inconclusive"]
    icon = "✅ PASS" if m.verdict == "pass" else "❌ FAIL"
    first = m.targets[0]
    summary = (
        f"{len(m.targets) - len(failed)}/{len(m.targets)} targets pass"
        + (
            f"; failing: {', '.join(t.name + ('' if t.required else ' (optional)') for t in failed)}"
            if failed
            else ""
        )
        + (f"; proxy only (no engine built): {', '.join(proxies)}" if proxies else "")
        + (f"; inconclusive (the rows cannot tell): {', '.join(unsure)}" if unsure else "")
        + "".join(f"; stage {s.name} failed" for s in m.stages if s.status == "failed")
        + (
            f"; regression vs {m.regression.baseline.run_id}"
            if m.regression and m.regression.breached
            else ""
        )
        + f". Baseline: {_fmt(first.baseline)} {first.metric_name} from {first.baseline_from}."
    )
    return f"{icon} — `{m.recipe_name}` run {m.run_id}", summary


def _lets_pass(t: TargetRecord) -> bool:
    return bool(t.gates) and all(g.passed for g in t.gates)


def verdict_cell(t: TargetRecord) -> str:
    """pass | proxy | FAIL | INCONCLUSIVE (fails the run) | inconclusive (passes: on_inconclusive)."""
    if t.verdict == "inconclusive":
        return "inconclusive (passes)" if _lets_pass(t) else "INCONCLUSIVE"
    return {"pass": "pass", "proxy": "proxy"}.get(t.verdict, "FAIL")


def targets_table(m: Manifest) -> Table:
    """One row per target: figures against budgets, and the verdict."""
    table = Table(
        [
            "target",
            "runtime",
            "precision",
            "metric",
            "drop (pt) [CI] / budget",
            "changed labels",
            "latency ms (shape) / budget",
            "size MB / budget",
            "verdict",
        ]
    )
    for t in m.targets:
        b = t.budgets
        lat = t.latency.median_ms if t.latency else None
        st = t.statistics
        drop = _fmt(t.drop, "+.2f")
        changed = "—"
        if st:
            drop += f" [{st.low:+.2f}, {st.high:+.2f}]" + (" (upper)" if b.decision == "upper" else "")
            if st.paired:
                changed = f"{st.disagreements}/{st.rows}"
        agreement = next((g for g in t.gates if g.gate == "agreement" and g.rows), None)
        if agreement is not None and agreement.value is not None and agreement.rows:
            changed = f"{round(agreement.value * agreement.rows)}/{agreement.rows}"
        if changed != "—" and b.max_disagreement is not None:
            changed += f" / {b.max_disagreement:.1%}"
        name = t.name + ("" if t.required else " (optional)")
        if t.perturbed_weights:
            name += f" (weights perturbed x{t.perturbed_weights})"
        latency = f"{_fmt(lat, '.1f')} ({b.latency_shape}) / {_fmt(b.max_latency_ms, '.1f')}"
        size = f"{_fmt(t.size_mb, '.1f')} / {_fmt(b.max_size_mb, '.1f')}"
        runtime = t.runtime
        if t.proxy:  # measured on a stand-in: never shown as the engine's figures
            runtime += " (CPU proxy)"
            latency = size = "not measured (no engine)"
        table.rows.append(
            [
                name,
                runtime,
                t.precision,
                _fmt(t.metric),
                f"{drop} / {b.max_accuracy_drop:.2f}",
                changed,
                latency,
                size,
                verdict_cell(t),
            ]
        )
    return table


def stages_table(m: Manifest) -> Table:
    """One row per stage: status, seconds, cache hit; its reason and notes beneath."""
    table = Table(["stage", "status", "seconds", "cache"])
    for s in m.stages:
        cached = "hit" if s.cached else ("—" if s.status == "not run" else "miss")
        table.rows.append([s.name, s.status, _fmt(s.seconds, ".1f"), cached])
        if s.reason:
            table.rows.append(["", f"↳ {s.reason}", "", ""])
        table.rows += [["", f"↳ {note}", "", ""] for note in s.notes]
    return table


def comparison_blocks(c: Comparison) -> list[Block]:
    """Target by target, old -> new, with deltas and a status; then what else changed."""
    base, cand = c.baseline, c.candidate
    where = f" ({base.source})" if base.source else ""
    blocks: list[Block] = [
        f"Baseline: `{base.recipe_name}` run {base.run_id}{where}; "
        + "candidate: "
        + (f"`{cand.recipe_name}` run {cand.run_id}. " if cand.run_id else "this run. ")
        + ("**Regression beyond tolerance.**" if c.breached else "No regression beyond tolerance.")
    ]
    tol = c.tolerances
    latency, size = tol.max_latency_increase, tol.max_size_increase
    blocks.append(
        f"Tolerances: metric drop ≤ {tol.max_metric_drop:.2f} pt; latency "
        + (f"≤ +{latency:.0%}" if latency is not None else "not judged")
        + "; size "
        + (f"≤ +{size:.0%}" if size is not None else "not judged")
        + "."
    )
    table = Table(
        [
            "target",
            "metric old → new",
            "Δ pt",
            "latency ms old → new",
            "size MB old → new",
            "artifact",
            "status",
        ]
    )
    empty = Figures()
    for r in c.targets:
        o, n = r.old or empty, r.new or empty
        metric_cell = f"{_fmt(o.metric)} → {_fmt(n.metric)}"
        delta = _fmt(0.0 - r.metric_drop, "+.2f") if r.metric_drop is not None else "—"
        latency_cell = f"{_fmt(o.latency_ms, '.2f')} → {_fmt(n.latency_ms, '.2f')}"
        if r.latency_ratio is not None:
            latency_cell += f" ({r.latency_ratio:.2f}x)"
        size_cell = f"{_fmt(o.size_mb, '.2f')} → {_fmt(n.size_mb, '.2f')}"
        artifact = {True: "identical", False: "different", None: "—"}[r.same_artifact]
        status = "REGRESSED" if r.status == "regressed" else r.status
        table.rows.append([r.name, metric_cell, delta, latency_cell, size_cell, artifact, status])
    blocks.append(table)
    failed = [(r.name, g) for r in c.targets for g in r.gates if not g.passed]
    blocks += [f"- **{name}** · {g.message}" for name, g in failed]
    blocks += [f"- changed since the baseline: {change}" for change in c.changed] or [
        "- recipe, data files and toolchain versions are the same as the baseline's."
    ]
    return blocks


def release_blocks(m: Manifest) -> list[Block]:
    """One grid per ONNX artifact: batch down, sequence across; label agreement and latency."""
    blocks: list[Block] = []
    for s in m.stages:
        for artifact, evaluation in zip(s.artifacts, s.evaluations, strict=False):
            release = evaluation.release_matrix
            if release is None:
                continue
            shapes = release.shapes
            parsed = [Shape.parse(k) for k in shapes]
            batches = sorted({s.batch for s in parsed})
            seqs = sorted({s.sequence for s in parsed})
            serves = f" for {', '.join(artifact.serves)}" if artifact.serves else ""
            if artifact.proxy:  # latencies below are ONNX Runtime's on the CPU
                serves += " (CPU proxy in ONNX Runtime, not the engine)"
            table = Table(
                ["batch \\ sequence", *map(str, seqs)],
                caption=f"{s.name}: {artifact.runtime}/{artifact.precision}{serves} — "
                + (f"{len(release.problems)} shapes FAIL" if release.problems else "every shape passes"),
            )
            failing = _failing(release)
            for b in batches:
                row = [str(b)]
                for q in seqs:
                    r = shapes.get(f"{b}x{q}")
                    if r is None:
                        row.append("—")
                    elif r.error:
                        row.append(f"✗ {r.error[:40]}")
                    else:
                        ok = "✗" if r.label_agreement is None or f"{b}x{q}" in failing else "✓"
                        lat = r.latency.median_ms if r.latency else None
                        row.append(f"{ok} {_fmt(r.label_agreement, '.1%')} · {_fmt(lat, '.1f')} ms")
                table.rows.append(row)
            blocks.append(table)
            blocks += [f"- ✗ {p}" for p in release.problems]
    if blocks:
        blocks.insert(
            0,
            "Each cell: label agreement with the FP32 PyTorch model the artifact was made from, "
            "and median latency. Rows are padded to exactly the sequence length.",
        )
    return blocks


def _failing(release: ReleaseMatrix) -> set[str]:
    return {p.split(":")[0] for p in release.problems}


def how_sure(targets: tuple[TargetRecord, ...]) -> list[Block]:
    """Per target: the drop's interval and discordant rows, then each accuracy and agreement gate's
    outcome with its interval and the rows it used."""
    notes: list[Block] = []
    for t in targets:
        st = t.statistics
        if st is None:
            continue
        if st.paired:
            how = (
                f"paired over {st.rows} rows: only the FP32 reference was right on "
                f"{st.reference_right_candidate_wrong}, only the candidate on "
                f"{st.reference_wrong_candidate_right}"
            )
            if st.mcnemar_p is not None:
                how += f" (McNemar exact p = {st.mcnemar_p:.3g})"
        else:
            how = f"baseline pinned in the recipe; interval from the candidate's own {st.rows} rows"
        if st.pool_rows:
            how += f"; {st.pool_rows} pool rows drawn over {st.looks} looks"
        accuracy = next((g for g in t.gates if g.gate == "accuracy"), None)
        outcome = f" → {accuracy.result}" if accuracy is not None else ""
        budget = t.budgets.max_accuracy_drop
        wanted = t.budgets.confidence
        level = percent(st.confidence)
        if st.confidence < 1 and round(st.confidence - wanted, 6) > 0:
            looks = round((1 - wanted) / (1 - st.confidence))  # the pool's Bonferroni correction
            level += f" (the target's {percent(wanted)} over {looks} possible looks)"
        notes.append(
            f"- **{t.name}**: drop {st.drop:+.2f} pt, {level} CI "
            f"[{st.low:+.2f}, {st.high:+.2f}] against budget {budget:.2f}{outcome}; {how}."
        )
        for g in t.gates:
            if g.gate in ("accuracy", "agreement"):
                effect = " (lets the run pass)" if g.passed and g.result != "pass" else ""
                mark = "⚠ " if g.result == "inconclusive" else ""
                notes.append(f"  - {mark}{g.gate} → {g.result}{effect}: {g.message}")
    return notes


def sections(m: Manifest) -> list[Section]:
    """The report's sections in order, each a heading and its blocks."""
    out: list[Section] = [("", [targets_table(m)])]
    breaches = [(t.name, g) for t in m.targets for g in t.gates if not g.passed]
    if breaches:
        out.append(("Gate failures", [f"- **{name}** · {g.gate}: {g.message}" for name, g in breaches]))
    unsure = [(t.name, g) for t in m.targets for g in t.gates if g.passed and g.result == "inconclusive"]
    if unsure:
        lines: list[Block] = [f"- **{name}** · {g.gate}: {g.message}" for name, g in unsure]
        out.append(("Inconclusive gates that pass (on_inconclusive = pass)", lines))
    out.append(("Stages", [stages_table(m)]))
    if m.regression is not None:
        out.append(("Changes since the baseline", comparison_blocks(m.regression)))
    else:
        out.append(
            (
                "Changes since the baseline",
                [
                    "No baseline compared: add a [regression] table to the recipe "
                    "to compare with the previous run."
                ],
            )
        )
    release = release_blocks(m)
    if release:
        out.append(("Release matrix", release))
    sure = how_sure(m.targets)
    if sure:
        out.append(("How sure", sure))
    if m.pareto:
        out.append(("Accuracy against latency", [f"![accuracy against latency]({m.pareto})"]))
    env = m.environment
    tools = ", ".join(
        f"{name} {env.versions.get(name)}" for name in ("torch", "transformers", "onnx", "onnxruntime")
    )
    out.append(
        ("Environment", [f"Python {env.python}, {tools}; CPU {env.cpu.model} ({', '.join(env.cpu.isa)})."])
    )
    return out


def _md_cell(text: str) -> str:
    text = text.replace("|", "\\|")
    return f"**{text}**" if text in ("FAIL", "REGRESSED", "INCONCLUSIVE") else text


def _md_table(table: Table) -> list[str]:
    lines = [f"**{table.caption}**", ""] if table.caption else []
    lines.append("| " + " | ".join(table.headers) + " |")
    lines.append("|" + "---|" * len(table.headers))
    lines += ["| " + " | ".join(_md_cell(c) for c in row) + " |" for row in table.rows]
    return lines


def blocks_markdown(blocks: list[Block]) -> list[str]:
    """Blocks as markdown lines: tables, bullets, and paragraphs with a blank line after."""
    lines: list[str] = []
    for block in blocks:
        if isinstance(block, Table):
            lines += ([""] if lines and lines[-1] else []) + _md_table(block) + [""]
        elif block.startswith(("- ", "  -")):
            lines.append(block)
        else:  # a paragraph
            lines += [block, ""]
    return lines


def to_markdown(m: Manifest) -> str:
    """report.md."""
    title, summary = headline(m)
    lines = [f"# {title}", "", summary]
    for heading, blocks in sections(m):
        lines += ["", f"## {heading}", ""] if heading else [""]
        lines += blocks_markdown(blocks)
    text = "\n".join(lines).rstrip() + "\n"
    while "\n\n\n" in text:
        text = text.replace("\n\n\n", "\n\n")
    return text


def print_rich(m: Manifest, console) -> None:
    """The same sections as report.md, as terminal tables."""
    from rich.table import Table as RichTable
    from rich.text import Text

    title, summary = headline(m)
    console.print(f"[bold {'green' if m.verdict == 'pass' else 'red'}]{title}[/]")
    console.print(summary, markup=False)
    for heading, blocks in sections(m):
        if heading:
            console.rule(heading)
        for block in blocks:
            if isinstance(block, Table):
                rich_table = RichTable(title=block.caption, show_lines=False)
                for h in block.headers:
                    rich_table.add_column(h, overflow="fold")
                for row in block.rows:
                    styles = ["bold red" if c in ("FAIL", "REGRESSED", "INCONCLUSIVE") else "" for c in row]
                    rich_table.add_row(*(Text(c, style=st) for c, st in zip(row, styles, strict=True)))
                console.print(rich_table)
            else:
                console.print(block.replace("**", ""), markup=False)
