"""`textclf tune EXPERIMENT --space KEY=CHOICES --trials N`: hyperparameter search (optuna)."""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from textclf.cli._render import json_line, json_output, out, pct, run_member, styled

app = typer.Typer()  # registered by textclf.cli


@app.command("tune")
def tune(
    experiment: Annotated[str, typer.Argument(help="The experiment to tune (see `textclf experiments list`).")],
    space: Annotated[Optional[list[str]], typer.Option(
        "--space", help="A searched field: KEY=a,b,c (choices), KEY=LOW..HIGH (uniform; integers when both are) or "
                        "KEY=log:LOW..HIGH; repeatable, e.g. --space training.learning_rate=log:1e-4..1e-2.")] = None,
    trials: Annotated[int, typer.Option(help="Trials in the search (complete or pruned).", min=1,
                                        max=100_000)] = 8,
    data: Annotated[Optional[str], typer.Option(help="Training data spec (default: the experiment's).")] = None,
    set_: Annotated[Optional[list[str]], typer.Option(
        "--set", help="Override a config field in every trial, e.g. --set training.epochs=5 (repeatable).")] = None,
    name: Annotated[Optional[str], typer.Option(
        help="Name of the experiment written with the best values (default: EXPERIMENT-tuned).")] = None,
    out_dir: Annotated[Optional[str], typer.Option(
        "--out", help="The search folder: optuna's study and every trial's run (default: tuning/EXPERIMENT).")] = None,
    seed: Annotated[int, typer.Option(help="Seed of the sampler.")] = 0,
    experiments_file: Annotated[str, typer.Option(help="The experiments file (the new experiment goes in it).")]
    = "experiments.yaml",
    as_json: Annotated[bool, typer.Option("--json", help="Print the trials and the best as one JSON object.")] = False,
) -> None:
    """Search an experiment's hyperparameters on a fold of its training data; the best become a new experiment.

    Never reads the eval data; weak trials are pruned (optuna). Run the same command again after an
    interruption: the search continues where it stopped.
    """
    from textclf.config import options_layer, parse_sets
    from textclf.tuning import parse_space, tune as run_search

    if as_json:
        json_output()
    dims = parse_space(space or [])
    overrides = [options_layer({"data": data}), parse_sets(set_ or [])]
    result = run_search(experiment, dims, trials=trials, overrides=overrides, experiments_file=experiments_file,
                        name=name, out=out_dir, seed=seed, each=run_member)
    if as_json:
        json_line(result.to_dict())
        return
    from textclf.cli._render import Table

    table = Table(title=f"trials of {experiment} (scored on a fold of the training data)")
    for col in ("trial", "state", "val accuracy", *[d.path for d in dims], "run"):
        table.add_column(col, justify="right" if col in ("trial", "val accuracy") else "left", overflow="fold")
    for row in result.trials:
        best = row["number"] == result.best["number"]
        value = pct(row["value"]) if isinstance(row["value"], (int, float)) else ""
        state = row["state"] + (f" after epoch {row['last_epoch']}" if row["state"] == "pruned" and row["last_epoch"]
                                else "")
        table.add_row(str(row["number"]), state, styled("[bold green]{}[/]", value) if best else value,
                      *[_fmt(row["params"].get(d.path)) for d in dims], row.get("run_dir") or "")
    out.print(table)
    out.print(styled("best: trial {}, validation accuracy {} → experiment [bold]{}[/] in {} "
                     "(`textclf train --experiment {}`)", result.best['number'], pct(result.best['value']), result.name,
                     result.experiments_file, result.name), highlight=False)


def _fmt(value) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)
