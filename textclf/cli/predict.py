"""`textclf predict`: classify texts from arguments, a file or stdin with one model load."""

from __future__ import annotations

import sys
from typing import Annotated, Iterator, Optional

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
    (`"label": null` in --json), so outputs line up with inputs. A file (or stdin) is answered and
    printed up to 4,096 lines at a time: memory does not grow with the file, and piped lines are
    answered as they arrive.
    """
    from textclf.prediction import Predictor, run_config, text_limit
    from textclf.runs import Run, is_run_reference, resolve_run

    texts = list(texts or [])
    if "-" in texts:  # as fastText's `predict model -`
        if len(texts) > 1 or file:
            raise DataError("`-` reads the texts from stdin and is given alone; to classify stdin's lines and "
                            "other texts, give those as arguments and stdin as --file -")
        texts, file = [], "-"
    if not texts and not file:
        raise DataError(NO_TEXT)
    if run is None and texts and is_run_reference(texts[0], runs_root):  # `predict RUN "text"`: never a text by mistake
        raise DataError(f"{texts[0]} is a run, not a text: give it as --run {texts[0]} "
                        f"(textclf predict --run {texts[0]} TEXT...); with --run given, every argument is a text "
                        f"(so --run RUN {texts[0]} classifies the word itself)")
    if file:
        from textclf.textfiles import check_readable

        check_readable(file)
    run_dir = resolve_run(run, runs_root)
    groups = _lines(file, text_limit(run_config(Run(run_dir)))) if file else iter(())
    groups, any_text, blanks = _peek(groups)  # an all-blank file is refused before the model loads
    if not texts and not any_text:
        where = "stdin" if file == "-" else file
        raise DataError(f"no text to classify: {where} is empty" if not blanks else
                        f"no text to classify: the {blanks:,} line{'s' * (blanks > 1)} of {where} "
                        f"{'are' if blanks > 1 else 'is'} blank")
    predictor = Predictor(run_dir, use_twin=True)  # a one-off process: no TensorFlow when the run allows
    show = (lambda rs, first: [json_line(r.to_dict()) for r in rs]) if as_json else (  # noqa: E731
        lambda rs, first: _print_table(rs, top_k, header=first))
    pending = predictor.predict(texts, top_k, threshold=threshold) if texts else []
    line = 1
    for chunk in _chunks(groups):  # a file is answered and printed a chunk at a time: memory bounded by one
        show(pending + predictor.predict(chunk, top_k, blank_as_none=True, threshold=threshold, first=line,
                                         what="line"), line == 1)
        pending, line = [], line + len(chunk)
        sys.stdout.flush()  # a pipe's reader gets each chunk's rows as they are answered
    if pending:
        show(pending, True)


NO_TEXT = "no text to classify: give TEXT arguments, `-` or --file PATH (or --file - for stdin)"
CHUNK_LINES = 4096  # lines of a file answered and printed at a time…
CHUNK_CHARS = 8 << 20  # …or fewer when they are long


def _lines(path: str, limit: int) -> Iterator[list[str]]:
    """The file's lines, stripped, in the groups they are read in; each read up to the run's text limit (and a
    CR) before it is refused."""
    from textclf.textfiles import iter_line_groups

    for group in iter_line_groups(path, max_line_chars=limit + 1,
                                  why=f"more than a text may have (the run's data.max_text_chars: {limit:,})"):
        yield [line.strip() for line in group]


def _peek(groups: Iterator[list[str]]) -> tuple[Iterator[list[str]], bool, int]:
    """`groups` as they were, whether any line is not blank (read up to the first group that has one), and how
    many blank lines came before it."""
    from itertools import chain

    blanks = 0
    for group in groups:
        if any(group):
            return chain(_blanks(blanks), [group], groups), True, blanks
        blanks += len(group)
    return _blanks(blanks), False, blanks


def _blanks(n: int) -> Iterator[list[str]]:
    """n blank lines, CHUNK_LINES at a time."""
    for start in range(0, n, CHUNK_LINES):
        yield [""] * min(CHUNK_LINES, n - start)


def _chunks(groups: Iterator[list[str]]) -> Iterator[list[str]]:
    """Each group's lines in chunks of CHUNK_LINES, or fewer whose characters reach CHUNK_CHARS: a group is
    answered as soon as it is read (a file's reads are large; a pipe's give the lines that have arrived)."""
    for group in groups:
        chunk, chars = [], 0
        for line in group:
            chunk.append(line)
            chars += len(line)
            if len(chunk) == CHUNK_LINES or chars >= CHUNK_CHARS:
                yield chunk
                chunk, chars = [], 0
        if chunk:
            yield chunk


def _print_table(results, top_k: int, header: bool = True) -> None:
    """The predictions as a table: a label set, an abstention, the top k, or the label and its probability;
    a file's later chunks continue it without the header."""
    from textclf.cli._render import Table

    table = Table(show_lines=False, show_header=header)
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
