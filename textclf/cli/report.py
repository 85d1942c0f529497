"""`textclf report`: one self-contained HTML page comparing runs."""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from textclf.cli._render import out


app = typer.Typer()  # registered by textclf.cli


@app.command("report")
def report(
    run_refs: Annotated[Optional[list[str]], typer.Argument(
        help="Runs (as every command names them) or group ids (default: every complete run, groups together).")]
    = None,
    run: Annotated[Optional[list[str]], typer.Option(help="A run or group (repeat for several; with the arguments).",
                                                     show_default=False)] = None,
    out_path: Annotated[str, typer.Option("--out", help="The HTML file to write.")] = "report.html",
    runs_root: Annotated[str, typer.Option(help="Where runs live.")] = "runs",
    speed: Annotated[bool, typer.Option("--speed", help="Also measure each run's prediction speed now (warm "
                                        "texts/s, cold `textclf predict`) and plot accuracy against it.")] = False,
) -> None:
    """Metrics, paired significance tests, confusion matrices, learning curves and configs of runs, in one HTML file.

    Groups of runs show mean ± sd and the 95% interval of their metrics.
    """
    from textclf.errors import RunError
    from textclf.reports import write_html_report
    from textclf.runs import by_group, complete_runs, resolve_items

    run_refs = [*(run_refs or []), *(run or [])]
    items = resolve_items(run_refs, runs_root) if run_refs else by_group(complete_runs(runs_root))
    if not items:
        raise RunError(f"no complete run under {runs_root}/ to report on")
    written = write_html_report(items, out_path, speed=speed)
    count = sum(1 if not isinstance(i, list) else len(i) for i in items)
    out.print(f"wrote {written} ({count} run{'s' if count != 1 else ''})")
