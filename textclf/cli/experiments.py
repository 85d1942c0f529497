"""`textclf experiments list|run`: the named experiments of experiments.yaml."""

from __future__ import annotations

from typing import Annotated, Any, Optional

import typer

from textclf.cli._render import err, json_line, json_output, out, pct, styled, train_and_show
from textclf.errors import ConfigError, Interrupted, TextclfError

# Registered by textclf.cli as `experiments`.
app = typer.Typer(help="Named experiments from experiments.yaml: list them, run and compare them.",
                  no_args_is_help=True)

FILE_HELP = "The experiments file."


@app.command("list")
def list_experiments(
    experiments_file: Annotated[str, typer.Option(help=FILE_HELP)] = "experiments.yaml",
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per line.")] = False,
) -> None:
    """The experiments of the file, with their model and description."""
    from textclf.experiments import load_experiments

    loaded = load_experiments(experiments_file)
    if as_json:
        for e in loaded.experiments.values():
            json_line({"name": e.name, "model": e.config.model, "description": e.description,
                       "source": str(e.source), "config": e.config.to_dict()})
        for name, members in loaded.groups.items():
            json_line({"group": name, "experiments": list(members)})
        return
    from textclf.cli._render import Table

    from textclf.experiments import SHIPPED

    table = Table(title="experiments (shipped: textclf's recipes; or from your file)")
    for col in ("name", "model", "epochs", "lr", "batch", "from", "description"):
        table.add_column(col, overflow="fold")
    for e in loaded.experiments.values():
        t = e.config.training
        table.add_row(e.name, e.config.model, str(t.epochs), f"{t.learning_rate:g}", str(t.global_batch_size),
                      "shipped" if e.source == SHIPPED else str(e.source), e.description)
    out.print(table)
    for name, members in loaded.groups.items():
        out.print(styled("group [bold]{}[/]: {}", name, " ".join(members)), highlight=False)
    for name, why in loaded.unusable.items():
        out.print(f"not usable with your defaults: {why}", highlight=False)


@app.command("run")
def run_experiments(
    names: Annotated[Optional[list[str]], typer.Argument(
        help="Experiments or groups of experiments (groups: in the file) to run, in order.")] = None,
    all_: Annotated[bool, typer.Option(
        "--all", help="Run every experiment of your experiments file (the shipped recipes when there is none)."
    )] = False,
    data: Annotated[Optional[str], typer.Option(help="Training data spec for every experiment.")] = None,
    eval_data: Annotated[Optional[str], typer.Option(help="Eval data spec for every experiment.")] = None,
    epochs: Annotated[Optional[int], typer.Option(help="Epochs for every experiment.")] = None,
    seeds: Annotated[Optional[int], typer.Option(
        help="Run each experiment N times with seeds seed … seed+N-1 (a group): mean ± sd and 95% interval.")] = None,
    folds: Annotated[Optional[int], typer.Option(
        help="Cross-validate each experiment with K stratified folds of its training data (a group).")] = None,
    set_: Annotated[Optional[list[str]], typer.Option(
        "--set", help="Override a config field in every experiment, e.g. --set data=csv:train.csv "
                      "(repeatable).")] = None,
    fresh: Annotated[bool, typer.Option(
        "--fresh", help="Start over even when an interrupted run of the experiment can be resumed.")] = False,
    experiments_file: Annotated[str, typer.Option(help=FILE_HELP)] = "experiments.yaml",
    runs_root: Annotated[str, typer.Option(help="Where runs and `latest` live.")] = "runs",
    as_json: Annotated[bool, typer.Option("--json", help="Print the results and the comparison as one JSON object.")]
    = False,
) -> None:
    """Run experiments one after another, then compare them: each metric with its uncertainty and
    whether the leader is ahead by more than noise.

    An experiment whose earlier run (or group of runs) was interrupted (killed, crashed, Ctrl-C)
    continues from its last completed epoch, unless --fresh.
    """
    from textclf.config import options_layer, parse_sets
    from textclf.experiments import load_experiments

    if all_ and names:
        raise ConfigError("give experiment names or --all, not both")
    if as_json:
        json_output()
    loaded = load_experiments(experiments_file)
    chosen = _chosen(loaded, names, all_)
    overrides = [options_layer({"data": data, "eval_data": eval_data, "epochs": epochs, "seeds": seeds,
                                "folds": folds}), parse_sets(set_ or [])]
    configs = {name: loaded.resolve(name, *overrides) for name in dict.fromkeys(chosen)}  # all valid first
    rows: list[dict[str, Any]] = []
    items = []
    for name, config in configs.items():
        err.rule(f"experiment {name}")
        try:
            row, item = _run_one(name, config, runs_root, fresh)
        except Interrupted:
            raise  # Ctrl-C stops the whole command (the run says how to resume), not just this experiment
        except TextclfError as failure:
            err.print(styled("[yellow]experiment {} failed:[/] {}", name, failure), highlight=False)
            rows.append({"experiment": name, "status": "failed", "error": str(failure)})
            continue
        rows.append(row)
        items.append(item)
    _report(rows, items, as_json)


