"""`textclf runs list|compare`: what has been trained, side by side."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from textclf.cli._render import json_line, out, pct, styled
from textclf.errors import ConfigError

# Registered by textclf.cli as `runs`.
app = typer.Typer(help="Runs under the runs folder: list them and compare them.", no_args_is_help=True)

STATUS_STYLE = {"complete": "green", "failed": "red", "interrupted": "yellow", "running": "cyan", "damaged": "red"}


@app.command("list")
def list_runs(
    runs_root: Annotated[str, typer.Option(help="Where runs live.")] = "runs",
    expand: Annotated[bool, typer.Option("--expand", help="List the runs of each group under it.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per line (runs, then groups).")] = False,
) -> None:
    """Every run: name, model, data, epochs, accuracy, macro-F1, duration and status.

    A group of runs (--seeds, --folds) is one row with its mean ± sd; --expand lists its runs.
    """
    from textclf.reports import group_rows, run_rows

    rows = run_rows(runs_root)
    groups = group_rows(rows)
    if as_json:
        for row in rows:
            json_line(row)
        for g in groups.values():
            json_line({k: v for k, v in g.items() if k != "members"})
        return
    if not rows:
        out.print(f"no runs under {runs_root}/")
        return
    out.print(_runs_table(rows, groups, runs_root, expand))
    stopped = [r for r in rows if r["status"] == "interrupted"]
    if stopped:
        root = "" if runs_root == "runs" else f" --runs-root {runs_root}"
        extend = " (add --epochs N to train to N epochs)" if stopped[-1].get("epochs") is not None else ""
        out.print(f"interrupted: continue with textclf train --resume {stopped[-1]['name']}{root}{extend}",
                  highlight=False)


def _runs_table(rows: list[dict], groups: dict[str, dict], runs_root: str, expand: bool):
    from rich import box

    from textclf.reports import format_proportion
    from textclf.cli._render import Table

    table = Table(title=f"runs in {runs_root}/", box=box.SIMPLE_HEAD, pad_edge=False)
    for col in ("name", "model", "data", "epochs", "acc", "F1", "time", "status"):
        table.add_column(col, justify="right" if col in ("epochs", "acc", "F1", "time") else "left",
                         no_wrap=col != "data", overflow="fold")
    shown: set[str] = set()
    for r in rows:
        if r["group"] is None:
            table.add_row(*_run_cells(r))
            continue
        if r["group"] in shown:
            continue
        shown.add(r["group"])
        g = groups[r["group"]]
        style = "green" if g["complete"] == g["size"] else "yellow"
        table.add_row(styled("[bold]{}[/]", g['group']), g["model"] or "", _short(g["data"]), "",
                      format_proportion(g["accuracy"], ci=False),
                      format_proportion(g["macro_f1"], ci=False), f"{g['duration_seconds']:.1f} s",
                      styled(f"[{style}]{{}}/{{}} complete[/]", g['complete'], g['size']))
        if expand:
            for m in g["members"]:
                cells = _run_cells(m)
                table.add_row(f"  └ {cells[0]}", *cells[1:])
    return table


def _short(data) -> str:
    kind, _, where = str(data or "").partition(":")
    return f"{kind}:{Path(where).name}" if "/" in where else str(data or "")


def _run_cells(r: dict) -> list[str]:
    style = STATUS_STYLE.get(r["status"], "white")
    return [r["name"], r["model"] or "", _short(r["data"]), str(r["epochs"] or ""),
            pct(r["accuracy"]) if isinstance(r["accuracy"], (int, float)) else "",
            pct(r["macro_f1"]) if isinstance(r["macro_f1"], (int, float)) else "",
            f"{r['duration_seconds']:.1f} s" if isinstance(r["duration_seconds"], (int, float)) else "",
            styled(f"[{style}]{{}}[/]", r['status'])]


def _compared_items(run_refs: list[str], runs_root: str) -> list:
    """Two or more runs or groups, each named once."""
    from textclf.runs import resolve_items

    if len(run_refs) < 2:
        raise ConfigError(f"runs compare needs two or more runs or groups (got {len(run_refs)}), e.g. textclf runs "
                          "compare ngram-linear transformer (model names: their newest runs); see textclf runs list")
    items = resolve_items(run_refs, runs_root)
    seen: dict[str, str] = {}
    for ref, item in zip(run_refs, items):
        for path in item if isinstance(item, list) else [item]:
            key = str(Path(path).resolve())
            if key in seen:
                raise ConfigError(f"{seen[key]} and {ref} name the same run ({Path(key).name}); compare different runs")
            seen[key] = ref
    return items


@app.command("compare")
def compare(
    run_refs: Annotated[Optional[list[str]], typer.Argument(
        help="Runs (as every command names them) or group ids: two or more.", show_default=False)] = None,
    run: Annotated[Optional[list[str]], typer.Option(help="A run or group (repeat; with the arguments).",
                                                     show_default=False)] = None,
    runs_root: Annotated[str, typer.Option(help="Where run names and groups are looked up.")] = "runs",
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
    speed: Annotated[bool, typer.Option("--speed", help="Also measure each run's prediction speed now: warm "
                                        "texts/s on its eval texts and a cold `textclf predict` (a group: its first "
                                        "run).")] = False,
    plot: Annotated[Optional[str], typer.Option(metavar="PATH", help="With --speed: write the accuracy-speed "
                                                "frontier as a PNG.")] = None,
) -> None:
    """Runs or groups side by side: metrics, whether the leader is ahead by more than noise, config differences.

    Groups show mean ± sd and the 95% interval; the tests are McNemar's exact test and a paired
    bootstrap interval on the saved per-example predictions. Bold marks a leader only when it beats
    every other by more than noise; runs evaluated on different data are not ranked at all.
    """
    from textclf.reports import compare_runs

    if plot and not speed:
        raise ConfigError("--plot draws accuracy against the speed that --speed measures: add --speed")
    if plot:
        from textclf.reports import check_plot_path

        check_plot_path(plot)
    items = _compared_items([*(run_refs or []), *(run or [])], runs_root)
    result = compare_runs(items, speed=speed)
    if plot:
        from textclf.reports import frontier
        from textclf.runs import write_output

        write_output(plot, frontier(result))
    json_line(result) if as_json else _print_comparison(result)


def _print_comparison(result: dict) -> None:
    from textclf.cli._render import Table
    from textclf.reports import format_summary, shown_metrics, verdict_lines

    metrics = Table(title="metrics (bold: ahead of all others by more than noise)")
    metrics.add_column("metric")
    for name, n in zip(result["runs"], result["n"]):
        metrics.add_column(name if n == 1 else f"{name} ({n} runs)", justify="right", overflow="fold")
    for key, label, _ in shown_metrics(result):
        cells = []
        for i, name in enumerate(result["runs"]):
            text = format_summary(result, key, i)
            cells.append(styled("[bold green]{}[/]", text) if result["best"].get(key) == name else text)
        metrics.add_row(label, *cells)
    out.print(metrics)
    for line in verdict_lines(result):
        out.print(line, highlight=False)
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
