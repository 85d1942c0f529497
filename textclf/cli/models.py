"""`textclf models ...`: what can be trained."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from textclf.cli import app
from textclf.cli._render import json_line, out

models_app = typer.Typer(help="List registered models.", no_args_is_help=True)
app.add_typer(models_app, name="models")


@models_app.command("list")
def list_models(
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object with a `models` list.")] = False,
) -> None:
    """List registered models with a one-line description."""
    import dataclasses

    from textclf.registry import MODELS

    entries = MODELS.entries()
    if as_json:
        json_line({"models": [
            {"name": e.name, "description": e.description,
             "params": {f.name: f.default for f in dataclasses.fields(e.params_cls)},
             "training_defaults": dict(e.training_defaults)}
            for e in entries]})
        return
    table = Table(title="textclf models")
    table.add_column("name", style="bold cyan")
    table.add_column("description")
    for e in entries:
        table.add_row(e.name, e.description)
    out.print(table)