def _chosen(loaded, names: list[str] | None, all_: bool) -> list[str]:
    """The experiments to run: the names (groups expanded), or with --all your file's (the shipped ones
    when you have none)."""
    own = [name for name, e in loaded.experiments.items() if e.source == loaded.path]
    chosen = (own or list(loaded.experiments)) if all_ else loaded.expand(list(names or []))
    if not chosen:
        raise ConfigError("name the experiments to run (see `textclf experiments list`) or pass --all")
    return chosen


def _report(rows: list[dict], items: list, as_json: bool) -> None:
    """The comparison of the experiments that completed (JSON or a table); exit 1 naming the failed ones."""
    from textclf.reports import compare_runs

    done = [r["experiment"] for r in rows if r["status"] == "complete"]
    comparison = compare_runs(items, names=done) if len(items) > 1 else None
    if as_json:
        json_line({"experiments": rows, "comparison": comparison})
    else:
        _comparison_table(rows, comparison)
    failed = [r["experiment"] for r in rows if r["status"] != "complete"]
    if failed:
        raise TextclfError(f"{len(failed)} of {len(rows)} experiments failed: {', '.join(failed)}")


def _run_one(name: str, config, runs_root: str, fresh: bool):
    """Train one experiment (a group when it has seeds or folds; an interrupted run resumed unless `fresh`):
    its row of the results table, and its run directory (a list for a group)."""
    from textclf.training import GroupResult

    result = train_and_show(config=config, runs_root=runs_root, experiment=name, fresh=fresh)
    if isinstance(result, GroupResult):
        group = result
        return ({"experiment": name, "status": "complete", "model": config.model, **group.to_dict(),
                 "train_examples_per_second": _mean([r.metrics["train_examples_per_second"] for r in group.results]),
                 "duration_seconds": sum(r.info.get("duration_seconds") or 0 for r in group.results)},
                [r.run_dir for r in group.results])
    m = result.metrics
    return ({"experiment": name, "status": "complete", "run": str(result.run_dir), "model": config.model,
             "accuracy": m["accuracy"], "macro_f1": m["macro_f1"],
             "train_examples_per_second": m["train_examples_per_second"],
             "duration_seconds": result.info.get("duration_seconds")}, result.run_dir)


def _mean(values: list[float]) -> float:
    return sum(values) / len(values) if values else 0.0


def _comparison_table(rows: list[dict[str, Any]], comparison: dict | None) -> None:
    from textclf.cli._render import Table

    from textclf.reports import format_proportion, verdict_lines

    best = comparison["best"] if comparison else {}
    table = Table(title="experiments (bold: ahead of all others by more than noise)")
    for col in ("experiment", "model", "runs", "accuracy", "macro-F1", "train examples/s", "duration", "run"):
        table.add_column(col, justify="right" if col in ("runs", "accuracy", "macro-F1", "train examples/s", "duration")
                         else "left", overflow="fold")

    def cell(row: dict, key: str) -> str:
        value = row[key]
        if isinstance(value, dict):
            text = format_proportion(value)
        else:
            text = pct(value) if key != "train_examples_per_second" else f"{value:,.0f}"
        return styled("[bold green]{}[/]", text) if best.get(key) == row["experiment"] else text

    for r in rows:
        if r["status"] != "complete":
            table.add_row(r["experiment"], "", "", styled("[red]failed[/]"), "", "", "", r.get("error", "")[:80])
            continue
        table.add_row(r["experiment"], r["model"], str(len(r["runs"])) if "runs" in r else "1",
                      cell(r, "accuracy"), cell(r, "macro_f1"), cell(r, "train_examples_per_second"),
                      f"{r['duration_seconds'] or 0:.1f} s", r.get("group") or r["run"])
    out.print(table)
    for line in verdict_lines(comparison) if comparison else []:
        out.print(line, highlight=False)
