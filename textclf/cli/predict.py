"""`textclf predict`: classify texts from arguments, a file or stdin with one model load."""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from textclf.cli._render import RUN_HELP, json_line, out, styled
from textclf.errors import DataError


app = typer.Typer()  # registered by textclf.cli


@app.command("predict")
def predict(
    texts: Annotated[Optional[list[str]], typer.Argument(
        help="Texts to classify; `-` reads one text per line from stdin.")] = None,
    run: Annotated[Optional[str], typer.Option(help=RUN_HELP, show_default=False)] = None,
    top_k: Annotated[int, typer.Option(help="How many labels to show per text.", min=1)] = 1,
    file: Annotated[Optional[str], typer.Option(
        help="Read texts from a file, one per line ('-' = stdin); a blank line gives an empty result in its place.")]
    = None,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per text, one per line.")] = False,
    threshold: Annotated[Optional[float], typer.Option(
        help="Abstain (label null) when the top probability is below this (see evaluate --target-accuracy).",
        min=0.0, max=1.0)] = None,
    runs_root: Annotated[str, typer.Option(help="Where to look for the latest run.")] = "runs",
) -> None:
    """Print the predicted label and probability for each text.

    One output per input line: a blank line of a file (or stdin) gives a row with no label
    (`"label": null` in --json), so outputs line up with inputs.
    """
    from textclf.prediction import load_predictor

    texts = list(texts or [])
    if texts == ["-"]:  # as fastText's `predict model -`
        texts, file = [], "-"
    lines = _read_lines(file) if file else []
    items = texts + lines
    if not items or (not texts and all(not line.strip() for line in lines)):
        raise DataError("no text to classify: give TEXT arguments, `-` or --file PATH (or --file - for stdin)")
    from textclf.runs import is_run_reference

    if run is None and texts and is_run_reference(texts[0], runs_root):  # `predict RUN "text"`: never a text by mistake
        raise DataError(f"{texts[0]} is a run, not a text: give it as --run {texts[0]} "
                        f"(textclf predict --run {texts[0]} TEXT...); with --run given, every argument is a text "
                        f"(so --run RUN {texts[0]} classifies the word itself)")
    predictor = load_predictor(run, runs_root, use_twin=True)  # a one-off process: no TensorFlow when the run allows
    results = predictor.predict(texts, top_k, threshold=threshold) + (
        predictor.predict(lines, top_k, blank_as_none=True, threshold=threshold) if lines else [])
    if as_json:
        for r in results:
            json_line(r.to_dict())
        return
    _print_table(results, top_k)


def _print_table(results, top_k: int) -> None:
    """The predictions as a table: a label set, an abstention, the top k, or the label and its probability."""
    from textclf.cli._render import Table

    table = Table(show_lines=False)
    table.add_column("text", overflow="ellipsis", max_width=70, no_wrap=True)
    table.add_column("label", style="bold cyan")
    table.add_column("probability", justify="right")
    for r in results:
        if r.labels is not None:  # a multi-label run: every label above its threshold
            probs = {t["label"]: t["probability"] for t in r.top_k}
            table.add_row(r.text, ", ".join(r.labels) or styled("[dim]none[/]"),
                          "  ".join(f"{probs[x]:.3f}" if x in probs else "" for x in r.labels).strip())
        elif r.label is None:
            table.add_row(r.text, styled("[dim]abstain[/]" if r.abstained else "[dim]–[/]"),
                          f"{r.top_k[0]['probability']:.3f}" if r.top_k else "")
        elif top_k > 1:
            extra = ", ".join(f"{t['label']} {t['probability']:.3f}" for t in r.top_k[1:])
            table.add_row(r.text, r.label, styled(f"{r.probability:.3f}  [dim]({{}})[/]", extra))
        else:
            table.add_row(r.text, r.label, f"{r.probability:.3f}")
    out.print(table)


def _read_lines(path: str) -> list[str]:
    from textclf.textfiles import read_text

    text = read_text(path)
    # Lines end at "\n" (and a "\r\n"), not at every Unicode break str.splitlines() knows (U+2028, \f, \x1d,
    # a lone \r…): one output per input line, as `wc -l` counts them.
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    return [line.strip() for line in lines]
