"""`textclf report`: one self-contained HTML page comparing runs."""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from textclf.cli._render import out


app = typer.Typer()  # registered by textclf.cli


@app.command("report")
def report(
    run_refs: Annotated[Optional[list[str]], typer.Argument(
        help="Run directories or names (default: every complete run).")] = None,
    out_path: Annotated[str, typer.Option("--out", help="The HTML file to write.")] = "report.html",
    runs_root: Annotated[str, typer.Option(help="Where runs live.")] = "runs",
) -> None:
    """Metrics tables, confusion matrices, learning curves and configs of runs, in one HTML file."""
    from textclf.errors import RunError
    from textclf.reports import write_html_report
    from textclf.runs import complete_runs, resolve_run

    paths = [resolve_run(r, runs_root, complete=False) for r in run_refs] if run_refs else complete_runs(runs_root)
    if not paths:
        raise RunError(f"no complete run under {runs_root}/ to report on")
    written = write_html_report(paths, out_path)
    out.print(f"wrote {written} ({len(paths)} run{'s' if len(paths) != 1 else ''})")
