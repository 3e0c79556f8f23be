"""The CI templates in examples/ci parse, and every `compress` command they call exists with the
options they give it: a renamed command or flag breaks this test, not a user's pipeline."""

import re
from pathlib import Path

import click
import pytest
import yaml

from compress.cli import main
from tests.conftest import REPO

TEMPLATES = sorted((REPO / "examples" / "ci").glob("*.yml"))


SHELL_KEYS = {"run", "script", "before_script", "after_script"}  # GitHub steps, GitLab jobs


def shell_lines(node, shell: bool = False) -> list[str]:
    """The lines of every shell command in the YAML document: run: blocks, script: items."""
    if isinstance(node, dict):
        return [line for key, value in node.items() for line in shell_lines(value, key in SHELL_KEYS)]
    if isinstance(node, list):
        return [line for value in node for line in shell_lines(value, shell)]
    return node.splitlines() if shell and isinstance(node, str) else []


def compress_calls(path: Path) -> list[list[str]]:
    """The argument lists of every `compress ...` call, also inside $( ... )."""
    calls = []
    for line in shell_lines(yaml.safe_load(path.read_text())):
        line = line.split(" #", 1)[0]
        for match in re.finditer(r"(?:^|[\s(;&|])compress\s+([^|;&)]*)", line):
            calls.append(match.group(1).replace('"', " ").replace("'", " ").split())
    return calls


def resolve(words: list[str]) -> tuple[click.Command, list[str]]:
    """The (sub)command the words name, and the words left for it."""
    command: click.Command = main
    while isinstance(command, click.Group) and words and not words[0].startswith("-"):
        sub = command.get_command(click.Context(command), words[0])
        assert sub is not None, f"no command {words[0]!r} under {command.name}"
        command, words = sub, words[1:]
    return command, words


def test_there_are_templates_for_github_and_gitlab():
    assert {p.name for p in TEMPLATES} >= {"github-actions.yml", "gitlab-ci.yml"}


@pytest.mark.parametrize("path", TEMPLATES, ids=[p.stem for p in TEMPLATES])
def test_every_compress_call_exists(path):
    calls = compress_calls(path)
    assert any(c[:1] == ["run"] for c in calls), f"{path.name} never runs a recipe"
    for words in calls:
        command, rest = resolve(words)
        options = {o for p in command.params for o in getattr(p, "opts", [])}
        options |= {"--help", "--version"} if command is main else {"--help"}
        for word in rest:
            if word.startswith("--"):
                assert word.split("=")[0] in options, f"{path.name}: compress {' '.join(words)}: no {word}"


def test_github_template_does_what_its_header_promises():
    workflow = yaml.safe_load((REPO / "examples" / "ci" / "github-actions.yml").read_text())
    steps = workflow["jobs"]["compress"]["steps"]
    uses = [s.get("uses", "").split("@")[0] for s in steps]
    for action in ("actions/cache/restore", "actions/cache/save", "actions/upload-artifact"):
        assert action in uses
    keys = [s["with"]["key"] for s in steps if s.get("uses", "").startswith("actions/cache")]
    assert all("COMPRESS_VERSION" in k and "recipes/**/*.toml" in k and "recipes/data" in k for k in keys)
    text = (REPO / "examples" / "ci" / "github-actions.yml").read_text()
    assert "junit.xml" in text and "report.md" in text and "pull_request" in text
    run_step = next(s for s in steps if s.get("id") == "run")
    assert "if" not in run_step and "continue-on-error" not in run_step, "the run's exit code decides the job"


def test_gitlab_template_reports_junit():
    job = yaml.safe_load((REPO / "examples" / "ci" / "gitlab-ci.yml").read_text())["compress"]
    assert job["artifacts"]["reports"]["junit"].endswith("junit.xml")
    assert job["artifacts"]["when"] == "always"
