"""`textclf data stats SPEC`: a data set's classes, lengths, duplicates and leakage, before training."""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from textclf.cli._render import json_line, out, pct, styled

# Registered by textclf.cli as `data`.
app = typer.Typer(help="Look at a data set before training on it.", no_args_is_help=True)


@app.command("stats")
def stats(
    spec: Annotated[str, typer.Argument(help="Data spec: csv:PATH, tsv:PATH, jsonl:PATH, tfds:NAME[:SPLIT], sample.")],
    eval_data: Annotated[Optional[str], typer.Option(
        help="Eval data spec: adds its classes and the texts it shares with SPEC (leakage).")] = None,
    text_field: Annotated[Optional[list[str]], typer.Option(help="Text column/feature; repeat to join.")] = None,
    label_field: Annotated[Optional[str], typer.Option(help="Label column/feature (default: label).")] = None,
    label_separator: Annotated[str, typer.Option(
        help="Joins several labels in one CSV/TSV label field (multi-label data); \"\" never splits.")] = "|",
    plot: Annotated[Optional[str], typer.Option(help="Write a histogram of tokens per text to this .png.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object.")] = False,
) -> None:
    """Examples, classes (count, share), words and tokens per text, duplicates, leakage into the eval
    data, very long texts, and the model `--model auto` would choose."""
    from textclf.data.sources import load_examples
    from textclf.datastats import describe, histogram_png
    from textclf.reports import check_plot_path

    target = check_plot_path(plot) if plot else None  # a bad path fails before the data are read
    options = dict(text_fields=tuple(text_field or ()), label_field=label_field, label_separator=label_separator)
    train = load_examples(spec, **options)
    evaluation = load_examples(eval_data, label_names=train.label_names, default_split="test",
                               multilabel=train.multilabel, **options) \
        if eval_data else None
    result = describe(train, evaluation)
    counts = result.pop("token_counts")
    if target is not None:
        from textclf import runs

        runs.write_output(target, histogram_png(counts, f"{train.source}: tokens per text"))
    if as_json:
        json_line(result)
        return
    _render_stats(result)
    if target is not None:
        out.print(f"wrote {target}")


def _render_stats(result: dict) -> None:
    """data stats as tables and lines."""
    from textclf.cli._render import Table

    out.print(styled("[bold]{}[/]", result['data'])
              + f": {result['examples']:,} examples, {len(result['classes'])} classes"
              + (f" (largest / smallest class: {result['imbalance']:.1f}×)" if result["imbalance"] else ""))
    if result["multilabel"]:
        per = result["labels_per_example"]
        out.print(f"multi-label: {per['mean']:.2f} labels per text (at most {per['max']}); a share is of all texts")
    classes = Table(title="classes")
    for col in ("class", "examples", "share"):
        classes.add_column(col, justify="left" if col == "class" else "right")
    for c in result["classes"]:
        classes.add_row(str(c["label"]), f"{c['count']:,}", pct(c["share"]))
    out.print(classes)
    lengths = Table(title="length per text")
    for col in ("unit", "min", "mean", "median", "p90", "p99", "max"):
        lengths.add_column(col, justify="left" if col == "unit" else "right")
    for unit in ("words", "tokens"):
        s = result[unit]
        lengths.add_row(unit, *(f"{s[k]:g}" for k in ("min", "mean", "median", "p90", "p99", "max")))
    out.print(lengths)
    d = result["duplicates"]
    out.print(f"duplicates: {d['texts']:,} text{'s' if d['texts'] != 1 else ''} occur{'s' if d['texts'] == 1 else ''} "
              f"more than once ({d['extra_copies']:,} extra copies), "
              f"{d['with_different_labels']:,} of them with different labels", highlight=False)
    long = result["long_texts"]
    out.print(f"texts longer than {long['over_tokens']} tokens (cut by the transformer and BERT): {long['count']:,}",
              highlight=False)
    if "leakage" in result:
        leak = result["leakage"]
        out.print(f"leakage: {leak['texts_in_both']:,} texts are in both {result['data']} and "
                  f"{result['eval']['data']} ({leak['eval_examples_seen_in_training']:,} eval examples)",
                  highlight=False)
    out.print(f"--model auto: {result['auto']['reason']}", highlight=False)
