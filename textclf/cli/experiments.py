"""`textclf experiments list|run`: the named experiments of experiments.yaml."""

from __future__ import annotations

from typing import Annotated, Any, Optional

import typer

from textclf.cli._render import err, json_line, out, pct, run_with_progress
from textclf.errors import ConfigError, TextclfError

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
                       "config": e.config.to_dict()})
        for name, members in loaded.groups.items():
            json_line({"group": name, "experiments": list(members)})
        return
    from rich.table import Table

    table = Table(title=f"experiments in {loaded.path}")
    for col in ("name", "model", "epochs", "lr", "batch", "description"):
        table.add_column(col, overflow="fold")
    for e in loaded.experiments.values():
        t = e.config.training
        table.add_row(e.name, e.config.model, str(t.epochs), f"{t.learning_rate:g}", str(t.global_batch_size),
                      e.description)
    out.print(table)
    for name, members in loaded.groups.items():
        out.print(f"group [bold]{name}[/]: {' '.join(members)}", highlight=False)


@app.command("run")
def run_experiments(
    names: Annotated[Optional[list[str]], typer.Argument(
        help="Experiments or groups of experiments (groups: in the file) to run, in order.")] = None,
    all_: Annotated[bool, typer.Option("--all", help="Run every experiment of the file.")] = False,
    data: Annotated[Optional[str], typer.Option(help="Training data spec for every experiment.")] = None,
    eval_data: Annotated[Optional[str], typer.Option(help="Eval data spec for every experiment.")] = None,
    epochs: Annotated[Optional[int], typer.Option(help="Epochs for every experiment.")] = None,
    set_: Annotated[Optional[list[str]], typer.Option(
        "--set", help="Override a config field in every experiment, e.g. --set data=csv:train.csv "
                      "(repeatable).")] = None,
    fresh: Annotated[bool, typer.Option(
        "--fresh", help="Start over even when an interrupted run of the experiment can be resumed.")] = False,
    experiments_file: Annotated[str, typer.Option(help=FILE_HELP)] = "experiments.yaml",
    runs_root: Annotated[str, typer.Option(help="Where runs and `latest` live.")] = "runs",
    as_json: Annotated[bool, typer.Option("--json", help="Print the comparison as one JSON object.")] = False,
) -> None:
    """Run experiments one after another, then compare them in one table.

    An experiment whose earlier run was interrupted (killed, crashed, Ctrl-C) continues
    that run from its last completed epoch, unless --fresh.
    """
    from textclf.config import options_layer, parse_sets
    from textclf.experiments import load_experiments
    from textclf.runs import interrupted_run
    from textclf.training import resume_run, run_training

    if all_ and names:
        raise ConfigError("give experiment names or --all, not both")
    loaded = load_experiments(experiments_file)
    chosen = list(loaded.experiments) if all_ else loaded.expand(list(names or []))
    if not chosen:
        raise ConfigError("name the experiments to run (see `textclf experiments list`) or pass --all")
    overrides = [options_layer({"data": data, "eval_data": eval_data, "epochs": epochs}), parse_sets(set_ or [])]
    configs = {name: loaded.resolve(name, *overrides) for name in dict.fromkeys(chosen)}  # all valid first
    rows: list[dict[str, Any]] = []
    for name, config in configs.items():
        err.rule(f"experiment {name}")
        interrupted = None if fresh else interrupted_run(runs_root, name, config.to_dict())
        try:
            if interrupted is not None:
                err.print(f"resuming the interrupted run {interrupted}")
                result = run_with_progress(lambda listener: resume_run(interrupted, listener=listener))
            else:
                result = run_with_progress(lambda listener: run_training(
                    config, runs_root=runs_root, listener=listener, experiment=name))
        except TextclfError as failure:
            err.print(f"[yellow]experiment {name} failed:[/] {failure}", highlight=False)
            rows.append({"experiment": name, "status": "failed", "error": str(failure)})
            continue
        m = result.metrics
        rows.append({"experiment": name, "status": "complete", "run": str(result.run_dir), "model": config.model,
                     "accuracy": m["accuracy"], "macro_f1": m["macro_f1"],
                     "train_examples_per_second": m["train_examples_per_second"],
                     "duration_seconds": result.info.get("duration_seconds")})
    if as_json:
        json_line({"experiments": rows})
    else:
        _comparison_table(rows)
    failed = [r["experiment"] for r in rows if r["status"] != "complete"]
    if failed:
        raise TextclfError(f"{len(failed)} of {len(rows)} experiments failed: {', '.join(failed)}")


def _comparison_table(rows: list[dict[str, Any]]) -> None:
    from rich.table import Table

    done = [r for r in rows if r["status"] == "complete"]
    best = {k: max((r[k] for r in done), default=None) for k in ("accuracy", "macro_f1", "train_examples_per_second")}
    table = Table(title="experiments")
    for col in ("experiment", "model", "accuracy", "macro-F1", "train examples/s", "duration", "run"):
        table.add_column(col, justify="right" if col in ("accuracy", "macro-F1", "train examples/s", "duration")
                         else "left", overflow="fold")

    def mark(key: str, value: float, text: str) -> str:
        return f"[bold green]{text}[/]" if len(done) > 1 and value == best[key] else text

    for r in rows:
        if r["status"] != "complete":
            table.add_row(r["experiment"], "", "[red]failed[/]", "", "", "", r.get("error", "")[:80])
            continue
        table.add_row(r["experiment"], r["model"], mark("accuracy", r["accuracy"], pct(r["accuracy"])),
                      mark("macro_f1", r["macro_f1"], pct(r["macro_f1"])),
                      mark("train_examples_per_second", r["train_examples_per_second"],
                           f"{r['train_examples_per_second']:,.0f}"),
                      f"{r['duration_seconds'] or 0:.1f} s", r["run"])
    out.print(table)
