"""junit.xml: one testcase per target x gate (and per failed stage), so CI shows each breach."""

from __future__ import annotations

from xml.sax.saxutils import escape, quoteattr

from compress.core.records import Manifest


def render_junit(m: Manifest) -> str:
    """One testcase per target x gate (and per failed stage); a breach is a <failure>, and so is
    an inconclusive gate unless on_inconclusive = "pass" lets it through (then its message is the
    testcase's output)."""
    cases: list[tuple[str, str, str | None]] = []
    notes: dict[tuple[str, str], str] = {}
    for s in m.stages:
        if s.status == "failed":
            cases.append((f"stage.{s.name}", "ran", s.reason or "failed"))
    for t in m.targets:
        for g in t.gates:
            cases.append((f"target.{t.name}", g.gate, None if g.passed else g.message))
            if g.passed and g.result == "inconclusive":
                notes[(f"target.{t.name}", g.gate)] = g.message
    failures = sum(1 for *_, msg in cases if msg is not None)
    out = [
        '<?xml version="1.0" encoding="UTF-8"?>',
        f'<testsuites name="compress" tests="{len(cases)}" failures="{failures}">',
        f'  <testsuite name={quoteattr("compress." + m.recipe_name)} tests="{len(cases)}" '
        f'failures="{failures}" time="{m.seconds}">',
    ]
    for classname, name, message in cases:
        head = f"    <testcase classname={quoteattr(classname)} name={quoteattr(name)}"
        note = notes.get((classname, name))
        if message is None and note is not None:
            out += [head + ">", f"      <system-out>{escape(note)}</system-out>", "    </testcase>"]
        elif message is None:
            out.append(head + "/>")
        else:
            out += [
                head + ">",
                f"      <failure message={quoteattr(message)}>{escape(message)}</failure>",
                "    </testcase>",
            ]
    out += ["  </testsuite>", "</testsuites>", ""]
    return "\n".join(out)
