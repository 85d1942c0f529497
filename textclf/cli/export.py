"""`textclf export`: a run as a SavedModel (raw strings in) or a TFLite model."""

from __future__ import annotations

from typing import Annotated, Optional

import enum

import typer

from textclf.cli._render import RUN_HELP, ProgressListener, one_run, out


app = typer.Typer()  # registered by textclf.cli


class Format(str, enum.Enum):
    saved_model = "saved_model"
    tflite = "tflite"


@app.command("export")
def export(
    run_dir: Annotated[Optional[str], typer.Argument(help=RUN_HELP, show_default=False)] = None,
    run: Annotated[Optional[str], typer.Option(help="The run (instead of the argument).", show_default=False)] = None,
    fmt: Annotated[Format, typer.Option("--format", help="saved_model or tflite.")] = "saved_model",
    out_dir: Annotated[str, typer.Option("--out", help="Directory to create for the export.")] = "export",
    runs_root: Annotated[str, typer.Option(help="Where to look for the latest run.")] = "runs",
) -> None:
    """Export a trained classifier: strings in, probabilities and labels out (TF Serving ready)."""
    from textclf.export import META_FILE, export_run

    fmt = Format(fmt).value
    with ProgressListener(hold=False) as listener:
        written = export_run(one_run(run_dir, run), fmt, out_dir, runs_root, say=listener.on_status)
    if fmt == "tflite":
        sig = "serving_default: token_ids (int32) → probabilities; tokenize with vocab.txt"
    else:
        import json

        outputs = json.loads((written / META_FILE).read_text(encoding="utf-8"))["outputs"]
        sig = f"serving_default: text (string) → {', '.join(outputs)}"
    out.print(f"exported {fmt} to {written}  ({sig})")
