"""`compress predict`: what a bundled target answers for a few texts, to try a model by hand."""

from __future__ import annotations

from pathlib import Path

import click

from compress.cli.common import fail_input
from compress.core.errors import CompressError


def _one_line(text: str) -> str:
    """A text as printed: control characters escaped, so each answer stays on its own line."""
    return "".join(ch if ch.isprintable() or ch == " " else repr(ch)[1:-1] for ch in text)


@click.command()
@click.argument("target", type=click.Path(path_type=Path))
@click.argument("texts", nargs=-1, required=True)
@click.option("--pair", help="The second segment of a sentence-pair input, for every TEXT.")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON list of {text, label, score, scores}.")
@click.option(
    "--max-length",
    type=click.IntRange(min=2),
    help="Truncate inputs to this many tokens (default: the bundle's data.max_length, else the model's).",
)
def predict(target: Path, texts: tuple[str, ...], pair: str | None, as_json: bool, max_length: int | None):
    """Classify TEXTS with the model in TARGET; print each one's label and probability.

    TARGET is a bundle's targets/<name> folder of any runtime (torch, onnxruntime, or tensorrt where
    its engine can run); labels are the names in its config.json's id2label."""
    import json
    from dataclasses import asdict

    from compress.runtimes.predict import predict_texts

    try:
        results = predict_texts(target, list(texts), pair=pair, max_length=max_length)
    except CompressError as exc:
        fail_input(exc)
    if as_json:
        click.echo(json.dumps([asdict(r) for r in results], indent=2))
        return
    for r in results:
        click.echo(f"{_one_line(r.label)}\t{r.score:.4f}\t{_one_line(r.text)}")
