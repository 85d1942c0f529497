"""`textclf data stats SPEC`: a data set's classes, lengths, duplicates and leakage, before training."""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from textclf.cli._render import json_line, out, pct, styled
from textclf.config import MAX_TEXT_CHARS

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
    max_text_chars: Annotated[int, typer.Option(
        help="Refuse a text longer than this many characters (as train does).", min=1)] = MAX_TEXT_CHARS,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object.")] = False,
) -> None:
    """Examples, classes (count, share), words and tokens per text, duplicates, leakage into the eval
    data, very long texts, and the model `--model auto` would choose."""
    from textclf.data.sources import load_examples
    from textclf.datastats import describe, histogram_png
    from textclf.reports import check_plot_path

    target = check_plot_path(plot) if plot else None  # a bad path fails before the data are read
    options = dict(text_fields=tuple(text_field or ()), label_field=label_field, label_separator=label_separator,
                   max_text_chars=max_text_chars)
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
    if "phrases" in result:
        ph = result["phrases"]
        out.print(f"phrases: {ph['texts_in_a_longer_text']:,} texts are runs of words of longer texts of the data "
                  f"({ph['sentences']:,} sentences with their phrases); validation parts and folds keep each "
                  "sentence with its phrases", highlight=False)
    if "leakage" in result:
        leak = result["leakage"]
        out.print(f"leakage: {leak['texts_in_both']:,} texts are in both {result['data']} and "
                  f"{result['eval']['data']} ({leak['eval_examples_seen_in_training']:,} eval examples)",
                  highlight=False)
    out.print(f"--model auto: {result['auto']['reason']}", highlight=False)


@app.command("audit")
def audit(
    spec: Annotated[str, typer.Argument(help="Data spec: csv:PATH, tsv:PATH, jsonl:PATH, tfds:NAME[:SPLIT], sample.")],
    model: Annotated[Optional[str], typer.Option(
        metavar="MODEL", help="The model of the out-of-fold predictions (default: ngram-linear, seconds).")] = None,
    experiment: Annotated[Optional[str], typer.Option(
        metavar="EXPERIMENT", help="Or an experiment of the experiments file (its model and settings).")] = None,
    experiments_file: Annotated[str, typer.Option(metavar="PATH", help="The experiments file.")] = "experiments.yaml",
    folds: Annotated[int, typer.Option(metavar="N", help="Out-of-fold models: each trained on the others.")] = 5,
    seed: Annotated[Optional[int], typer.Option(metavar="N", help="The folds' and models' seed.")] = None,
    text_field: Annotated[Optional[list[str]], typer.Option(help="Text column/feature; repeat to join.")] = None,
    label_field: Annotated[Optional[str], typer.Option(help="Label column/feature (default: label).")] = None,
    label_separator: Annotated[str, typer.Option(
        help="Joins several labels in one CSV/TSV label field (multi-label data); \"\" never splits.")] = "|",
    out_path: Annotated[Optional[str], typer.Option(
        "--out", metavar="PATH", help="Write every flagged row to this .csv or .json file.")] = None,
    top: Annotated[int, typer.Option(metavar="N", help="Rows shown in the table.")] = 20,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object (every flagged row).")] = False,
) -> None:
    """Likely label errors (confident learning on out-of-fold predictions, cleanlab), texts repeated with
    different labels, and outliers. It never changes the data."""
    from textclf import config as cfg
    from textclf.audit import audit as run_audit, check_output
    from textclf.cli._render import ProgressListener
    from textclf.errors import ConfigError
    from textclf.experiments import train_config

    if folds < 2 or folds > 20:
        raise ConfigError(f"--folds {folds}: an integer in [2, 20]")
    if top < 0:
        raise ConfigError(f"--top {top}: an integer >= 0 (rows shown)")
    target = check_output(out_path) if out_path else None
    layer = cfg.options_layer({"data": spec, "text_field": text_field, "label_field": label_field,
                               "label_separator": label_separator, "seed": seed,
                               "model": model or (None if experiment else "ngram-linear")})
    config = train_config(layer, experiment=experiment, experiments_file=experiments_file)
    with ProgressListener(hold=False) as listener:
        found = run_audit(config, folds=folds, say=listener.on_status)
    if target is not None:
        from textclf.audit import write_rows

        write_rows(target, found.rows)
    if as_json:
        json_line(found.to_dict())
        return
    _render_audit(found, top)
    if target is not None:
        out.print(f"wrote {target} ({len(found.rows):,} rows)")


def _render_audit(found, top: int) -> None:
    from textclf.cli._render import Table

    n = found.counts()
    out.print(styled("[bold]{}[/]", found.data) + f": {found.examples:,} texts — {n['label_issue']:,} likely label "
              f"errors ({pct(n['label_issue'] / max(found.examples, 1))}), {n['conflicting_duplicate']:,} texts in "
              f"duplicates with different labels, {n['outlier']:,} outliers; out-of-fold accuracy "
              f"{pct(found.oof_accuracy)} ({found.folds} folds of {found.model}, {found.seconds:.1f} s)",
              highlight=False)
    if not found.rows:
        return
    table = Table(title=f"most suspect first (top {min(top, len(found.rows))} of {len(found.rows):,})")
    for col in ("row", "kind", "given", "suggested", "score", "text"):
        table.add_column(col, justify="right" if col in ("row", "score") else "left", overflow="fold")
    for r in found.rows[:top]:
        text = r["text"] if len(r["text"]) <= 90 else r["text"][:87] + "…"
        table.add_row(str(r["row"]), r["kind"].replace("_", " "), r["given"], r["suggested"], f"{r['score']:.3f}",
                      text)
    out.print(table)
