"""`textclf models ...`: what can be trained."""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from textclf.cli._render import ProgressListener, Table, json_line, out, styled

# Registered by textclf.cli as `models`.
app = typer.Typer(help="List registered models; import Hugging Face BERT checkpoints.", no_args_is_help=True)


@app.command("list")
def list_models(
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per model, one per line.")] = False,
) -> None:
    """List registered models with a one-line description."""
    import dataclasses

    from textclf.models.catalog import MODELS

    entries = MODELS.entries()
    if as_json:  # JSON Lines, as every list textclf prints
        for e in entries:
            json_line({"name": e.name, "description": e.description,
                       "params": {**{f.name: f.default for f in dataclasses.fields(e.params_cls)}, **e.param_defaults},
                       "training_defaults": dict(e.training_defaults)})
        return
    table = Table(title="textclf models")
    table.add_column("name", style="bold cyan")
    table.add_column("description")
    for e in entries:
        table.add_row(e.name, e.description)
    out.print(table)


@app.command("import-hf")
def import_hf(
    directory: Annotated[str, typer.Argument(
        help="Hugging Face BERT folder: config.json, model.safetensors, vocab.txt.")],
    name: Annotated[str, typer.Option(help="Name to use with --model / --encoder.")],
    overwrite: Annotated[bool, typer.Option(help="Replace an imported model of the same name.")] = False,
    layers: Annotated[Optional[int], typer.Option(
        help="Keep only the first N transformer layers: a smaller, faster encoder (a distillation student).")] = None,
) -> None:
    """Convert a Hugging Face BERT checkpoint into TF-Hub-format SavedModels in textclf's model store."""
    from textclf.models.bert.hf_import import import_hf as run_import

    with ProgressListener(hold=False) as listener:
        path = run_import(directory, name, overwrite=overwrite, layers=layers, say=listener.on_status)
    out.print(styled("imported [bold cyan]{}[/] → {}", name, path))
    out.print(f"use it with: textclf finetune-bert-adamw --model {name}  (or train-bert-frozen, train --model {name})")
