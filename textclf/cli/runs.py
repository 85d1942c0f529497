"""`textclf runs list|compare`: what has been trained, side by side."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from textclf.cli._render import json_line, out, pct
from textclf.errors import ConfigError

# Registered by textclf.cli as `runs`.
app = typer.Typer(help="Runs under the runs folder: list them and compare them.", no_args_is_help=True)

STATUS_STYLE = {"complete": "green", "failed": "red", "interrupted": "yellow", "running": "cyan"}


@app.command("list")
def list_runs(
    runs_root: Annotated[str, typer.Option(help="Where runs live.")] = "runs",
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per line.")] = False,
) -> None:
    """Every run: name, model, data, epochs, accuracy, macro-F1, duration and status."""
    from textclf import runs

    found = runs.list_runs(runs_root)
    rows = [{"name": i["name"], "experiment": i.get("experiment"), "model": i.get("model"), "data": i.get("data"),
             "epochs": i.get("epochs"), "accuracy": i.get("accuracy"), "macro_f1": i.get("macro_f1"),
             "duration_seconds": i.get("duration_seconds"), "status": i["status"], "started": i.get("started"),
             "path": i["path"], "error": i.get("error")} for i in found]
    if as_json:
        for row in rows:
            json_line(row)
        return
    if not rows:
        out.print(f"no runs under {runs_root}/")
        return
    from rich import box
    from rich.table import Table

    table = Table(title=f"runs in {runs_root}/", box=box.SIMPLE_HEAD, pad_edge=False)
    for col in ("name", "model", "data", "epochs", "acc", "F1", "time", "status"):
        table.add_column(col, justify="right" if col in ("epochs", "acc", "F1", "time") else "left",
                         no_wrap=col != "data", overflow="fold")
    for r in rows:
        style = STATUS_STYLE.get(r["status"], "white")
        kind, _, where = str(r["data"] or "").partition(":")
        data = f"{kind}:{Path(where).name}" if "/" in where else str(r["data"] or "")
        table.add_row(r["name"], r["model"] or "", data, str(r["epochs"] or ""),
                      pct(r["accuracy"]) if isinstance(r["accuracy"], (int, float)) else "",
                      pct(r["macro_f1"]) if isinstance(r["macro_f1"], (int, float)) else "",
                      f"{r['duration_seconds']:.1f} s" if isinstance(r["duration_seconds"], (int, float)) else "",
                      f"[{style}]{r['status']}[/]")
    out.print(table)


@app.command("compare")
def compare(
    run_refs: Annotated[list[str], typer.Argument(help="Run directories or run names (two or more).")],
    runs_root: Annotated[str, typer.Option(help="Where run names are looked up.")] = "runs",
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
) -> None:
    """Config differences and metrics of runs side by side; the best value of each metric in bold."""
    from textclf.reports import COMPARED_METRICS, compare_runs, format_metric
    from textclf.runs import resolve_run

    if len(run_refs) < 2:
        raise ConfigError("runs compare needs at least two runs")
    result = compare_runs([resolve_run(r, runs_root, complete=False) for r in run_refs])
    if as_json:
        json_line(result)
        return
    from rich.table import Table

    metrics = Table(title="metrics (best in bold)")
    metrics.add_column("metric")
    for name in result["runs"]:
        metrics.add_column(name, justify="right", overflow="fold")
    for key, label, _ in COMPARED_METRICS:
        cells = []
        for name, value in zip(result["runs"], result["metrics"][key]):
            text = format_metric(key, value)
            cells.append(f"[bold green]{text}[/]" if result["best"].get(key) == name else text)
        metrics.add_row(label, *cells)
    out.print(metrics)
    if result["config_differences"]:
        diff = Table(title="config differences")
        diff.add_column("field")
        for name in result["runs"]:
            diff.add_column(name, overflow="fold")
        for key, values in result["config_differences"].items():
            diff.add_row(key, *["–" if v is None else str(v) for v in values])
        out.print(diff)
    else:
        out.print("the runs' configs are identical")
